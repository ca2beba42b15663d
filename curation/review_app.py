"""The curator's review app: decide on every sampled work by looking at it; `data/review/manifest.csv` stays the record.

    make review                                   # = python -m curation.review_app
    python -m curation.review_app --port 0        # 0: a free port; the URL (with its token) is stdout's first line
    python -m curation.review_app --lost          # list decisions of the journal the CSV lost (exit 1 if any)
    python -m curation.review_app --restore [LOT_KEY ...]    # write them back (all, or these)
    python -m curation.review_app --keep-file [LOT_KEY ...]  # keep the file's values instead

A small local web server (standard library only) on 127.0.0.1: one page per artist with kept / dropped / not yet
reviewed counts, filters by flag, decision and reviewed-or-not, Keep and Drop buttons and a note on every
work, the keyboard (arrows, k, d, n, Enter, Esc) and a larger view with the lot's facts. Every decision or note
is written to the curator's file at once (curation/review_file.py: atomic, the user's delimiter, BOM, line
ends and column order kept, `reviewed_at` stamped), after it is appended to the decision journal
(curation/review_journal.py); the first write of a launch copies the file to `data/review/history/` first. A row
changed in the file meanwhile (a spreadsheet open beside the app) is a conflict the page shows for the curator
to settle; nothing edited elsewhere is overwritten. Decisions of the journal the file lost (a spreadsheet saved
an older copy; a write refused because the file was locked) are listed at the top of the page on launch and
whenever the tab or window comes back, with one button to restore them all. `dvc repro` afterwards applies the
decisions exactly as it does a spreadsheet edit.

Safety: loopback only unless `--host` is given (with a warning). The app lives under a per-launch path
(`/<launch id>/`); every request but the static assets needs the per-launch token: the printed URL's `?token=`
sets an HttpOnly, same-site cookie scoped to that path (browsers send cookies to every port of a host, so other
local services never see it), and the page carries it in a meta tag for its own requests (a second tab opened
at the app's path works; one at another path is told to open the printed URL). Every write also needs the token
in the `X-Review-Token` header, a JSON body and no foreign `Origin`; the `Host` header must name this server (no
DNS rebinding); a refused request's body is read off (or the connection closed), so the next request on a
kept-alive connection is read as sent. Files served are only the thumbnails and images the manifest's rows
name, inside `data/review/thumbs/` and `data/raw/images/`, symlinks leaving them refused. All text reaches the page as JSON
and is shown with `textContent` under a Content-Security-Policy without inline scripts. Bad requests get a
4xx with a one-line JSON reason.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import logging
import secrets
import sys
import threading
from collections import Counter
from datetime import datetime, timezone
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from common import safe_join
from curation.manifest import HISTORY_DIR, save_backup
from curation.review_csv import ReviewCsvError, normalise_decision
from curation.review_file import REVIEWED_AT, ChangedOnDisk, Conflict, ReviewFile, disk_key
from curation.review_journal import (JOURNAL, Lost, NotWritten, describe, journal_and_write, lost_decisions,
                                     read_journal, settle)

log = logging.getLogger("curation.review_app")

CURATOR_MANIFEST = Path("data/review/manifest.csv")
THUMBS_DIR = Path("data/review/thumbs")
IMAGES_DIR = Path("data/raw/images")
STATIC_DIR = Path(__file__).with_name("review_static")
STATIC_FILES = {"static/app.js": ("app.js", "text/javascript; charset=utf-8"),
                "static/app.css": ("app.css", "text/css; charset=utf-8")}
COOKIE = "review_token"
TOKEN_META = b'<meta name="review-token" content="">'
MAX_BODY_BYTES = 64 * 1024
DRAIN_BYTES = 1024 * 1024  # a refused body up to this size is read off; a larger one closes the connection
HOW_TO_OPEN = ("This is the review app, but this address has no token. Open the address it printed when it "
               "started (in its terminal, ending in ?token=...).\n")
LOOPBACK = "127.0.0.1"
# What the page shows of a row; the rest of the CSV (URLs of images, crawl ids) stays in the file.
WORK_FIELDS = ("lot_key", "artist", "title", "medium", "dimensions", "kind", "sale_title", "sale_date", "lot_url",
               "flags", "flag_reasons", "suggested_decision", "decision", "note", REVIEWED_AT, "_row")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class RequestError(Exception):
    """A request refused with an HTTP status and a one-line reason."""

    def __init__(self, status: HTTPStatus, reason: str):
        self.status, self.reason = status, reason
        super().__init__(reason)


class ReviewSession:
    """What one launch of the app holds: the file, the token, whether a backup was made, a write lock."""

    def __init__(self, root: Path, token: str):
        self.root = root
        self.manifest = root / CURATOR_MANIFEST
        self.journal = root / JOURNAL
        self.token = token
        self.lock = threading.Lock()
        self.backed_up: Path | None = None
        self._cached: ReviewFile | None = None

    def snapshot(self) -> ReviewFile:
        """The file as it is on disk now (a spreadsheet may have saved it since the last request); parsed again
        only when its size, modification time or inode changed (12,500 rows take ~0.25 s to parse)."""
        with self._reading():
            if self._cached is None or self._cached.disk_key != disk_key(self.manifest.stat()):
                self._cached = ReviewFile.read(self.manifest)
            return self._cached

    @staticmethod
    @contextlib.contextmanager
    def _reading():
        try:
            yield
        except FileNotFoundError:
            raise RequestError(HTTPStatus.NOT_FOUND, f"{CURATOR_MANIFEST} does not exist: run `make repro` first") from None
        except ReviewCsvError as error:
            raise RequestError(HTTPStatus.CONFLICT, f"cannot be read: {error.issues[0]}") from None

    @contextlib.contextmanager
    def _writing(self):
        """Hold the write lock (backing the file up before the launch's first write) and turn what a write
        raises into answers; a Conflict passes through for the handler to show."""
        with self.lock, self._reading():
            if self.backed_up is None:
                self.backed_up = save_backup(self.manifest, self.root / HISTORY_DIR, datetime.now(timezone.utc))
                log.info("first change of this session: %s backed up to %s", CURATOR_MANIFEST, self.backed_up)
            try:
                yield
            except ReviewCsvError:
                raise
            except KeyError as error:
                raise RequestError(HTTPStatus.NOT_FOUND,
                                   f"no row with lot_key {error.args[0]!r} in {CURATOR_MANIFEST}") from None
            except ValueError as error:
                raise RequestError(HTTPStatus.BAD_REQUEST, str(error)) from None
            except ChangedOnDisk:
                raise RequestError(HTTPStatus.SERVICE_UNAVAILABLE, "the file keeps changing on disk; try again") from None
            except NotWritten as error:
                log.warning("%s", error)
                raise RequestError(HTTPStatus.LOCKED, NotWritten(CURATOR_MANIFEST, JOURNAL, error.error).args[0]) from None

    def _written(self, written: ReviewFile | None) -> None:
        if written is not None:
            self._cached = written

    def artists(self) -> list[dict[str, Any]]:
        """Per artist, in name order: works, kept, dropped, not yet reviewed (no `reviewed_at`, or no decision)."""
        counts: dict[str, Counter] = {}
        for row in self.in_sample(self.snapshot().rows()):
            tally = counts.setdefault(row.get("artist", ""), Counter())
            tally["works"] += 1
            tally[normalise_decision(row.get("decision", ""))] += 1
            tally["unreviewed"] += not (row.get(REVIEWED_AT) and row.get("decision", "").strip())
        return [{"artist": name, "works": c["works"], "kept": c["keep"], "dropped": c["drop"],
                 "unreviewed": c["unreviewed"]} for name, c in sorted(counts.items(), key=lambda i: i[0].casefold())]

    @staticmethod
    def in_sample(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        """Rows of the current sample (a row kept from an earlier sample has `in_sample` = no)."""
        return [row for row in rows if row.get("in_sample", "").strip().lower() != "no"]

    def works(self, artist: str) -> list[dict[str, str]]:
        return [self.work(row) for row in self.in_sample(self.snapshot().rows()) if row.get("artist", "") == artist]

    def decide(self, lot_key: str, changes: dict[str, str], expected: dict[str, str]) -> dict[str, str]:
        """Journal one change and write it to the file; the row as written."""
        with self._writing():
            self._written(journal_and_write(self.manifest, self.journal, {lot_key: (changes, expected)},
                                            datetime.now(timezone.utc), "app", known=self.snapshot()))
        return self.work(self.snapshot().row(lot_key))

    @staticmethod
    def work(row: dict[str, str]) -> dict[str, str]:
        return {name: row.get(name, "") for name in WORK_FIELDS}

    def lost(self) -> list[dict[str, Any]]:
        """The journal's decisions the file lost, by work: the file's row, the journal's values, when, by what.
        Under the write lock: a write journals first and then writes the file, and a decision read in between
        would be listed as lost."""
        with self.lock, self._reading():
            found = lost_decisions(read_journal(self.journal), self.snapshot().rows())
        return [self._lost_item(item) for item in found]

    @classmethod
    def _lost_item(cls, item: Lost) -> dict[str, Any]:
        return {**cls.work(item.row), "journal": item.journal, "time": item.time, "source": item.source}

    def settle(self, shown: dict[str, dict[str, str]], keep: str) -> list[str]:
        """Write back the journal's values (`keep` = "journal") or keep the file's, for the lots shown."""
        with self._writing():
            written, settled = settle(self.manifest, self.journal, shown, keep, datetime.now(timezone.utc),
                                      known=self.snapshot())
            self._written(written)
        return settled

    def media_path(self, lot_key: str, kind: str) -> Path:
        """The thumbnail or image file a manifest row names, confined to its folder (symlinks out refused)."""
        try:
            row = self.snapshot().row(lot_key)
        except KeyError:
            raise RequestError(HTTPStatus.NOT_FOUND, "no such work") from None
        if kind == "thumb":
            folder, relative = self.root / THUMBS_DIR, row.get("thumb_path", "").removeprefix("thumbs/")
        else:
            folder, relative = self.root / IMAGES_DIR, row.get("image_path", "")
        if not relative:
            raise RequestError(HTTPStatus.NOT_FOUND, "this work has no image")
        try:
            path = safe_join(folder, relative)
        except ValueError:
            raise RequestError(HTTPStatus.FORBIDDEN, "path outside the data folders") from None
        if not path.is_file():
            raise RequestError(HTTPStatus.NOT_FOUND, "image file not found")
        return path


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], session: ReviewSession, launch: str):
        self.session = session
        self.base = f"/{launch}/"  # every page, asset and API of this launch is under it; so is its cookie
        super().__init__(address, ReviewHandler)

    @property
    def origin(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def app_url(self) -> str:
        return self.origin + self.base


class ReviewHandler(BaseHTTPRequestHandler):
    server: ReviewServer
    server_version = "ChristiesReview/1.0"
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds a kept-alive connection (or a body promised and not sent) may sit idle

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("%s " + format, self.address_string(), *args)

    # ------------------------------------------------------------ dispatch

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._answer(self._post)

    def _answer(self, handler) -> None:
        self._body_read = False
        try:
            self._check_host()
            url = urlsplit(self.path)
            if not url.path.startswith(self.server.base):
                return self._elsewhere(url.path)
            handler(url._replace(path=url.path.removeprefix(self.server.base)))
        except RequestError as error:
            self._json({"error": error.reason}, error.status, headers=self._after_refusal())
        except Exception:  # noqa: BLE001 - never a traceback to the browser; the log has it
            log.exception("request %s failed", self.path)
            self._json({"error": "internal error (see the app's log)"}, HTTPStatus.INTERNAL_SERVER_ERROR,
                       headers=self._after_refusal())

    def _after_refusal(self) -> tuple[tuple[str, str], ...]:
        """Read off the body of a request refused before its body was read, so that the next request on the
        connection starts where the client sent it; a body too large to read is answered by closing."""
        if self._body_read:
            return ()
        length = self.headers.get("Content-Length", "0")
        if "Transfer-Encoding" in self.headers or not length.isdigit() or int(length) > DRAIN_BYTES:
            return (("Connection", "close"),)
        self.rfile.read(int(length))
        return ()

    def _elsewhere(self, path: str) -> None:
        """Outside this launch's path: its own path without the slash is redirected; anything else (the bare
        address, a bookmark of an earlier launch) is told how to open the app."""
        if path == self.server.base.rstrip("/"):
            return self._send(b"", "text/plain", HTTPStatus.MOVED_PERMANENTLY,
                              headers=(("Location", self.server.base), *self._after_refusal()))
        self._send(HOW_TO_OPEN.encode("utf-8"), "text/plain; charset=utf-8", HTTPStatus.NOT_FOUND,
                   headers=self._after_refusal())

    def _get(self, url) -> None:
        session = self.server.session
        query = parse_qs(url.query, keep_blank_values=True)
        if url.path in STATIC_FILES:
            name, content_type = STATIC_FILES[url.path]
            return self._send((STATIC_DIR / name).read_bytes(), content_type)
        if url.path == "":
            return self._page(query)
        self._check_token(header_only=False)
        if url.path == "api/artists":
            return self._json({"artists": session.artists(), "file": str(CURATOR_MANIFEST)})
        if url.path == "api/works":
            return self._json({"works": session.works(self._one(query, "artist"))})
        if url.path == "api/lost":
            return self._json({"lost": session.lost(), "journal": str(JOURNAL)})
        if url.path in ("thumb", "image"):
            path = session.media_path(self._one(query, "key"), url.path)
            content_type = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
            return self._send(path.read_bytes(), content_type, cache=True)
        raise RequestError(HTTPStatus.NOT_FOUND, "no such page")

    def _post(self, url) -> None:
        if url.path not in ("api/decide", "api/settle"):
            raise RequestError(HTTPStatus.NOT_FOUND, "no such action")
        self._check_token(header_only=True)
        self._check_origin()
        body = self._json_body()
        try:
            if url.path == "api/decide":
                return self._decide(body)
            return self._settle(body)
        except Conflict as conflict:
            return self._json({"conflict": conflict.current, "lot_key": conflict.lot_key}, HTTPStatus.CONFLICT)

    def _decide(self, body: dict[str, Any]) -> None:
        lot_key = body.get("lot_key")
        changes, expected = body.get("changes"), body.get("expected", {})
        if not isinstance(lot_key, str) or not _text_map(changes) or not _text_map(expected):
            raise RequestError(HTTPStatus.BAD_REQUEST, "expected {lot_key: str, changes: {decision?, note?}, expected: {...}}")
        self._json({"work": self.server.session.decide(lot_key, changes, expected)})

    def _settle(self, body: dict[str, Any]) -> None:
        keep, works = body.get("keep"), body.get("works")
        if keep not in ("journal", "file") or not isinstance(works, dict) or not all(map(_text_map, works.values())):
            raise RequestError(HTTPStatus.BAD_REQUEST,
                               'expected {keep: "journal" | "file", works: {lot_key: {decision, note}}}')
        self._json({"settled": self.server.session.settle(works, keep)})

    def _page(self, query: dict[str, list[str]]) -> None:
        """The page, with the token for its own requests; `?token=` also sets the cookie (for its images)."""
        token = self.server.session.token
        given = (query.get("token") or [""])[0]
        headers: tuple[tuple[str, str], ...] = ()
        if given and hmac.compare_digest(given, token):
            headers = (("Set-Cookie", f"{COOKIE}={token}; Path={self.server.base}; HttpOnly; SameSite=Strict"),)
        else:
            try:
                self._check_token(header_only=False)
            except RequestError:
                return self._send(HOW_TO_OPEN.encode("utf-8"), "text/plain; charset=utf-8", HTTPStatus.FORBIDDEN)
        with_token = TOKEN_META.replace(b'""', f'"{token}"'.encode())
        page = (STATIC_DIR / "index.html").read_bytes().replace(TOKEN_META, with_token)
        self._send(page, "text/html; charset=utf-8", headers=headers)

    # ------------------------------------------------------------ checks

    def _check_host(self) -> None:
        """On loopback the Host header must name this server: a page on another site that resolves its own
        name to 127.0.0.1 (DNS rebinding) sends its own name and is refused."""
        host, port = self.server.server_address[:2]
        if host == LOOPBACK and self.headers.get("Host", "") not in (f"{host}:{port}", f"localhost:{port}"):
            raise RequestError(HTTPStatus.MISDIRECTED_REQUEST, "unexpected Host header")

    def _check_token(self, header_only: bool) -> None:
        token = self.server.session.token
        given = self.headers.get("X-Review-Token", "")
        if not given and not header_only:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
            given = cookie[COOKIE].value if COOKIE in cookie else ""
        if not given or not hmac.compare_digest(given, token):
            raise RequestError(HTTPStatus.FORBIDDEN, "missing or wrong token: open the URL the app printed")

    def _check_origin(self) -> None:
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host', '')}":
            raise RequestError(HTTPStatus.FORBIDDEN, "cross-origin write refused")
        if self.headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
            raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "writes are JSON (Content-Type: application/json)")

    def _json_body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise RequestError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
        if not 0 < length <= MAX_BODY_BYTES:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length > 0 else HTTPStatus.BAD_REQUEST,
                               f"a write is a JSON body of 1 to {MAX_BODY_BYTES} bytes")
        data = self.rfile.read(length)
        self._body_read = True
        try:
            body = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        return body

    @staticmethod
    def _one(query: dict[str, list[str]], name: str) -> str:
        values = query.get(name)
        if not values or len(values) != 1:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"query parameter {name!r} is required once")
        return values[0]

    # ------------------------------------------------------------ answers

    def _json(self, obj: Any, status: HTTPStatus = HTTPStatus.OK, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self._send(json.dumps(obj).encode("ascii"), "application/json; charset=utf-8", status, headers=headers)

    def _send(self, body: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK, cache: bool = False,
              headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "private, max-age=300" if cache else "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _text_map(value: object) -> bool:
    """A JSON object of text values (what a change, or the values a curator saw, is)."""
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def serve(root: Path, host: str, port: int, token: str | None = None) -> ReviewServer:
    """A started server (in a daemon thread) on host:port (0 = a free port), under a fresh launch path."""
    session = ReviewSession(root.resolve(), token or secrets.token_urlsafe(24))
    server = ReviewServer((host, port), session, launch=secrets.token_urlsafe(9))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server


def journal_command(root: Path, keep: str | None, lot_keys: list[str]) -> int:
    """`--lost`, `--restore`, `--keep-file`: list the decisions of the journal the file lost, or settle them (all,
    or `lot_keys`), after a backup of the file. Exit status: 1 when decisions are still lost after listing."""
    manifest, journal = root / CURATOR_MANIFEST, root / JOURNAL
    lost = lost_decisions(read_journal(journal), ReviewFile.read(manifest).rows())
    if keep is None:
        for item in lost:
            print(describe(item, CURATOR_MANIFEST, JOURNAL))
        print(f"{len(lost)} work(s) lost decisions that {JOURNAL} recorded" + (
            ": `--restore` writes them back, `--keep-file` keeps the file's values" if lost else ""))
        return 1 if lost else 0
    chosen = [item.lot_key for item in lost if not lot_keys or item.lot_key in lot_keys]
    for key in sorted(set(lot_keys) - set(chosen)):
        print(f"{key}: nothing lost", file=sys.stderr)
    if chosen:
        backup = save_backup(manifest, root / HISTORY_DIR, datetime.now(timezone.utc))
        settle(manifest, journal, dict.fromkeys(chosen), keep, datetime.now(timezone.utc))
        print(f"{'restored' if keep == 'journal' else 'kept the file values of'} {len(chosen)} work(s) in "
              f"{CURATOR_MANIFEST} (the file before: {backup})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m curation.review_app", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8765, help="0: any free port (default 8765)")
    parser.add_argument("--host", default=None, help="listen on this address instead of 127.0.0.1 (others on "
                                                     "the network can then reach it with the token)")
    parser.add_argument("--root", type=Path, default=Path("."), help="the project folder (holding data/)")
    journal = parser.add_mutually_exclusive_group()
    journal.add_argument("--lost", action="store_true", help=f"list the decisions of {JOURNAL} that the file lost "
                                                             "(exit status 1 if any), then exit")
    journal.add_argument("--restore", nargs="*", metavar="LOT_KEY", help="write the lost decisions back (all, or "
                                                                         "these lots), then exit")
    journal.add_argument("--keep-file", nargs="*", metavar="LOT_KEY", help="keep the file's values instead (all, "
                                                                           "or these lots), then exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not (args.root / CURATOR_MANIFEST).is_file():
        print(f"error: {args.root / CURATOR_MANIFEST} does not exist: run `make repro` first", file=sys.stderr)
        return 2
    if args.lost or args.restore is not None or args.keep_file is not None:
        keep = "journal" if args.restore is not None else "file" if args.keep_file is not None else None
        try:
            return journal_command(args.root, keep, args.restore or args.keep_file or [])
        except (ReviewCsvError, Conflict, NotWritten) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    host = args.host or LOOPBACK
    if args.host and args.host != LOOPBACK:
        log.warning("listening on %s: anyone who can reach it and has the token can change your decisions", host)
    server = serve(args.root, host, args.port)
    print(f"{server.app_url}?token={server.session.token}", flush=True)
    print(f"review app: decisions go to {CURATOR_MANIFEST} (and {JOURNAL}); stop with Ctrl-C, then `make repro`",
          flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
