from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from fusionrec.data.sample import GENRES, write_sample


def test_sample_files_and_structure(tmp_path) -> None:
    out = write_sample(tmp_path, n_users=120, n_items=60, seed=1)
    items = pd.read_csv(out / "items.csv")
    inter = pd.read_csv(out / "interactions.csv")
    assert len(items) == 60 and set(inter.columns) == {"user_id", "item_id", "rating", "timestamp"}
    assert inter.groupby("user_id").size().min() >= 12
    assert not inter.duplicated(["user_id", "item_id"]).any()
    with Image.open(out / items["poster"].iloc[0]) as image:
        assert image.size == (64, 96) and image.mode == "RGB"
    # real structure: a genre word in the text predicts the genre label
    first_genre = items["genres"].str.split("|").str[0]
    hits = [any(w in d for w in GENRES[g][1]) for d, g in zip(items["description"], first_genre, strict=True)]
    assert np.mean(hits) > 0.9
    # users concentrate on few genres: top genre share well above uniform (1/6)
    merged = inter.merge(items[["item_id", "genres"]], on="item_id")
    merged["genre"] = merged["genres"].str.split("|").str[0]
    top_share = merged.groupby("user_id")["genre"].agg(lambda g: g.value_counts(normalize=True).iloc[0])
    assert top_share.mean() > 0.4


def test_sample_is_reproducible(tmp_path) -> None:
    a = write_sample(tmp_path / "a", n_users=30, n_items=20, seed=3, with_images=False)
    b = write_sample(tmp_path / "b", n_users=30, n_items=20, seed=3, with_images=False)
    assert (a / "interactions.csv").read_text() == (b / "interactions.csv").read_text()
