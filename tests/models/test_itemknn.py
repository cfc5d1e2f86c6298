from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fusionrec.models.itemknn import ItemKNN

from .contract import RecommenderContract


class TestItemKNN(RecommenderContract):
    def make_model(self) -> ItemKNN:
        return ItemKNN(k=20, shrink=5.0)


def test_itemknn_matches_dense_reference_and_blocks() -> None:
    rng = np.random.default_rng(3)
    train = sp.csr_matrix((rng.random((40, 25)) < 0.3).astype(np.float32))
    k, shrink = 5, 2.0
    co = (train.T @ train).toarray()
    norms = np.sqrt(np.diag(co))
    sim = co / (norms[:, None] * norms[None, :] + shrink + 1e-12)
    np.fill_diagonal(sim, 0.0)
    weights = np.zeros_like(sim)
    for j in range(25):  # reference: for target j keep its k most similar items i
        top = np.argsort(-sim[j], kind="stable")[:k]
        weights[top, j] = sim[j, top]
    expected = train.toarray() @ weights
    for block_mb in (1, 64):  # tiny blocks exercise the blockwise path
        model = ItemKNN(k=k, shrink=shrink, block_mb=block_mb)
        model.fit(train)
        np.testing.assert_allclose(model.score(np.arange(40)), expected, rtol=1e-5, atol=1e-6)
        assert model.similarity.nnz <= 25 * k
