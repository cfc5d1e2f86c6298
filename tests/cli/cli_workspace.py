"""Shared by the CLI tests: a tiny 4-cluster split saved to disk, and rich output unwrapped."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fusionrec.data.schema import IdMap, Interactions
from fusionrec.data.splits import Split

#: the planted item clusters of :func:`saved_cluster_split` (40 items, 4 clusters of 10)
ITEM_CLUSTERS = np.repeat(np.arange(4), 10)


def text(result: object) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(str(getattr(result, "output", "")).split())


def saved_cluster_split(tmp_path: Path) -> Path:
    """80 users who mostly pick the items of their cluster, split 70/15/15 and saved under ``tmp_path/split``."""
    rng = np.random.default_rng(0)
    n_users, n_items = 80, 40
    cluster_u, cluster_i = rng.integers(0, 4, n_users), np.repeat(np.arange(4), 10)
    chosen = rng.random((n_users, n_items)) < np.where(cluster_u[:, None] == cluster_i[None, :], 0.7, 0.03)
    users, items = np.nonzero(chosen)
    part = rng.choice(3, size=len(users), p=[0.7, 0.15, 0.15])

    def inter(mask: np.ndarray) -> Interactions:
        return Interactions(users[mask], items[mask], np.ones(mask.sum()), n_users=n_users, n_items=n_items)

    split = Split(
        inter(part == 0), inter(part == 1), inter(part == 2),
        IdMap([f"user{i}" for i in range(n_users)]), IdMap([f"item{i}" for i in range(n_items)]),
    )
    return split.save(tmp_path / "split")
