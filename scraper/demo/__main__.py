"""Serve the demo site from params.yaml until Ctrl-C.

    python -m scraper.demo --port 8800 [--online-port 8801] [--start 2019-01] [--params params.yaml]
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from common import load_params
from scraper.demo.catalogue import build_catalogue
from scraper.demo.server import DemoSite


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scraper.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8800, help="www origin port (0: any free port)")
    parser.add_argument("--online-port", type=int, default=None, help="onlineonly origin port (default: port+1)")
    parser.add_argument("--start", default=None, help="first month YYYY-MM (default: params scrape.start)")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--online-disallows-search", action="store_true",
                        help="the online origin's robots.txt also disallows */search (blocks /sale/searchLots)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = load_params(path=args.params)
    start = args.start or str(params["scrape"]["start"])
    catalogue = build_catalogue(params["demo"], start)
    online_port = args.online_port if args.online_port is not None else (args.port + 1 if args.port else 0)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with DemoSite(catalogue, port=args.port, online_port=online_port,
                  online_disallows_search=args.online_disallows_search) as site:
        print(f"www:        {site.base_url}", flush=True)
        print(f"onlineonly: {site.online_base_url}", flush=True)
        print(f"{len(catalogue.sales)} sales, {len(catalogue.lots)} lots, months {catalogue.months[0]}.."
              f"{catalogue.months[-1]}. Ctrl-C stops.", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        print("stopping; requests served:", site.stats()["requests"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
