"""A small stdlib HTTP server in the shapes of christies-samples/, for spider tests that need precise control
(robots rules, faults, request logs) independent of the demo site. Loopback only.

One month (2019-05) with: a www live sale of `live_lots` lots (lotsearch paged by the request's `pagesize`),
an online-only sale of `online_lots` lots (`sso` 302 → sale page with the whole chrComponents blob, `?page=N`
cumulative by `ONLINE_PAGE`; `searchLots` JSON), a decoy jewellery sale and a non-closed sale. Images are
generated JPEGs whose width is `min(w, SOURCE_WIDTH)`.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image

SOURCE_WIDTH = 300
ONLINE_PAGE = 5
LIVE_SALE_ID, ONLINE_SALE_ID, ONLINE_INTERNAL_ID = "27901", "27955", "2101"


@dataclass
class FakeConfig:
    live_lots: int = 10
    online_lots: int = 7
    robots: str = "User-agent: *\nDisallow: */lotimages\n"
    retry_after_first: bool = False  # the first calendar request answers 429 with Retry-After: 1
    # image path substring -> how many of its first answers are 200 with zeroed (undecodable) bytes
    corrupt_image_answers: dict[str, int] = field(default_factory=dict)
    announce_extra_live_lots: int = 0  # lotsearch's total_hits_filtered claims this many lots it never lists
    requests: list[str] = field(default_factory=list)


def image_bytes(seed: int, width: int) -> bytes:
    height = max(1, width * 3 // 4)
    image = Image.new("RGB", (width, height), ((seed * 37) % 256, (seed * 91) % 256, 120))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


class FakeSite:
    def __init__(self, config: FakeConfig | None = None):
        self.config = config or FakeConfig()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.request_queue_size = 256
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.online_base_url = self.base_url.replace("127.0.0.1", "localhost")
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSite:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------ content

    def lot(self, kind: str, index: int) -> dict:
        object_id = str((6201000 if kind == "live" else 150000) + index)
        image = f"{self.base_url}/img/LotImages/2019/NYR/2019_NYR_17123_{index:04d}_000({kind}).jpg?mode=max"
        return {
            "object_id": object_id, "lot_id_txt": str(index), "title_primary_txt": f"ARTIST {index} (1901-1977)",
            "title_secondary_txt": f"Work {index}", "description_txt": "ARTIST<br><i>Work</i><br>oil on canvas",
            "estimate_low": 1000.0 * index if kind == "live" else f"{1000 * index}.00",
            "estimate_high": 2000.0 * index if kind == "live" else f"{2000 * index}.00",
            "estimate_txt": f"USD {1000 * index:,} - {2000 * index:,}",
            "price_realised": (1500.0 * index if index % 2 else "") if kind == "live" else "",
            "price_realised_txt": f"USD {1500 * index:,}" if index % 2 and kind == "live" else "",
            "lot_withdrawn": False if kind == "live" else None,
            "url": f"/s/online-sale/lot-{index}/{object_id}?ldp_breadcrumb=back" if kind == "online" else "",
            "image": {"image_src": image},
        }

    def lots(self, kind: str) -> list[dict]:
        count = self.config.live_lots if kind == "live" else self.config.online_lots
        return [self.lot(kind, i) for i in range(1, count + 1)]

    def calendar(self) -> dict:
        event = {"event_id": LIVE_SALE_ID, "filter_ids": "|category_7|location_43|",
                 "landing_url": f"{self.base_url}/en/auction/day-sale-{LIVE_SALE_ID}/",
                 "title_txt": "Day Sale", "subtitle_txt": "Live Auction 17123 | CLOSED", "location_txt": "New York",
                 "start_date": "2019-05-16T00:00:00", "end_date": "2019-05-16T00:00:00"}
        online = dict(event, event_id=ONLINE_SALE_ID, filter_ids="|category_11|event_115|",
                      landing_url=f"{self.online_base_url}/sso?SaleID={ONLINE_SALE_ID}&SaleNumber=17301",
                      title_txt="Prints Online", subtitle_txt="Online Auction 17301 | CLOSED",
                      end_date="2019-05-14T00:00:00")
        decoy = dict(event, event_id="27999", filter_ids="|category_9|", title_txt="Jewels")
        upcoming = dict(event, event_id="28000", subtitle_txt="Live Auction 17999")
        return {"events": [event, online, decoy, upcoming], "filters": {}}

    # ------------------------------------------------------------ HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_GET(self) -> None:  # noqa: N802
                site.config.requests.append(self.path)
                status, headers, body = site.respond(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def respond(self, path: str) -> tuple[int, dict, bytes]:
        parts = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if parts.path == "/robots.txt":
            return 200, {"Content-Type": "text/plain"}, self.config.robots.encode()
        if parts.path.endswith("/auctionresults"):
            if self.config.retry_after_first and sum("auctionresults" in r for r in self.config.requests) == 1:
                return 429, {"Retry-After": "1"}, b"slow down"
            return self._json(self.calendar())
        if parts.path.endswith("/lotsearch"):
            page, size = int(query["page"]), int(query["pagesize"])
            lots = self.lots("live")
            return self._json({"lots": lots[(page - 1) * size: page * size],
                               "total_hits_filtered": len(lots) + self.config.announce_extra_live_lots,
                               "total_pages": -(-len(lots) // size)})
        if parts.path == "/sso":
            return 302, {"Location": f"{self.online_base_url}/s/online-sale/lots/{ONLINE_INTERNAL_ID}"}, b""
        if parts.path == f"/s/online-sale/lots/{ONLINE_INTERNAL_ID}":
            page = int(query.get("page", "1"))
            lots = self.lots("online")
            blob = {"lots": {"data": {"lot_search_api_endpoint": {"parameters": {"saleid": ONLINE_INTERNAL_ID}},
                                      "lots": lots[: page * ONLINE_PAGE], "total_hits_filtered": len(lots)}}}
            html = f"<script>window.chrComponents = window.chrComponents || {{}};\n" \
                   f"window.chrComponents = {json.dumps(blob)};</script>"
            return 200, {"Content-Type": "text/html"}, html.encode()
        if parts.path == "/sale/searchLots":
            lots = self.lots("online")
            return self._json({"lots": lots, "total_hits_filtered": len(lots), "total_pages": 1})
        if parts.path.startswith("/img/"):
            seed = sum(parts.path.encode())
            width = min(int(query.get("w", SOURCE_WIDTH)), SOURCE_WIDTH)
            body = image_bytes(seed, width)
            if self._answers_corrupt(path):
                body = body[:16] + bytes(len(body) - 16)  # header kept, the rest zeroed: no decoder accepts it
            return 200, {"Content-Type": "image/jpeg"}, body
        return 404, {"Content-Type": "text/plain"}, b"not found"

    def _answers_corrupt(self, path: str) -> bool:
        """Whether this request (already logged in `requests`) is among the corrupt first answers of its path."""
        answered = sum(request == path for request in self.config.requests)
        return any(part in path and answered <= count for part, count in self.config.corrupt_image_answers.items())

    @staticmethod
    def _json(payload: dict) -> tuple[int, dict, bytes]:
        return 200, {"Content-Type": "application/json"}, json.dumps(payload).encode()
