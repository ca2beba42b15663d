"""Know before you go: what a crawl of the configured range will ask the site, before it asks anything.

    python -m scraper.plan [--params params.yaml] [--profile profiles/paper.yaml]
    make crawl-plan [PROFILE=profiles/paper.yaml]

Prints the months of `scrape.start..end` already settled in the response archive (replayed, no request),
the months to fetch, the estimated requests (the mean per settled month in the archive, else a prior) and
the estimated time at the configured politeness. Reads only params.yaml, scraper/settings.py and the
archive's manifests. The `scrape` stage prints the same lines first.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import load_params
from common.params import select_keys
from common.profiles import apply_profile, check_profile, load_profile
from scraper import parsing
from scraper import settings as crawl_defaults
from scraper.archive import settled_months
from scraper.stage import DEMO_CRAWL_SETTINGS, demo_answers_id

# Before any month is settled: the paper's range asks 4,000-10,000 requests over 169 months (24-59 a month).
PRIOR_REQUESTS_PER_MONTH = 40
ROBOTS_REQUESTS = 2  # robots.txt of www and onlineonly, once per crawl that asks the site anything
PARAMS = ("scrape.site", "scrape.start", "scrape.end", "scrape.archive", "demo")


def archive_root(scrape: Mapping[str, Any], demo: Mapping[str, Any], params_dir: Path) -> Path:
    """`<scrape.archive>/live`, or `<scrape.archive>/demo-<build>`: the demo's answers are kept only for the
    demo params, code and premium schedule that served them (stage.demo_answers_id). A relative `scrape.archive` is relative to
    the folder of params.yaml (the repository, where DVC runs the stage)."""
    root = (params_dir / str(scrape["archive"])).resolve()
    if scrape["site"] == "demo":
        return root / f"demo-{demo_answers_id(demo, str(scrape['start']))[:16]}"
    return root / "live"


def month_index(month: str) -> int:
    year, number = month.split("-")
    return int(year) * 12 + int(number)


def month_ranges(months: list[str]) -> str:
    """'2019-01..2019-03, 2019-05' (consecutive months joined), or '-' when none."""
    if not months:
        return "-"
    runs: list[list[str]] = []
    for month in months:
        if runs and month_index(month) == month_index(runs[-1][-1]) + 1:
            runs[-1].append(month)
        else:
            runs.append([month])
    return ", ".join(run[0] if len(run) == 1 else f"{run[0]}..{run[-1]}" for run in runs)


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class CrawlPlan:
    site: str
    archive: Path
    months: list[str]
    settled: list[str]
    requests_per_month: float
    per_month_source: str
    delay_s: tuple[float, float]  # seconds between requests to one host: DOWNLOAD_DELAY .. AutoThrottle's start

    @property
    def to_fetch(self) -> list[str]:
        return [month for month in self.months if month not in self.settled]

    @property
    def requests(self) -> int:
        if not self.to_fetch:
            return 0
        return round(len(self.to_fetch) * self.requests_per_month) + ROBOTS_REQUESTS

    def lines(self) -> list[str]:
        low, high = (self.requests * delay for delay in self.delay_s)
        if high <= 0:
            time = "seconds (loopback demo site, no politeness delay)"
        else:
            time = (f"{duration_text(low)} to {duration_text(high)} (one request per {self.delay_s[0]:g} to "
                    f"{self.delay_s[1]:g} s: DOWNLOAD_DELAY to AutoThrottle's start delay; a slow site takes longer)")
        return [
            f"crawl plan: {self.site} site, {self.months[0]}..{self.months[-1]} ({len(self.months)} months), "
            f"archive {self.archive}",
            f"  settled, replayed without a request: {len(self.settled)} months: {month_ranges(self.settled)}",
            f"  to fetch: {len(self.to_fetch)} months: {month_ranges(self.to_fetch)}",
            f"  estimated requests: ~{self.requests:,} ({self.requests_per_month:.0f} a month: "
            f"{self.per_month_source})",
            f"  estimated time: {time}",
        ]


def crawl_plan(scrape: Mapping[str, Any], demo: Mapping[str, Any], params_dir: Path) -> CrawlPlan:
    root = archive_root(scrape, demo, params_dir)
    months = [f"{y:04d}-{m:02d}" for y, m in parsing.months(str(scrape["start"]), str(scrape["end"]))]
    archived = settled_months(root)
    if archived:
        per_month = sum(archived.values()) / len(archived)
        source = f"the mean of the {len(archived)} months in the archive"
    else:
        per_month, source = PRIOR_REQUESTS_PER_MONTH, "a prior, no month archived yet"
    settings = {name: getattr(crawl_defaults, name) for name in
                ("DOWNLOAD_DELAY", "AUTOTHROTTLE_ENABLED", "AUTOTHROTTLE_START_DELAY")}
    if scrape["site"] == "demo":
        settings.update(DEMO_CRAWL_SETTINGS)
    delay = float(settings["DOWNLOAD_DELAY"])
    slowest = max(delay, float(settings["AUTOTHROTTLE_START_DELAY"])) if settings["AUTOTHROTTLE_ENABLED"] else delay
    return CrawlPlan(str(scrape["site"]), root, months, [m for m in months if m in archived], per_month, source,
                     (delay, slowest))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--profile", type=Path, help="a profile applied over the params (as make repro-paper does)")
    args = parser.parse_args(argv)
    params = load_params(path=args.params)
    if args.profile is not None:
        profile = load_profile(args.profile)
        check_profile(profile, params, args.profile)
        params = apply_profile(params, profile)
    params = select_keys(params, PARAMS, args.params)
    print("\n".join(crawl_plan(params["scrape"], params["demo"], args.params.parent).lines()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
