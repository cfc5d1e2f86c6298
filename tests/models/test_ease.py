from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fusionrec.models.ease import EASE

from .contract import RecommenderContract


class TestEASE(RecommenderContract):
    def make_model(self) -> EASE:
        return EASE(l2=20.0)


def test_ease_matches_closed_form_with_zero_diagonal() -> None:
    rng = np.random.default_rng(0)
    train = sp.csr_matrix((rng.random((50, 12)) < 0.4).astype(np.float32))
    x = train.toarray().astype(np.float64)
    l2 = 3.0
    p = np.linalg.inv(x.T @ x + l2 * np.eye(12))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    for dtype in ("float64", "float32"):
        model = EASE(l2=l2, dtype=dtype).fit(train)
        assert np.allclose(np.diag(model.weights), 0.0)
        np.testing.assert_allclose(model.weights, b, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(model.score(np.arange(50)), x @ b, rtol=1e-3, atol=1e-4)
