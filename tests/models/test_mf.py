from __future__ import annotations

from fusionrec.data.splits import Split
from fusionrec.models.mf import BPRMF

from .contract import RecommenderContract


class TestBPRMF(RecommenderContract):
    def make_model(self) -> BPRMF:
        return BPRMF(factors=16, epochs=30, batch_size=256, learning_rate=0.02, reg=1e-3, patience=3, seed=1)

    def test_early_stopping_restores_best_epoch(self, planted: Split) -> None:
        model = self.fitted(planted)
        history = model.history_
        assert history is not None and history.best_epoch is not None
        best = max(e.valid_metric for e in history.epochs if e.valid_metric is not None)
        assert history.best_value == best
        if history.stopped_early:
            assert history.n_epochs - history.best_epoch == 3  # patience
        from fusionrec.eval.evaluator import Evaluator

        again = Evaluator(ks=(20,), metrics=("recall",), beyond=False).evaluate_matrices(
            model, planted.csr("valid"), planted.csr("train")
        )
        assert abs(again.mean()["recall@20"] - best) < 1e-9, "weights of the best epoch were not restored"

    def test_same_seed_same_model(self, planted: Split) -> None:
        a = BPRMF(factors=8, epochs=2, batch_size=512, seed=5).fit(planted.train)
        b = BPRMF(factors=8, epochs=2, batch_size=512, seed=5).fit(planted.train)
        assert (a.user_vectors() == b.user_vectors()).all()
