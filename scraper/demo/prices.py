"""The demo catalogue's price model: a documented hedonic model plus a quality that only the picture shows.

A planted truth for testing the `price` stage (docs/PRICE.md), not a finding about the art market. In
US dollars, natural logs, for a work of artist a, kind k, area A (cm²), sold at venue v on channel c,
t years after the first demo month:

    hedonic   H = log(market_a) + log(KIND_PRICE[k]) + log(QUALIFIED_FACTOR if qualified or sketch)
                  + SIZE_ELASTICITY * log(A / REFERENCE_AREA_CM2)
                  + VENUE_PREMIUM[v] + (ONLINE_DISCOUNT if c is online) + MARKET_GROWTH * t
    quality   q ~ N(0, 1) per work (`work_quality`), drawn into its pixels as brightness (artwork.py)
    hammer    log h = H + QUALITY_PRICE * q + N(0, SALE_NOISE)        (then rounded to a bid increment)
    experts   log e = H + EXPERT_QUALITY_SHARE * QUALITY_PRICE * q + N(0, EXPERT_NOISE)
              the estimate is the house's bracket (low, high) whose geometric mean is nearest e
    realised  price = hammer + Christie's buyer's premium in force for the sale (common/buyers_premium.csv: by
              its currency and saleroom, on its opening day), in the sale's currency

So nobody but the picture knows the rest of q: a model that reads the image can beat the hedonic model,
and one that reads it well can beat the experts, who see only EXPERT_QUALITY_SHARE of it.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from functools import cache

from common.premium import PremiumSchedule, PremiumScheduleError, Tiers

KIND_PRICE = {"painting": 1.0, "sculpture": 0.8, "drawing": 0.35, "photograph": 0.25, "print": 0.15, "other": 0.2}
QUALIFIED_FACTOR = 0.25          # "ATTRIBUTED TO ...", "AFTER ...", and sketches
SIZE_ELASTICITY = 0.5            # +50% area -> about +22% price
REFERENCE_AREA_CM2 = 3000.0
VENUE_PREMIUM = {"New York": 0.15, "Hong Kong": 0.10, "London": 0.0, "Paris": -0.10, "Geneva": -0.05}
ONLINE_DISCOUNT = -0.25
MARKET_GROWTH = 0.05             # per year
QUALITY_PRICE = 0.5              # log price per standard deviation of the picture's quality
EXPERT_QUALITY_SHARE = 0.5       # the part of the quality the specialists see
SALE_NOISE = 0.3                 # the room on the day: seen by nobody
EXPERT_NOISE = 0.25
ESTIMATE_BRACKETS = ((1, 1.5), (1.5, 2), (2, 3), (3, 5), (4, 6), (5, 7), (6, 8), (8, 12))


def work_quality(render_seed: int) -> float:
    """The work's quality q ~ N(0, 1), clipped to ±3: a function of its render seed only, so the renderer
    and the price model agree (and a repeated print, which shares the seed, keeps its quality)."""
    return max(-3.0, min(3.0, random.Random(f"quality:{render_seed}").gauss(0.0, 1.0)))


def hedonic_log_usd(market: float, kind: str, qualified: bool, area_cm2: float, location: str, online: bool,
                    years: float) -> float:
    """H above: the log US-dollar value that the catalogue's words explain."""
    return (math.log(market) + math.log(KIND_PRICE[kind]) + (math.log(QUALIFIED_FACTOR) if qualified else 0.0)
            + SIZE_ELASTICITY * math.log(area_cm2 / REFERENCE_AREA_CM2)
            + VENUE_PREMIUM.get(location, 0.0) + (ONLINE_DISCOUNT if online else 0.0) + MARKET_GROWTH * years)


def expert_estimate(rng: random.Random, hedonic: float, quality: float, usd_rate: float) -> tuple[float, float]:
    """(low, high) in the sale's currency (`usd_rate` units per dollar): the bracket nearest the experts' guess."""
    guess = math.exp(hedonic + EXPERT_QUALITY_SHARE * QUALITY_PRICE * quality + rng.gauss(0, EXPERT_NOISE)) * usd_rate
    return estimate_bracket(guess)


def estimate_bracket(centre: float) -> tuple[float, float]:
    """The house bracket (low, high), on its usual steps, whose geometric mean is nearest `centre`."""
    power = 10 ** math.floor(math.log10(centre))
    candidates = [(low * scale * power, high * scale * power) for low, high in ESTIMATE_BRACKETS for scale in (0.1, 1, 10)]
    low, high = min(candidates, key=lambda b: abs(math.log(math.sqrt(b[0] * b[1]) / centre)))
    return float(round(low, 2)), float(round(high, 2))


def realised_price(rng: random.Random, hedonic: float, quality: float, usd_rate: float, premium: Tiers) -> float:
    """Hammer price on a bid increment plus the buyer's premium, in the sale's currency: rarely round."""
    hammer = math.exp(hedonic + QUALITY_PRICE * quality + rng.gauss(0, SALE_NOISE)) * usd_rate
    step = 10 ** max(1, math.floor(math.log10(hammer)) - 1)
    hammer = max(step, round(hammer / step) * step)
    return float(round(premium.realised(hammer)))


@cache
def schedule() -> PremiumSchedule:
    return PremiumSchedule.read()


def premium_tiers(currency: str, saleroom: str, day: dt.date, usd_rate: float) -> Tiers:
    """The premium in force for a sale (the shipped schedule). The demo builds any months, so where the table
    is silent (a currency's gap, or before 2005) it takes New York's rows with thresholds in the sale's
    currency at the demo's fixed rate (the price stage's `premium_fallback: new_york_converted` converts at the
    day's ECB rate, so there the two differ by a few percent of a threshold; before 2005 the stage stops)."""
    try:
        return schedule().row_for(currency, saleroom, day).tiers
    except PremiumScheduleError:
        first_usd_day = schedule().by_key[("USD", "")][0].effective
        return schedule().row_for("USD", "", max(day, first_usd_day)).tiers.scaled(usd_rate)
