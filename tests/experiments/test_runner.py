"""run_baselines (the demo's hook) and the grid search, on a small planted split."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

from fusionrec.data.schema import IdMap, Interactions
from fusionrec.data.splits import Split
from fusionrec.experiments.runner import expand_grid, grid_search, run_baselines


@pytest.fixture(scope="module")
def split() -> Split:
    """Four user/item clusters: users mostly pick items of their own cluster."""
    rng = np.random.default_rng(0)
    n_users, n_items = 120, 60
    cluster_u, cluster_i = rng.integers(0, 4, n_users), np.repeat(np.arange(4), 15)
    chosen = rng.random((n_users, n_items)) < np.where(cluster_u[:, None] == cluster_i[None, :], 0.7, 0.03)
    users, items = np.nonzero(chosen)
    part = rng.choice(3, size=len(users), p=[0.7, 0.15, 0.15])

    def inter(mask: np.ndarray) -> Interactions:
        return Interactions(users[mask], items[mask], np.ones(mask.sum()), n_users=n_users, n_items=n_items)

    return Split(inter(part == 0), inter(part == 1), inter(part == 2), IdMap(range(n_users)), IdMap(range(n_items)))


def test_run_baselines_prints_a_table_and_returns_runs(split: Split) -> None:
    out = io.StringIO()
    runs = run_baselines(split, ["mostpop", "ease"], k=[5, 10], console=Console(file=out, width=400))
    assert list(runs) == ["mostpop", "ease"]
    assert runs["ease"].result.mean()["recall@10"] > runs["mostpop"].result.mean()["recall@10"]
    assert runs["ease"].result.part == "test" and runs["ease"].train_time_s >= 0
    text = out.getvalue()
    assert "ease" in text and "recall@10" in text and "beyond accuracy" in text


def test_grid_search_selects_on_valid_only(split: Split) -> None:
    assert expand_grid({"a": [1, 2], "b": 3}) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]
    tuned = grid_search("ease", split, {"l2": [0.5, 20.0, 400.0]}, metric="ndcg@10", k=[10])
    assert len(tuned.trials) == 3
    assert tuned.best.valid_value == max(t.valid_value for t in tuned.trials)
    assert tuned.test.part == "test" and "ndcg@10" in tuned.test.per_user
    with pytest.raises(ValueError, match="metric must look like"):
        grid_search("ease", split, {"l2": [1.0]}, metric="auc")
