"""The one data schema every stage speaks: IdMap, Interactions, ItemColumns and Dataset.

External ids (user and item) are kept as strings; everything downstream uses dense int32
indices. The item index is the row of the items table, so a FeatureSet aligned to the item
IdMap is aligned to the catalog.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict

from fusionrec.errors import DataError

SCHEMA_VERSION = 1


class IdMap:
    """Maps external ids (strings) to dense indices ``0..n-1`` and back, vectorised."""

    def __init__(self, ids: Sequence[Any] | np.ndarray | pd.Index) -> None:
        values = pd.Index(np.asarray(ids, dtype=object).astype(str), dtype=object)
        if not values.is_unique:
            dupes = values[values.duplicated()].unique()[:5].tolist()
            raise DataError(f"ids are not unique, e.g. {dupes}")
        self._index = values

    @classmethod
    def from_values(cls, values: Sequence[Any] | np.ndarray | pd.Series) -> IdMap:
        """Build from possibly repeated values, keeping first-seen order."""
        return cls(pd.unique(np.asarray(values, dtype=object).astype(str)))

    def __len__(self) -> int:
        return len(self._index)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._index.equals(other._index)

    def __repr__(self) -> str:
        return f"IdMap(n={len(self)})"

    @property
    def ids(self) -> np.ndarray:
        """External ids as an object array of str, position = index."""
        return self._index.to_numpy()

    def lookup(self, ids: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Indices of ``ids`` (int32); ``-1`` where an id is unknown."""
        # Look up each distinct value once: interactions repeat ids, and str() per row is the slow part.
        codes, uniques = pd.factorize(np.asarray(ids, dtype=object), use_na_sentinel=False)
        keys = np.asarray(uniques, dtype=object).astype(str)
        return self._index.get_indexer(keys).astype(np.int32)[codes]

    def to_index(self, ids: Sequence[Any] | np.ndarray, *, what: str = "id") -> np.ndarray:
        """Indices of ``ids`` (int32); raises DataError naming the first unknown ids."""
        idx = self.lookup(ids)
        unknown = idx < 0
        if unknown.any():
            bad = np.asarray(ids, dtype=object)[unknown][:5].tolist()
            raise DataError(f"{int(unknown.sum())} unknown {what}(s), e.g. {bad}")
        return idx

    def to_ids(self, index: Sequence[int] | np.ndarray) -> np.ndarray:
        """External ids for dense indices."""
        return self.ids[np.asarray(index, dtype=np.int64)]

    def extend(self, ids: Sequence[Any] | np.ndarray) -> IdMap:
        """A new IdMap with the unknown ones of ``ids`` appended (existing indices unchanged)."""
        keys = pd.unique(np.asarray(ids, dtype=object).astype(str))
        new = keys[self._index.get_indexer(keys) < 0]
        return IdMap(np.concatenate([self.ids, new])) if len(new) else self


