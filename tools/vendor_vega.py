"""Build `.dvc/plots/offline.html`: the page template of `dvc plots show`, with vega, vega-lite and vega-embed
inlined, so the plots render on a machine without internet (DVC's own page loads them from a CDN).

    python tools/vendor_vega.py            # needs npm and the npm registry once; the result is committed

The versions are those dvc-render asks its CDN for; each library's licence travels with it in the page.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGES = {"vega": "5.20.2", "vega-lite": "5.2.0", "vega-embed": "6.18.2"}
OUTPUT = Path(__file__).resolve().parents[1] / ".dvc/plots/offline.html"
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot (offline)</title>
{inlined}
    <style>
        table {{ border-spacing: 15px; }}
        img {{ max-width: 100%; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def script(name: str, version: str, package_dir: Path) -> str:
    """One library as an inline <script>, its licence in a comment before it."""
    code = (package_dir / "build" / f"{name}.min.js").read_text(encoding="utf-8")
    licence = (package_dir / "LICENSE").read_text(encoding="utf-8").replace("--", "- -")
    if "</script" in code.lower() or "{plot_divs}" in code:
        raise ValueError(f"{name}@{version}: cannot be inlined safely")
    return f"<!-- {name}@{version} (npm), licence:\n{licence}\n-->\n<script>\n{code}\n</script>"


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
        subprocess.run(["npm", "pack", "--silent", *specs], cwd=work, check=True, stdout=subprocess.DEVNULL)
        parts = []
        for name, version in PACKAGES.items():
            target = work / name
            with tarfile.open(work / f"{name}-{version}.tgz") as archive:
                archive.extractall(target, filter="data")
            parts.append(script(name, version, target / "package"))
    page = PAGE.format(inlined="\n".join(parts), refresh_tag="{refresh_tag}")
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(page, encoding="utf-8")
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
