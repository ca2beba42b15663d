"""Parsing rules on Christie's real text formats (reference samples, values invented)."""

import pytest

from curation import text
from tests.curation.conftest import PARAMS

QUALIFIERS = PARAMS["clean"]["qualifiers"]
KINDS = PARAMS["clean"]["kind_keywords"]
ALL_KEYWORDS = [kw for kws in KINDS.values() for kw in kws]


@pytest.mark.parametrize(
    ("maker", "qualifier", "name", "birth", "death"),
    [
        ("JOHN SAMPLE (1901-1977)", "", "JOHN SAMPLE", 1901, 1977),
        ("JANE EXAMPLE (B. 1932)", "", "JANE EXAMPLE", 1932, None),
        ("Jane Example (b. 1950)", "", "Jane Example", 1950, None),
        ("REMBRANDT VAN RIJN (1606-1669)", "", "REMBRANDT VAN RIJN", 1606, 1669),
        ("JANE EXAMPLE (born 1932)", "", "JANE EXAMPLE", 1932, None),
        ("JOHN SAMPLE (1881-c. 1950)", "", "JOHN SAMPLE", 1881, 1950),
        ("JOHN SAMPLE (c. 1881-1950)", "", "JOHN SAMPLE", 1881, 1950),
        ("JOHN SAMPLE (1606-69)", "", "JOHN SAMPLE", 1606, 1669),
        ("CIRCLE OF JOHN SAMPLE (active 1620-1650)", "CIRCLE OF", "JOHN SAMPLE", None, None),
        ("ATTRIBUTED TO JOHN SAMPLE (1606-1669)", "ATTRIBUTED TO", "JOHN SAMPLE", 1606, 1669),
        ("attributed to  John Sample (1606-1669)", "ATTRIBUTED TO", "John Sample", 1606, 1669),
        ("AFTER JANE EXAMPLE", "AFTER", "JANE EXAMPLE", None, None),
        ("AFTERGLOW STUDIO (1950-1990)", "", "AFTERGLOW STUDIO", 1950, 1990),  # AFTER only as a whole word
        ("STUDIO OF PETER PAUL RUBENS (1577-1640)", "STUDIO OF", "PETER PAUL RUBENS", 1577, 1640),
        ("TWO CERAMIC VASES, MOUNTED AS LAMPS", "", "TWO CERAMIC VASES, MOUNTED AS LAMPS", None, None),
        ("", "", "", None, None),
    ],
)
def test_parse_maker(maker, qualifier, name, birth, death):
    parsed = text.parse_maker(maker, QUALIFIERS)
    assert (parsed.qualifier, parsed.name, parsed.birth, parsed.death) == (qualifier, name, birth, death)


def test_active_dates_keep_the_raw_text_for_audit():
    parsed = text.parse_maker("CIRCLE OF JOHN SAMPLE (active 1620-1650)", QUALIFIERS)
    assert parsed.dates_raw == "active 1620-1650"


def test_display_name_and_key():
    assert text.display_name("JOHN SAMPLE") == "John Sample"
    assert text.display_name("HENRI DE TOULOUSE-LAUTREC") == "Henri de Toulouse-Lautrec"
    assert text.display_name("JOAN MIRÓ") == "Joan Miró"  # accents kept for display
    assert text.display_name("Jane  Example") == "Jane Example"  # mixed case kept as written
    assert text.fold_key("Joan  MIRÓ") == text.fold_key("joan miro") == "joan-miro"
    assert text.fold_key(" Henri de Toulouse-Lautrec ") == "henri-de-toulouse-lautrec"
    assert text.fold_key("JOHN SAMPLE") != text.fold_key("JOHN SAMPLER")


DESCRIPTION_WWW = (
    "JOHN SAMPLE (1901-1977)\nComposition with Red Square\nsigned 'Sample' (lower right)\n"
    "gouache and pencil on paper\n12 1/4 x 9 in. (31.1 x 22.9 cm.)\nExecuted in 1962."
)
DESCRIPTION_PRINT = (
    "JANE EXAMPLE (B. 1950)\nUntitled\nscreenprint in colours, 1995, on wove paper\nsigned and numbered in pencil\n"
    "Image: 20 x 16 in. (50.8 x 40.6 cm.)"
)


def test_medium_skips_maker_title_and_signature_lines():
    assert text.find_medium(DESCRIPTION_WWW, "JOHN SAMPLE (1901-1977)", "Composition with Red Square", ALL_KEYWORDS) == "gouache and pencil on paper"
    # "signed and numbered in pencil" must not make the screenprint a drawing
    assert text.find_medium(DESCRIPTION_PRINT, "JANE EXAMPLE (B. 1950)", "Untitled", ALL_KEYWORDS) == "screenprint in colours, 1995, on wove paper"
    # 2017-19 online sales: the description is the medium alone
    assert text.find_medium("screenprint in colours, on wove paper, 1995", "", "Untitled", ALL_KEYWORDS).startswith("screenprint")
    assert text.find_medium("", "X", "Y", ALL_KEYWORDS) == ""
    # a dating line ("Painted in ...", "Conceived in ...") is skipped, a medium starting with "painted" is not
    sculpture = "ANN A (1907-1993)\nReclining Figure\npainted terracotta\n33 1/4 in. (84.4 cm.) high\nConceived in 1956."
    assert text.find_medium(sculpture, "ANN A (1907-1993)", "Reclining Figure", ALL_KEYWORDS) == "painted terracotta"
    dated = "ANN A\nRed\nPainted in 1962.\noil on canvas"
    assert text.find_medium(dated, "ANN A", "Red", ALL_KEYWORDS) == "oil on canvas"


@pytest.mark.parametrize(
    ("medium", "kind", "keyword"),
    [
        ("oil on canvas", "painting", "oil"),
        ("gouache and pencil on paper", "drawing", "pencil"),
        ("screenprint in colours, 1995, on wove paper", "print", "screenprint"),
        ("gelatin silver print", "photograph", "gelatin silver"),  # photograph is checked before print
        ("bronze with brown patina", "sculpture", "bronze"),
        ("inkjet print on paper", "photograph", "inkjet print"),  # "ink" does not match inside "inkjet"
        ("lithographs in colours", "print", "lithograph"),  # plural
        ("broadcast television still", "other", ""),  # "cast" only as a whole word
        ("mixed media", "other", ""),
    ],
)
def test_kind_first_matching_kind_in_params_order(medium, kind, keyword):
    assert text.classify_kind(medium, KINDS) == (kind, keyword)


@pytest.mark.parametrize(
    ("description", "height", "width"),
    [
        (DESCRIPTION_WWW, 31.1, 22.9),
        (DESCRIPTION_PRINT, 50.8, 40.6),
        ("40 x 30 in. (101.6 x 76.2 cm.)", 101.6, 76.2),
        ("18 1/2 in (47 cm.) high", 47.0, None),
        ("6 3⁄4 in. (17.2 cm.) high", 17.2, None),
        ("W 4 x H 6 3/4 in. (10.2 x 14.6 cm.)", 14.6, 10.2),
        ("12 in. (30.5 cm.) diameter", 30.5, 30.5),
        ("lithograph\n(315 x 229 mm.)", 31.5, 22.9),
        ("signed\nno measurements", None, None),
    ],
)
def test_dimensions(description, height, width):
    dims = text.parse_dimensions(description)
    assert (dims.height_cm, dims.width_cm) == (height, width)
    assert (dims.line != "") == (height is not None)
