from __future__ import annotations

from fusionrec.models.lightgcn import LightGCN

from .contract import RecommenderContract


class TestLightGCN(RecommenderContract):
    partial_fit_atol = 1e-2  # a warm-started BPR fold-in (contract docstring)

    def make_model(self) -> LightGCN:
        return LightGCN(factors=16, n_layers=2, epochs=30, batch_size=512, learning_rate=0.02, patience=3, seed=1)
