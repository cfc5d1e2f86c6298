"""Shared plumbing of the PyTorch models: the trainer hook-up, state saving, pair batches."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field

from fusionrec.models.base import ModelConfig, Recommender
from fusionrec.training.sampling import bpr_triples, interaction_keys
from fusionrec.training.trainer import Trainer, TrainHistory

PARAM_PREFIX = "param."



class FactorModelConfig(ModelConfig):
    """Hyper-parameters every embedding model trained with BPR by the shared Trainer has."""

    factors: int = Field(64, ge=1)
    reg: float = Field(1e-4, ge=0)
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(4096, ge=1)
    learning_rate: float = Field(5e-3, gt=0)
    patience: int = Field(5, ge=1)
    valid_metric: str = "recall@20"
    eval_every: int = Field(1, ge=1)
    init_std: float = Field(0.1, gt=0)
    seed: int = 0
    verbose: bool = False

class TripleBatches:
    """One epoch of shuffled ``(user, positive, negative)`` index tensors in batches (sized)."""

    def __init__(self, users: np.ndarray, positives: np.ndarray, negatives: np.ndarray, batch_size: int) -> None:
        self.tensors = [torch.from_numpy(a) for a in (users, positives, negatives)]
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.tensors[0]) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.tensors[0]), self.batch_size):
            stop = start + self.batch_size
            yield self.tensors[0][start:stop], self.tensors[1][start:stop], self.tensors[2][start:stop]


class TorchRecommender(Recommender):
    """Base of the iterative PyTorch models.

    Subclasses build their ``torch.nn.Module`` in :meth:`_build_module`, define
    :meth:`batch_loss`, and fill ``self._exported`` (numpy arrays that ``score`` reads) in
    :meth:`prepare_scoring`. They must have the hyper-parameters ``epochs``, ``batch_size``,
    ``learning_rate``, ``patience``, ``valid_metric``, ``eval_every``, ``seed`` and ``verbose``.
    """

    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    valid_metric: str
    eval_every: int
    seed: int
    verbose: bool

    def __init__(self) -> None:
        self.module: torch.nn.Module | None = None
        self._exported: dict[str, np.ndarray] = {}
        self._train: sp.csr_matrix | None = None
        self._train_keys: np.ndarray | None = None
        self.history_: TrainHistory | None = None

    # ---------------------------------------------------------------- subclass hooks
    @abstractmethod
    def _build_module(self) -> torch.nn.Module:
        """A freshly initialised module for ``self.n_users`` x ``self.n_items``."""

    def _prepare_training(self, train: sp.csr_matrix, features: Any | None) -> None:
        """Precompute what training needs besides the module (e.g. the graph)."""

    @abstractmethod
    def batch_loss(self, batch: Any) -> torch.Tensor: ...

    @abstractmethod
    def prepare_scoring(self) -> None: ...

    # ---------------------------------------------------------------- Trainable
    def trainable_module(self) -> torch.nn.Module:
        assert self.module is not None
        return self.module

    def epoch_batches(self, rng: np.random.Generator) -> TripleBatches:
        """Default: every training pair once with a uniform negative (BPR)."""
        assert self._train is not None
        users, positives, negatives = bpr_triples(self._train, rng, keys=self._train_keys)
        return TripleBatches(users, positives, negatives, self.batch_size)

    def make_trainer(self) -> Trainer:
        return Trainer(
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            patience=self.patience,
            valid_metric=self.valid_metric,
            eval_every=self.eval_every,
            seed=self.seed,
            progress=self.verbose,
        )

    def _fit(self, train: sp.csr_matrix, features: Any | None, valid: sp.csr_matrix | None) -> None:
        torch.manual_seed(self.seed)
        self.module = self._build_module()
        self._train = train
        self._train_keys = interaction_keys(train)
        self._prepare_training(train, features)
        self._fitted = True  # score() is valid from here on (the trainer validates with it)
        try:
            self.history_ = self.make_trainer().fit(self, train, valid)
        finally:
            self._train, self._train_keys = None, None
            self._release_training()

    def _release_training(self) -> None:
        """Drop training-only buffers (graphs) once fitted."""

    # ---------------------------------------------------------------- persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        assert self.module is not None
        params = {PARAM_PREFIX + k: v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}
        return params | self._exported

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.module = self._build_module()
        params = {k[len(PARAM_PREFIX) :]: torch.from_numpy(np.array(v)) for k, v in state.items() if k.startswith(PARAM_PREFIX)}
        self.module.load_state_dict(params)
        self.module.eval()
        self._exported = {k: v for k, v in state.items() if not k.startswith(PARAM_PREFIX)}


class FactorModel(TorchRecommender):
    """A torch model whose scores are ``user_factors @ item_factors.T`` (exported as numpy)."""

    def score(self, users: np.ndarray) -> np.ndarray:
        index = self._check_users(users)
        return self._exported["user_factors"][index] @ self._exported["item_factors"].T  # type: ignore[no-any-return]

    def user_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self._exported["user_factors"]

    def item_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self._exported["item_factors"]

    def _export_factors(self, user_factors: torch.Tensor, item_factors: torch.Tensor) -> None:
        self._exported = {
            "user_factors": np.ascontiguousarray(user_factors.detach().cpu().numpy(), dtype=np.float32).copy(),
            "item_factors": np.ascontiguousarray(item_factors.detach().cpu().numpy(), dtype=np.float32).copy(),
        }
