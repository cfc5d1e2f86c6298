from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fusionrec.data.splits import Split
from fusionrec.models.als import ALS, solve_rows

from .contract import RecommenderContract


class TestALS(RecommenderContract):
    def make_model(self) -> ALS:
        return ALS(factors=16, alpha=5.0, reg=5.0, iterations=10)


def test_each_solve_is_the_weighted_ridge_optimum() -> None:
    """One user's solve against a dense reference: ``(Y^T C_u Y + reg I)^-1 Y^T C_u p_u``."""
    rng = np.random.default_rng(0)
    items = rng.normal(size=(30, 5)).astype(np.float32)
    rows = sp.csr_matrix((rng.random((7, 30)) < 0.3).astype(np.float32))
    alpha, reg = 4.0, 0.5
    got = solve_rows(rows, items, items.T @ items, alpha, reg)
    y = items.astype(np.float64)
    for u in range(7):
        p = rows[u].toarray().ravel()
        c = 1.0 + alpha * p
        want = np.linalg.solve(y.T @ (c[:, None] * y) + reg * np.eye(5), y.T @ (c * p))
        np.testing.assert_allclose(got[u], want, rtol=1e-4, atol=1e-5)


def test_fold_in_equals_the_trained_user_vectors(planted: Split) -> None:
    """As implicit's recalculate_user test: the last half-step of training is the user solve, so folding
    a user's training row back in gives exactly their trained vector."""
    model = ALS(factors=16, alpha=5.0, reg=5.0, iterations=8).fit(planted.train)
    train = planted.csr("train")
    np.testing.assert_allclose(model.fold_in(train), model.user_vectors(), rtol=1e-4, atol=1e-5)
    before = model.user_vectors()[:5].copy()
    model.partial_fit_users(np.arange(5), train[:5])
    np.testing.assert_allclose(model.user_vectors()[:5], before, rtol=1e-4, atol=1e-5)


def test_more_iterations_lower_the_weighted_loss(planted: Split) -> None:
    train = planted.csr("train").toarray()
    losses = []
    for iterations in (1, 3, 10):
        model = ALS(factors=8, alpha=5.0, reg=1.0, iterations=iterations).fit(planted.train)
        prediction = model.user_vectors() @ model.item_vectors().T
        confidence = 1.0 + 5.0 * train
        loss = (confidence * (train - prediction) ** 2).sum()
        loss += 1.0 * ((model.user_vectors() ** 2).sum() + (model.item_vectors() ** 2).sum())
        losses.append(loss)
    assert losses[0] > losses[1] > losses[2]
