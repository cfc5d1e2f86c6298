"""What the server shows of items and users: ids <-> indices (growing), titles, posters, genres.

The model works on dense indices; requests and responses use the catalogue's external ids. Items
and users added while serving get the next index (the order :class:`~fusionrec.online.LiveRecommender`
uses). Poster paths are kept relative to the media folder, which is the only place ``/media/...``
reads from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: external ids accepted in paths and bodies (no separators, no path tricks)
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@\-]{0,127}$"
_ID = re.compile(ID_PATTERN)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif")


def valid_id(value: str) -> bool:
    return bool(_ID.match(value))


@dataclass
class IdIndex:
    """External id <-> dense index, append-only."""

    ids: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, ids: np.ndarray | list[str]) -> IdIndex:
        values = [str(v) for v in ids]
        return cls(values, {v: i for i, v in enumerate(values)})

    def get(self, key: str) -> int | None:
        return self.index.get(key)

    def add(self, key: str) -> int:
        if key in self.index:
            return self.index[key]
        self.index[key] = len(self.ids)
        self.ids.append(key)
        return self.index[key]

    def __len__(self) -> int:
        return len(self.ids)


def _genres(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value if str(v)]
    text = str(value)
    for separator in ("|", ","):
        if separator in text:
            return [part.strip() for part in text.split(separator) if part.strip()]
    return [text] if text else []


class Catalog:
    """Display data per item index: title, poster (relative to the media folder), genres."""

    def __init__(self, items: IdIndex, titles: list[str], posters: list[str | None], genres: list[list[str]]) -> None:
        self.items, self.titles, self.posters, self.genres = items, titles, posters, genres

    @classmethod
    def build(cls, item_ids: np.ndarray, items: pd.DataFrame | None, image_column: str | None,
              media_root: Path | None, media: Path | None) -> Catalog:
        """From the dataset's items table (rows in any order, matched by ``item_id``); a poster is kept
        only when it lies inside ``media`` (``media_root`` resolves relative paths)."""
        index = IdIndex.of(item_ids)
        n = len(index)
        titles = list(index.ids)
        posters: list[str | None] = [None] * n
        genres: list[list[str]] = [[] for _ in range(n)]
        if items is not None and "item_id" in items.columns:
            rows = items.assign(item_id=items["item_id"].astype(str)).set_index("item_id")
            rows = rows[~rows.index.duplicated()].reindex(index.ids)
            if "title" in rows.columns:
                titles = [str(t) if isinstance(t, str) and t else i for t, i in zip(rows["title"], index.ids, strict=True)]
            genre_column = next((c for c in ("genres", "genre", "categories") if c in rows.columns), None)
            if genre_column is not None:
                genres = [_genres(v) for v in rows[genre_column].tolist()]
            if image_column and image_column in rows.columns and media is not None:
                posters = [_relative_media(p, media_root, media) for p in rows[image_column].tolist()]
        return cls(index, titles, posters, genres)

    def add(self, item_id: str, title: str, poster: str | None, genres: list[str]) -> int:
        position = self.items.add(item_id)
        self.titles.append(title or item_id)
        self.posters.append(poster)
        self.genres.append(genres)
        return position

    def card(self, item: int) -> dict[str, Any]:
        poster = self.posters[item]
        return {
            "item_id": self.items.ids[item],
            "title": self.titles[item],
            "poster_url": f"/media/{poster}" if poster else None,
            "genres": self.genres[item],
        }


def _relative_media(value: Any, media_root: Path | None, media: Path) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    path = Path(value)
    if not path.is_absolute() and media_root is not None:
        path = media_root / path
    try:
        relative = path.resolve().relative_to(media.resolve())
    except ValueError:
        return None
    return relative.as_posix() if path.suffix.lower() in IMAGE_SUFFIXES else None


def safe_media_path(media: Path, requested: str) -> Path | None:
    """The file ``requested`` names inside ``media``, or None when it would leave the folder, is not an
    image or does not exist (nothing from a request reaches the file system outside ``media``)."""
    if not requested or "\x00" in requested:
        return None
    root = media.resolve()
    try:
        target = (root / requested).resolve()
        target.relative_to(root)
    except (ValueError, OSError):
        return None
    if target.suffix.lower() not in IMAGE_SUFFIXES or not target.is_file():
        return None
    return target
