"""Christie's buyer's premium: the shipped schedule (common/buyers_premium.csv) and the exact hammer <-> realised
conversion.

Christie's estimates are hammer estimates, while `price_realised` includes the buyer's premium, a marginal
(tiered) rate on the hammer. The premium is piecewise linear and strictly increasing in the hammer, so a
realised price maps back to exactly one hammer price once the schedule in force is known:

    realised(h) = h + sum_i rate_i * overlap(h, tier_i)         hammer(r) = its inverse, segment by segment

Which schedule is in force: the rows of the sale's currency (online-only sales follow their currency), or of
its saleroom where that saleroom has rows of its own (Amsterdam and Milan quote VAT-inclusive rates), on the
day the sale opened (`schedule_day`: a timed online sale that opened before a change keeps the old schedule).
Shared by the price stage (model/price.py) and the demo site (scraper/demo/prices.py), which adds the premium
of this very table, so that the pipeline's inversion is exercised on the embedded default.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

SCHEDULE_PATH = Path(__file__).with_name("buyers_premium.csv")
CONFIDENCES = ("V", "P", "?")
RATE_COLUMNS = ("rate_1", "up_to_1", "rate_2", "up_to_2", "rate_3")
COLUMNS = ("effective", "currency", "saleroom", "vat_inclusive", *RATE_COLUMNS, "confidence", "source", "note")


class PremiumScheduleError(ValueError):
    """The schedule file is malformed, or it does not cover a sale (the message names what and where)."""


@dataclass(frozen=True)
class Tiers:
    """Marginal rates on the hammer: rates[i] applies from bounds[i - 1] (0 for i = 0) up to bounds[i];
    the last rate has no upper bound, so len(bounds) == len(rates) - 1."""

    bounds: tuple[float, ...]
    rates: tuple[float, ...]

    def premium(self, hammer: float) -> float:
        total, lower = 0.0, 0.0
        for upper, rate in zip((*self.bounds, float("inf")), self.rates):
            total += rate * max(0.0, min(hammer, upper) - lower)
            lower = upper
        return total

    def realised(self, hammer: float) -> float:
        """The premium-inclusive price of a hammer price."""
        return hammer + self.premium(hammer)

    def hammer(self, realised: float) -> float:
        """The hammer price whose realised price is `realised` (exact: the inverse of `realised`)."""
        corners = [self.realised(bound) for bound in self.bounds]      # realised price at each tier's top
        tier = bisect.bisect_right(corners, realised)
        lower = self.bounds[tier - 1] if tier else 0.0
        start = corners[tier - 1] if tier else 0.0
        return lower + (realised - start) / (1.0 + self.rates[tier])

    def scaled(self, factor: float) -> Tiers:
        """The same rates with thresholds multiplied by `factor` (another currency's amounts)."""
        return Tiers(tuple(bound * factor for bound in self.bounds), self.rates)


@dataclass(frozen=True)
class ScheduleRow:
    """One row of the schedule file; `tiers` is None where the schedule is not known from `effective` on."""

    effective: dt.date
    currency: str
    saleroom: str
    vat_inclusive: bool
    tiers: Tiers | None
    confidence: str
    source: str
    note: str
    line: int

    @property
    def label(self) -> str:
        """Short text naming the row, for predictions.csv and messages."""
        where = f"{self.currency}/{self.saleroom}" if self.saleroom else self.currency
        return f"{where} from {self.effective} ({self.confidence})"


def schedule_day(sale_kind: str, sale_date: str, sale_start_date: str | None) -> dt.date:
    """The day whose schedule applies: the opening day of an online sale, the sale's day otherwise."""
    day = sale_start_date if sale_kind == "online" and sale_start_date else sale_date
    return dt.date.fromisoformat(str(day)[:10])


class PremiumSchedule:
    """The rows of buyers_premium.csv, looked up by currency, saleroom and day."""

    def __init__(self, rows: list[ScheduleRow], path: Path):
        self.path = path
        self.by_key: dict[tuple[str, str], list[ScheduleRow]] = {}
        for row in sorted(rows, key=lambda r: r.effective):
            self.by_key.setdefault((row.currency, row.saleroom.casefold()), []).append(row)
        self.own_salerooms = {saleroom for _, saleroom in self.by_key if saleroom}

    @classmethod
    def read(cls, path: Path = SCHEDULE_PATH) -> PremiumSchedule:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        comments = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
        reader = csv.DictReader(lines[comments:])
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise PremiumScheduleError(f"{path}: line {comments + 1}: the header lacks {missing}")
        rows = [parse_row(record, path, comments + 1 + i) for i, record in enumerate(reader, start=1)]
        seen: set[tuple] = set()
        for row in rows:
            key = (row.effective, row.currency, row.saleroom.casefold())
            if key in seen:
                raise PremiumScheduleError(f"{path}: line {row.line}: a second row for {row.label}")
            seen.add(key)
        return cls(rows, path)

    def row_for(self, currency: str, saleroom: str, day: dt.date) -> ScheduleRow:
        """The row in force for a sale in `currency` at `saleroom` on `day`.

        Raises:
            PremiumScheduleError: no row covers it (a currency or saleroom without rows, a day before the key's
                first row, or a row whose schedule is not known); the message names the currency, saleroom, day.
        """
        room = (saleroom or "").strip().casefold()
        key = (currency.strip().upper(), room if room in self.own_salerooms else "")
        rows = self.by_key.get(key)
        where = f"currency {currency!r}, saleroom {saleroom!r}, schedule day {day}"
        if not rows:
            known = ", ".join(sorted({c if not r else f"{c}/{r}" for c, r in self.by_key}))
            raise PremiumScheduleError(f"{where}: {self.path.name} has no schedule for it (it has: {known})")
        position = bisect.bisect_right([row.effective for row in rows], day)
        if position == 0:
            raise PremiumScheduleError(f"{where}: before the first row for it ({rows[0].label}, line {rows[0].line})")
        row = rows[position - 1]
        if row.tiers is None:
            raise PremiumScheduleError(f"{where}: the schedule is not known from {row.effective} "
                                       f"({self.path.name} line {row.line}: {row.note})")
        return row


def parse_row(record: dict[str, str], path: Path, line: int) -> ScheduleRow:
    """One CSV record as a row; errors name the file, the line and the field."""
    def fail(field: str, why: str) -> PremiumScheduleError:
        return PremiumScheduleError(f"{path}: line {line}, field '{field}': {why} (got {record.get(field)!r})")

    try:
        effective = dt.date.fromisoformat(record["effective"] or "")
    except ValueError:
        raise fail("effective", "not a date YYYY-MM-DD") from None
    currency = (record["currency"] or "").strip()
    if len(currency) != 3 or not currency.isupper():
        raise fail("currency", "not an ISO 4217 code")
    if record["vat_inclusive"] not in ("yes", "no"):
        raise fail("vat_inclusive", "expected yes or no")
    if record["confidence"] not in CONFIDENCES:
        raise fail("confidence", f"expected one of {CONFIDENCES}")
    values = {column: (record[column] or "").strip() for column in RATE_COLUMNS}
    tiers = None
    if any(values.values()):
        tiers = parse_tiers(values, fail)
    return ScheduleRow(effective, currency, (record["saleroom"] or "").strip(), record["vat_inclusive"] == "yes",
                       tiers, record["confidence"], (record["source"] or "").strip(), (record["note"] or "").strip(),
                       line)


def parse_tiers(values: dict[str, str], fail) -> Tiers:
    """rate_1, up_to_1, rate_2[, up_to_2, rate_3] as Tiers: rates in [0, 1), thresholds increasing."""
    numbers = {}
    for column, text in values.items():
        if not text:
            continue
        try:
            numbers[column] = float(text)
        except ValueError:
            raise fail(column, "not a number") from None
    for column in ("rate_1", "up_to_1", "rate_2"):
        if column not in numbers:
            raise fail(column, "missing in a row with rates")
    if ("up_to_2" in numbers) != ("rate_3" in numbers):
        raise fail("rate_3", "up_to_2 and rate_3 go together")
    bounds = tuple(numbers[c] for c in ("up_to_1", "up_to_2") if c in numbers)
    rates = tuple(numbers[c] for c in ("rate_1", "rate_2", "rate_3") if c in numbers)
    for column in ("rate_1", "rate_2", "rate_3"):
        if column in numbers and not 0 <= numbers[column] < 1:
            raise fail(column, "a rate is a fraction in [0, 1)")
    if bounds[0] <= 0 or any(b <= a for a, b in zip(bounds, bounds[1:])):
        raise fail("up_to_2" if len(bounds) > 1 else "up_to_1", "thresholds must be positive and increasing")
    return Tiers(bounds, rates)
