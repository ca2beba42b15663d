"""A deterministic, Christie's-shaped catalogue of invented sales, lots and artists.

`build_catalogue(params["demo"], params["scrape"]["start"])` plans months of sales (live and online-only,
2-D art sales plus decoy jewellery / furniture / wine sales and one upcoming sale), invents artists with a
prolific-to-rare spread, and writes every lot's text the way the real site does (upper-case makers with
dates, HTML descriptions, estimates with the currency once or twice, empty strings for missing values).

The catalogue also holds the ground truth (`Lot.truth`) that tests use and the server never serves: the
true artist, qualifier, kind, sketch / decoy / duplicate flags and the special image kind.

Randomness: every decision draws from `random.Random` streams seeded with strings derived from
`demo.seed`, so the catalogue is identical across runs, machines and Python hash seeds.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import random
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields

from scraper.demo import prices

# ---------------------------------------------------------------- vocabulary (facts about the site)

FINE_ART = "category_7"
PRINTS_PHOTOGRAPHS = "category_11"
JEWELLERY = "category_9"
FURNITURE = "category_8"
WINE = "category_14"
ART_CATEGORIES = (FINE_ART, PRINTS_PHOTOGRAPHS)
DECOY_CATEGORIES = (JEWELLERY, FURNITURE, WINE)

NO_IMAGE_PATH = "/img/lotimages//Alert/NoImage/non_NoImag.jpg"
ROUNDEL_PATH = "/Content/img/christies-roundel.svg"  # what onlineonly serves some addresses instead (site §12)
QUALIFIERS_OLD_MASTER = ("ATTRIBUTED TO", "CIRCLE OF", "SCHOOL OF", "STUDIO OF", "FOLLOWER OF")
QUALIFIER_AFTER = "AFTER"
KINDS_2D = ("painting", "drawing", "print", "photograph")

# Image kinds: how a lot's image is encoded (tests and curation check each one).
IMAGE_RGB, IMAGE_L, IMAGE_CMYK, IMAGE_RGBA_PNG = "jpeg_rgb", "jpeg_l", "jpeg_cmyk", "png_rgba"
IMAGE_TRUNCATED, IMAGE_BOMB = "truncated", "bomb"
IMAGE_PLACEHOLDER, IMAGE_NONE = "placeholder", "none"

# Invented names: none is a real artist. Accents on purpose (É, Ø, ñ, ú, ...).
ARTIST_NAMES = (
    "Élodie Marchetaux", "Søren Halvbrekke", "Iñigo Valdeserra", "Margit Oszlanek", "Tobias Quennemer",
    "Anouk Verhaaven", "Casimir Dublanc", "Lúcia Ferreirinho", "Jorund Øvrebakk", "Hélène Brisevaux",
    "Matthias Kreuzlinger", "Piet van Oorschaede", "Gianna Morvellini", "Teodor Vashkirin",
    "Aurelio Montebrañez", "Ingrid Lønnebakke", "Cornelis Hoogeveldt", "Nadia Perelstein",
    "Émile Vautrenay", "Bartholomeus Kwakkelaer",
)
NAME_SYLLABLES = ("bra", "vel", "qui", "mor", "tan", "lis", "dor", "fen", "gra", "wik", "sel", "ost", "ru", "ne")

# Artist roles: the kinds of their genuine works, as (kind, share) pairs.
ROLE_KINDS = {
    "painter": (("painting", 0.8), ("drawing", 0.2)),
    "printmaker": (("print", 0.85), ("drawing", 0.15)),
    "old_master": (("painting", 0.85), ("drawing", 0.15)),
    "photographer": (("photograph", 1.0),),
    "draughtsman": (("drawing", 0.7), ("painting", 0.3)),
}
ROLE_CYCLE = ("painter", "printmaker", "old_master", "photographer", "draughtsman")
SCULPTING_ROLES = ("painter", "old_master", "draughtsman")


@dataclass(frozen=True)
class SaleTemplate:
    """One recurring kind of sale: title, room, place, channel and the formatting habits of its pages."""

    title: str
    category: str
    online: bool
    room: str
    location: str
    location_id: str
    currency: str
    number_style: str      # int | float | str1 ("15000.0") | str2 ("18000.00")
    estimate_style: str    # once | twice | twice_endash
    name_case: str         # upper | mixed
    br_tag: str = "<br>"
    lot_url_style: str = "lot"   # lot: /en/lot/lot-<id>; sso: /en/sso?ObjectID=... (404s, as on the real site)
    first_lot: int = 1


ART_TEMPLATES = (
    SaleTemplate("Post-War and Contemporary Art Day Sale", FINE_ART, False, "NYR", "New York", "location_43",
                 "USD", "float", "once", "upper", first_lot=101),
    SaleTemplate("Prints and Multiples Online", PRINTS_PHOTOGRAPHS, True, "CKS", "London", "location_36",
                 "GBP", "str2", "twice", "upper"),
    SaleTemplate("Old Masters and 19th Century Art", FINE_ART, False, "CKS", "London", "location_36",
                 "GBP", "int", "once", "upper", lot_url_style="sso"),
    SaleTemplate("Post-War to Present Online", FINE_ART, True, "PAR", "Paris", "location_45",
                 "EUR", "str2", "twice_endash", "mixed", br_tag="<BR>"),
    SaleTemplate("Photographs", PRINTS_PHOTOGRAPHS, False, "NYR", "New York", "location_43",
                 "USD", "str1", "once", "upper"),
    SaleTemplate("Photographs and Prints Online", PRINTS_PHOTOGRAPHS, True, "GNV", "Geneva", "location_33",
                 "CHF", "str2", "twice_endash", "mixed"),
    SaleTemplate("Modern and Contemporary Art Evening Sale", FINE_ART, False, "HGK", "Hong Kong", "location_35",
                 "HKD", "float", "once", "upper", first_lot=1),
)
DECOY_TEMPLATES = {
    JEWELLERY: SaleTemplate("Magnificent Jewels Online", JEWELLERY, True, "HGK", "Hong Kong", "location_35",
                            "HKD", "str2", "twice", "upper"),
    FURNITURE: SaleTemplate("Important European Furniture", FURNITURE, False, "CKS", "London", "location_36",
                            "GBP", "int", "once", "upper"),
    WINE: SaleTemplate("Finest and Rarest Wines Online", WINE, True, "NYR", "New York", "location_43",
                       "USD", "str2", "twice", "upper"),
}

# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Composition:
    """Shares of each quirk, relative to an artist's clean works (sold, unqualified, 2-D, good image).

    Quirk lots are added on top of the clean works, so the clean count of an artist is exactly the planned
    number and the prolific ranking can't be upset by them.
    """

    qualified: float = 0.10
    sketch: float = 0.07
    sculpture: float = 0.06
    no_image: float = 0.05
    unsold: float = 0.12
    withdrawn: float = 0.03
    repeat_print: float = 0.10     # of a print artist's prints: the same print sold again in another sale
    upcoming: float = 0.04
    cmyk: float = 0.03             # of clean works: CMYK JPEG instead of RGB
    rgba_png: float = 0.01         # of clean works: RGBA PNG served at a .jpg URL
    grayscale_photo: float = 0.6   # of photographs: L (grayscale) JPEG
    odd_whitespace: float = 0.04   # of art lots: doubled or trailing spaces in title_primary_txt
    lot_suffix: float = 0.02       # of live lots: a lot number like "12A" after "12"


@dataclass(frozen=True)
class DemoConfig:
    """The `demo` section of params.yaml, validated."""

    seed: int
    months: int
    n_artists: int
    works_min: int
    works_max: int
    sales_per_month: int
    decoy_sales_per_month: int
    lots_per_decoy_sale: int
    image_min_side: int
    image_max_side: int
    n_prolific: int = 10            # artists in the prolific group (>= select.n_artists)
    prolific_min_works: int = 48    # clean works of the least prolific artist of that group
    max_rendition_side: int = 2048  # the server never renders a side larger than this
    composition: Composition = field(default_factory=Composition)

    @classmethod
    def from_params(cls, demo_params: Mapping) -> DemoConfig:
        """Validate the `demo` section: every required key present, integers where integers belong.

        Raises:
            ValueError: naming `params.yaml demo.<key>` and what is wrong with it.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(demo_params) - known)
        if unknown:
            raise ValueError(f"params.yaml demo: unknown keys {unknown} (known: {sorted(known)})")
        values = {}
        for f in fields(cls):
            if f.name == "composition":
                values[f.name] = Composition(**(demo_params.get("composition") or {}))
            elif f.name in demo_params:
                values[f.name] = _positive_int(demo_params[f.name], f.name)
            elif f.default is MISSING:
                raise ValueError(f"params.yaml demo.{f.name}: missing")
        config = cls(**values)
        config._check_ranges()
        return config

    def _check_ranges(self) -> None:
        if self.works_min > self.works_max:
            raise ValueError(f"params.yaml demo.works_min ({self.works_min}) > works_max ({self.works_max})")
        if self.image_min_side > self.image_max_side:
            raise ValueError("params.yaml demo.image_min_side > demo.image_max_side")
        if not self.works_min < self.prolific_min_works <= self.works_max:
            raise ValueError("params.yaml demo.prolific_min_works must lie in (works_min, works_max]")
        if self.n_prolific > self.n_artists:
            raise ValueError("params.yaml demo.n_prolific > demo.n_artists")