@dataclass
class Interactions:
    """User-item events as parallel arrays of dense indices.

    ``user``/``item`` int32, ``weight`` float32 (rating or 1.0), ``timestamp`` int64 seconds
    or None when the source has no time.
    """

    user: np.ndarray
    item: np.ndarray
    weight: np.ndarray
    n_users: int
    n_items: int
    timestamp: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.user = np.ascontiguousarray(self.user, dtype=np.int32)
        self.item = np.ascontiguousarray(self.item, dtype=np.int32)
        self.weight = np.ascontiguousarray(self.weight, dtype=np.float32)
        if self.timestamp is not None:
            self.timestamp = np.ascontiguousarray(self.timestamp, dtype=np.int64)
        n = len(self.user)
        lengths = {len(self.item), len(self.weight)} | (
            {len(self.timestamp)} if self.timestamp is not None else set()
        )
        if lengths != {n}:
            raise DataError("interaction arrays have different lengths")
        if n and (self.user.min() < 0 or self.user.max() >= self.n_users):
            raise DataError(f"user index out of range [0, {self.n_users})")
        if n and (self.item.min() < 0 or self.item.max() >= self.n_items):
            raise DataError(f"item index out of range [0, {self.n_items})")

    def __len__(self) -> int:
        return len(self.user)

    @property
    def has_time(self) -> bool:
        return self.timestamp is not None

    def select(self, mask_or_index: np.ndarray) -> Interactions:
        """The subset at a boolean mask or an index array, same id spaces."""
        return Interactions(
            user=self.user[mask_or_index],
            item=self.item[mask_or_index],
            weight=self.weight[mask_or_index],
            timestamp=None if self.timestamp is None else self.timestamp[mask_or_index],
            n_users=self.n_users,
            n_items=self.n_items,
        )

    def to_csr(self, *, binary: bool = False) -> sp.csr_matrix:
        """``(n_users, n_items)`` float32 CSR; repeated (user, item) pairs keep their largest weight."""
        weight = np.ones(len(self), dtype=np.float32) if binary else self.weight
        # Max over duplicates: sort so the largest weight comes last, then keep the last of each pair.
        key = self.user.astype(np.int64) * self.n_items + self.item
        order = np.lexsort((weight, key))
        key_sorted = key[order]
        last = np.ones(len(order), dtype=bool)
        last[:-1] = key_sorted[1:] != key_sorted[:-1]
        keep = order[last]
        matrix = sp.csr_matrix(
            (weight[keep], (self.user[keep], self.item[keep])),
            shape=(self.n_users, self.n_items),
            dtype=np.float32,
        )
        matrix.sort_indices()
        return matrix

    def to_frame(self) -> pd.DataFrame:
        data: dict[str, np.ndarray] = {"user": self.user, "item": self.item, "weight": self.weight}
        if self.timestamp is not None:
            data["timestamp"] = self.timestamp
        return pd.DataFrame(data)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, n_users: int, n_items: int) -> Interactions:
        return cls(
            user=frame["user"].to_numpy(),
            item=frame["item"].to_numpy(),
            weight=frame["weight"].to_numpy(),
            timestamp=frame["timestamp"].to_numpy() if "timestamp" in frame else None,
            n_users=n_users,
            n_items=n_items,
        )

    @classmethod
    def concat(cls, parts: Sequence[Interactions]) -> Interactions:
        """Join parts that share id spaces (e.g. train + valid)."""
        first = parts[0]
        has_time = all(p.timestamp is not None for p in parts)
        return cls(
            user=np.concatenate([p.user for p in parts]),
            item=np.concatenate([p.item for p in parts]),
            weight=np.concatenate([p.weight for p in parts]),
            timestamp=np.concatenate([p.timestamp for p in parts]) if has_time else None,  # type: ignore[misc]
            n_users=first.n_users,
            n_items=first.n_items,
        )

    def save(self, path: Path) -> None:
        pq.write_table(pa.Table.from_pandas(self.to_frame(), preserve_index=False), path)

    @classmethod
    def load(cls, path: Path, n_users: int, n_items: int) -> Interactions:
        return cls.from_frame(pq.read_table(path).to_pandas(), n_users, n_items)


class ItemColumns(BaseModel):
    """Which item-table columns hold which modality.

    ``text`` columns are joined into the item text by the text encoder's template;
    ``image``/``audio`` hold file paths (absolute, or relative to ``media_root``);
    ``multi_valued`` columns hold lists of strings (e.g. genres).
    """

    model_config = ConfigDict(extra="forbid")

    text: list[str] = []
    image: str | None = None
    audio: str | None = None
    categorical: list[str] = []
    multi_valued: list[str] = []
    numeric: list[str] = []

    def all_columns(self) -> list[str]:
        cols = [*self.text, *self.categorical, *self.multi_valued, *self.numeric]
        cols += [c for c in (self.image, self.audio) if c]
        return cols


class UserColumns(BaseModel):
    """Which users-table columns hold profile attributes."""

    model_config = ConfigDict(extra="forbid")

    categorical: list[str] = []
    numeric: list[str] = []


