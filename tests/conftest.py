"""Shared fixtures: small hand-built datasets and the location of the real shared data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.schema import Dataset, IdMap, Interactions, ItemColumns

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$FUSIONREC_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("FUSIONREC_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    root = shared_data_dir()
    if not root.exists():
        pytest.skip(f"real data not present at {root} (MovieLens may not be redistributed; tests skip)")
    return root


@pytest.fixture
def tiny_dataset() -> Dataset:
    """5 users x 6 items, with timestamps, ratings 1..5 and a text column."""
    users = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4], dtype=np.int32)
    items = np.array([0, 1, 2, 0, 3, 1, 2, 4, 5, 5, 0, 2], dtype=np.int32)
    weight = np.array([5, 4, 3, 2, 5, 1, 4, 5, 3, 4, 5, 2], dtype=np.float32)
    timestamp = np.arange(len(users), dtype=np.int64) * 10 + 1000
    item_ids = [f"i{k}" for k in range(6)]
    items_table = pd.DataFrame({"item_id": item_ids, "title": [f"title {k}" for k in range(6)]})
    return Dataset(
        name="tiny",
        items=items_table,
        interactions=Interactions(users, items, weight, n_users=5, n_items=6, timestamp=timestamp),
        user_map=IdMap([f"u{k}" for k in range(5)]),
        item_map=IdMap(item_ids),
        item_columns=ItemColumns(text=["title"]),
        rating_scale=(1.0, 5.0),
    )


def random_dataset(n_users: int = 200, n_items: int = 150, n: int = 5000, seed: int = 0, with_time: bool = True) -> Dataset:
    rng = np.random.default_rng(seed)
    user = rng.integers(0, n_users, n)
    item = rng.integers(0, n_items, n)
    pairs = np.unique(user.astype(np.int64) * n_items + item)
    user, item = (pairs // n_items).astype(np.int32), (pairs % n_items).astype(np.int32)
    inter = Interactions(
        user, item, rng.integers(1, 6, len(user)).astype(np.float32), n_users=n_users, n_items=n_items,
        timestamp=rng.integers(0, 10**6, len(user)) if with_time else None,
    )
    item_ids = [str(k) for k in range(n_items)]
    return Dataset(
        name="random",
        items=pd.DataFrame({"item_id": item_ids}),
        interactions=inter,
        user_map=IdMap([str(k) for k in range(n_users)]),
        item_map=IdMap(item_ids),
    )
