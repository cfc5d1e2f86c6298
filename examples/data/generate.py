"""Regenerate the tiny example data sets (deterministic): ``python examples/data/generate.py``.

- ``csv/items.csv`` (30 items: title, description, genres) and ``csv/interactions.csv`` (40 users);
- ``amazon/reviews_Sample_5.json`` and ``amazon/meta_Sample.json``: a synthetic McAuley Amazon 2014
  5-core dump (JSON lines reviews; meta as Python dict literals, as the real 2014 files are).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
GENRES = {
    "Sci-Fi": ["space", "robots", "future", "starship", "alien"],
    "Drama": ["family", "loss", "love", "secrets", "home"],
    "Comedy": ["wedding", "road trip", "roommates", "pranks", "holiday"],
    "Thriller": ["heist", "spy", "chase", "conspiracy", "hostage"],
    "Documentary": ["ocean", "history", "music", "cities", "nature"],
}


def taste(rng: np.random.Generator, n_users: int, genres_of: list[list[str]], per_user: tuple[int, int]) -> list[tuple[int, int]]:
    """Users who mostly pick items of their two favourite genres."""
    names = list(GENRES)
    pairs = []
    for u in range(n_users):
        liked = set(rng.choice(names, size=2, replace=False))
        weights = np.array([3.0 if liked & set(g) else 0.3 for g in genres_of])
        n = int(rng.integers(*per_user))
        items = rng.choice(len(genres_of), size=n, replace=False, p=weights / weights.sum())
        pairs += [(u, int(i)) for i in sorted(items)]
    return pairs


def csv_set(rng: np.random.Generator) -> None:
    out = HERE / "csv"
    out.mkdir(parents=True, exist_ok=True)
    names = list(GENRES)
    genres_of = []
    with (out / "items.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "title", "description", "genres"])
        for i in range(30):
            main = names[i % len(names)]
            other = names[int(rng.integers(len(names)))]
            genres = sorted({main, other})
            genres_of.append(genres)
            words = rng.choice(GENRES[main], size=3, replace=False)
            writer.writerow([f"i{i + 1:02d}", f"The {words[0].title()} {['Story', 'Files', 'Returns'][i % 3]}",
                             f"A {main.lower()} about {', '.join(words)}.", "|".join(genres)])
    with (out / "interactions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "rating", "timestamp"])
        for t, (u, i) in enumerate(taste(rng, 40, genres_of, (8, 14))):
            writer.writerow([f"u{u + 1:02d}", f"i{i + 1:02d}", int(rng.integers(3, 6)), 1_600_000_000 + 3600 * t])


def amazon_set(rng: np.random.Generator) -> None:
    out = HERE / "amazon"
    out.mkdir(parents=True, exist_ok=True)
    names = list(GENRES)
    asins = [f"B00{1000 + i:04d}X" for i in range(30)]
    genres_of = []
    with (out / "meta_Sample.json").open("w") as handle:
        for i, asin in enumerate(asins):
            main = names[i % len(names)]
            genres_of.append([main])
            record = {"asin": asin, "title": f"{main} Collection Vol. {i + 1}",
                      "description": f"A {main.lower()} set: {', '.join(GENRES[main][:3])}.",
                      "price": round(5 + 0.5 * i, 2), "imUrl": f"http://ecx.images-amazon.com/images/I/{asin}.jpg",
                      "categories": [["Movies & TV", main]], "brand": ["Acme", "Globex", "Initech"][i % 3]}
            handle.write(repr(record) + "\n")  # 2014 meta files are Python dict literals
    with (out / "reviews_Sample_5.json").open("w") as handle:
        for t, (u, i) in enumerate(taste(rng, 40, genres_of, (6, 12))):
            stamp = 1_388_534_400 + 86_400 * t
            rating = float(rng.integers(3, 6))
            handle.write(json.dumps({
                "reviewerID": f"A{u + 1:03d}REVIEWER", "asin": asins[i], "reviewerName": f"Reviewer {u + 1}",
                "helpful": [int(rng.integers(0, 3)), 3], "reviewText": f"Good {names[i % len(names)].lower()} pick.",
                "overall": rating, "summary": ["Fine", "Great", "Loved it"][int(rating) - 3],
                "unixReviewTime": stamp, "reviewTime": "01 1, 2014",
            }) + "\n")


if __name__ == "__main__":
    csv_set(np.random.default_rng(0))
    amazon_set(np.random.default_rng(1))
