"""Shared plumbing of the PyTorch models: the trainer hook-up, the device, state saving, pair batches."""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.errors import ModelError
from fusionrec.models.base import Recommender
from fusionrec.models.cold_items import ContentToEmbedding
from fusionrec.models.fold_in import BPRFoldIn
from fusionrec.models.history import check_update
from fusionrec.training.sampling import bpr_triples, interaction_keys
from fusionrec.training.trainer import Trainer, TrainHistory

PARAM_PREFIX = "param."
#: the ridge of the fold-in objective (:mod:`fusionrec.models.fold_in`) for new feedback and new users
FOLD_IN_REG = 0.01



def auto_batch_size(n_pairs: int, batches_per_epoch: int, smallest: int = 128, largest: int = 16384) -> int:
    """The power of two nearest ``n_pairs / batches_per_epoch`` (in log scale), within ``[smallest, largest]``:
    small data gets batches small enough for several steps per epoch, large data large ones (fast epochs)."""
    target = max(n_pairs / max(batches_per_epoch, 1), 1.0)
    size = 2 ** round(math.log2(target))
    return int(min(max(size, smallest), largest))


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``, with a clear ModelError when it is unknown or not available here."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ModelError(f"unknown torch device {name!r}: {exc}") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(f"device {name!r} asked for, but CUDA is not available (torch {torch.__version__}); use device='cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ModelError(f"device {name!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ModelError(f"device {name!r} asked for, but MPS is not available; use device='cpu'")
    return device


