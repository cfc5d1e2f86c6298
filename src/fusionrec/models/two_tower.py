"""Two-tower retrieval: an item tower over item content (+ ID), a user tower over ID and/or history.

``score(u, i) = <u_vec, v_i>`` (cosines with ``normalize``); the towers are in
:mod:`fusionrec.models.two_tower_towers`. Trained by the shared Trainer with one of three losses:

- ``bpr``: ``-log sigmoid((s_ui - s_uj) / T)`` with one uniform negative ``j`` per pair;
- ``bce``: sigmoid cross-entropy, the pair labelled 1 and ``n_negatives`` uniform negatives 0;
- ``softmax``: sampled softmax with temperature ``T``: each pair's positive against negatives the
  batch shares, the positives of its first ``in_batch_negatives`` rows (in-batch negatives, a
  popularity-distributed sample) and ``uniform_negatives`` uniform items (the uniform negatives of
  its first rows). A row's own positive is masked out; its other training items are not
  (accidental hits, rare on large catalogues). With ``logq_correction`` every logit loses
  ``log q``, the item's probability of being drawn (from its training share; cheap: one log per
  item per batch), so the loss estimates a full softmax instead of punishing popular items for
  being frequent negatives. Its cost is one ``(batch, negatives)`` matrix per batch.

With a history user tower a training pair's user is pooled over its history without that pair's
item (leave-target-out, so the loss cannot be met by copying the input); scoring pools the whole
history, so ``score(users, user_items=X)`` is exactly what any user with history ``X`` gets, with no
retraining (``user_tower="both"``: the ID part of known users from the trained model; a user unseen
in training, index ``-1``, is scored from the history alone).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel

from fusionrec.errors import ModelError
from fusionrec.fusion.config import AnyFuserConfig, AttentionFuserConfig, parse_fuser_config
from fusionrec.fusion.item_content import ItemContent, select_modalities
from fusionrec.models.base import as_csr, csr_from_state, csr_to_state, empty_csr
from fusionrec.models.configs import TextFinetuneConfig, TwoTowerConfig
from fusionrec.models.history import check_update, replace_rows
from fusionrec.models.torch_base import PARAM_PREFIX, FactorModel, TripleBatches
from fusionrec.models.two_tower_text import TEXT_INPUT, FineTunedText, build_text_input, load_text_input
from fusionrec.models.two_tower_towers import (
    HistoryPool,
    ItemTower,
    TwoTowerModule,
    UserTower,
    log_inclusion,
    mean_rows,
)
from fusionrec.training.losses import bce_loss, bpr_loss, l2_penalty, shared_negatives_softmax_loss
from fusionrec.training.sampling import bpr_triples, sample_negatives
from fusionrec.training.trainer import Trainer

HISTORY_STATE = "user_history"
CONTENT_STATE = PARAM_PREFIX + "items.content."
SCORE_BATCH = 4096


class TwoTower(FactorModel):
    """Two-tower recommender (module docstring); ``user_vectors() @ item_vectors().T`` = ``score``.

    Parameters
    ----------
    dim: output size of both towers.
    user_tower: ``"id"`` (a user embedding), ``"history"`` (an MLP over the mean of the user's
        training items' vectors: new users and new feedback score without retraining) or ``"both"`` (their sum).
    user_hidden: hidden sizes of the history MLP (``()``: one linear map).
    item_id_embedding: add a learned item embedding to the content part (items without training
        interactions keep their content vector alone). Without features the item tower is this
        embedding alone, so it must then be on.
    item_id_dropout: DropoutNet-style: while training, each item's ID vector is dropped with this
        chance, so the content path learns to score items alone (what cold items get).
    modalities, fuser, modality_dropout: the item content (:class:`~fusionrec.fusion.item_content.ItemContent`).
    text_finetune: train the last layers of the text encoder with the recommendation loss instead
        of reading the frozen text vectors (:mod:`fusionrec.models.two_tower_text`; ``None``: frozen).
    tower_hidden, dropout: the item tower's MLP over the fused content (and dropout in both MLPs).
    normalize: unit-length towers (cosine scores); the exported vectors are unit then.
    loss, temperature, n_negatives, in_batch_negatives, uniform_negatives, logq_correction: see the
        module docstring (``n_negatives``: BCE negatives per positive); every loss divides the
        scores by ``temperature`` (use ~1 with ``normalize=False``).
    reg: L2 on the batch's ID embeddings.  weight_decay: Adam's, on every parameter.
    epochs, batch_size, learning_rate, patience, min_steps, valid_metric, eval_every, seed, device,
        verbose: as in :class:`~fusionrec.models.mf.BPRMF` (``batch_size=None``: sized to the data).
    init_std: standard deviation of the ID embeddings' initialisation.
    """

    name = "two_tower"
    config_class = TwoTowerConfig
    uses_features = True
    requires_features = False
    maps_cold_items = False  # the item tower reads content: cold items get their content vector
    batches_per_epoch: ClassVar[int] = 32
    max_auto_batch_size: ClassVar[int] = 8192

    def __init__(
        self,
        *,
        dim: int = 64,
        user_tower: Literal["id", "history", "both"] = "both",
        user_hidden: tuple[int, ...] = (),
        item_id_embedding: bool = True,
        item_id_dropout: float = 0.0,
        modalities: list[str] | None = None,
        fuser: AnyFuserConfig | Mapping[str, Any] | BaseModel = AttentionFuserConfig(dim=64),
        tower_hidden: tuple[int, ...] = (128,),
        dropout: float = 0.1,
        modality_dropout: float = 0.0,
        text_finetune: TextFinetuneConfig | Mapping[str, Any] | None = None,
        normalize: bool = True,
        loss: Literal["bpr", "bce", "softmax"] = "softmax",
        temperature: float = 0.2,
        n_negatives: int = 4,
        in_batch_negatives: int = 1024,
        uniform_negatives: int = 128,
        logq_correction: bool = True,
        reg: float = 0.0,
        weight_decay: float = 0.0,
        epochs: int = 100,
        batch_size: int | None = None,
        learning_rate: float = 1e-3,
        patience: int = 5,
        min_steps: int = 500,
        valid_metric: str = "recall@20",
        eval_every: int = 1,
        init_std: float = 0.01,
        seed: int = 0,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        super().__init__()
        if user_tower not in ("id", "history", "both"):
            raise ModelError(f"user_tower must be 'id', 'history' or 'both', got {user_tower!r}")
        if loss not in ("bpr", "bce", "softmax"):
            raise ModelError(f"loss must be 'bpr', 'bce' or 'softmax', got {loss!r}")
        self.dim, self.user_tower, self.user_hidden = dim, user_tower, tuple(user_hidden)
        self.item_id_embedding, self.modalities = item_id_embedding, modalities
        self.item_id_dropout = item_id_dropout
        try:
            self.fuser: AnyFuserConfig = parse_fuser_config(fuser)
        except ValueError as exc:
            raise ModelError(f"two_tower fuser: {exc}") from None
        self.tower_hidden, self.dropout, self.modality_dropout = tuple(tower_hidden), dropout, modality_dropout
        self.text_finetune = (
            text_finetune if text_finetune is None or isinstance(text_finetune, TextFinetuneConfig)
            else TextFinetuneConfig.model_validate(dict(text_finetune))
        )  # fmt: skip
        self._loading_state: dict[str, np.ndarray] | None = None
        self.normalize, self.loss, self.temperature = normalize, loss, temperature
        self.n_negatives, self.logq_correction = n_negatives, logq_correction
        self.in_batch_negatives, self.uniform_negatives = in_batch_negatives, uniform_negatives
        if loss == "softmax" and in_batch_negatives + uniform_negatives < 1:
            raise ModelError("two_tower: the softmax loss needs in_batch_negatives or uniform_negatives > 0")
        self.reg, self.weight_decay = reg, weight_decay
        self.epochs, self.batch_size, self.learning_rate = epochs, batch_size, learning_rate
        self.patience, self.min_steps, self.valid_metric, self.eval_every = patience, min_steps, valid_metric, eval_every
        self.init_std, self.seed, self.device, self.verbose = init_std, seed, device, verbose
        #: (n_users, n_items) binary training histories the history tower pools (the snapshot)
        self.history_matrix: sp.csr_matrix = empty_csr()
        self._fit_features: Any | None = None
        self._content_dims: dict[str, int] | None = None
        self._pool: HistoryPool | None = None
        self._item_share: torch.Tensor | None = None

    @property
    def scores_from_history(self) -> bool:
        """Whether the user tower reads the history (``score(users, user_items=X)`` works)."""
        return self.user_tower != "id"

    # ---------------------------------------------------------------- building
    def _fit(self, train: sp.csr_matrix, features: Any | None, valid: sp.csr_matrix | None) -> None:
        self._fit_features, self._content_dims = features, None
        try:
            super()._fit(train, features, valid)
        finally:
            self._fit_features = None

    def _build_module(self) -> torch.nn.Module:
        items = ItemTower(
            self.n_items,
            self.dim,
            self._build_content(),
            self._extra_item_inputs(),
            self.tower_hidden,
            self.dropout,
            self.item_id_embedding,
            self.init_std,
            self.item_id_dropout,
        )
        users = UserTower(
            self.n_users,
            self.dim,
            use_id=self.user_tower != "history",
            use_history=self.scores_from_history,
            hidden=self.user_hidden,
            dropout=self.dropout,
            init_std=self.init_std,
        )
        return TwoTowerModule(items, users, self.normalize)

    def _build_content(self) -> ItemContent | None:
        """From the FeatureSet while fitting, from the saved dims when loading, else None (ID only)."""
        try:
            if self._fit_features is not None:
                names = select_modalities(self._fit_features, self.modalities)
                if self.text_finetune is not None:  # the text comes from the fine-tuned encoder instead
                    names = [name for name in names if name != "text"]
                    if not names:
                        return None
                return ItemContent.from_features(self._fit_features, names, self.fuser, self.modality_dropout)
            if self._content_dims is not None:
                return ItemContent(self._content_dims, self.n_items, self.fuser, self.modality_dropout)
        except ModelError as exc:
            raise ModelError(f"two_tower: {exc}") from None
        return None

    def _extra_item_inputs(self) -> dict[str, torch.nn.Module]:
        """Extra item-tower inputs: ``{name: module}``, each mapping ``(batch,)`` item indices (None:
        all) to ``(batch, module.out_dim)``, concatenated with the content before the tower MLP.

        With ``text_finetune``: the fine-tuned text encoder (:mod:`fusionrec.models.two_tower_text`),
        built from the FeatureSet's recorded texts while fitting, from the saved arrays when loading.
        """
        if self.text_finetune is None:
            return {}
        if self._fit_features is not None:
            return {TEXT_INPUT: build_text_input(self._fit_features, self.text_finetune)}
        if self._loading_state is not None:
            prefix = PARAM_PREFIX + f"items.extra_inputs.{TEXT_INPUT}."
            return {TEXT_INPUT: load_text_input(self._loading_state, prefix, self.text_finetune)}
        raise ModelError("two_tower text_finetune: no features to build the text encoder from")

    def _text_input(self) -> FineTunedText | None:
        module = self._module().items.extra_inputs
        text = dict(module.items()).get(TEXT_INPUT)
        return text if isinstance(text, FineTunedText) else None

    def parameter_groups(self) -> list[dict[str, Any]]:
        """One group for everything, plus the fine-tuned text layers at their own rate."""
        module = self._module()
        text = self._text_input()
        if text is None:
            return [{"params": list(module.parameters())}]
        own = {id(p) for p in text.parameters()}
        rest = [p for p in module.parameters() if id(p) not in own]
        return [{"params": rest}, *text.parameter_groups()]

    def _module(self) -> TwoTowerModule:
        module = self.trainable_module()
        assert isinstance(module, TwoTowerModule)
        return module

    # ---------------------------------------------------------------- training
    def make_trainer(self) -> Trainer:
        trainer = super().make_trainer()
        trainer.weight_decay = self.weight_decay
        return trainer

    def _prepare_training(self, train: sp.csr_matrix, features: Any | None) -> None:
        counts = np.asarray(train.getnnz(axis=0)).ravel()
        self._module().items.id_mask.copy_(torch.from_numpy((counts > 0).astype(np.float32)))
        if self.scores_from_history:
            self.history_matrix = train
            self._pool = HistoryPool(train, self.training_device)
        if self.loss == "softmax" and self.logq_correction:
            share = (counts / max(train.nnz, 1)).astype(np.float32)
            self._item_share = torch.from_numpy(share).to(self.training_device)

    def _release_training(self) -> None:
        self._pool, self._item_share = None, None
        text = self._text_input() if self.module is not None else None
        if text is not None:
            text.release_cache()

    def epoch_batches(self, rng: np.random.Generator) -> TripleBatches:
        """``(user, positive, negative)`` batches: one uniform negative per pair (BPR; softmax draws
        its shared uniform negatives from this column), ``(n_negatives,)`` of them for BCE."""
        assert self._train is not None
        users, positives, negatives = bpr_triples(self._train, rng, keys=self._train_keys)
        if self.loss == "bce":
            repeated = np.repeat(users, self.n_negatives)
            negatives = sample_negatives(repeated, self._train, rng, keys=self._train_keys)
            negatives = negatives.reshape(len(users), self.n_negatives)
        return TripleBatches(users, positives, negatives, self.effective_batch_size(self._train.nnz), self.training_device)

    def batch_loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        module = self._module()
        users, positives, negatives = batch
        if self.loss == "softmax":
            negatives = self._shared_negatives(positives, negatives)
        needed = torch.cat([positives, negatives.reshape(-1)])
        if self._pool is not None:  # the pooled history needs every item's vector
            table = module.finish(module.items())
            vectors = table[needed]
        else:
            unique, inverse = torch.unique(needed, return_inverse=True)
            vectors = module.finish(module.items(unique))[inverse]
        v_pos, v_neg = vectors[: len(users)], vectors[len(users) :].reshape(*negatives.shape, -1)
        pooled = self._pool.leave_one_out(users, positives, table) if self._pool is not None else None
        u = module.finish(module.users(users, pooled))
        if self.loss == "softmax":
            log_q = self._log_q
            loss = shared_negatives_softmax_loss(
                u, v_pos, v_neg, self.temperature, log_q(positives, len(users)), log_q(negatives, len(users)),
                not_negative=positives[:, None] == negatives[None, :],
            )
        else:
            s_pos = (u * v_pos).sum(-1) / self.temperature
            if self.loss == "bpr":
                loss = bpr_loss(s_pos, (u * v_neg).sum(-1) / self.temperature)
            else:
                loss = bce_loss(s_pos, torch.einsum("bd,bkd->bk", u, v_neg) / self.temperature)
        return loss + self.reg * self._id_penalty(users, positives, negatives) if self.reg else loss

    def _shared_negatives(self, positives: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
        """``(N,)`` distinct items: the positives of the batch's first ``in_batch_negatives`` rows
        (the batch is shuffled: a popularity-distributed sample) and the uniform negatives of its
        first ``uniform_negatives`` rows."""
        return torch.unique(torch.cat([positives[: self.in_batch_negatives], uniform[: self.uniform_negatives]]))

    def _log_q(self, items: torch.Tensor, n_rows: int) -> torch.Tensor | None:
        """``log q`` of ``items`` under :meth:`_shared_negatives` (None without the logQ correction)."""
        if self._item_share is None:
            return None
        drawn, uniform = min(self.in_batch_negatives, n_rows), min(self.uniform_negatives, n_rows)
        return log_inclusion(self._item_share[items], drawn, uniform, self.n_items)

    def _id_penalty(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """``l2_penalty`` of the ID embedding rows the batch used (zero without ID embeddings)."""
        module = self._module()
        rows = []
        if module.users.id_embedding is not None:
            rows.append(module.users.id_embedding(users))
        if module.items.id_embedding is not None:
            rows += [module.items.id_embedding(positives), module.items.id_embedding(negatives.reshape(-1))]
        return l2_penalty(*rows) if rows else torch.zeros((), device=users.device)

    # ---------------------------------------------------------------- scoring
    def prepare_scoring(self) -> None:
        module = self._module()
        device = module.items.id_mask.device
        parts = [
            module.finish(module.items(torch.arange(s, min(s + SCORE_BATCH, self.n_items), device=device)))
            for s in range(0, self.n_items, SCORE_BATCH)
        ]
        exported = {"item_factors": _numpy(torch.cat(parts))}
        if not self.scores_from_history:
            assert module.users.id_embedding is not None
            exported["user_factors"] = _numpy(module.finish(module.users.id_embedding.weight))
        self._exported = exported

    def _users_from_rows(self, rows: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        """``(n_rows, dim)`` float32 user vectors from history rows (and the users' IDs for "both")."""
        module = self._module()
        device = module.items.id_mask.device
        pooled = torch.from_numpy(mean_rows(rows, self._exported["item_factors"])).to(device)
        ids = torch.from_numpy(np.asarray(users, dtype=np.int64)).to(device) if users is not None else None
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                return _numpy(module.finish(module.users(ids, pooled)))
        finally:
            module.train(was_training)

    def _snapshot_users(self, index: np.ndarray) -> np.ndarray:
        if not self.scores_from_history:
            return self._exported["user_factors"][index]
        parts = [
            self._users_from_rows(self.history_matrix[index[s : s + SCORE_BATCH]], index[s : s + SCORE_BATCH])
            for s in range(0, len(index), SCORE_BATCH)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)

    def score(self, users: np.ndarray, user_items: sp.csr_matrix | None = None) -> np.ndarray:
        """``(len(users), n_items)`` float32; with ``user_items`` (history rows aligned with ``users``)
        the history tower pools those rows instead of the training snapshot (module docstring)."""
        if user_items is None:
            user_vectors = self._snapshot_users(self._check_users(users))
        else:
            if not self.scores_from_history:
                raise ModelError(
                    "two_tower with user_tower='id' scores from its training snapshot and cannot take "
                    "user_items; use user_tower='history' or 'both'"
                )
            rows = self._history_rows(users, user_items)
            if self.user_tower == "both":  # known users add their ID vector; others (e.g. -1) have none
                index = np.asarray(users, dtype=np.int64).ravel()
                known = (index >= 0) & (index < self.n_users)
                user_vectors = np.zeros((len(index), self.dim), dtype=np.float32)
                if known.any():
                    user_vectors[known] = self._users_from_rows(rows[np.flatnonzero(known)], index[known])
                if (~known).any():
                    user_vectors[~known] = self._users_from_rows(rows[np.flatnonzero(~known)], None)
            else:
                user_vectors = self._users_from_rows(rows, None)
        return np.asarray(user_vectors @ self._exported["item_factors"].T, dtype=np.float32)

    def partial_fit_users(self, users: np.ndarray, interactions: sp.csr_matrix) -> None:
        """New feedback: with a history user tower the users' history rows are replaced (exact: the
        tower pools them at the next ``score``); with ``user_tower="id"`` their vectors are folded in
        (:meth:`FactorModel.partial_fit_users`). ``"both"`` cannot add users (a new user has no ID
        vector): score them with ``score(-1, user_items=...)``."""
        if not self.scores_from_history:
            super().partial_fit_users(users, interactions)
            return
        self._check_fitted()
        index, rows = check_update(users, interactions, self.n_items)
        if self.user_tower == "both" and len(index) and int(index.max()) >= self.n_users:
            raise ModelError(
                "two_tower with user_tower='both' has no ID vector for a new user; score new users with "
                "score(users=-1, user_items=...) or train with user_tower='history'"
            )
        self.history_matrix = replace_rows(self.history_matrix, index, as_csr(rows))
        self.n_users = self.history_matrix.shape[0]

    def score_items(self, users: np.ndarray, item_features: Any) -> np.ndarray:
        """``(len(users), len(item_features.ids))`` float32 scores of training users for items known only
        by their features (cold items; a FeatureSet with the model's modalities): content tower, no ID."""
        user_vectors = self._snapshot_users(self._check_users(users))
        module = self._module()
        module.eval()
        with torch.no_grad():
            items = _numpy(module.finish(module.items.encode_new(item_features)))
        return np.asarray(user_vectors @ items.T, dtype=np.float32)

    def user_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self._snapshot_users(np.arange(self.n_users))

    # ---------------------------------------------------------------- persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        state = super()._get_state()
        if self.scores_from_history:
            state |= csr_to_state(HISTORY_STATE, self.history_matrix)
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        state = dict(state)
        if self.scores_from_history:
            self.history_matrix = csr_from_state(HISTORY_STATE, state)
            state = {k: v for k, v in state.items() if not k.startswith(HISTORY_STATE + "_")}
        self._content_dims = ItemContent.saved_dims(state, CONTENT_STATE)
        self._loading_state = state
        try:
            super()._set_state(state)
        finally:
            self._loading_state = None


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy()).copy()