class DatasetManifest(BaseModel):
    """The JSON written beside the Parquet files of a saved Dataset."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    name: str
    source: str = ""
    n_users: int
    n_items: int
    n_interactions: int
    has_timestamp: bool
    rating_scale: tuple[float, float] | None = None
    item_columns: ItemColumns
    user_columns: UserColumns = UserColumns()
    media_root: str | None = None
    extras: dict[str, str] = {}


@dataclass
class Dataset:
    """A catalog, optional user profiles and the interactions between them.

    ``items`` has one row per item index, column ``item_id`` first; ``users`` (optional) one
    row per user index with ``user_id`` first. ``extras`` names side files (e.g. MMRec's
    precomputed feature matrices): :meth:`save` copies them into the dataset directory and
    :meth:`load` gives their paths there.
    """

    name: str
    items: pd.DataFrame
    interactions: Interactions
    user_map: IdMap
    item_map: IdMap
    item_columns: ItemColumns = field(default_factory=ItemColumns)
    users: pd.DataFrame | None = None
    user_columns: UserColumns = field(default_factory=UserColumns)
    rating_scale: tuple[float, float] | None = None
    source: str = ""
    media_root: str | None = None
    extras: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.items) != len(self.item_map):
            raise DataError("items table and item IdMap differ in length")
        if self.users is not None and len(self.users) != len(self.user_map):
            raise DataError("users table and user IdMap differ in length")

    @property
    def n_users(self) -> int:
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    def media_path(self, value: str) -> Path:
        """Resolve an image/audio path from the items table."""
        path = Path(value)
        if not path.is_absolute() and self.media_root:
            path = Path(self.media_root) / path
        return path

    def manifest(self) -> DatasetManifest:
        return DatasetManifest(
            name=self.name,
            source=self.source,
            n_users=self.n_users,
            n_items=self.n_items,
            n_interactions=len(self.interactions),
            has_timestamp=self.interactions.has_time,
            rating_scale=self.rating_scale,
            item_columns=self.item_columns,
            user_columns=self.user_columns,
            media_root=self.media_root,
            extras=self.extras,
        )

    def save(self, directory: str | Path) -> Path:
        """Write ``items.parquet``, ``users.parquet``, ``interactions.parquet``, ``manifest.json``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(self.items, preserve_index=False), out / "items.parquet")
        users = self.users if self.users is not None else pd.DataFrame({"user_id": self.user_map.ids})
        pq.write_table(pa.Table.from_pandas(users, preserve_index=False), out / "users.parquet")
        self.interactions.save(out / "interactions.parquet")
        manifest = self.manifest().model_dump(mode="json")
        manifest["extras"] = self._save_extras(out)
        manifest["has_users_table"] = self.users is not None
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
        return out

    @classmethod
    def load(cls, directory: str | Path) -> Dataset:
        """Load a directory written by :meth:`save`."""
        root = Path(directory)
        manifest_path = root / "manifest.json"
        if not manifest_path.exists():
            raise DataError("not a fusionrec dataset directory (no manifest.json)", file=str(root))
        raw = json.loads(manifest_path.read_text())
        has_users_table = bool(raw.pop("has_users_table", False))
        manifest = DatasetManifest.model_validate(raw)
        if manifest.schema_version != SCHEMA_VERSION:
            raise DataError(
                f"schema version {manifest.schema_version} is not supported (expected {SCHEMA_VERSION})",
                file=str(manifest_path),
            )
        items = pq.read_table(root / "items.parquet").to_pandas()
        users = pq.read_table(root / "users.parquet").to_pandas()
        interactions = Interactions.load(
            root / "interactions.parquet", n_users=len(users), n_items=len(items)
        )
        return cls(
            name=manifest.name,
            items=items,
            interactions=interactions,
            user_map=IdMap(users["user_id"].to_numpy()),
            item_map=IdMap(items["item_id"].to_numpy()),
            item_columns=manifest.item_columns,
            users=users if has_users_table else None,
            user_columns=manifest.user_columns,
            rating_scale=manifest.rating_scale,
            source=manifest.source,
            media_root=manifest.media_root,
            extras={key: str(root / name) for key, name in manifest.extras.items()},
        )

    def _save_extras(self, out: Path) -> dict[str, str]:
        """Copy each extras file into ``out`` (unless it is there already); return name -> file name.

        ``extras`` values may be paths anywhere (a loader points at its source files); the saved
        manifest keeps bare file names and :meth:`load` turns them back into paths in the directory.
        """
        saved: dict[str, str] = {}
        for key, value in self.extras.items():
            source = Path(value)
            target = out / source.name
            if source.is_file():
                if not target.exists() or not source.resolve().samefile(target):
                    shutil.copyfile(source, target)
            elif not target.is_file():
                raise DataError(f"extras file {key!r} not found", file=str(source))
            saved[key] = source.name
        return saved
