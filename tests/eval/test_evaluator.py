"""The evaluator against a slow per-user reference, exclusion masks, ties, summaries and reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fusionrec.data.schema import IdMap, Interactions
from fusionrec.data.splits import Split
from fusionrec.errors import ModelError
from fusionrec.eval.evaluator import Evaluator, mean_confidence_interval
from fusionrec.eval.report import groups_table, metrics_table, to_json, write_csv, write_per_user_csv
from fusionrec.ranking.topk import top_k_items


class FixedScores:
    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores.astype(np.float32)

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.scores[users]


def random_matrix(rng: np.random.Generator, shape: tuple[int, int], density: float) -> sp.csr_matrix:
    return sp.csr_matrix((rng.random(shape) < density).astype(np.float32))


def reference(scores: np.ndarray, truth: sp.csr_matrix, exclude: sp.csr_matrix, k: int) -> dict[str, dict[int, float]]:
    """Slow, obvious per-user loop."""
    out: dict[str, dict[int, float]] = {}
    n_items = scores.shape[1]
    for u in range(scores.shape[0]):
        excluded = set(exclude[u].indices.tolist())
        relevant = set(truth[u].indices.tolist()) - excluded
        if not relevant:
            continue
        candidates = [i for i in range(n_items) if i not in excluded]
        ranked = sorted(candidates, key=lambda i: (-scores[u, i], i))[:k]
        hits = [1.0 if i in relevant else 0.0 for i in ranked]
        n_hits = sum(hits)
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(relevant), k)))
        prec_sum, found = 0.0, 0
        for r, h in enumerate(hits):
            if h:
                found += 1
                prec_sum += found / (r + 1)
        first = next((r for r, h in enumerate(hits) if h), None)
        negatives = [i for i in candidates if i not in relevant]
        wins = sum((scores[u, p] > scores[u, n]) + 0.5 * (scores[u, p] == scores[u, n]) for p in relevant for n in negatives)
        values = {
            f"precision@{k}": n_hits / k,
            f"recall@{k}": n_hits / len(relevant),
            f"ndcg@{k}": dcg / idcg,
            f"hit_rate@{k}": float(n_hits > 0),
            f"map@{k}": prec_sum / min(len(relevant), k),
            f"mrr@{k}": 0.0 if first is None else 1 / (first + 1),
            f"f1@{k}": 0.0 if n_hits == 0 else 2 * (n_hits / k) * (n_hits / len(relevant)) / (n_hits / k + n_hits / len(relevant)),
            "auc": wins / (len(relevant) * len(negatives)) if negatives else float("nan"),
        }
        for key, value in values.items():
            out.setdefault(key, {})[u] = value
    return out


@pytest.mark.parametrize("rounded", [False, True])
def test_evaluator_equals_slow_reference(rounded: bool) -> None:
    rng = np.random.default_rng(7)
    n_users, n_items, k = 37, 23, 5
    scores = rng.random((n_users, n_items))
    if rounded:  # many ties: the evaluator must break them towards the lower item index
        scores = np.round(scores * 4) / 4
    truth = random_matrix(rng, (n_users, n_items), 0.15)
    exclude = random_matrix(rng, (n_users, n_items), 0.3)
    result = Evaluator(ks=(k,), batch_size=8, auc=True).evaluate_matrices(FixedScores(scores), truth, exclude)
    expected = reference(scores.astype(np.float32), truth, exclude, k)
    assert result.users.tolist() == sorted(expected[f"recall@{k}"])
    assert result.n_skipped == n_users - len(result.users)
    for key, per_user in expected.items():
        np.testing.assert_allclose(result.per_user[key], [per_user[u] for u in result.users], atol=1e-9, err_msg=key)


def test_exclusion_train_on_valid_train_and_valid_on_test() -> None:
    # item 0 is every user's training item and has the top score, item 1 is in valid, item 2 in test
    n_users = 4
    def part(item: int) -> Interactions:
        return Interactions(np.arange(n_users), np.full(n_users, item), np.ones(n_users), n_users=n_users, n_items=5)
    split = Split(part(0), part(1), part(2), IdMap(list("abcd")), IdMap(list("vwxyz")))
    model = FixedScores(np.tile(np.array([9.0, 8.0, 7.0, 1.0, 0.0]), (n_users, 1)))
    evaluator = Evaluator(ks=(1,))
    on_valid = evaluator.evaluate(model, split, on="valid")
    assert (on_valid.top_k[:, 0] == 1).all() and on_valid.mean()["recall@1"] == 1.0
    on_test = evaluator.evaluate(model, split, on="test")
    assert (on_test.top_k[:, 0] == 2).all() and on_test.mean()["precision@1"] == 1.0
    with pytest.raises(ValueError, match="valid' or 'test"):
        evaluator.evaluate(model, split, on="train")


def test_held_out_items_already_in_train_are_dropped_and_users_skipped() -> None:
    truth = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 1]], dtype=np.float32))
    exclude = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
    result = Evaluator(ks=(1,)).evaluate_matrices(FixedScores(np.ones((2, 3))), truth, exclude)
    assert result.users.tolist() == [1] and result.n_skipped == 1
    assert result.per_user["recall@1"].tolist() == [0.0]  # item 0 ranks first for user 1, truth is {2}


def test_top_k_ties_go_to_lower_index_and_empty_slots_are_minus_one() -> None:
    scores = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0], [0.0, float("-inf"), float("-inf"), float("-inf"), float("-inf")]])
    items, values = top_k_items(scores.clone(), 3)
    assert items[0].tolist() == [1, 2, 4]
    assert items[1].tolist() == [0, -1, -1]
    items2, _ = top_k_items(scores.clone(), 2)
    assert items2[0].tolist() == [1, 2]
    assert values[0].tolist() == [3.0, 3.0, 3.0]


def test_nan_scores_and_wrong_shapes_are_model_errors() -> None:
    truth = sp.csr_matrix(np.eye(2, dtype=np.float32))
    with pytest.raises(ModelError, match="NaN"):
        Evaluator(ks=(1,)).evaluate_matrices(FixedScores(np.full((2, 2), np.nan)), truth, None)
    with pytest.raises(ModelError, match="shape"):
        Evaluator(ks=(1,)).evaluate_matrices(FixedScores(np.ones((2, 3))), truth, None)


def test_confidence_intervals_and_groups() -> None:
    x = np.array([0.0, 1.0, 0.5, 0.25, 0.75])
    low, high = mean_confidence_interval(x, method="t")
    # t(0.975, 4) = 2.776445; sd = 0.3953
    assert (high - low) / 2 == pytest.approx(2.776445 * x.std(ddof=1) / math.sqrt(5), rel=1e-5)
    blow, bhigh = mean_confidence_interval(x, method="bootstrap", n_boot=2000)
    assert blow < x.mean() < bhigh and blow >= 0 and bhigh <= 1
    with pytest.raises(ValueError, match="unknown confidence"):
        mean_confidence_interval(x, method="nope")

    rng = np.random.default_rng(0)
    truth, exclude = random_matrix(rng, (60, 30), 0.2), random_matrix(rng, (60, 30), 0.2)
    result = Evaluator(ks=(5, 10)).evaluate_matrices(FixedScores(rng.random((60, 30))), truth, exclude)
    groups = result.by_user_activity(n_groups=3)
    assert sum(g["n_users"] for g in groups.values()) == result.n_evaluated
    popularity = result.by_item_popularity()
    assert set(popularity) == {"head", "tail"}
    assert all(0 <= row["recall@10"] <= 1 for row in popularity.values())
    assert set(result.beyond) == {"coverage", "novelty", "avg_popularity", "gini"}
    features = rng.random((30, 4))
    with_ild = Evaluator(ks=(5,), item_features=features).evaluate_matrices(FixedScores(rng.random((60, 30))), truth, exclude)
    assert 0.0 <= with_ild.beyond["ild"] <= 1.0


def test_reports_json_csv_and_tables(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    truth, exclude = random_matrix(rng, (20, 15), 0.2), random_matrix(rng, (20, 15), 0.2)
    result = Evaluator(ks=(5,)).evaluate_matrices(FixedScores(rng.random((20, 15))), truth, exclude, part="test")
    payload = json.loads(to_json(result))
    assert payload["metrics"]["recall@5"] == pytest.approx(result.mean()["recall@5"])
    assert payload["n_evaluated"] == result.n_evaluated
    rows = (write_csv({"m": result}, tmp_path / "r.csv")).read_text().splitlines()
    assert rows[0] == "model,part,metric,mean,ci_low,ci_high,n_users" and any(",recall@5," in r for r in rows)
    per_user = write_per_user_csv(result, tmp_path / "u.csv").read_text().splitlines()
    assert len(per_user) == result.n_evaluated + 1
    assert metrics_table({"m": result}).row_count == 1
    # head, tail, and cold when a held-out item has no training interaction (exclude is the train here)
    has_cold = bool(((np.asarray(exclude.sum(axis=0)).ravel() == 0) & (np.asarray(truth.sum(axis=0)).ravel() > 0)).any())
    assert groups_table(result, by="popularity").row_count == 2 + has_cold
