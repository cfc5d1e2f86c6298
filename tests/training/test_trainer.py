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


class TwoGroups(Scripted):
    """Two parameters, one per optimiser group, the second with learning rate 0 (frozen)."""

    def __init__(self, truth: sp.csr_matrix) -> None:
        super().__init__(truth, [True])
        self.frozen = torch.nn.Parameter(torch.tensor([3.0]))
        self.module.register_parameter("frozen", self.frozen)

    def batch_loss(self, batch: int) -> torch.Tensor:
        return (self.weight**2).sum() + (self.frozen**2).sum()

    def parameter_groups(self) -> list[dict[str, object]]:
        return [{"params": [self.weight]}, {"params": [self.frozen], "lr": 0.0}]


def test_parameter_groups_set_their_own_learning_rate() -> None:
    truth = sp.csr_matrix(np.eye(3, dtype=np.float32))
    model = TwoGroups(truth)
    Trainer(epochs=3, learning_rate=0.1).fit(model, truth)
    assert float(model.weight.detach()) < 5.0 - 0.1, "the default-rate group did not move"
    assert float(model.frozen.detach()) == 3.0, "the lr=0 group moved"
    # without the hook: one group of every parameter, both move
    plain = Scripted(truth, [True])
    Trainer(epochs=1, learning_rate=0.1).fit(plain, truth)
    assert float(plain.weight.detach()) < 5.0


def test_parameter_groups_are_checked() -> None:
    truth = sp.csr_matrix(np.eye(3, dtype=np.float32))

    class Twice(TwoGroups):
        def parameter_groups(self) -> list[dict[str, object]]:
            return [{"params": [self.weight]}, {"params": [self.weight, self.frozen]}]

    class Empty(TwoGroups):
        def parameter_groups(self) -> list[dict[str, object]]:
            return [{"lr": 0.1}]

    with pytest.raises(ValueError, match="more than one group"):
        Trainer(epochs=1).fit(Twice(truth), truth)
    with pytest.raises(ValueError, match="no 'params'"):
        Trainer(epochs=1).fit(Empty(truth), truth)


def test_min_steps_holds_off_early_stopping() -> None:
    truth = sp.csr_matrix(np.eye(4, 6, dtype=np.float32))
    train = sp.csr_matrix(np.eye(4, 6, k=2, dtype=np.float32))
    script = [False, True] + [False] * 30
    # 2 batches per epoch: patience 3 alone stops at epoch 5; 20 steps hold it until epoch 10
    history = Trainer(epochs=30, patience=3, min_steps=20, valid_metric="recall@1").fit(Scripted(truth, script), train, truth)
    assert history.stopped_early and history.n_epochs == 10 and history.n_steps == 20 and history.best_epoch == 2
    history = Trainer(epochs=30, patience=3, valid_metric="recall@1").fit(Scripted(truth, script), train, truth)
    assert history.n_epochs == 5


def test_training_imports_neither_models_nor_eval() -> None:
    import ast
    from pathlib import Path

    import fusionrec.training

    root = Path(fusionrec.training.__file__).parent
    for source in root.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(("fusionrec.models", "fusionrec.eval")), f"{source.name} imports {name}"
