"""The evaluator's batch step and merge (what a distributed run uses) give exactly the one-pass
report; a candidate set restricts the ranking; the trainer's validation gives the evaluator's number."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fusionrec.eval.evaluator import Evaluator
from fusionrec.ranking.heldout import HeldOut, mean_ranking_metric


class FixedScores:
    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores.astype(np.float32)

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.scores[users]


def _data(seed: int = 0) -> tuple[FixedScores, sp.csr_matrix, sp.csr_matrix]:
    rng = np.random.default_rng(seed)
    n_users, n_items = 157, 43
    scores = np.round(rng.random((n_users, n_items)), 2)  # rounded: ties happen
    train = sp.csr_matrix((rng.random((n_users, n_items)) < 0.2).astype(np.float32))
    truth = sp.csr_matrix((rng.random((n_users, n_items)) < 0.1).astype(np.float32))
    return FixedScores(scores), truth, train


def test_batches_merged_in_any_order_equal_the_one_pass_report() -> None:
    model, truth, train = _data()
    evaluator = Evaluator(ks=(5, 10), batch_size=64, auc=True)
    one_pass = evaluator.evaluate_matrices(model, truth, train, part="test")
    plan = evaluator.prepare(truth, train, part="test")
    chunks = np.array_split(plan.users, 5)  # other batch sizes than the evaluator's own
    partials = [evaluator.evaluate_batch(model, plan, chunk) for chunk in reversed(chunks)]
    merged = evaluator.merge(plan, partials)
    assert merged.mean() == one_pass.mean()
    np.testing.assert_array_equal(merged.users, one_pass.users)
    np.testing.assert_array_equal(merged.top_k, one_pass.top_k)
    assert merged.beyond == one_pass.beyond
    assert merged.by_item_popularity() == one_pass.by_item_popularity()
    assert merged.by_user_activity() == one_pass.by_user_activity()


def test_candidate_set_ranks_only_candidates_and_drops_other_truth() -> None:
    model, truth, train = _data(1)
    candidates = np.arange(0, 43, 4)
    result = Evaluator(ks=(5,), beyond=False).evaluate_matrices(model, truth, train, candidates=candidates)
    shown = result.top_k[result.top_k >= 0]
    assert np.isin(shown, candidates).all()
    # Same as scoring a matrix restricted to the candidate columns.
    sub_scores = FixedScores(model.scores[:, candidates])
    sub = Evaluator(ks=(5,), beyond=False).evaluate_matrices(sub_scores, truth[:, candidates], train[:, candidates])
    np.testing.assert_allclose(result.mean()["recall@5"], sub.mean()["recall@5"])
    np.testing.assert_allclose(result.mean()["ndcg@5"], sub.mean()["ndcg@5"])


def test_trainer_validation_metric_equals_the_evaluator() -> None:
    model, truth, train = _data(2)
    expected = Evaluator(ks=(10,), beyond=False).evaluate_matrices(model, truth, train).mean()
    heldout = HeldOut.build(truth, train)
    for key in ("recall@10", "ndcg@10", "mrr@10"):
        assert mean_ranking_metric(model, heldout, key, batch_size=33) == expected[key]
