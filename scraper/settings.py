"""Scrapy settings of the christies-dcec project: explicit, polite, and documented.

Scrapy's global defaults are not the `startproject` template's (pitfalls.md §1.1): every politeness value is
set here on purpose. The stage runners (scraper/scrape_stage.py, scraper/fetch_stage.py) override a few with
`-s` for the loopback demo site only.

Resuming a long crawl: run `scrapy crawl christies -a start=... -a end=... -o lots.jsonl -s JOBDIR=crawls/c1`,
stop it with ONE Ctrl-C / SIGTERM (it finishes the requests in flight and saves its queue), and rerun the same
command. Use `-o` (append), never `-O`, when resuming: `-O` truncates what the first run wrote. Read the feed
with de-duplication by lot_key (a hard kill can repeat or half-write the last lines). One JOBDIR per job, same
Scrapy version; requests that gave up stay "seen" (see the failures file and re-run those sales). A JOBDIR left
by a killed crawl (no clean-stop marker) is not resumed but started again (scraper/jobdir.py).
"""

BOT_NAME = "christies_dcec"
SPIDER_MODULES = ["scraper.spiders"]
NEWSPIDER_MODULE = "scraper.spiders"

# ---------------------------------------------------------------- site (project settings)
CHRISTIES_BASE_URL = "https://www.christies.com"
CHRISTIES_ONLINE_BASE_URL = "https://onlineonly.christies.com"
CHRISTIES_CATEGORIES = ["category_7", "category_11"]  # Fine Art; Photographs & Prints
CHRISTIES_COMPONENT = "e7d92272-7bcc-4dba-ae5b-28e4f3729ae8"  # calendar component GUID the site's own page sends
CHRISTIES_LOTSEARCH_PAGE_SIZE = 84  # the site caps lotsearch pages at 84
CHRISTIES_IMAGES = "all"  # all: download each lot's image with FilesPipeline; none: no image requests
CHRISTIES_IMAGE_WIDTH = 512  # rendition asked with ?mode=max&w=512 (never upscaled by the server)
CHRISTIES_IMAGE_BASE_URL = None  # replaces scheme+host of image URLs (another demo port, a mirror)
CHRISTIES_LOT_DETAILS = False  # True: one extra request per lot for the Details accordion (medium, dimensions)
CHRISTIES_CONTACT = "https://github.com/christies-dcec/christies-dcec/issues"
CHRISTIES_FAILURES_FILE = None  # default: <feed>.failures.jsonl
CHRISTIES_REJECTS_FILE = None  # default: <feed dir>/rejects.jsonl
CHRISTIES_STATS_FILE = None  # closing stats as JSON; set by the stage runners

# ---------------------------------------------------------------- politeness
ROBOTSTXT_OBEY = True  # robots.txt forbids */search and */lotimages; the calendar + lotsearch route is allowed
# An honest User-Agent with a contact: one source measured Akamai letting it through where a browser UA timed out.
USER_AGENT = f"christies-dcec-research/0.1 (+{CHRISTIES_CONTACT})"
CONCURRENT_REQUESTS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 2  # Scrapy's global default is 8; earlier Christie's crawlers used 2-8
DOWNLOAD_DELAY = 1.0  # seconds between requests to one host (x0.5-1.5 jitter); global default is 0
AUTOTHROTTLE_ENABLED = True  # adapts the delay to the server's latency; never below DOWNLOAD_DELAY
AUTOTHROTTLE_START_DELAY = 2.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0  # about one request in flight per host on average
DOWNLOAD_TIMEOUT = 60
COOKIES_ENABLED = False  # results pages need no session
DEFAULT_REQUEST_HEADERS = {"Accept": "application/json, text/html;q=0.9, */*;q=0.8", "Accept-Language": "en"}

# ---------------------------------------------------------------- retries and back-off
RETRY_ENABLED = True
RETRY_TIMES = 4  # 1 try + 4 retries
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
# Scrapy retries at once and ignores Retry-After: scraper.middlewares.RetryAfterMiddleware waits first.
CHRISTIES_BACKOFF_HTTP_CODES = [429, 503]
CHRISTIES_BACKOFF_BASE_DELAY = 5.0  # without Retry-After: 5, 10, 20, 40 s ...
CHRISTIES_BACKOFF_MAX_DELAY = 300.0  # never wait longer than this for one retry, whatever Retry-After says

DOWNLOADER_MIDDLEWARES = {
    # The response archive (scraper/archive.py; on when CHRISTIES_ARCHIVE_DIR is set): replay before robots.txt
    # is consulted (a settled month asks nothing), record beside the downloader (raw answers, 302s included).
    "scraper.archive.ArchiveReplayMiddleware": 50,
    "scraper.archive.ArchiveRecordMiddleware": 950,
    "scraper.middlewares.RetryAfterMiddleware": 560,  # before RetryMiddleware (550) re-queues a 429/503
    "scraper.middlewares.FailureLogMiddleware": 540,  # below the retry layer: sees final outcomes only
}

# ---------------------------------------------------------------- response archive (the stage sets it)
CHRISTIES_ARCHIVE_DIR = None  # folder of month folders of archived answers; None: no archive
CHRISTIES_ARCHIVE_ORIGINS = {}  # served origin -> origin written into the archive (the demo's random ports)
# Months crawled at once: calendars of later months wait until fewer are unfinished, so a kill loses at most
# about this many months of requests (every finished month is settled in the archive).
CHRISTIES_MONTHS_IN_FLIGHT = 1

# ---------------------------------------------------------------- HTTP cache (offline replay; off by default)
HTTPCACHE_ENABLED = False  # -s HTTPCACHE_ENABLED=1 to replay a crawl offline (-s HTTPCACHE_IGNORE_MISSING=1)
HTTPCACHE_DIR = "httpcache"  # under .scrapy/, gitignored, never a DVC output
HTTPCACHE_EXPIRATION_SECS = 0
# Never cache the answers we retry or that mean "go away": a cached 503 would be replayed on every retry.
HTTPCACHE_IGNORE_HTTP_CODES = sorted({*RETRY_HTTP_CODES, 403})

# ---------------------------------------------------------------- items, feeds, files
ITEM_PIPELINES = {
    "scraper.pipelines.ValidateLotPipeline": 100,
    "scraper.pipelines.DedupeLotPipeline": 200,
    "scraper.pipelines.LotFilesPipeline": 300,  # FilesPipeline, NOT ImagesPipeline: that one re-encodes JPEGs
}
FILES_STORE = "data/raw/images"
FILES_EXPIRES = 36500  # days; an image already stored is never fetched again
# A 200 answer whose bytes no image decoder accepts is requested again this many times, then reported failed.
CHRISTIES_IMAGE_CORRUPT_RETRIES = 2
MEDIA_ALLOW_REDIRECTS = True  # image URLs may redirect to a CDN
FEED_EXPORT_ENCODING = "utf-8"  # None would write \uXXXX escapes
CHRISTIES_PROGRESS_INTERVAL = 30  # seconds between progress lines (months/sales settled, items, rate, time left)
EXTENSIONS = {
    "scraper.extensions.ProgressExtension": 400,
    "scraper.extensions.StatsFileExtension": 500,
    # After Scrapy's SpiderState (0): its clean-stop marker is written after spider.state (scraper/jobdir.py).
    "scraper.extensions.JobdirGuardExtension": 900,
}

# ---------------------------------------------------------------- housekeeping
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False  # Scrapy 2.19's loopback control server; not needed
LOG_LEVEL = "INFO"
