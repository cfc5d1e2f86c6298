"""A small multimodal sample catalog with real structure, for the demo and tests when no data is at hand.

Items belong to genres; each genre has its own vocabulary (text) and colour/shape (poster image);
users prefer one or two genres and rate items of their genres higher. So text, images and
interactions all carry the same signal, and a model that uses any of them beats popularity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

GENRES: dict[str, tuple[tuple[int, int, int], list[str]]] = {
    "space": ((30, 40, 120), ["galaxy", "starship", "orbit", "alien", "planet", "astronaut", "nebula"]),
    "romance": ((200, 60, 110), ["love", "wedding", "heart", "kiss", "letters", "summer", "couple"]),
    "western": ((170, 110, 40), ["sheriff", "desert", "horse", "saloon", "outlaw", "ranch", "gold"]),
    "horror": ((20, 20, 20), ["ghost", "blood", "night", "haunted", "scream", "curse", "cellar"]),
    "animation": ((250, 200, 40), ["toys", "talking", "animals", "friends", "magic", "colorful", "kids"]),
    "war": ((80, 100, 60), ["soldier", "battle", "army", "trench", "general", "siege", "medal"]),
}
FILLER = ["story", "journey", "city", "family", "secret", "world", "life", "time", "man", "woman"]


def _poster(rng: np.random.Generator, colour: tuple[int, int, int], genre_index: int) -> np.ndarray:
    """A 96x64 RGB poster: genre colour with noise and a genre-specific bright shape."""
    height, width = 96, 64
    base = np.array(colour, dtype=np.float32)[None, None, :]
    image = base + rng.normal(0, 18, size=(height, width, 3))
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx = rng.integers(30, 66), rng.integers(20, 44)
    if genre_index % 3 == 0:
        shape = (yy - cy) ** 2 + (xx - cx) ** 2 < 14**2
    elif genre_index % 3 == 1:
        shape = (abs(yy - cy) < 12) & (abs(xx - cx) < 12)
    else:
        shape = abs(yy - cy) + abs(xx - cx) < 16
    image[shape] = 255 - base[0, 0] * 0.5
    return np.clip(image, 0, 255).astype(np.uint8)


def write_sample(
    directory: str | Path,
    *,
    n_users: int = 400,
    n_items: int = 240,
    seed: int = 0,
    with_images: bool = True,
) -> Path:
    """Write ``items.csv``, ``users.csv``, ``interactions.csv`` and ``posters/*.png`` into ``directory``.

    Columns: items ``item_id,title,description,genres,year,poster``; interactions
    ``user_id,item_id,rating,timestamp``; users ``user_id,age,gender``.
    """
    from PIL import Image

    out = Path(directory)
    (out / "posters").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(GENRES)
    n_genres = len(names)

    primary = rng.integers(0, n_genres, size=n_items)
    secondary = np.where(rng.random(n_items) < 0.3, rng.integers(0, n_genres, size=n_items), primary)
    quality = rng.normal(0, 1, size=n_items)  # popularity beyond genre
    rows = []
    for i in range(n_items):  # catalog generation, not a hot path
        genre = names[primary[i]]
        words = list(rng.choice(GENRES[genre][1], size=5)) + list(rng.choice(FILLER, size=4))
        if secondary[i] != primary[i]:
            words += list(rng.choice(GENRES[names[secondary[i]]][1], size=2))
        rng.shuffle(words)
        genres = sorted({genre, names[secondary[i]]})
        poster = f"posters/{i + 1}.png"
        if with_images:
            Image.fromarray(_poster(rng, GENRES[genre][0], int(primary[i]))).save(out / poster)
        rows.append(
            {
                "item_id": i + 1,
                "title": f"The {words[0].title()} {words[1].title()} {i + 1}",
                "description": "A " + " ".join(words) + ".",
                "genres": "|".join(genres),
                "year": int(rng.integers(1960, 2020)),
                "poster": poster if with_images else "",
            }
        )
    pd.DataFrame(rows).to_csv(out / "items.csv", index=False)

    liked = np.stack([rng.integers(0, n_genres, size=n_users), rng.integers(0, n_genres, size=n_users)], axis=1)
    affinity = np.full((n_users, n_genres), -2.0)
    affinity[np.arange(n_users), liked[:, 0]] = 2.5
    affinity[np.arange(n_users), liked[:, 1]] = 1.5
    item_affinity = affinity[:, primary] + 0.5 * affinity[:, secondary]  # (n_users, n_items)
    logits = item_affinity + 0.6 * quality[None, :]
    n_per_user = np.minimum(rng.integers(12, 40, size=n_users), max(n_items // 2, 1))
    gumbel = logits - np.log(-np.log(rng.random(logits.shape)))
    ranks = np.argsort(-gumbel, axis=1)
    take = np.arange(n_items)[None, :] < n_per_user[:, None]
    users = np.repeat(np.arange(n_users), n_per_user)
    items = ranks[take]
    signal = item_affinity[users, items]
    rating = np.clip(np.rint(3 + signal / 2 + rng.normal(0, 0.7, size=len(users))), 1, 5).astype(int)
    timestamp = 1_500_000_000 + np.sort(rng.integers(0, 86400 * 365, size=len(users)))
    frame = pd.DataFrame(
        {"user_id": users + 1, "item_id": items + 1, "rating": rating, "timestamp": timestamp[rng.permutation(len(users))]}
    )
    frame.to_csv(out / "interactions.csv", index=False)
    pd.DataFrame(
        {
            "user_id": np.arange(1, n_users + 1),
            "age": rng.integers(16, 70, size=n_users),
            "gender": rng.choice(["F", "M"], size=n_users),
        }
    ).to_csv(out / "users.csv", index=False)
    return out
