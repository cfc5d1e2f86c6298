"""Train/valid/test splits, all vectorised (sort + segment arithmetic, no loop over users), seeded.

A Split keeps the dataset's id maps, so train/valid/test share one index space with the
catalog and with any FeatureSet aligned to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from fusionrec.config import SplitConfig
from fusionrec.data.schema import Dataset, IdMap, Interactions
from fusionrec.data.validate import ValidationReport
from fusionrec.errors import DataError

PARTS = ("train", "valid", "test")


@dataclass
class Split:
    """Three Interactions over the same users and items, plus how they were made."""

    train: Interactions
    valid: Interactions
    test: Interactions
    user_map: IdMap
    item_map: IdMap
    info: dict[str, object] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    def part(self, name: str) -> Interactions:
        if name not in PARTS:
            raise ValueError(f"unknown split part {name!r}; expected one of {PARTS}")
        return getattr(self, name)  # type: ignore[no-any-return]

    def csr(self, name: str) -> sp.csr_matrix:
        """Binary ``(n_users, n_items)`` matrix of one part."""
        return self.part(name).to_csr(binary=True)

    def dataset_dir(self) -> Path | None:
        value = self.info.get("dataset_dir")
        return Path(str(value)) if value else None

    @staticmethod
    def dataset_dir_of(directory: str | Path) -> Path | None:
        """The dataset folder a saved split records (``split.json``), without loading the split;
        None when the folder holds no readable split or it records none."""
        try:
            info = json.loads((Path(directory) / "split.json").read_text())
        except (OSError, ValueError):
            return None
        value = info.get("dataset_dir")
        return Path(str(value)) if value else None

    def load_dataset(self) -> Dataset:
        """The Dataset this split was cut from (for item content and features)."""
        directory = self.dataset_dir()
        if directory is None or not (directory / "manifest.json").exists():
            raise DataError(f"the dataset this split was made from is not at {directory}")
        return Dataset.load(directory)

    def summary(self) -> dict[str, int]:
        counts = {f"{p}_interactions": len(self.part(p)) for p in PARTS}
        train_users = np.unique(self.train.user)
        train_items = np.unique(self.train.item)
        counts["train_users"] = len(train_users)
        for p in ("valid", "test"):
            part = self.part(p)
            counts[f"{p}_users"] = len(np.unique(part.user))
            counts[f"{p}_users_not_in_train"] = int((~np.isin(np.unique(part.user), train_users)).sum())
            counts[f"{p}_items_not_in_train"] = int((~np.isin(np.unique(part.item), train_items)).sum())
        return counts

    def save(self, directory: str | Path) -> Path:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for name in PARTS:
            self.part(name).save(out / f"{name}.parquet")
        pq.write_table(pa.table({"user_id": self.user_map.ids.astype(str)}), out / "user_ids.parquet")
        pq.write_table(pa.table({"item_id": self.item_map.ids.astype(str)}), out / "item_ids.parquet")
        info = {k: v for k, v in self.info.items() if k != "path"}
        (out / "split.json").write_text(json.dumps(info | {"summary": self.summary()}, indent=2))
        return out

    @classmethod
    def load(cls, directory: str | Path) -> Split:
        root = Path(directory)
        if not (root / "split.json").exists():
            raise DataError("not a fusionrec split directory (no split.json)", file=str(root))
        user_map = IdMap(pq.read_table(root / "user_ids.parquet").column("user_id").to_numpy())
        item_map = IdMap(pq.read_table(root / "item_ids.parquet").column("item_id").to_numpy())
        parts = {
            name: Interactions.load(root / f"{name}.parquet", len(user_map), len(item_map)) for name in PARTS
        }
        info = json.loads((root / "split.json").read_text())
        info.pop("summary", None)
        info["path"] = str(root.resolve())  # where it was loaded from (a bundle records it)
        return cls(**parts, user_map=user_map, item_map=item_map, info=info)


def filter_interactions(inter: Interactions, min_rating: float | None, k_core: int) -> Interactions:
    """Implicit threshold (weight >= min_rating), then iterated k-core on users and items."""
    if min_rating is not None:
        inter = inter.select(inter.weight >= min_rating)
    if k_core > 1:
        while True:
            user_counts = np.bincount(inter.user, minlength=inter.n_users)
            item_counts = np.bincount(inter.item, minlength=inter.n_items)
            keep = (user_counts[inter.user] >= k_core) & (item_counts[inter.item] >= k_core)
            if keep.all():
                break
            inter = inter.select(keep)
    return inter


def _segment_positions(groups: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order by (group, key); return the order, each row's position within its group and group size."""
    return _segments(groups, np.lexsort((keys, groups)))


