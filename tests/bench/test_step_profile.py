"""bench/step_profile.py: a profiled pass names its operators and, by input shape, its layers."""

from __future__ import annotations

from bench import step_profile


def test_profile_of_guo_nets_passes_names_the_convolutions_and_their_shapes(record_file):
    text = step_profile.main(["--nets", "guo", "--passes", "target,cluster", "--record-to", str(record_file)])
    assert "**guo, target**" in text and "**guo, cluster**" in text
    assert "aten::convolution_backward" in text  # only the training pass has a backward
    assert "[256, 1, 28, 28]" in text  # the first layer's input, told apart by its shape
    assert "## Where the training passes' time goes" in record_file.read_text(encoding="utf-8")