class TripleBatches:
    """One epoch of shuffled ``(user, positive, negative)`` index tensors in batches (sized)."""

    def __init__(
        self,
        users: np.ndarray,
        positives: np.ndarray,
        negatives: np.ndarray,
        batch_size: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.tensors = [torch.from_numpy(a).to(device) for a in (users, positives, negatives)]
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
    ``learning_rate``, ``patience``, ``min_steps``, ``valid_metric``, ``eval_every``, ``seed``,
    ``device`` and ``verbose``.

    Training runs on ``device`` (CPU unless CUDA is asked for); ``prepare_scoring`` exports what
    ``score`` reads to CPU numpy, and the module goes back to the CPU once fitted, so scoring,
    saving and loading never touch the accelerator. The model counts as fitted only once training
    has succeeded; while it runs, the trainer may score it (:attr:`_in_training`).
    """

    epochs: int
    batch_size: int | None
    learning_rate: float | None
    patience: int
    min_steps: int
    valid_metric: str
    eval_every: int
    seed: int
    device: str
    verbose: bool

    #: with ``batch_size=None``, aim at about this many batches per epoch (see :func:`auto_batch_size`)
    batches_per_epoch: ClassVar[int] = 64
    #: ... and never more than this many pairs in one batch
    max_auto_batch_size: ClassVar[int] = 8192

    def __init__(self) -> None:
        self.module: torch.nn.Module | None = None
        self._exported: dict[str, np.ndarray] = {}
        self._train: sp.csr_matrix | None = None
        self._train_keys: np.ndarray | None = None
        self.history_: TrainHistory | None = None
        self._in_training = False
        self._device = torch.device("cpu")

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
        return TripleBatches(users, positives, negatives, self.effective_batch_size(self._train.nnz), self._device)

    def effective_batch_size(self, n_pairs: int) -> int:
        """``batch_size``, or when it is None the data-sized default for ``n_pairs`` training pairs."""
        if self.batch_size is not None:
            return self.batch_size
        return auto_batch_size(n_pairs, self.batches_per_epoch, largest=self.max_auto_batch_size)

    def effective_learning_rate(self, n_pairs: int) -> float:
        """The learning rate used for ``n_pairs`` training pairs (models may size it to the batch)."""
        if self.learning_rate is None:
            raise ModelError(f"{self.name} has no automatic learning rate; set learning_rate")
        return float(self.learning_rate)

    def make_trainer(self) -> Trainer:
        n_pairs = self._train.nnz if self._train is not None else 0
        return Trainer(
            epochs=self.epochs,
            learning_rate=self.effective_learning_rate(n_pairs),
            patience=self.patience,
            min_steps=self.min_steps,
            valid_metric=self.valid_metric,
            eval_every=self.eval_every,
            seed=self.seed,
            progress=self.verbose,
        )

    @property
    def training_device(self) -> torch.device:
        """Where the module and the batches live while training (CPU otherwise)."""
        return self._device

    def _fit(self, train: sp.csr_matrix, features: Any | None, valid: sp.csr_matrix | None) -> None:
        self._fitted = False  # a failed refit must not leave the previous fit's flag on new weights
        self._device = resolve_device(self.device)
        torch.manual_seed(self.seed)
        self.module = self._build_module().to(self._device)
        self._exported = {}
        self._train = train
        self._train_keys = interaction_keys(train)
        self._in_training = True  # score() is valid from here on for the trainer's validation only
        try:
            self._prepare_training(train, features)
            self.history_ = self.make_trainer().fit(self, train, valid)
        except BaseException:
            self._exported = {}
            raise
        finally:
            self._in_training = False
            self._train, self._train_keys = None, None
            self._release_training()
            self.module.to("cpu")
            self._device = torch.device("cpu")
        # Recommender.fit marks the model fitted once this returns

    def _release_training(self) -> None:
        """Drop training-only buffers (graphs) once fitted."""

    def _check_fitted(self) -> None:
        if self._in_training:
            return  # the trainer scores the current weights to validate them
        super()._check_fitted()

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
    """A torch model whose scores are ``user_factors @ item_factors.T`` (exported as numpy).

    Cold items: fitted with a FeatureSet, an ID model (``maps_cold_items``) learns a
    content-to-embedding map once trained (:mod:`fusionrec.models.cold_items`); every item without
    training interactions is then served its mapped vector, and :meth:`score_items` scores items
    known only by their features. Models whose item side reads content themselves (VBPR, the two
    tower) turn this off.
    """

    #: how ``user_vectors() @ item_vectors().T`` relates to ``score`` (an ANN index reads it)
    vector_measure: ClassVar[str] = "inner_product"
    maps_cold_items: ClassVar[bool] = True
    #: the content-to-embedding map (None: fitted without features, or the model reads content itself)
    cold_map: ContentToEmbedding | None = None
    _solver: BPRFoldIn | None = None
    _solver_items: np.ndarray | None = None

    def _fit(self, train: sp.csr_matrix, features: Any | None, valid: sp.csr_matrix | None) -> None:
        self.cold_map = None
        super()._fit(train, features, valid)
        if self.maps_cold_items and features is not None and getattr(features, "modalities", None):
            self._fit_cold_map(train, features)

    def _fit_cold_map(self, train: sp.csr_matrix, features: Any) -> None:
        """Fit the map on the warm items and serve mapped vectors for the items nobody trained on."""
        counts = np.asarray(train.getnnz(axis=0)).ravel()
        items, users = self._exported["item_factors"], self._exported["user_factors"]
        try:
            cold_map = ContentToEmbedding().fit(features, items, counts, users)
        except ModelError as exc:
            raise ModelError(f"{self.name}: cold-item map: {exc}") from None
        cold = np.flatnonzero(counts == 0)
        if len(cold):
            items = items.copy()
            items[cold] = cold_map.predict(cold_map.encode(features)[cold])
            self._exported["item_factors"] = items
        self.cold_map = cold_map
        self._exported |= cold_map.state()

    def score_items(self, users: np.ndarray, item_features: Any) -> np.ndarray:
        """``(len(users), len(item_features.ids))`` float32 scores of training users for items known
        only by their features (a FeatureSet with the modalities the map was fitted on)."""
        index = self._check_users(users)
        if self.cold_map is None:
            raise ModelError(
                f"{self.name} was fitted without item features, so it has no content-to-embedding map "
                "for new items; fit it with features (--features DIR)"
            )
        vectors = self.cold_map.predict_features(item_features)
        return np.asarray(self._exported["user_factors"][index] @ vectors.T, dtype=np.float32)

    def _fold_in_solver(self) -> BPRFoldIn:
        """The fold-in solver over the current item vectors (built once, dropped when they change)."""
        self._check_fitted()
        items = self._exported["item_factors"]
        if self._solver is None or self._solver_items is not items:  # refitted, loaded or remapped
            users = self._exported["user_factors"]
            bias_column = len(users) > 0 and bool(np.all(users[:, -1] == 1.0))
            fixed, values = ([items.shape[1] - 1], [1.0]) if bias_column else ([], [])
            self._solver = BPRFoldIn(items, reg=FOLD_IN_REG, fixed=fixed, fixed_values=values)
            self._solver_items = items
        return self._solver

    def fold_in_users(self, rows: sp.csr_matrix, init: np.ndarray | None = None) -> np.ndarray:
        """``(n_rows, d)`` float32 user vectors for histories ``rows`` (``(n_rows, n_items)``), the item
        vectors fixed (:class:`fusionrec.models.fold_in.BPRFoldIn`: the BPR objective these models
        train with, solved exactly by Newton from ``init`` or the seed items' mean);
        ``vectors @ item_vectors().T`` scores those users. A folded-in item bias keeps its constant
        user column."""
        rows = sp.csr_matrix(rows)
        if rows.shape[1] != self.n_items:
            raise ModelError(f"history rows have {rows.shape[1]} columns, the model {self.n_items} items")
        return self._fold_in_solver().solve(rows, init)

    def partial_fit_users(self, users: np.ndarray, interactions: sp.csr_matrix) -> None:
        """Set the histories of ``users`` to ``interactions`` (``(len(users), n_items)``, each user's whole
        current history) and fold their vectors in at once, warm-started from the current ones; an
        index ``>= n_users`` adds a user. The item side is not retrained."""
        self._check_fitted()
        index, rows = check_update(users, interactions, self.n_items)
        table = self._exported["user_factors"]
        grown = max(self.n_users, int(index.max()) + 1 if len(index) else 0)
        if grown > self.n_users:
            table = np.concatenate([table, np.zeros((grown - self.n_users, table.shape[1]), dtype=np.float32)])
            self._exported["user_factors"] = table
            self.n_users = grown
        known = np.abs(table[index]).sum(axis=1) > 0
        init = np.where(known[:, None], table[index], np.nan)  # NaN rows start from the seed mean
        table[index] = self.fold_in_users(rows, init=init)

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        super()._set_state(state)
        self.cold_map = ContentToEmbedding.from_state(self._exported)

    def score(self, users: np.ndarray, user_items: sp.csr_matrix | None = None) -> np.ndarray:
        """``(len(users), n_items)`` float32 scores from the fitted factors; with ``user_items``
        (history rows aligned with ``users``) the users' vectors are folded in from those rows
        (:meth:`fold_in_users`; the user index is not looked up, so -1 is fine)."""
        if user_items is None:
            index = self._check_users(users)
            vectors = self._exported["user_factors"][index]
        else:
            vectors = self.fold_in_users(self._history_rows(users, user_items))
        return np.asarray(vectors @ self._exported["item_factors"].T, dtype=np.float32)

    def user_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self._exported["user_factors"]

    def item_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self._exported["item_factors"]

    def _export_factors(
        self, user_factors: torch.Tensor, item_factors: torch.Tensor, item_bias: torch.Tensor | None = None
    ) -> None:
        """Store the factors as CPU float32 numpy; an item bias ``b_i`` becomes one more column
        (``1`` for users, ``b_i`` for items), so scores stay a plain inner product."""
        users = user_factors.detach().to("cpu", torch.float32)
        items = item_factors.detach().to("cpu", torch.float32)
        if item_bias is not None:
            users = torch.cat([users, torch.ones(len(users), 1)], dim=1)
            items = torch.cat([items, item_bias.detach().to("cpu", torch.float32).reshape(-1, 1)], dim=1)
        self._exported = {
            "user_factors": np.ascontiguousarray(users.numpy(), dtype=np.float32).copy(),
            "item_factors": np.ascontiguousarray(items.numpy(), dtype=np.float32).copy(),
        }
