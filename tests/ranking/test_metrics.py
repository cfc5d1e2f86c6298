"""Every metric against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fusionrec.eval import beyond
from fusionrec.ranking.metrics import auc_per_user, hit_matrix, parse_metric_key, ranking_metrics


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    data = [(r, i) for r, items in enumerate(rows) for i in items]
    r, c = zip(*data, strict=True) if data else ((), ())
    return sp.csr_matrix((np.ones(len(data), dtype=np.float32), (r, c)), shape=(len(rows), n_items))


def log2(x: float) -> float:
    return math.log(x, 2)


def test_hit_matrix_marks_relevant_positions_and_ignores_empty_slots() -> None:
    truth = csr([[2, 4, 9], [], [0]], 10)
    top = np.array([[1, 2, 3, 4], [0, 1, 2, 3], [0, -1, -1, -1]])
    hits = hit_matrix(top, truth)
    assert hits.tolist() == [[False, True, False, True], [False] * 4, [True, False, False, False]]


def test_metrics_hand_computed_partial_hits() -> None:
    # ranks 2 and 4 are relevant, |T| = 3
    hits = np.array([[False, True, False, True]])
    m = ranking_metrics(hits, np.array([3]), ks=(1, 2, 4))
    assert m["precision@2"][0] == pytest.approx(0.5)
    assert m["precision@4"][0] == pytest.approx(0.5)
    assert m["recall@2"][0] == pytest.approx(1 / 3)
    assert m["recall@4"][0] == pytest.approx(2 / 3)
    assert m["f1@4"][0] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    dcg4 = 1 / log2(3) + 1 / log2(5)
    idcg4 = 1 + 1 / log2(3) + 1 / log2(4)  # min(|T|, 4) = 3 ideal hits
    assert m["ndcg@4"][0] == pytest.approx(dcg4 / idcg4)
    assert m["ndcg@2"][0] == pytest.approx((1 / log2(3)) / (1 + 1 / log2(3)))
    assert m["hit_rate@1"][0] == 0.0 and m["hit_rate@2"][0] == 1.0
    assert m["map@4"][0] == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert m["map@2"][0] == pytest.approx((1 / 2) / 2)  # divided by min(|T|, k) = 2
    assert m["mrr@1"][0] == 0.0 and m["mrr@4"][0] == pytest.approx(0.5)


def test_metrics_fewer_relevant_than_k_can_be_perfect() -> None:
    hits = np.array([[True, False, False, False, False]])
    m = ranking_metrics(hits, np.array([1]), ks=(5,))
    assert m["ndcg@5"][0] == pytest.approx(1.0)  # ideal DCG over min(|T|, K) = 1 item
    assert m["recall@5"][0] == 1.0
    assert m["precision@5"][0] == pytest.approx(0.2)
    assert m["map@5"][0] == pytest.approx(1.0)
    assert m["f1@5"][0] == pytest.approx(2 * 1 / (5 + 1))


def test_metrics_no_hits_are_zero() -> None:
    m = ranking_metrics(np.zeros((2, 3), dtype=bool), np.array([1, 4]), ks=(3,))
    assert all((v == 0).all() for v in m.values())


def test_metrics_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one relevant"):
        ranking_metrics(np.zeros((1, 3), dtype=bool), np.array([0]), ks=(3,))
    with pytest.raises(ValueError, match="cut-offs"):
        ranking_metrics(np.zeros((1, 3), dtype=bool), np.array([1]), ks=(4,))
    with pytest.raises(ValueError, match="unknown metrics"):
        ranking_metrics(np.zeros((1, 3), dtype=bool), np.array([1]), ks=(1,), metrics=("nope",))
    assert parse_metric_key("ndcg@20") == ("ndcg", 20) and parse_metric_key("auc") == ("auc", None)


def test_auc_hand_computed_with_ties_and_exclusion() -> None:
    # item 0 excluded; positives {1, 3}; negatives {2, 4}
    scores = torch.tensor([[float("-inf"), 0.5, 0.2, 0.9, 0.5]])
    auc = auc_per_user(scores, np.array([1]), csr([[1, 3]], 5))
    # (1 vs 2) win, (1 vs 4) tie, (3 vs 2) win, (3 vs 4) win -> 3.5 / 4
    assert auc[0] == pytest.approx(0.875)


def test_auc_perfect_worst_and_undefined() -> None:
    scores = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    truth = csr([[0], [0], [0, 1, 2]], 3)
    auc = auc_per_user(scores, np.zeros(3, dtype=np.int64), truth)
    assert auc[0] == 1.0 and auc[1] == 0.0 and math.isnan(auc[2])  # no negatives


def test_beyond_accuracy_hand_computed() -> None:
    top = np.array([[0, 1], [0, 2], [3, -1]])
    assert beyond.catalog_coverage(top, 5) == pytest.approx(4 / 5)
    pop = np.array([4.0, 2.0, 1.0, 0.0, 8.0])
    np.testing.assert_allclose(beyond.average_popularity(top, pop), [3.0, 2.5, 0.0])
    n_users = 8
    info = -np.log2(np.maximum(pop, 1) / n_users)  # [1, 2, 3, 3, 0]
    np.testing.assert_allclose(beyond.novelty(top, pop, n_users), [(info[0] + info[1]) / 2, (info[0] + info[2]) / 2, info[3]])
    # recommended counts [2, 1, 1, 1, 0] sorted [0, 1, 1, 1, 2]; gini = sum((2j - 6) c_j) / (5 * 5)
    expected_gini = ((2 * 1 - 6) * 0 + (2 * 2 - 6) * 1 + (2 * 3 - 6) * 1 + (2 * 4 - 6) * 1 + (2 * 5 - 6) * 2) / 25
    assert beyond.gini_index(top, 5) == pytest.approx(expected_gini)


def test_intra_list_diversity() -> None:
    feats = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]])
    top = np.array([[0, 1], [0, 2], [0, 1, 2][:2], [0, 3]])
    ild = beyond.intra_list_diversity(top, feats)
    assert ild[0] == pytest.approx(1.0)  # orthogonal
    assert ild[1] == pytest.approx(1 - 1 / math.sqrt(2))
    assert math.isnan(ild[3])  # item 3 has no features -> fewer than 2 usable items
    three = beyond.intra_list_diversity(np.array([[0, 1, 2]]), feats)
    mean_cos = (0 + 1 / math.sqrt(2) + 1 / math.sqrt(2)) / 3
    assert three[0] == pytest.approx(1 - mean_cos)
    masked = beyond.intra_list_diversity(np.array([[0, 1, 2]]), feats, present=np.array([True, False, True, True]))
    assert masked[0] == pytest.approx(1 - 1 / math.sqrt(2))
