"""Parsing Christie's lot text: the maker line, the description's medium and dimensions lines, the kind.

Pure functions only. Real formats (see docs/CURATION.md):

* maker (``title_primary_txt``): ``"JOHN SAMPLE (1901-1977)"``, ``"JANE EXAMPLE (B. 1932)"``,
  ``"Jane Example (b. 1950)"``, ``"ATTRIBUTED TO JOHN SAMPLE (1606-1669)"``;
* description (``description_txt`` with ``<br>`` turned into newlines): maker line, title line, signature lines,
  the medium line (``"oil on canvas"``), the dimensions line (``"40 x 30 in. (101.6 x 76.2 cm.)"``), dating lines.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# Lower-case name particles kept lower-case when an ALL-CAPS name is title-cased ("VINCENT VAN GOGH").
NAME_PARTICLES = frozenset({"van", "von", "de", "der", "den", "di", "da", "del", "della", "des", "du", "la", "le", "y", "ter", "ten", "zu"})

# Description lines that annotate the work rather than name its medium ("signed and numbered in pencil" must not
# make a screenprint a drawing; "Painted in 1962." is a dating line, but "painted terracotta" is a medium).
ANNOTATION_LINE = re.compile(
    r"^(?:signed|inscribed|dated|stamped|numbered|titled|annotated|monogrammed|initiall?ed|provenance|literature"
    r"|exhibited|with|this|together|property|framed)\b"
    r"|^(?:executed|painted|drawn|printed|published|conceived|photographed|cast|made|created)\s+(?:in|by|on|at|circa|c\.)\b",
    re.IGNORECASE,
)

_DATES_AT_END = re.compile(r"\(([^()]*)\)\s*$")
_YEAR = r"(\d{3,4})"
_APPROX = r"(?:c\.|ca\.|circa|about)?\s*"
_LIFE_SPAN = re.compile(rf"^{_APPROX}{_YEAR}\s*[-–—]\s*{_APPROX}(\d{{2,4}})\??$", re.IGNORECASE)
_BORN = re.compile(rf"^(?:b\.|born)\s*{_APPROX}{_YEAR}$", re.IGNORECASE)
_DIED = re.compile(rf"^(?:d\.|died)\s*{_APPROX}{_YEAR}$", re.IGNORECASE)
_ACTIVE = re.compile(rf"^(?:active|act\.|fl\.|floruit)\s*{_APPROX}{_YEAR}", re.IGNORECASE)

_NUMBER = r"\d+(?:[.,]\d+)?"
_METRIC = re.compile(
    rf"\(\s*(?:[A-Za-z]+\.?\s*)?({_NUMBER})\s*(?:[x×]\s*(?:[A-Za-z]+\.?\s*)?({_NUMBER})\s*)?"
    rf"(?:[x×]\s*(?:[A-Za-z]+\.?\s*)?{_NUMBER}\s*)?(cm|mm)\.?\s*\)\s*(high|wide|long|diameter|diam\.?)?",
    re.IGNORECASE,
)
_LABELLED_W_H = re.compile(r"\bW\.?\s*[\d\s/⁄.]+(?:in\.?)?\s*[x×]\s*H\b", re.IGNORECASE)


@dataclass(frozen=True)
class MakerParse:
    """What one maker line says, every part kept for auditing."""

    qualifier: str  # e.g. "ATTRIBUTED TO", or ""
    name: str  # the name as written, whitespace collapsed, qualifier and dates removed
    dates_raw: str  # the text inside the trailing parentheses, or ""
    birth: int | None
    death: int | None


@dataclass(frozen=True)
class Dimensions:
    line: str  # the description line the measurements came from, or ""
    height_cm: float | None
    width_cm: float | None


def collapse_spaces(text: str) -> str:
    """NFC-normalise and collapse every run of whitespace (including NBSP) to one space."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text or "")).strip()


def fold_key(text: str) -> str:
    """A case-, accent- and whitespace-insensitive key: ``"Joan  MIRÓ"`` -> ``"joan-miro"``.

    Accents are stripped by NFKD decomposition (combining marks dropped); every run of non-alphanumeric
    characters becomes one ``-``. Non-Latin letters are kept.
    """
    decomposed = unicodedata.normalize("NFKD", text or "")
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    words = re.split(r"[\W_]+", stripped.casefold())
    return "-".join(word for word in words if word)


def display_name(name: str) -> str:
    """Normalise a name for display: ALL-CAPS names become title case (particles lower-case), accents kept.

    Mixed-case names ("Jane Example") are kept as written: the site's own casing is better than a guess.
    """
    name = collapse_spaces(name).strip(" ,;")
    letters = [ch for ch in name if ch.isalpha()]
    if not letters or not all(ch.isupper() for ch in letters if ch.lower() != ch.upper()):
        return name
    words = name.title().split(" ")
    return " ".join(w.lower() if i > 0 and w.lower() in NAME_PARTICLES else w for i, w in enumerate(words))


def split_qualifier(maker: str, qualifiers: Sequence[str]) -> tuple[str, str]:
    """Split an attribution qualifier off the start of `maker` (case-insensitive, whole words).

    Longer qualifiers are tried first, so "SCHOOL OF" is not mistaken for a shorter overlapping one.
    Returns (qualifier as given in params, the rest).
    """
    text = collapse_spaces(maker)
    for qualifier in sorted(qualifiers, key=len, reverse=True):
        pattern = re.compile(rf"^{re.escape(collapse_spaces(qualifier))}(?=\s|$|[,:])", re.IGNORECASE)
        match = pattern.match(text)
        if match:
            return qualifier, text[match.end() :].strip(" ,:")
    return "", text