def _positive_int(value, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "seed" else 1):
        raise ValueError(f"params.yaml demo.{key}: expected a positive integer, got {value!r}")
    return value


# ---------------------------------------------------------------- the catalogue's records


@dataclass(frozen=True)
class Artist:
    key: str               # stable id, e.g. "artist-00" (rank 0 = most prolific)
    name: str              # display name, mixed case, may carry accents
    birth: int
    death: int | None      # None: living, shown as "(B. 1932)"
    role: str
    clean_works: int       # planned number of clean works (sold, unqualified, 2-D, good image)
    style_seed: int        # seeds the visual style in artwork.py
    market: float          # the artist's price level in US dollars (prices.py)

    def dates_txt(self, case: str) -> str:
        if self.death is None:
            return f"({'B.' if case == 'upper' else 'b.'} {self.birth})"
        return f"({self.birth}-{self.death})"


@dataclass(frozen=True)
class LotTruth:
    """What a perfect parser would conclude about a lot. Never served."""

    artist_key: str | None     # None for decoy lots
    qualifier: str             # "" or e.g. "ATTRIBUTED TO"
    kind: str                  # painting | drawing | print | photograph | sculpture | other
    is_sketch: bool
    is_decoy: bool
    duplicate_of: str | None   # object_id of the first sale of the same print
    has_image: bool            # False for the placeholder and for an empty image_src
    image_kind: str            # one of the IMAGE_* constants
    sold: bool
    withdrawn: bool
    clean: bool                # counted in Artist.clean_works
    hedonic_log_usd: float | None = None   # H of the price model (prices.py); None for decoys
    quality: float = 0.0                   # q of the price model, drawn into the picture


@dataclass
class Lot:
    object_id: str
    event_id: str
    lot_number: str
    title_primary_txt: str
    title: str
    description_html: str
    medium: str
    dimensions: str
    measurements_txt: str
    estimate_low: float | None
    estimate_high: float | None
    estimate_txt: str
    price_realised: float | None
    price_realised_txt: str
    consigner: str
    image_path: str | None     # path on the www origin (no query); None: empty image_src
    image_size: tuple[int, int]  # (width, height) of the source image
    render_seed: int
    style_seed: int | None
    decoy_type: str | None     # jewellery | furniture | wine for decoys
    truth: LotTruth


