from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fusionrec.data.splits import Split
from fusionrec.errors import ModelError, NotFittedError
from fusionrec.eval.evaluator import Evaluator
from fusionrec.models.mf import BPRMF
from fusionrec.models.popularity import MostPop
from fusionrec.models.torch_base import auto_batch_size

from .conftest import planted_split
from .contract import RecommenderContract


class TestBPRMF(RecommenderContract):
    partial_fit_atol = 1e-2  # a warm-started BPR fold-in (contract docstring)

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


def sparse_planted(n_users: int = 500, n_clusters: int = 10, items_per_cluster: int = 30, seed: int = 0) -> Split:
    """Like conftest's planted split but small and sparse: ~3.5k training pairs, so the old fixed
    batch of 4096 made an epoch one optimiser step."""
    return planted_split(n_users, n_clusters, items_per_cluster, seed, p_same=0.25, p_other=0.01, strategy="planted-sparse")


def test_defaults_beat_mostpop_on_small_sparse_data() -> None:
    split = sparse_planted()
    assert len(split.train) < 4096
    model = BPRMF().fit(split.train, valid=split.valid)
    history = model.history_
    assert history is not None and history.n_steps >= model.min_steps
    assert model.effective_batch_size(len(split.train)) < len(split.train) / 4
    evaluator = Evaluator(ks=(20,), beyond=False)
    ours = evaluator.evaluate(model, split, on="test").mean()["recall@20"]
    baseline = evaluator.evaluate(MostPop().fit(split.train), split, on="test").mean()["recall@20"]
    assert ours > baseline + 0.05, f"recall@20 {ours:.3f} vs MostPop {baseline:.3f}"


def test_auto_batch_size() -> None:
    assert auto_batch_size(3_500, 8) == 512  # 437 -> nearest power of two
    assert auto_batch_size(100, 8) == 128  # floor
    assert auto_batch_size(669_156, 8, largest=8192) == 8192  # ML-1M: the old tuned batch
    assert BPRMF(batch_size=300).effective_batch_size(10**6) == 300


def test_failed_training_leaves_the_model_unfitted(planted: Split) -> None:
    diverging = BPRMF(factors=4, epochs=3, learning_rate=1e30, init_std=1.0, reg=0.0, min_steps=0)
    with pytest.raises(ModelError, match="diverged"):
        diverging.fit(planted.train, valid=planted.valid)
    with pytest.raises(NotFittedError):
        diverging.score(np.array([0]))
    # a fitted model whose refit fails is not left "fitted" with half-trained weights either
    model = BPRMF(factors=4, epochs=1, min_steps=0).fit(planted.train)
    model.learning_rate, model.init_std, model.reg = 1e30, 1.0, 0.0
    with pytest.raises(ModelError, match="diverged"):
        model.fit(planted.train)
    with pytest.raises(NotFittedError):
        model.score(np.array([0]))


def test_user_items_and_vector_measure(planted: Split) -> None:
    model = BPRMF(factors=4, epochs=1, min_steps=0).fit(planted.train)
    assert BPRMF.vector_measure == "inner_product"
    # a history is folded in (item vectors fixed): the training row gives a valid score row
    live = model.score(np.array([-1]), user_items=planted.csr("train")[[0]])
    assert live.shape == (1, planted.n_items) and np.isfinite(live).all()
    assert model.score(np.array([0]), user_items=None).shape == (1, planted.n_items)
    # the item bias is one more factor column, so the vectors still give the scores
    assert model.user_vectors().shape[1] == 5 and (model.user_vectors()[:, -1] == 1).all()


def test_device_setting() -> None:
    assert BPRMF().get_config().device == "cpu"  # type: ignore[attr-defined]
    train = sp.csr_matrix(np.eye(4, 6, dtype=np.float32))
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            BPRMF(device="cuda", epochs=1).fit(train)
    with pytest.raises(ModelError, match="unknown torch device"):
        BPRMF(device="gpu0", epochs=1).fit(train)
    model = BPRMF(device="cpu", epochs=1, min_steps=0).fit(train)
    assert model.module is not None and all(p.device.type == "cpu" for p in model.module.parameters())
