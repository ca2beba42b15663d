"""`.dvcignore`: byte code never counts as a change of a stage's code dependency (a stray .pyc would otherwise
re-run `scrape`: hours of polite crawling on the live site)."""

from pathlib import Path

import pathspec

ROOT = Path(__file__).parents[2]


def test_byte_code_is_ignored_by_dvc_and_sources_are_not():
    lines = (ROOT / ".dvcignore").read_text(encoding="utf-8").splitlines()
    spec = pathspec.PathSpec.from_lines("gitignore", lines)
    for path in ("scraper/__pycache__/spiders.cpython-312.pyc", "scraper/stray.pyc", "model/__pycache__/x.pyc"):
        assert spec.match_file(path), path
    for path in ("scraper/spiders/christies.py", "model/dcec.py", "data/review/manifest.csv"):
        assert not spec.match_file(path), path
