"""Collective EASE with side information: contract, s=0 is EASE, content reaches cold items."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fusionrec.data.splits import Split
from fusionrec.eval.evaluator import Evaluator
from fusionrec.features.base import FeatureSet
from fusionrec.models.ease import EASE
from fusionrec.models.ease_side import EASESide

from .contract import RecommenderContract
from .test_content import cluster_features


class TestEASESide(RecommenderContract):
    def make_model(self) -> EASESide:
        return EASESide(l2=20.0, side_weight=3.0)

    def make_features(self, split: Split) -> FeatureSet:
        return cluster_features(split)


def test_zero_side_weight_is_ease(planted: Split) -> None:
    features = cluster_features(planted)
    side = EASESide(l2=20.0, side_weight=0.0).fit(planted.train, features=features)
    plain = EASE(l2=20.0).fit(planted.train)
    np.testing.assert_allclose(side.weights, plain.weights, rtol=1e-4, atol=1e-6)


def test_content_links_cold_items_that_ease_cannot_rank(planted: Split) -> None:
    """Hold out every interaction of some items: EASE gives them weight 0; with content they are
    ranked by their similarity to what the user has, and beat EASE on those items."""
    features = cluster_features(planted)
    train = planted.csr("train").tolil()
    cold = np.arange(0, planted.n_items, 10)  # 12 items, 2 per cluster
    train[:, cold] = 0
    train = sp.csr_matrix(train)
    train.eliminate_zeros()
    truth = (planted.csr("valid") + planted.csr("test")).tocsr()[:, cold]
    evaluator = Evaluator(ks=(3,), beyond=False)
    plain = EASE(l2=20.0).fit(train)
    side = EASESide(l2=20.0, side_weight=3.0).fit(train, features=features)

    class OnCold:
        def __init__(self, model: EASE | EASESide) -> None:
            self.model = model

        def score(self, users: np.ndarray) -> np.ndarray:
            return self.model.score(users)[:, cold]

    exclude = sp.csr_matrix(truth.shape, dtype=np.float32)
    ease_recall = evaluator.evaluate_matrices(OnCold(plain), truth, exclude).mean()["recall@3"]
    side_recall = evaluator.evaluate_matrices(OnCold(side), truth, exclude).mean()["recall@3"]
    assert side_recall > ease_recall + 0.2, (side_recall, ease_recall)
