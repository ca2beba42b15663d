"""Deterministic fault injection for the demo site.

Which URLs misbehave is decided by a seeded hash of the request's path and query (never by chance at run
time), and a URL misbehaves only on its first `first_attempts` requests, so a client with retries always
recovers and a test can predict exactly which requests fail.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# Fault kinds (also the keys of the site's fault counters).
TOO_MANY = "429"
UNAVAILABLE = "503"
SLOW = "slow"
RESET = "reset"
TRUNCATED_JSON = "truncated_json"
CORRUPT_IMAGE = "corrupt_image"
ALL_ERRORS = "all_errors"
EXEMPT_KINDS = frozenset({"robots"})     # robots.txt never fails: a crawler must be able to read the rules


@dataclass(frozen=True)
class FaultConfig:
    """Shares of requests (by URL) that answer with each fault; all zero (off) by default.

    rate_truncated applies to JSON/HTML answers, rate_corrupt_image to image answers; the other rates to
    every kind except robots.txt. `kinds` restricts faults to some request kinds (e.g. {"image"}).
    """

    rate_429: float = 0.0
    rate_503: float = 0.0
    rate_slow: float = 0.0
    rate_reset: float = 0.0
    rate_truncated: float = 0.0
    rate_corrupt_image: float = 0.0
    retry_after_s: int = 1          # the Retry-After header of 429 answers
    slow_s: float = 5.0             # how long a slow answer sleeps before answering
    first_attempts: int = 1         # a faulty URL fails on this many first requests, then answers normally
    seed: int = 0
    all_errors: bool = False        # every request except robots.txt answers 503
    kinds: frozenset[str] | None = None

    def __post_init__(self) -> None:
        rates = (self.rate_429, self.rate_503, self.rate_slow, self.rate_reset)
        for value in rates + (self.rate_truncated, self.rate_corrupt_image):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"FaultConfig: rates must lie in [0, 1], got {value}")
        if sum(rates) + max(self.rate_truncated, self.rate_corrupt_image) > 1.0:
            raise ValueError("FaultConfig: the rates of one request kind add up to more than 1")
        if self.first_attempts < 0 or self.retry_after_s < 0 or self.slow_s < 0:
            raise ValueError("FaultConfig: first_attempts, retry_after_s and slow_s must be >= 0")

    @property
    def active(self) -> bool:
        return self.all_errors or any((self.rate_429, self.rate_503, self.rate_slow, self.rate_reset,
                                       self.rate_truncated, self.rate_corrupt_image))

    def draw(self, url: str) -> float:
        """The URL's fixed position in [0, 1): a seeded hash of its path and query."""
        digest = hashlib.blake2b(f"{self.seed}|{url}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def planned_fault(self, url: str, kind: str) -> str | None:
        """The fault this URL carries (on its first attempts), or None. Independent of attempts and time."""
        if kind in EXEMPT_KINDS:
            return None
        if self.all_errors:
            return ALL_ERRORS
        if self.kinds is not None and kind not in self.kinds:
            return None
        body_fault = (CORRUPT_IMAGE, self.rate_corrupt_image) if kind == "image" else (TRUNCATED_JSON,
                                                                                     self.rate_truncated)
        position, edge = self.draw(url), 0.0
        for fault, rate in ((TOO_MANY, self.rate_429), (UNAVAILABLE, self.rate_503), (SLOW, self.rate_slow),
                            (RESET, self.rate_reset), body_fault):
            edge += rate
            if position < edge:
                return fault
        return None

    def fault_for(self, url: str, kind: str, attempt: int) -> str | None:
        """The fault to inject on the `attempt`-th request (1-based) of this URL."""
        fault = self.planned_fault(url, kind)
        if fault == ALL_ERRORS:
            return fault
        return fault if fault and attempt <= self.first_attempts else None

    def truncation_keeps_length(self, url: str) -> bool:
        """Truncated answers come in two forms, chosen per URL: the full Content-Length with the body cut
        short (a transport error for the client), or a short body with a matching Content-Length (valid
        HTTP, invalid JSON)."""
        return self.draw("truncate-form|" + url) < 0.5


def truncate(body: bytes) -> bytes:
    return body[: max(1, len(body) // 2)]


def corrupt(body: bytes) -> bytes:
    """Keep the first bytes (the format is still recognisable) and zero the rest: no decoder accepts it."""
    keep = min(16, len(body))
    return body[:keep] + bytes(len(body) - keep)
