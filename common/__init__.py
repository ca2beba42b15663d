"""What the pipeline's three packages share: params loading, atomic writes, safe paths, progress.

`scraper/`, `curation/` and `model/` never import each other; they exchange files under `data/`
and `reports/` declared in `dvc.yaml`, and use only this module in common.
"""

from common.io import atomic_path, atomic_write, file_sha1, read_json, safe_join, write_json
from common.params import load_params
from common.progress import progress

__all__ = ["atomic_path", "atomic_write", "file_sha1", "load_params", "progress", "read_json", "safe_join", "write_json"]
