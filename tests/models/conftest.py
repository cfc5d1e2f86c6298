"""Synthetic data with planted structure, shared by the model contract tests."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.data.schema import IdMap, Interactions
from fusionrec.data.splits import Split


def planted_split(
    n_users: int = 240,
    n_clusters: int = 6,
    items_per_cluster: int = 20,
    seed: int = 0,
    p_same: float = 0.7,
    p_other: float = 0.03,
    strategy: str = "planted",
) -> Split:
    """Users and items fall in clusters; a user picks a ``p_same`` share of its cluster's items and
    a ``p_other`` share of the others. Cluster sizes differ, so MostPop has a signal but the
    clusters beat it."""
    rng = np.random.default_rng(seed)
    n_items = n_clusters * items_per_cluster
    user_cluster = rng.choice(n_clusters, size=n_users, p=np.linspace(2, 1, n_clusters) / np.linspace(2, 1, n_clusters).sum())
    item_cluster = np.repeat(np.arange(n_clusters), items_per_cluster)
    same = user_cluster[:, None] == item_cluster[None, :]
    prob = np.where(same, p_same, p_other)
    chosen = rng.random((n_users, n_items)) < prob
    users, items = np.nonzero(chosen)
    part = rng.choice(3, size=len(users), p=[0.7, 0.15, 0.15])
    def inter(mask: np.ndarray) -> Interactions:
        return Interactions(users[mask], items[mask], np.ones(mask.sum()), n_users=n_users, n_items=n_items)
    return Split(
        train=inter(part == 0), valid=inter(part == 1), test=inter(part == 2),
        user_map=IdMap([f"u{i}" for i in range(n_users)]), item_map=IdMap([f"i{i}" for i in range(n_items)]),
        info={"strategy": strategy},
    )


@pytest.fixture(scope="session")
def planted() -> Split:
    return planted_split()
