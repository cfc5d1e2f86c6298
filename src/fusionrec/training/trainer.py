"""The one training loop every iterative model uses.

The model says what a batch is and what its loss is (:class:`Trainable`); the trainer owns the
rest: seeding, epochs, the optimiser, the progress bar, a log line per epoch, early stopping on a
validation metric computed by :func:`fusionrec.ranking.heldout.mean_ranking_metric` (training
items excluded; the same batch step and numbers as the evaluator), and restoring the best epoch's weights at the end.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sized
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from fusionrec.ranking.heldout import HeldOut, mean_ranking_metric
from fusionrec.ranking.keys import check_valid_metric

log = logging.getLogger(__name__)


class Trainable(Protocol):
    """What a model gives the trainer."""

    def trainable_module(self) -> torch.nn.Module:
        """The parameters to optimise (and ``train()``/``eval()`` switching)."""
        ...

    def epoch_batches(self, rng: np.random.Generator) -> Iterable[Any]:
        """The batches of one epoch (sampled with ``rng``); a sized iterable gives a progress total."""
        ...

    def batch_loss(self, batch: Any) -> torch.Tensor:
        """Scalar loss of one batch."""
        ...

    def prepare_scoring(self) -> None:
        """Refresh whatever ``score`` reads (e.g. propagated embeddings) from the current weights."""
        ...

    # Optional: ``parameter_groups(self) -> list[dict[str, Any]]`` -- torch optimiser parameter
    # groups (``{"params": [...], "lr": ...}``, e.g. a lower rate for a pretrained encoder than for
    # the embeddings); without it the trainer optimises ``trainable_module().parameters()`` as one group.

    def score(self, users: np.ndarray) -> np.ndarray: ...


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    train_time_s: float
    valid_metric: float | None = None
    eval_time_s: float | None = None


@dataclass
class TrainHistory:
    """What happened during training (kept on the model as ``history_``)."""

    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    metric: str = ""
    stopped_early: bool = False
    n_steps: int = 0

    @property
    def n_epochs(self) -> int:
        return len(self.epochs)

    @property
    def train_time_s(self) -> float:
        return float(sum(e.train_time_s for e in self.epochs))

    @property
    def eval_time_s(self) -> float:
        return float(sum(e.eval_time_s or 0.0 for e in self.epochs))

    @property
    def time_per_epoch_s(self) -> float:
        return self.train_time_s / max(self.n_epochs, 1)


class Trainer:
    """Epoch loop with Adam, early stopping and best-checkpoint restore.

    Parameters
    ----------
    epochs:
        maximum number of epochs.
    learning_rate, weight_decay:
        Adam's (the defaults of groups that do not set their own; see :meth:`parameter_groups`).
    patience:
        stop after this many validations without improvement of ``valid_metric`` ...
    min_steps:
        ... but never before this many optimiser steps: on small data an epoch is a handful of
        batches, and patience counted in epochs alone would stop before learning starts.
    valid_metric:
        key such as ``"recall@20"`` (any of :data:`~fusionrec.ranking.keys.RANKING_METRICS` at a cut-off).
    eval_every:
        validate every this many epochs (and after the last one).
    seed:
        seeds torch and the batch sampler.
    progress:
        show a tqdm bar over each epoch's batches.
    """

    def __init__(
        self,
        epochs: int = 50,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        patience: int = 5,
        min_steps: int = 0,
        valid_metric: str = "recall@20",
        eval_every: int = 1,
        seed: int = 0,
        progress: bool = False,
        eval_batch_size: int = 2048,
    ) -> None:
        check_valid_metric(valid_metric)
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.min_steps = max(0, min_steps)
        self.valid_metric = valid_metric
        self.eval_every = max(1, eval_every)
        self.seed = seed
        self.progress = progress
        self.eval_batch_size = eval_batch_size

    def fit(self, model: Trainable, train: sp.csr_matrix, valid: sp.csr_matrix | None = None) -> TrainHistory:
        """Train ``model``; with ``valid``, stop early and restore the best epoch's weights."""
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        self._heldout: HeldOut | None = None
        module = model.trainable_module()
        optimizer = torch.optim.Adam(
            parameter_groups(model, module), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        history = TrainHistory(metric=self.valid_metric)
        best_state: dict[str, torch.Tensor] | None = None
        since_best = 0
        for epoch in range(1, self.epochs + 1):
            record, steps = self._run_epoch(model, module, optimizer, rng, epoch)
            history.epochs.append(record)
            history.n_steps += steps
            line = f"epoch {epoch}/{self.epochs} loss {record.loss:.4f} ({record.train_time_s:.1f}s)"
            if valid is not None and (epoch % self.eval_every == 0 or epoch == self.epochs):
                value, eval_time = self._validate(model, module, train, valid)
                record.valid_metric, record.eval_time_s = value, eval_time
                improved = history.best_value is None or value > history.best_value
                if improved:
                    history.best_value, history.best_epoch = value, epoch
                    best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                    since_best = 0
                else:
                    since_best += 1
                line += f" valid {self.valid_metric} {value:.4f}{' *' if improved else ''} ({eval_time:.2f}s)"
                log.info(line)
                if since_best >= self.patience and history.n_steps >= self.min_steps:
                    history.stopped_early = True
                    log.info("early stop: no improvement in %d validations; best epoch %s", since_best, history.best_epoch)
                    break
            else:
                log.info(line)
        if best_state is not None:
            module.load_state_dict(best_state)
        module.eval()
        with torch.no_grad():
            model.prepare_scoring()
        return history

    def _run_epoch(
        self,
        model: Trainable,
        module: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        rng: np.random.Generator,
        epoch: int,
    ) -> tuple[EpochRecord, int]:
        start = time.perf_counter()
        module.train()
        batches = model.epoch_batches(rng)
        total = len(batches) if isinstance(batches, Sized) else None
        loss_sum: torch.Tensor | None = None  # on the loss's device: no host sync per batch
        n_batches = 0
        bar = tqdm(batches, total=total, desc=f"epoch {epoch}", leave=False, disable=not self.progress)
        for batch in bar:
            optimizer.zero_grad(set_to_none=True)
            loss = model.batch_loss(batch)
            loss.backward()
            optimizer.step()
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
            n_batches += 1
        mean_loss = float(loss_sum) / n_batches if loss_sum is not None else 0.0
        if not math.isfinite(mean_loss):
            from fusionrec.errors import ModelError

            raise ModelError(f"training diverged at epoch {epoch} (loss {mean_loss}); lower the learning rate")
        return EpochRecord(epoch=epoch, loss=mean_loss, train_time_s=time.perf_counter() - start), n_batches

    def _validate(
        self, model: Trainable, module: torch.nn.Module, train: sp.csr_matrix, valid: sp.csr_matrix
    ) -> tuple[float, float]:
        start = time.perf_counter()
        module.eval()
        with torch.no_grad():
            model.prepare_scoring()
        if self._heldout is None:
            self._heldout = HeldOut.build(valid, train)
        value = mean_ranking_metric(model, self._heldout, self.valid_metric, self.eval_batch_size)
        return value, time.perf_counter() - start


def parameter_groups(model: Trainable, module: torch.nn.Module) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: ``model.parameter_groups()`` when the model has it, else one
    group of every parameter of ``module``. Each group is checked to hold parameters, and no
    parameter may sit in two groups (torch would reject it with a less clear message)."""
    hook = getattr(model, "parameter_groups", None)
    if hook is None:
        return [{"params": list(module.parameters())}]
    groups = [dict(group) for group in hook()]
    seen: set[int] = set()
    for number, group in enumerate(groups):
        if "params" not in group:
            raise ValueError(f"parameter group {number} has no 'params'")
        params = group["params"]
        group["params"] = [params] if isinstance(params, torch.Tensor) else list(params)
        for param in group["params"]:
            if id(param) in seen:
                raise ValueError(f"a parameter appears in more than one group (group {number})")
            seen.add(id(param))
    if not seen:
        raise ValueError("parameter_groups() returned no parameters")
    return groups
