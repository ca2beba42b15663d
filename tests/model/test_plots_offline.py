"""`dvc plots show` renders without internet: the page template (.dvc/plots/offline.html, built by
tools/vendor_vega.py) carries vega, vega-lite and vega-embed itself; checked in a real headless browser whose
every network request goes to a dead proxy."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.test_hostile_text import chrome_driver

ROOT = Path(__file__).parents[2]
OFFLINE = ("--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>")


def dvc(*args: str, cwd: Path) -> str:
    dvc_bin = Path(sys.executable).parent / "dvc"
    return subprocess.run([str(dvc_bin), *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "DVC_NO_ANALYTICS": "1", "HOME": str(cwd)}).stdout


@pytest.fixture
def plotted(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".dvc" / "plots").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    shutil.copy(ROOT / ".dvc/config", repo / ".dvc/config")
    shutil.copy(ROOT / ".dvc/plots/offline.html", repo / ".dvc/plots/offline.html")
    (repo / "loss.tsv").write_text("step\tloss\n0\t1.0\n1\t0.5\n2\t0.25\n", encoding="utf-8")
    (repo / "dvc.yaml").write_text("plots:\n  - loss.tsv:\n      x: step\n      y: loss\n", encoding="utf-8")
    dvc("plots", "show", "-o", "out", cwd=repo)
    return repo / "out" / "index.html"


def test_the_plots_page_needs_no_cdn(plotted):
    page = plotted.read_text(encoding="utf-8")
    assert "cdn.jsdelivr" not in page and "vega-embed@6.18.2" in page


@pytest.mark.browser
def test_the_plots_page_renders_in_a_browser_without_network(plotted, tmp_path):
    driver = chrome_driver(tmp_path / "profile", OFFLINE)
    try:
        driver.get(plotted.as_uri())
        driver.implicitly_wait(10)
        marks = driver.find_elements("css selector", "canvas, svg.marks")  # what vega-embed draws
        assert marks, "vega-embed drew nothing"
        assert driver.execute_script("return typeof vegaEmbed") == "function"
    finally:
        driver.quit()
