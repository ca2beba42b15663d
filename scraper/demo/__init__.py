"""The embedded demo site: a seeded, Christie's-shaped catalogue served on 127.0.0.1.

Offline machines (CI included) crawl it instead of christies.com. `build_catalogue` invents the sales, lots
and artists (with ground truth for tests), `artwork` paints one picture per lot, `DemoSite` serves both
origins (www and onlineonly) with the real site's URLs, JSON shapes and typing traps, and `FaultConfig`
injects deterministic 429 / 503 / slow / reset / truncated / corrupt answers.
"""

from scraper.demo.catalogue import Catalogue, Lot, LotTruth, Sale, build_catalogue
from scraper.demo.faults import FaultConfig
from scraper.demo.server import DemoSite

__all__ = ["Catalogue", "DemoSite", "FaultConfig", "Lot", "LotTruth", "Sale", "build_catalogue"]
