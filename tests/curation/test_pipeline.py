"""All curation stages in order on a tiny catalogue, the scraper's image fetch simulated."""

import json

import numpy as np
import pandas as pd

from curation import apply_review, clean, dataset_table, images, manifest, sample_works, select_artists
from tests.curation.conftest import jpeg_bytes, lot, pattern_image


def test_curation_chain(repo):
    records = [lot(f"www-1-{i}", maker="JOAN MIRÓ (1893-1983)", medium="lithograph in colours") for i in range(5)]
    records += [lot(f"www-2-{i}", maker="JANE EXAMPLE (B. 1950)") for i in range(4)]
    records += [lot("www-3-0", maker="JOHN SAMPLE (1901-1977)")]
    (repo / "data/raw").mkdir(parents=True)
    (repo / "data/raw/lots.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    clean.main()
    select_artists.main()
    sample_works.main()
    sample = pd.read_csv(repo / "data/interim/sample.csv", dtype=str, keep_default_na=False)
    assert len(sample) == 6 and set(sample["artist"]) == {"Joan Miró", "Jane Example"}

    fetch = []
    for n, key in enumerate(sample["lot_key"]):  # what the christies_images spider leaves behind
        path = repo / "data/raw/images/sale" / f"{key}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes(pattern_image(120, 90, seed=10 + n)))
        fetch.append({"lot_key": key, "image_url": "u", "image_path": f"sale/{key}.jpg", "image_sha1": "", "status": "downloaded", "reason": None})
    (repo / "data/raw/images.jsonl").write_text("".join(json.dumps(r) + "\n" for r in fetch))
    manifest.main()
    apply_review.main()
    images.main()
    dataset_table.main()

    assert np.load(repo / "data/final/images.npy").shape == (6, 16, 16, 3)
    labels = pd.read_csv(repo / "data/final/labels.csv")
    assert labels.groupby("artist")["artist_id"].first().to_dict() == {"Jane Example": 0, "Joan Miró": 1}
    table = (repo / "reports/dataset.md").read_text()
    assert "| Jane Example | 3 | 1950 |  | painting (3) |" in table and "| Joan Miró | 3 | 1893 | 1983 | print (3) |" in table
