"""Benchmarks for every stage of the pipeline (issue #8): one script per concern, results in docs/BENCHMARKS.md.

    python -m bench.train      # DCEC-Paint steps vs the machine's fp32 matmul peak
    python -m bench.paper_run  # wall time of the paper configuration (measured on GPU, extrapolated on CPU)
    python -m bench.prep       # JPEG decode + resize: the project's path vs plain Pillow
    python -m bench.crawl      # requests and bytes per lot on the demo site; parsing cost per lot
    python -m bench.pipeline   # the whole DVC pipeline, stage by stage, in a scratch copy

Every script prints its table and appends it, with the machine and the exact command, to
docs/BENCHMARKS.md (`--no-record` skips that). Timings on a shared machine vary: compare the columns of
one run, which are measured side by side, rather than numbers from different runs.
"""
