"""Stage dataset_table: the paper's Table 1 from labels.csv and lots.parquet."""

import pandas as pd

from curation import dataset_table


def write_inputs(repo, labels, lots):
    (repo / "data/final").mkdir(parents=True)
    (repo / "data/interim").mkdir(parents=True)
    pd.DataFrame(labels, columns=["row", "lot_key", "artist", "artist_id", "kind"]).to_csv(repo / "data/final/labels.csv", index=False)
    frame = pd.DataFrame(lots, columns=["lot_key", "artist_key", "birth", "death"])
    frame[["birth", "death"]] = frame[["birth", "death"]].astype("Int64")
    frame.to_parquet(repo / "data/interim/lots.parquet")


def test_table_one_sorted_with_kinds_and_totals(repo):
    labels = [
        (0, "a1", "Ann | A", 0, "painting"), (1, "a2", "Ann | A", 0, "print"), (2, "a3", "Ann | A", 0, "painting"),
        (3, "b1", "Bob\nB", 1, "drawing"), (4, "b2", "Bob\nB", 1, "drawing"), (5, "b3", "Bob\nB", 1, "print"),
        (6, "c1", "Cy C", 2, "photograph"),
    ]
    lots = [("a1", "ann", 1901, 1977), ("a2", "ann", 1901, None), ("a3", "ann", None, None), ("a9", "ann", 1902, 1977),
            ("b1", "bob", 1932, None), ("b2", "bob", None, None), ("b3", "bob", None, None), ("c1", "cy", None, None)]
    write_inputs(repo, labels, lots)
    dataset_table.main()
    table = pd.read_csv(repo / "reports/dataset.csv", dtype=str, keep_default_na=False)
    assert table.columns.tolist() == ["artist", "n_images", "birth", "death", "kinds"]
    # 3 images each: ties by artist name; totals last
    assert table["artist"].tolist() == ["Ann | A", "Bob\nB", "Cy C", "Total"]
    assert table.iloc[0][["n_images", "birth", "death", "kinds"]].tolist() == ["3", "1901", "1977", "painting (2), print (1)"]
    assert table.iloc[1][["birth", "death", "kinds"]].tolist() == ["1932", "", "drawing (2), print (1)"]
    assert table.iloc[3]["n_images"] == "7" and table.iloc[3]["kinds"] == "drawing (2), painting (2), print (2), photograph (1)"
    markdown = (repo / "reports/dataset.md").read_text()
    assert "| Ann \\| A | 3 | 1901 | 1977 | painting (2), print (1) |" in markdown
    assert "| Bob B | 3 | 1932 |  | drawing (2), print (1) |" in markdown
    assert "| **Total** | **7** |" in markdown