@dataclass
class Sale:
    event_id: str
    sale_number: str
    online_sale_id: str | None  # onlineonly's own id (differs from event_id, as on the real site)
    template: SaleTemplate
    start: dt.date
    end: dt.date
    closed: bool
    lot_ids: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.template.title

    @property
    def slug(self) -> str:
        return slugify(self.template.title, "-")

    @property
    def is_online(self) -> bool:
        return self.template.online

    @property
    def is_decoy(self) -> bool:
        return self.template.category in DECOY_CATEGORIES

    @property
    def categories(self) -> tuple[str, ...]:
        return (self.template.category,)

    @property
    def filter_ids(self) -> str:
        channel = "event_115|" if self.is_online else "event_0||event_live|"
        return f"|{self.template.category}|{self.template.location_id}|{channel}"

    @property
    def subtitle_txt(self) -> str:
        kind = "Online Auction" if self.is_online else "Live Auction"
        return f"{kind} {self.sale_number}" + (" | CLOSED" if self.closed else "")

    @property
    def month(self) -> str:
        return f"{self.end.year:04d}-{self.end.month:02d}"


@dataclass
class Catalogue:
    config: DemoConfig
    months: list[str]
    artists: list[Artist]
    sales: list[Sale]
    lots: dict[str, Lot]
    _by_event: dict[str, Sale] = field(default_factory=dict, repr=False)
    _by_online_id: dict[str, Sale] = field(default_factory=dict, repr=False)
    _by_image: dict[str, Lot] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_event = {s.event_id: s for s in self.sales}
        self._by_online_id = {s.online_sale_id: s for s in self.sales if s.online_sale_id}
        for lot in self.lots.values():
            if lot.image_path and lot.image_path not in (NO_IMAGE_PATH, ROUNDEL_PATH):
                key = lot.image_path.lower()
                if key in self._by_image:
                    raise AssertionError(f"image path collision: {lot.image_path}")
                self._by_image[key] = lot

    def sale(self, event_id: str) -> Sale | None:
        return self._by_event.get(event_id)

    def sale_by_online_id(self, online_sale_id: str) -> Sale | None:
        return self._by_online_id.get(online_sale_id)

    def sale_of(self, lot: Lot) -> Sale:
        return self._by_event[lot.event_id]

    def lots_of(self, sale: Sale) -> list[Lot]:
        """The sale's lots in lot-number order."""
        return [self.lots[i] for i in sale.lot_ids]

    def lot_by_image_path(self, path: str) -> Lot | None:
        """The lot whose image lives at `path` (case-insensitive, like the real image server)."""
        return self._by_image.get(path.lower())

    def sales_in_month(self, year: int, month: int) -> list[Sale]:
        """Sales listed in the results calendar of that month (by their end date), oldest first."""
        return sorted((s for s in self.sales if (s.end.year, s.end.month) == (year, month)),
                      key=lambda s: (s.end, s.start, s.event_id))

    def artist(self, key: str) -> Artist:
        return next(a for a in self.artists if a.key == key)

    def expected_lots(self, start: str, end: str, categories: Iterable[str]) -> list[Lot]:
        """The lots a correct spider returns for months start..end ("YYYY-MM") and these sale categories.

        Every lot of every CLOSED sale in range whose category is wanted: sold, unsold and withdrawn alike.
        """
        wanted = set(categories)
        lo, hi = parse_month(start), parse_month(end)
        return [
            self.lots[i]
            for s in sorted(self.sales, key=lambda s: (s.end, s.event_id))
            if s.closed and lo <= (s.end.year, s.end.month) <= hi and wanted & set(s.categories)
            for i in s.lot_ids
        ]


# ---------------------------------------------------------------- text helpers


def parse_month(text: str) -> tuple[int, int]:
    """'2019-01' -> (2019, 1). Raises ValueError naming the bad value."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", str(text))
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"month {text!r}: expected YYYY-MM")
    return int(match.group(1)), int(match.group(2))


def month_list(start: str, count: int) -> list[str]:
    year, month = parse_month(start)
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def slugify(text: str, sep: str = "_") -> str:
    """ASCII, lower case, runs of other characters collapsed to `sep`: 'Élodie (B. 1950)' -> 'elodie_b_1950'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", sep, ascii_text.lower()).strip(sep)


def money(value: float) -> str:
    return f"{int(round(value)):,}"


def estimate_text(currency: str, low: float, high: float, style: str) -> str:
    """The three estimate_txt formats seen on the site."""
    if style == "once":
        return f"{currency} {money(low)} - {money(high)}"
    if style == "twice":
        return f"{currency} {money(low)} - {currency} {money(high)}"
    if style == "twice_endash":
        return f"{currency} {money(low)} \u2013 {currency} {money(high)}"
    raise ValueError(f"unknown estimate style {style!r}")


def inches_text(cm: float, fraction_slash: str = "/") -> str:
    """Centimetres as catalogue inches to the nearest eighth: 31.1 -> '12 1/4'."""
    eighths = round(cm / 2.54 * 8)
    whole, rest = divmod(eighths, 8)
    if rest == 0:
        return str(whole)
    frac = {1: "1/8", 2: "1/4", 3: "3/8", 4: "1/2", 5: "5/8", 6: "3/4", 7: "7/8"}[rest].replace("/", fraction_slash)
    return f"{whole} {frac}" if whole else frac


def cm_text(cm: float) -> str:
    return f"{cm:.1f}"


# ---------------------------------------------------------------- building