def _segments(groups: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows in ``order`` (sorted by group): the order, position within the group, group size."""
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    size_per_row = np.repeat(sizes, sizes)
    position = np.arange(len(order)) - np.repeat(starts, sizes)
    return order, position, size_per_row


def _assign_by_position(position: np.ndarray, size: np.ndarray, ratios: tuple[float, float, float]) -> np.ndarray:
    """Part (0/1/2) of each row from its position in a group, with cumulative rounding per group.
    Every non-empty group keeps at least one row in train."""
    train_end = np.maximum(np.rint(size * ratios[0]), 1)
    valid_end = np.maximum(np.rint(size * (ratios[0] + ratios[1])), train_end)
    return np.where(position < train_end, 0, np.where(position < valid_end, 1, 2)).astype(np.int8)


def _split_random(inter: Interactions, cfg: SplitConfig, rng: np.random.Generator) -> np.ndarray:
    # One int64 key (user in the high 32 bits, a random draw in the low 32) sorts ~4x faster than
    # a two-key lexsort and gives each user's rows in a seeded random order.
    draw = rng.integers(0, 2**32, size=len(inter), dtype=np.uint64)
    key = (inter.user.astype(np.uint64) << np.uint64(32)) | draw
    order, position, size = _segments(inter.user, np.argsort(key))
    part = np.empty(len(inter), dtype=np.int8)
    part[order] = _assign_by_position(position, size, cfg.ratios)
    return part


def _split_temporal(inter: Interactions, cfg: SplitConfig, rng: np.random.Generator) -> np.ndarray:
    if inter.timestamp is None:
        raise DataError("temporal split needs timestamps, and this dataset has none; use --strategy random")
    order = np.lexsort((rng.random(len(inter)), inter.timestamp))
    n = len(inter)
    train_end = round(n * cfg.ratios[0])
    valid_end = round(n * (cfg.ratios[0] + cfg.ratios[1]))
    part = np.empty(n, dtype=np.int8)
    part[order[:train_end]], part[order[train_end:valid_end]], part[order[valid_end:]] = 0, 1, 2
    return part


def _split_leave_last(inter: Interactions, cfg: SplitConfig, rng: np.random.Generator) -> np.ndarray:
    if inter.timestamp is None:
        raise DataError("leave-last split needs timestamps, and this dataset has none; use --strategy random")
    # Ties in time are broken at random (seeded) so that the result does not depend on file order.
    keys = inter.timestamp.astype(np.float64) + rng.random(len(inter)) * 0.5
    order, position, size = _segment_positions(inter.user, keys)
    n_held = cfg.leave_last_n
    from_end = size - position  # 1 = last
    eligible = size > 2 * n_held  # a user keeps at least one training interaction
    part_sorted = np.where(eligible & (from_end <= n_held), 2, np.where(eligible & (from_end <= 2 * n_held), 1, 0))
    part = np.empty(len(inter), dtype=np.int8)
    part[order] = part_sorted
    return part


def _split_cold(entity: np.ndarray, n_entities: int, cfg: SplitConfig, rng: np.random.Generator) -> np.ndarray:
    """Cold items/users: a ratios[1] share of the entities goes whole to valid, ratios[2] to test."""
    present = np.flatnonzero(np.bincount(entity, minlength=n_entities) > 0)
    shuffled = rng.permutation(present)
    n_valid = round(len(present) * cfg.ratios[1])
    n_test = round(len(present) * cfg.ratios[2])
    part_of_entity = np.zeros(n_entities, dtype=np.int8)
    part_of_entity[shuffled[:n_valid]] = 1
    part_of_entity[shuffled[n_valid : n_valid + n_test]] = 2
    return part_of_entity[entity]


def split_dataset(dataset: Dataset, cfg: SplitConfig, dataset_dir: str | Path | None = None) -> Split:
    """Filter (min_rating, k-core) then split the dataset's interactions as ``cfg`` says."""
    inter = filter_interactions(dataset.interactions, cfg.min_rating, cfg.k_core)
    if len(inter) == 0:
        raise DataError("no interactions left after filtering (check --min-rating / --k-core)")
    rng = np.random.default_rng(cfg.seed)
    if cfg.strategy == "random":
        part = _split_random(inter, cfg, rng)
    elif cfg.strategy == "temporal":
        part = _split_temporal(inter, cfg, rng)
    elif cfg.strategy == "leave_last":
        part = _split_leave_last(inter, cfg, rng)
    elif cfg.strategy == "cold_item":
        part = _split_cold(inter.item, inter.n_items, cfg, rng)
    else:
        part = _split_cold(inter.user, inter.n_users, cfg, rng)
    info: dict[str, object] = {
        "strategy": cfg.strategy,
        "config": cfg.model_dump(mode="json"),
        "dataset": dataset.name,
        "dataset_dir": str(Path(dataset_dir).resolve()) if dataset_dir else None,
    }
    return Split(
        train=inter.select(part == 0),
        valid=inter.select(part == 1),
        test=inter.select(part == 2),
        user_map=dataset.user_map,
        item_map=dataset.item_map,
        info=info,
    )


def split_from_files(
    dataset: Dataset,
    train: str | Path,
    valid: str | Path,
    test: str | Path,
    *,
    dataset_dir: str | Path | None = None,
    delimiter: str | None = None,
) -> Split:
    """Adopt a split someone else made: files of ``user, item[, rating[, timestamp]]`` rows with
    ids as in the dataset. A header line is used when it names ``user``/``item`` columns."""
    from fusionrec.data.loaders.common import clean_interactions, read_delimited

    report = ValidationReport(source="split files")
    parts: dict[str, Interactions] = {}
    for name, path in zip(PARTS, (train, valid, test), strict=True):
        file = Path(path)
        sep = delimiter or ("\t" if file.suffix in (".tsv", ".inter", ".txt") else ",")
        names = _column_names_if_headless(file, sep)
        frame, lines = read_delimited(file, report, delimiter=sep, column_names=names, string_columns=None)
        frame = _normalise_split_columns(frame, file)
        cleaned = clean_interactions(frame, lines, report, file=str(file))
        users = dataset.user_map.lookup(cleaned["user"].to_numpy())
        items = dataset.item_map.lookup(cleaned["item"].to_numpy())
        for label, idx, column in (("user", users, "user"), ("item", items, "item")):
            if (idx < 0).any():
                first = int(np.flatnonzero(idx < 0)[0])
                raise DataError(
                    f"{label} {cleaned[column].iat[first]!r} is not in the dataset "
                    f"({int((idx < 0).sum())} unknown {label} ids in this file)",
                    file=str(file), row=int(cleaned["line"].to_numpy()[first]), column=column,
                )
        parts[name] = Interactions(
            user=users, item=items, weight=cleaned["weight"].to_numpy(),
            timestamp=cleaned["timestamp"].to_numpy() if "timestamp" in cleaned else None,
            n_users=dataset.n_users, n_items=dataset.n_items,
        )
    report.raise_if_errors()
    info: dict[str, object] = {
        "strategy": "files",
        "files": [str(Path(p).resolve()) for p in (train, valid, test)],
        "dataset": dataset.name,
        "dataset_dir": str(Path(dataset_dir).resolve()) if dataset_dir else None,
    }
    return Split(**parts, user_map=dataset.user_map, item_map=dataset.item_map, info=info)


_USER_NAMES = ("user", "user_id", "userid", "uid", "reviewerid")
_ITEM_NAMES = ("item", "item_id", "itemid", "iid", "movie_id", "movieid", "asin")
_RATING_NAMES = ("rating", "weight", "overall", "score")
_TIME_NAMES = ("timestamp", "time", "ts", "unixreviewtime")


def _normalise_split_columns(frame: pd.DataFrame, file: Path) -> pd.DataFrame:
    """Rename a file's columns to user/item/rating/timestamp (the first match of each)."""
    lower = {str(c).strip().lower().split(":")[0]: c for c in frame.columns}
    rename: dict[str, str] = {}
    for target, names in (("user", _USER_NAMES), ("item", _ITEM_NAMES), ("rating", _RATING_NAMES), ("timestamp", _TIME_NAMES)):
        for candidate in names:
            if candidate in lower:
                rename[lower[candidate]] = target
                break
    if "user" not in rename.values() or "item" not in rename.values():
        raise DataError(f"cannot tell the user and item columns apart in {list(frame.columns)}", file=str(file))
    return frame.rename(columns=rename)[list(rename.values())]


def _column_names_if_headless(file: Path, sep: str) -> list[str] | None:
    """None when the first line is a header naming a user column, else positional names."""
    if not file.exists():
        raise DataError("file not found", file=str(file))
    with file.open("rb") as handle:
        first = handle.readline().decode("utf-8", errors="replace").rstrip("\r\n")
    fields = [f.strip().lower() for f in first.split(sep)]
    if any(f.split(":")[0] in _USER_NAMES for f in fields):  # also RecBole style "user_id:token"
        return None
    names = ["user", "item", "rating", "timestamp"][: len(fields)]
    return names + [f"extra_{i}" for i in range(len(fields) - len(names))]
