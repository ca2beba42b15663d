"""Fashion-MNIST verification, on synthetic idx files (no Debian package needed)."""

import gzip
import json
import struct

import numpy as np
import pytest

from model.fashion_mnist import load_fashion_mnist, read_idx
from model.verify import main


def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def fake_fashion_mnist(root, n=40):
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 10
    images = (labels[:, None, None] * 25 + rng.integers(0, 10, (n, 28, 28))).astype(np.uint8)  # class = brightness
    write_idx(root / "t10k-images-idx3-ubyte.gz", images)
    write_idx(root / "t10k-labels-idx1-ubyte.gz", labels)
    return images, labels


def test_read_idx_round_trip_and_bad_header(tmp_path):
    images, labels = fake_fashion_mnist(tmp_path)
    assert np.array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), images)
    x, y = load_fashion_mnist(tmp_path, ("test",))
    assert x.shape == (40, 28, 28, 1) and np.array_equal(y, labels)
    with gzip.open(tmp_path / "bad.gz", "wb") as fh:
        fh.write(b"\x00\x00\x0d\x01\x00\x00\x00\x02")
    with pytest.raises(ValueError, match="not an unsigned-byte idx"):
        read_idx(tmp_path / "bad.gz")
    write_idx(tmp_path / "short.gz", np.zeros(3))
    with gzip.open(tmp_path / "short.gz", "rb") as fh:
        data = fh.read()
    with gzip.open(tmp_path / "short.gz", "wb") as fh:
        fh.write(data[:-1])
    with pytest.raises(ValueError, match="header says"):
        read_idx(tmp_path / "short.gz")


def test_missing_dataset_tells_to_run_make_verify(tmp_path):
    with pytest.raises(FileNotFoundError, match="make verify"):
        load_fashion_mnist(tmp_path, ("test",))


def test_quick_verify_writes_json_and_markdown(tmp_path, capsys):
    fake_fashion_mnist(tmp_path)
    out = tmp_path / "out"
    main(["--quick", "--seeds", "2", "--data-dir", str(tmp_path), "--out", str(out), "--device", "cpu",
          "--pretrain-epochs", "1", "--maxiter", "3", "--work-dir", str(tmp_path / "work")])
    document = json.loads((out / "fashion-mnist.json").read_text())
    assert document["git_sha"] is None or len(document["git_sha"]) == 40
    assert document["comparisons"]["cae_kmeans"]["acc"]["n"] == 2
    assert document["mode"] == "quick" and document["n_images"] == 40 and document["seeds"] == [0, 1]
    assert document["comparisons"]["n2d"]["nmi"]["verdict"] in ("better", "worse", "no detectable difference")
    for method in ("kmeans_pixels", "cae_kmeans", "n2d", "dcec"):
        for key in ("acc", "nmi", "ari"):
            assert set(document["methods"][method][key]) == {"mean", "std"}
        assert len(document["methods"][method]["per_seed"]) == 2
    assert document["methods"]["kmeans_pixels"]["acc"]["mean"] == 1.0  # classes differ by brightness
    table = (out / "fashion-mnist.md").read_text()
    assert "| DCEC (ours) |" in table and "0.47" in table and "DEC-keras" in table
    assert "| N2D (CAE → UMAP → GMM) (ours) |" in table and "| N2D | 0.672 | 0.684 |" in table


def test_a_rerun_resumes_finished_seeds_and_redoes_a_changed_protocol(tmp_path, monkeypatch):
    import model.verify as verify

    fake_fashion_mnist(tmp_path)
    args = ["--quick", "--seeds", "2", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out"),
            "--device", "cpu", "--pretrain-epochs", "1", "--maxiter", "3", "--work-dir", str(tmp_path / "work")]
    main(args)
    first = json.loads((tmp_path / "out/fashion-mnist.json").read_text())
    ran = []
    real = verify.run_seed
    monkeypatch.setattr(verify, "run_seed", lambda *a, **k: ran.append(a[3]) or real(*a, **k))
    main(args)  # as after an interruption once both seeds had finished: nothing is recomputed
    assert ran == []
    assert json.loads((tmp_path / "out/fashion-mnist.json").read_text())["methods"]["dcec"]["acc"] == \
        first["methods"]["dcec"]["acc"]
    main(args[:-4] + ["--maxiter", "4", "--work-dir", str(tmp_path / "work")])
    assert ran == [0, 1]  # another protocol: both seeds again


def test_seeds_run_apart_are_reported_once_all_have_finished(tmp_path):
    fake_fashion_mnist(tmp_path)
    args = ["--quick", "--seeds", "2", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out"), "--device", "cpu",
            "--pretrain-epochs", "1", "--maxiter", "3", "--work-dir", str(tmp_path / "work")]
    main(args + ["--only", "1"])
    assert (tmp_path / "out/fashion-mnist/seed-1.json").is_file()
    assert not (tmp_path / "out/fashion-mnist.json").exists()  # seed 0 is still missing
    main(args + ["--only", "0"])
    assert json.loads((tmp_path / "out/fashion-mnist.json").read_text())["seeds"] == [0, 1]


def test_a_seed_key_changes_with_threads_torch_version_code_and_device(monkeypatch):
    """A finished seed is reused only by what computed it: a thread count, torch version, code or device of
    its own."""
    import importlib.metadata

    import torch

    from model.verify import MODES, seed_key

    def key(device="cpu"):
        return seed_key(MODES["quick"], 100, "off", torch.device(device))

    before = key()
    assert key() == before
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert key() != before
    finally:
        torch.set_num_threads(threads)
    assert key("cuda") != before
    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "9.9.9" if name == "torch" else real_version(name))
    assert key() != before