def make_artists(config: DemoConfig, rng: random.Random) -> list[Artist]:
    """Artists ranked from most to least prolific; the first `n_prolific` form a clearly prolific group."""
    names = list(ARTIST_NAMES)
    rng.shuffle(names)
    artists = []
    for rank in range(config.n_artists):
        name = names[rank] if rank < len(names) else invented_name(rng)
        role = ROLE_CYCLE[rank % len(ROLE_CYCLE)]
        birth, death = life_dates(rng, role)
        artists.append(Artist(
            key=f"artist-{rank:02d}", name=name, birth=birth, death=death, role=role,
            clean_works=clean_work_count(config, rank), style_seed=rng.getrandbits(32),
            market=10 ** rng.uniform(3.2, 5.3),
        ))
    return artists


def clean_work_count(config: DemoConfig, rank: int) -> int:
    """Linear from works_max down to prolific_min_works over the prolific group, then from half of
    prolific_min_works (at least works_min) down to works_min: a visible gap separates the two groups."""
    if rank < config.n_prolific:
        span = max(1, config.n_prolific - 1)
        return round(config.works_max - (config.works_max - config.prolific_min_works) * rank / span)
    rare = config.n_artists - config.n_prolific
    top = max(config.works_min, config.prolific_min_works // 2)
    span = max(1, rare - 1)
    return round(top - (top - config.works_min) * (rank - config.n_prolific) / span)


def invented_name(rng: random.Random) -> str:
    def word(n: int) -> str:
        return "".join(rng.choice(NAME_SYLLABLES) for _ in range(n)).capitalize()

    return f"{word(2)} {word(3)}"


def life_dates(rng: random.Random, role: str) -> tuple[int, int | None]:
    if role == "old_master":
        birth = rng.randint(1560, 1690)
        return birth, birth + rng.randint(38, 82)
    if rng.random() < 0.45:
        return rng.randint(1930, 1985), None
    birth = rng.randint(1850, 1925)
    return birth, min(2015, birth + rng.randint(45, 95))


@dataclass
class WorkPlan:
    """A work before it is placed in a sale: who made it, what it is, which quirks it carries."""

    artist: Artist
    kind: str
    qualifier: str = ""
    is_sketch: bool = False
    sold: bool = True
    withdrawn: bool = False
    image_kind: str = IMAGE_RGB
    upcoming: bool = False
    duplicate_of: WorkPlan | None = None
    clean: bool = False
    render_seed: int = 0
    object_id: str = ""
    texts: dict = field(default_factory=dict)


def plan_works(config: DemoConfig, artists: list[Artist], rng: random.Random) -> list[WorkPlan]:
    """Every art work of the catalogue: the clean works of each artist plus quirk works on top."""
    comp = config.composition
    works: list[WorkPlan] = []
    qualifier_turn = 0
    for artist in artists:
        clean = [WorkPlan(artist, pick_kind(rng, artist.role), clean=True) for _ in range(artist.clean_works)]
        works += clean
        n = artist.clean_works

        def extra(share: float, kind: str | None = None, **quirks) -> list[WorkPlan]:
            return [WorkPlan(artist, kind or pick_kind(rng, artist.role), **quirks) for _ in range(round(n * share))]

        for plan in extra(comp.qualified):
            if artist.role == "old_master":
                plan.qualifier = QUALIFIERS_OLD_MASTER[qualifier_turn % len(QUALIFIERS_OLD_MASTER)]
                qualifier_turn += 1
            else:
                plan.qualifier, plan.kind = QUALIFIER_AFTER, "print"
            works.append(plan)
        works += extra(comp.sketch, kind="drawing", is_sketch=True)
        if artist.role in SCULPTING_ROLES:
            works += extra(comp.sculpture, kind="sculpture")
        works += extra(comp.no_image / 2, image_kind=IMAGE_PLACEHOLDER)
        works += extra(comp.no_image / 2, image_kind=IMAGE_NONE)
        works += extra(comp.unsold, sold=False)
        works += extra(comp.withdrawn, sold=False, withdrawn=True)
        works += extra(comp.upcoming, sold=False, upcoming=True)
        prints = [w for w in clean if w.kind == "print"]
        for original in rng.sample(prints, round(len(prints) * comp.repeat_print)):
            works.append(WorkPlan(artist, "print", duplicate_of=original))
    assign_image_kinds(works, comp, rng)
    for plan in works:
        plan.render_seed = rng.getrandbits(32)
    for plan in works:
        if plan.duplicate_of is not None:
            plan.render_seed = plan.duplicate_of.render_seed
    return works


def pick_kind(rng: random.Random, role: str) -> str:
    kinds, weights = zip(*ROLE_KINDS[role])
    return rng.choices(kinds, weights)[0]


def assign_image_kinds(works: list[WorkPlan], comp: Composition, rng: random.Random) -> None:
    """Photographs mostly grayscale; a few CMYK and RGBA PNG; exactly one truncated and one bomb image.

    The truncated and the bomb image go to two extra works of the two most prolific artists, so the
    clean counts stay as planned and the bad images are likely to be sampled downstream.
    """
    for plan in works:
        if plan.kind == "photograph" and plan.image_kind == IMAGE_RGB and rng.random() < comp.grayscale_photo:
            plan.image_kind = IMAGE_L
    clean = [w for w in works if w.clean and w.image_kind == IMAGE_RGB]
    for plan in rng.sample(clean, max(1, round(len(clean) * comp.cmyk))):
        plan.image_kind = IMAGE_CMYK
    clean = [w for w in works if w.clean and w.image_kind == IMAGE_RGB]
    for plan in rng.sample(clean, max(1, round(len(clean) * comp.rgba_png))):
        plan.image_kind = IMAGE_RGBA_PNG
    leaders = sorted({w.artist.key: w.artist for w in works}.values(), key=lambda a: a.key)[:2]
    for artist, bad_kind in zip(leaders, (IMAGE_TRUNCATED, IMAGE_BOMB)):
        kind = next(k for k, _ in ROLE_KINDS[artist.role])
        works.append(WorkPlan(artist, kind, image_kind=bad_kind))


def plan_sales(config: DemoConfig, months: list[str], rng: random.Random) -> list[Sale]:
    """Art, decoy and one upcoming sale per the config; ids and numbers increase with time."""
    sales: list[Sale] = []
    counter = {"event": 27900 + rng.randint(0, 90), "number": 17000 + rng.randint(0, 900), "online": 2100}
    for month_index, month in enumerate(months):
        year, mon = parse_month(month)
        templates = [ART_TEMPLATES[(month_index * config.sales_per_month + i) % len(ART_TEMPLATES)]
                     for i in range(config.sales_per_month)]
        decoys = [DECOY_TEMPLATES[DECOY_CATEGORIES[(month_index + i) % len(DECOY_CATEGORIES)]]
                  for i in range(config.decoy_sales_per_month)]
        for template in templates + decoys:
            sales.append(new_sale(template, year, mon, counter, rng, closed=True))
    last_year, last_month = parse_month(months[-1])
    upcoming = ART_TEMPLATES[0]
    sales.append(new_sale(upcoming, last_year, last_month, counter, rng, closed=False))
    return sales


def new_sale(template: SaleTemplate, year: int, month: int, counter: dict, rng: random.Random,
             closed: bool) -> Sale:
    last_day = calendar.monthrange(year, month)[1]
    if template.online:
        start_day = rng.randint(1, last_day - 12)
        start, end = dt.date(year, month, start_day), dt.date(year, month, start_day + rng.randint(7, 12))
    else:
        day = rng.randint(1, last_day) if closed else last_day
        start = end = dt.date(year, month, day)
    counter["event"] += rng.randint(1, 40)
    counter["number"] += rng.randint(1, 30)
    online_id = None
    if template.online:
        counter["online"] += rng.randint(1, 25)
        online_id = str(counter["online"])
    return Sale(event_id=str(counter["event"]), sale_number=str(counter["number"]), online_sale_id=online_id,
                template=template, start=start, end=end, closed=closed)


def sale_affinity(plan: WorkPlan, sale: Sale) -> float:
    """Old-master works gravitate to Old Masters sales, modern works away from them."""
    old_master_sale = sale.title.startswith("Old Masters")
    if plan.artist.role == "old_master":
        return 8.0 if old_master_sale else 1.0
    return 0.2 if old_master_sale else 1.0


def assign_works_to_sales(works: list[WorkPlan], sales: list[Sale], rng: random.Random) -> dict[str, list[WorkPlan]]:
    """Place each work in a compatible sale: prints and photographs in category_11 sales, the rest in
    category_7 sales; repeated prints in a different sale from their first appearance; upcoming works in
    the upcoming sale. Sale sizes are uneven (one big sale per group) so paging spans several pages."""
    closed = [s for s in sales if s.closed and not s.is_decoy]
    groups = {cat: [s for s in closed if s.template.category == cat] for cat in ART_CATEGORIES}
    weights = {s.event_id: rng.uniform(0.5, 1.5) for s in closed}
    for members in groups.values():
        if members:
            weights[members[0].event_id] *= 4.0
    placed: dict[str, list[WorkPlan]] = {s.event_id: [] for s in sales}
    upcoming = next(s for s in sales if not s.closed)
    home: dict[int, str] = {}
    for plan in sorted(works, key=lambda w: w.duplicate_of is not None):
        if plan.upcoming:
            placed[upcoming.event_id].append(plan)
            continue
        category = PRINTS_PHOTOGRAPHS if plan.kind in ("print", "photograph") else FINE_ART
        options = groups[category] or closed
        if plan.duplicate_of is not None:
            others = [s for s in options if s.event_id != home[id(plan.duplicate_of)]]
            options = others or options
        affinity = [weights[s.event_id] * sale_affinity(plan, s) for s in options]
        sale = rng.choices(options, affinity)[0]
        placed[sale.event_id].append(plan)
        home[id(plan)] = sale.event_id
    return placed


# ---------------------------------------------------------------- the words of a lot

PLACES = ("Honfleur", "Trieste", "Bergen", "Lisbon", "Tangier", "Delft", "Arles", "Valparaíso", "Kyoto", "Oaxaca")
TITLES = {
    "painting": ("Composition with Red Square", "Harbour at Dusk", "Still Life with Lemons", "Untitled",
                 "Landscape near {place}", "Interior with Open Window", "Abstraction No. {n}", "The Blue Room",
                 "Evening, {place}", "Untitled ({n}.{m}.{yy})"),
    "old_master": ("The Adoration of the Shepherds", "Portrait of a Gentleman, half-length",
                   "A River Landscape with Fishermen", "Saint Jerome in his Study",
                   "A Wooded Landscape with Travellers", "Still Life of Flowers in a Glass Vase"),
    "drawing": ("Figure Seated", "Two Women Bathing", "View of {place}", "Untitled", "Trees by a River",
                "Reclining Nude"),
    "print": ("Flowers", "Untitled, from the {place} Suite", "Composition ({n})", "Self-Portrait",
              "Night Garden", "Red Horizon"),
    "photograph": ("Street, {place}, {year}", "Nude, {year}", "Dunes", "Window, {place}", "Harbour Wall, {year}"),
    "sculpture": ("Reclining Figure", "Torso", "Head of a Woman", "Standing Figure", "Maquette for a Fountain"),
}
SKETCH_FORMS = ("Study for '{title}'", "Preparatory sketch for '{title}'")
MEDIA = {
    "painting": ("oil on canvas", "oil on panel", "acrylic on canvas", "oil on canvas laid down on board",
                 "oil and sand on canvas"),
    "old_master": ("oil on panel", "oil on canvas", "oil on copper"),
    "drawing": ("gouache and pencil on paper", "watercolour on paper", "charcoal on paper", "pastel on paper",
                "pen and black ink and wash on paper"),
    "sketch": ("pencil on paper", "charcoal on paper", "pen and brown ink on paper", "red chalk on paper"),
    "print": ("lithograph in colours, {year}, on Arches paper", "screenprint in colours, {year}, on wove paper",
              "etching with aquatint, {year}", "woodcut, {year}, on Japan paper"),
    "photograph": ("gelatin silver print", "chromogenic print", "platinum print",
                   "gelatin silver print, printed later"),
    "sculpture": ("bronze with brown patina", "bronze with green patina", "marble", "painted terracotta"),
}
SIZE_CM = {"painting": (25, 180), "drawing": (15, 75), "print": (20, 95), "photograph": (15, 60),
           "sculpture": (15, 120)}
CONSIGNERS = ("", "", "", "", "Property from a Private Collection",
              "Property from the Estate of a Distinguished Collector")
CURRENCY_RATE = {"USD": 1.0, "GBP": 0.8, "EUR": 0.9, "CHF": 1.0, "HKD": 8.0}   # units per dollar, fixed
DECOY_MARKET_USD = 6000.0
TRAP_TITLE = "Notes on a Score {Allegro});"    # a '});' inside a string breaks lazy-regex extractors
DECOY_TEXTS = {
    "jewellery": (("A SAPPHIRE AND DIAMOND RING", "", "platinum, sapphire, diamonds", "ring size 6 1/2"),
                  ("A PAIR OF DIAMOND EAR PENDANTS", "BY MAISON ORVELLE", "18k white gold, diamonds",
                   "1 3/4 in. (4.4 cm.) long"),
                  ("A JADEITE BEAD NECKLACE", "", "jadeite, 18k gold", "19 in. (48.3 cm.) long")),
    "furniture": (("A LOUIS XV ORMOLU-MOUNTED KINGWOOD COMMODE", "MID-18TH CENTURY", "kingwood, tulipwood, ormolu",
                   "34 1/2 in. (87.6 cm.) high, 51 in. (129.5 cm.) wide"),
                  ("A PAIR OF GEORGE III GILTWOOD ARMCHAIRS", "CIRCA 1770", "giltwood, silk upholstery",
                   "38 in. (96.5 cm.) high"),
                  ("TWO CERAMIC VASES, MOUNTED AS LAMPS", "19TH/20TH CENTURY", "glazed stoneware, gilt metal",
                   "22 in. (55.9 cm.) high")),
    "wine": (("Château Montferrand-Lacoste 1990", "", "12 bottles per lot", "Bordeaux, Pauillac"),
             ("Domaine des Quatre Vents, Clos Saint-Aubry 2005", "", "6 magnums per lot", "Burgundy"),
             ("Quinta do Vale Escuro Vintage Port 1977", "", "12 bottles per lot", "Douro")),
}
DECOY_TYPE = {JEWELLERY: "jewellery", FURNITURE: "furniture", WINE: "wine"}


def work_texts(plan: WorkPlan, rng: random.Random, image_sides: tuple[int, int]) -> dict:
    """Title, signature, medium, dimensions, date line and source image size of one work (sale-independent)."""
    artist, kind = plan.artist, plan.kind
    year = rng.randint(artist.birth + 18, min(artist.death or 2018, 2018))
    fill = {"place": rng.choice(PLACES), "n": rng.randint(1, 40), "m": rng.randint(1, 12),
            "yy": f"{year % 100:02d}", "year": year}
    title_kind = "old_master" if artist.role == "old_master" and kind == "painting" else kind
    title = rng.choice(TITLES[title_kind]).format(**fill)
    if plan.is_sketch:
        title = rng.choice(SKETCH_FORMS).format(title=rng.choice(TITLES["painting"]).format(**fill))
    medium_kind = "sketch" if plan.is_sketch else title_kind
    medium = rng.choice(MEDIA[medium_kind]).format(**fill)
    height_cm, width_cm = work_size_cm(rng, kind)
    dimensions, measurements = dimension_lines(rng, kind, height_cm, width_cm)
    return {
        "title": title, "medium": medium, "dimensions": dimensions, "measurements": measurements,
        "signature": signature_line(rng, artist, kind, year),
        "date_line": date_line(kind, artist.role, year),
        "image_size": image_size(rng, image_sides, 0.8 if kind == "sculpture" else width_cm / height_cm),
        "area_cm2": height_cm * width_cm,
        "consigner": rng.choice(CONSIGNERS),
    }


def work_size_cm(rng: random.Random, kind: str) -> tuple[float, float]:
    lo, hi = SIZE_CM[kind]
    height = rng.uniform(lo, hi)
    return height, height * rng.uniform(0.6, 1.5)


def dimension_lines(rng: random.Random, kind: str, height: float, width: float) -> tuple[str, str]:
    """The description's dimensions line and the lot page's measurements_txt."""
    if kind == "sculpture":
        slash = "\u2044" if rng.random() < 0.15 else "/"   # U+2044 fraction slash, seen on the real site
        line = f"{inches_text(height, slash)} in. ({cm_text(height)} cm.) high"
        return line, f"H {inches_text(height)} in. ({cm_text(height)} cm.)"
    inches = f"{inches_text(height)} x {inches_text(width)} in."
    cms = f"({cm_text(height)} x {cm_text(width)} cm.)"
    prefix = rng.choice(("", "", "Image: ", "Sheet: ")) if kind in ("print", "photograph") else ""
    return f"{prefix}{inches} {cms}", f"H {inches_text(height)} x W {inches_text(width)} in. {cms}"


def signature_line(rng: random.Random, artist: Artist, kind: str, year: int) -> str:
    surname = artist.name.split()[-1]
    initials = "".join(part[0] for part in artist.name.split())
    options = {
        "painting": (f"signed and dated '{surname} {year % 100:02d}' (lower right)", f"signed '{surname}' (lower left)",
                     f"signed, titled and dated '{surname} {year}' (on the reverse)", ""),
        "drawing": (f"signed with initials '{initials}' (lower right)",
                    "stamped with the artist's estate stamp (on the reverse)", f"signed '{surname}' (lower left)"),
        "print": ("signed in pencil and numbered " + f"'{rng.randint(1, 50)}/50'", "signed and numbered in pencil"),
        "photograph": ("signed, titled and dated in pencil (on the reverse)",
                       "with the photographer's credit stamp (on the reverse)", ""),
        "sculpture": (f"signed with initials '{initials}' and numbered '{rng.randint(1, 6)}/6'", ""),
    }[kind]
    if artist.role == "old_master":
        options = (f"with inscription 'Anno {year}' (upper left)", "", "")
    return rng.choice(options)


def date_line(kind: str, role: str, year: int) -> str:
    if role == "old_master" or kind in ("print", "photograph"):
        return ""
    return {"painting": f"Painted in {year}.", "drawing": f"Executed in {year}.",
            "sculpture": f"Conceived in {year}."}[kind]


def image_size(rng: random.Random, sides: tuple[int, int], aspect: float) -> tuple[int, int]:
    """(width, height) with the long side in [min_side, max_side] and the work's aspect (clamped to 1:2..2:1)."""
    aspect = min(2.0, max(0.5, aspect))
    long_side = rng.randint(*sides)
    short_side = max(1, round(long_side * min(aspect, 1 / aspect)))
    return (long_side, short_side) if aspect >= 1 else (short_side, long_side)


def maker_line(artist: Artist, qualifier: str, case: str) -> str:
    """'ATTRIBUTED TO JAN EXAMPLE (1606-1669)' on live sales; mixed case on some online sales."""
    name = artist.name.upper() if case == "upper" else artist.name
    prefix = (qualifier if case == "upper" else qualifier.capitalize()) + " " if qualifier else ""
    return f"{prefix}{name} {artist.dates_txt(case)}"


def odd_whitespace(rng: random.Random, text: str) -> str:
    """Doubled inner space, or a trailing space: both seen in scraped titles."""
    if rng.random() < 0.5:
        return text.replace(" ", "  ", 1)
    return text + " "


class LotBuilder:
    """Turns planned works (or decoy slots) into lots with the site's wording and numbers."""

    def __init__(self, config: DemoConfig, rng: random.Random, price_rng: random.Random, first_day: dt.date):
        self.config = config
        self.rng = rng
        self.price_rng = price_rng        # prices draw apart, so changing the price model moves nothing else
        self.first_day = first_day
        self.ids = {"www": 6_200_000 + rng.randint(0, 9999), "online": 150_000 + rng.randint(0, 999)}
        self.image_paths: set[str] = set()

    def next_object_id(self, sale: Sale) -> str:
        space = "online" if sale.is_online else "www"
        self.ids[space] += self.rng.randint(1, 3)
        return str(self.ids[space])

    def lot_numbers(self, sale: Sale, count: int) -> list[str]:
        """Consecutive numbers from the template's first lot; on live sales a few 'NNA' lots slip in."""
        numbers, current = [], sale.template.first_lot
        while len(numbers) < count:
            numbers.append(str(current))
            if (not sale.is_online and len(numbers) < count
                    and self.rng.random() < self.config.composition.lot_suffix):
                numbers.append(f"{current}A")
            current += 1
        return numbers

    def image_path(self, sale: Sale, lot_number: str, slug_text: str) -> str:
        year, room = sale.end.year, sale.template.room
        number = int(re.match(r"\d+", lot_number).group())
        slug = slugify(slug_text)[:60]
        stem = f"{year}_{room}_{int(sale.sale_number):05d}_{number:04d}_000"
        path = f"/img/LotImages/{year}/{room}/{stem}({slug}).jpg"
        if path.lower() in self.image_paths:      # e.g. lot 12 and 12A with the same title
            path = f"/img/LotImages/{year}/{room}/{stem}({slug}_{lot_number.lower()}).jpg"
        self.image_paths.add(path.lower())
        return path

    def money_fields(self, sale: Sale, hedonic: float, quality: float, sold: bool, withdrawn: bool) -> dict:
        """Estimate and price per the demo's price model (prices.py): `hedonic` is H, `quality` q."""
        currency = sale.template.currency
        if withdrawn:
            return {"estimate_low": None, "estimate_high": None, "estimate_txt": "",
                    "price_realised": None, "price_realised_txt": ""}
        rate = CURRENCY_RATE[currency]
        low, high = prices.expert_estimate(self.price_rng, hedonic, quality, rate)
        opening_day = sale.start if sale.is_online else sale.end    # common.premium.schedule_day
        premium = prices.premium_tiers(currency, sale.template.location, opening_day, rate)
        price = prices.realised_price(self.price_rng, hedonic, quality, rate, premium) if sold else None
        return {"estimate_low": low, "estimate_high": high,
                "estimate_txt": estimate_text(currency, low, high, sale.template.estimate_style),
                "price_realised": price, "price_realised_txt": f"{currency} {money(price)}" if price else ""}

    def art_lot(self, sale: Sale, plan: WorkPlan, lot_number: str) -> Lot:
        texts, artist, template = plan.texts, plan.artist, sale.template
        maker = maker_line(artist, plan.qualifier, template.name_case)
        shown_maker = maker
        if self.rng.random() < self.config.composition.odd_whitespace:
            shown_maker = odd_whitespace(self.rng, maker)
        lines = [maker, f"<i>{texts['title']}</i>"]
        body = [texts["signature"], texts["medium"]]
        lines += (body[::-1] if plan.kind == "print" else body) + [texts["dimensions"], texts["date_line"]]
        image_kind = plan.image_kind
        if image_kind == IMAGE_PLACEHOLDER:
            path = ROUNDEL_PATH if sale.is_online else NO_IMAGE_PATH
        elif image_kind == IMAGE_NONE:
            path = None
        else:
            path = self.image_path(sale, lot_number, f"{artist.name} {texts['title']}")
        hedonic = prices.hedonic_log_usd(
            artist.market, plan.kind, bool(plan.qualifier or plan.is_sketch), texts["area_cm2"],
            template.location, sale.is_online, (sale.end - self.first_day).days / 365.25)
        quality = prices.work_quality(plan.render_seed)
        truth = LotTruth(
            artist_key=artist.key, qualifier=plan.qualifier, kind=plan.kind, is_sketch=plan.is_sketch,
            is_decoy=False, duplicate_of=plan.duplicate_of.object_id if plan.duplicate_of else None,
            has_image=image_kind not in (IMAGE_PLACEHOLDER, IMAGE_NONE), image_kind=image_kind,
            sold=plan.sold, withdrawn=plan.withdrawn, clean=plan.clean, hedonic_log_usd=hedonic, quality=quality,
        )
        return Lot(
            object_id=plan.object_id, event_id=sale.event_id, lot_number=lot_number,
            title_primary_txt=shown_maker, title=texts["title"],
            description_html=template.br_tag.join(line for line in lines if line),
            medium=texts["medium"], dimensions=texts["dimensions"], measurements_txt=texts["measurements"],
            consigner=texts["consigner"], image_path=path, image_size=texts["image_size"],
            render_seed=plan.render_seed, style_seed=artist.style_seed, decoy_type=None, truth=truth,
            **self.money_fields(sale, hedonic, quality, plan.sold, plan.withdrawn),
        )

    def decoy_lot(self, sale: Sale, lot_number: str) -> Lot:
        decoy_type = DECOY_TYPE[sale.template.category]
        primary, secondary, material, size = self.rng.choice(DECOY_TEXTS[decoy_type])
        lines = [primary] + ([f"<i>{secondary}</i>"] if secondary else []) + [material, size]
        sold = self.rng.random() > 0.1
        path = self.image_path(sale, lot_number, primary)
        truth = LotTruth(artist_key=None, qualifier="", kind="other", is_sketch=False, is_decoy=True,
                         duplicate_of=None, has_image=True, image_kind=IMAGE_RGB, sold=sold, withdrawn=False,
                         clean=False)
        return Lot(
            object_id=self.next_object_id(sale), event_id=sale.event_id, lot_number=lot_number,
            title_primary_txt=primary, title=secondary, description_html=sale.template.br_tag.join(lines),
            medium=material, dimensions=size, measurements_txt=size, consigner="",
            image_path=path, image_size=image_size(self.rng, self.sides, 0.8),
            render_seed=self.rng.getrandbits(32), style_seed=None, decoy_type=decoy_type, truth=truth,
            **self.money_fields(sale, math.log(DECOY_MARKET_USD), 0.0, sold, False),
        )

    @property
    def sides(self) -> tuple[int, int]:
        return self.config.image_min_side, self.config.image_max_side


def build_catalogue(demo_params: Mapping, start: str) -> Catalogue:
    """The whole demo catalogue for `demo_params` (params.yaml `demo`), months from `start` ("YYYY-MM").

    Same params and start -> identical catalogue (ids, texts, prices, image seeds).
    """
    config = DemoConfig.from_params(demo_params)
    months = month_list(start, config.months)

    def stream(purpose: str) -> random.Random:
        return random.Random(f"christies-demo:{config.seed}:{purpose}")

    artists = make_artists(config, stream("artists"))
    works = plan_works(config, artists, stream("works"))
    text_rng = stream("texts")
    for plan in works:
        if plan.duplicate_of is None:
            plan.texts = work_texts(plan, text_rng, (config.image_min_side, config.image_max_side))
    for plan in works:
        if plan.duplicate_of is not None:
            plan.texts = dict(plan.duplicate_of.texts)
    sales = plan_sales(config, months, stream("sales"))
    placed = assign_works_to_sales(works, sales, stream("placement"))
    first_year, first_month = parse_month(months[0])
    builder = LotBuilder(config, stream("lots"), stream("prices"), dt.date(first_year, first_month, 1))
    order_rng = stream("order")
    for sale in sales:            # object ids first: a repeated print may precede its original
        order_rng.shuffle(placed[sale.event_id])
        for plan in placed[sale.event_id]:
            plan.object_id = builder.next_object_id(sale)
    lots: dict[str, Lot] = {}
    for sale in sales:
        plans = placed[sale.event_id]
        count = config.lots_per_decoy_sale if sale.is_decoy else len(plans)
        for index, number in enumerate(builder.lot_numbers(sale, count)):
            lot = builder.decoy_lot(sale, number) if sale.is_decoy else builder.art_lot(sale, plans[index], number)
            lots[lot.object_id] = lot
            sale.lot_ids.append(lot.object_id)
    place_trap_title(lots, sales)
    return Catalogue(config=config, months=months, artists=artists, sales=sales, lots=lots)


def place_trap_title(lots: dict[str, Lot], sales: list[Sale]) -> None:
    """Give one clean painting of a live sale a title containing '});' (in the title and description)."""
    for sale in sales:
        if sale.is_online or sale.is_decoy or not sale.closed:
            continue
        for object_id in sale.lot_ids:
            lot = lots[object_id]
            if lot.truth.clean and lot.truth.kind == "painting":
                lot.description_html = lot.description_html.replace(f"<i>{lot.title}</i>", f"<i>{TRAP_TITLE}</i>")
                lot.title = TRAP_TITLE
                return
