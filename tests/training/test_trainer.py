from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fusionrec.errors import ModelError
from fusionrec.training.trainer import Trainer


class Scripted:
    """A model whose validation quality follows a script: good at epoch 2 only."""

    def __init__(self, truth: sp.csr_matrix, script: list[bool]) -> None:
        self.truth = truth.toarray()
        self.script = script
        self.weight = torch.nn.Parameter(torch.tensor([5.0]))
        self.module = torch.nn.Module()
        self.module.register_parameter("w", self.weight)
        self.prepared = 0
        self.weight_at_prepare: list[float] = []
        self.good = False

    def trainable_module(self) -> torch.nn.Module:
        return self.module

    def epoch_batches(self, rng: np.random.Generator) -> list[int]:
        return [0, 1]

    def batch_loss(self, batch: int) -> torch.Tensor:
        return (self.weight**2).sum()

    def prepare_scoring(self) -> None:
        index = min(self.prepared, len(self.script) - 1)
        self.good = self.script[index]
        self.prepared += 1
        self.weight_at_prepare.append(float(self.weight.detach()))

    def score(self, users: np.ndarray) -> np.ndarray:
        rows = self.truth[users]
        return (rows if self.good else 1.0 - rows).astype(np.float32)


def test_early_stopping_and_best_checkpoint_restore() -> None:
    truth = sp.csr_matrix(np.eye(4, 6, dtype=np.float32))
    train = sp.csr_matrix(np.eye(4, 6, k=2, dtype=np.float32))
    model = Scripted(truth, [False, True, False, False, False, False, False])
    history = Trainer(epochs=20, learning_rate=0.1, patience=3, valid_metric="recall@1").fit(model, train, truth)
    assert history.best_epoch == 2 and history.best_value == 1.0
    assert history.stopped_early and history.n_epochs == 5
    # the last prepare_scoring ran after restoring: the weight equals the one of epoch 2's validation
    assert model.weight_at_prepare[-1] == pytest.approx(model.weight_at_prepare[1])
    assert model.weight_at_prepare[-2] != pytest.approx(model.weight_at_prepare[1])
    assert all(e.train_time_s >= 0 for e in history.epochs) and history.time_per_epoch_s >= 0


def test_without_valid_runs_every_epoch_and_rejects_bad_metric() -> None:
    truth = sp.csr_matrix(np.eye(3, dtype=np.float32))
    model = Scripted(truth, [True])
    history = Trainer(epochs=4, learning_rate=0.1).fit(model, truth)
    assert history.n_epochs == 4 and history.best_epoch is None
    with pytest.raises(ValueError, match="valid_metric"):
        Trainer(valid_metric="auc")


def test_divergence_is_reported() -> None:
    class Diverging(Scripted):
        def batch_loss(self, batch: int) -> torch.Tensor:
            return self.weight.sum() * float("nan")

    truth = sp.csr_matrix(np.eye(3, dtype=np.float32))
    with pytest.raises(ModelError, match="diverged"):
        Trainer(epochs=2).fit(Diverging(truth, [True]), truth)