def _full_year(start: int, end_text: str) -> int:
    """Expand an abbreviated end year: (1606-69) -> 1669."""
    end = int(end_text)
    if len(end_text) >= 3:
        return end
    century = start - start % 10 ** len(end_text)
    candidate = century + end
    return candidate if candidate >= start else candidate + 10 ** len(end_text)


def parse_dates(dates_raw: str) -> tuple[int | None, int | None]:
    """Birth and death years from the parenthesised part of a maker line.

    ``1881-1973`` -> both; ``B. 1932`` / ``born 1932`` -> birth; ``1881-c. 1950`` -> both (approximate
    years are taken as given); ``d. 1950`` -> death; ``active 1620-1650`` -> neither (working dates are not
    life dates; the raw text stays in `dates_raw`). Anything else -> (None, None).
    """
    text = collapse_spaces(dates_raw)
    if _ACTIVE.match(text):
        return None, None
    if match := _LIFE_SPAN.match(text):
        birth = int(match.group(1))
        return birth, _full_year(birth, match.group(2))
    if match := _BORN.match(text):
        return int(match.group(1)), None
    if match := _DIED.match(text):
        return None, int(match.group(1))
    return None, None


def parse_maker(maker: str, qualifiers: Sequence[str]) -> MakerParse:
    """Split a maker line into qualifier, name and life dates."""
    qualifier, rest = split_qualifier(maker, qualifiers)
    dates_raw = ""
    match = _DATES_AT_END.search(rest)
    if match:
        dates_raw = collapse_spaces(match.group(1))
        rest = rest[: match.start()]
    birth, death = parse_dates(dates_raw)
    return MakerParse(qualifier=qualifier, name=collapse_spaces(rest).strip(" ,;"), dates_raw=dates_raw, birth=birth, death=death)


def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """Whole-word, case-insensitive match for a keyword or phrase, allowing a plural ``s``."""
    words = [re.escape(w) for w in collapse_spaces(keyword).split(" ")]
    return re.compile(r"(?<![\w-])" + r"\s+".join(words) + r"s?(?![\w-])", re.IGNORECASE)


def find_keyword(text: str, keywords: Iterable[str]) -> str:
    """The first keyword (in the given order) found as a whole word in `text`, or ""."""
    for keyword in keywords:
        if keyword_pattern(keyword).search(text or ""):
            return keyword
    return ""


def classify_kind(medium: str, kind_keywords: Mapping[str, Sequence[str]]) -> tuple[str, str]:
    """(kind, deciding keyword): the first kind, in the mapping's order, with a keyword in `medium`.

    No keyword -> ("other", "").
    """
    for kind, keywords in kind_keywords.items():
        keyword = find_keyword(medium, keywords)
        if keyword:
            return kind, keyword
    return "other", ""


def description_lines(description: str) -> list[str]:
    """Non-empty, whitespace-collapsed lines of a description."""
    return [line for line in (collapse_spaces(raw) for raw in (description or "").splitlines()) if line]


def _is_dimensions_line(line: str) -> bool:
    return bool(_METRIC.search(line)) or bool(re.match(r"^[\d\s/⁄.]+\s*(?:x|×)\s*[\d\s/⁄.]+\s*in\b", line, re.IGNORECASE))


def _is_annotation(line: str) -> bool:
    return bool(ANNOTATION_LINE.match(line))


def find_medium(description: str, maker: str, title: str, all_keywords: Sequence[str]) -> str:
    """The medium line of a description.

    Skips the maker line, the title line, dimension lines and annotation lines (signed..., executed in...).
    The first remaining line with a kind keyword wins; failing that, the first remaining line with
    the shape "<material> on <support>". Returns "" when no line qualifies.
    """
    skip = {fold_key(maker), fold_key(title)} - {""}
    candidates = [
        line
        for line in description_lines(description)
        if fold_key(line) not in skip and not _is_dimensions_line(line) and not _is_annotation(line)
    ]
    for line in candidates:
        if find_keyword(line, all_keywords):
            return line
    for line in candidates:
        if re.search(r"\w\s+on\s+\w", line, re.IGNORECASE):
            return line
    return ""


def _to_cm(value: str, unit: str) -> float:
    number = float(value.replace(",", "."))
    return round(number / 10.0, 2) if unit.lower() == "mm" else number


def parse_dimensions(description: str) -> Dimensions:
    """Height and width in cm from the first metric measurement in parentheses.

    ``(31.1 x 22.9 cm.)`` -> height 31.1, width 22.9 (Christie's gives height first);
    ``W 4 x H 6 3/4 in. (10.2 x 14.6 cm.)`` -> width 10.2, height 14.6; ``(47 cm.) high`` -> height only;
    ``(30 cm.) diameter`` -> both; ``(315 x 229 mm.)`` -> cm. A third (depth) value is ignored.
    """
    for line in description_lines(description):
        match = _METRIC.search(line)
        if not match:
            continue
        first, second, unit, word = match.group(1), match.group(2), match.group(3), (match.group(4) or "").lower()
        a = _to_cm(first, unit)
        if second is None:
            if word.startswith("diam"):
                return Dimensions(line, a, a)
            if word in ("wide", "long"):
                return Dimensions(line, None, a)
            return Dimensions(line, a, None)
        b = _to_cm(second, unit)
        if _LABELLED_W_H.search(line):
            return Dimensions(line, b, a)
        return Dimensions(line, a, b)
    return Dimensions("", None, None)
