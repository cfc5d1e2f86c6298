"""VBPR (He & McAuley, AAAI 2016): BPR-MF plus a visual/content preference term.

``score(u, i) = <p_u, q_i> + <theta_u, c_i> + b_i + <beta', c_i>`` where ``c_i`` is the fused item
content of :class:`~fusionrec.fusion.item_content.ItemContent` (unit-normalised frozen feature rows
of every configured modality through a trainable fuser, whose projection plays the role of VBPR's
embedding matrix ``E``). Trained like :class:`~fusionrec.models.mf.BPRMF` (BPR on uniform
negatives, its automatic batch size, Adam, early stopping).

Differences from the paper: the content is any number of modalities (missing ones masked by the
fuser, not zero-filled) instead of one CNN feature; the feature rows are L2-normalised; ``E`` is the
configured fuser (default: a per-modality linear projection averaged over present modalities,
with a bias); ``content_reg`` also penalises the batch's content vectors ``c_i, c_j`` (otherwise
``theta_u``'s penalty could be traded against the scale of ``E``); optional modality dropout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.errors import ModelError
from fusionrec.fusion.config import AnyFuserConfig, MeanFuserConfig
from fusionrec.fusion.item_content import ItemContent, select_modalities
from fusionrec.models.configs import VBPRConfig
from fusionrec.models.mf import BPRMF, _Factors
from fusionrec.models.torch_base import PARAM_PREFIX
from fusionrec.training.losses import bpr_loss, l2_penalty

CONTENT = "content"


class _VBPRModule(_Factors):
    """BPR-MF's factors (``user``, ``item``, ``bias``) plus, with content, ``theta`` (users x content
    dim), ``beta`` (content dim,) and the item ``content`` module."""

    def __init__(
        self, n_users: int, n_items: int, factors: int, init_std: float, item_bias: bool, content: ItemContent | None
    ) -> None:
        super().__init__(n_users, n_items, factors, init_std, item_bias)
        self.content = content
        if content is not None:
            self.theta = torch.nn.Embedding(n_users, content.out_dim)
            torch.nn.init.normal_(self.theta.weight, std=init_std)
            self.beta = torch.nn.Parameter(torch.zeros(content.out_dim))


def check_modality_names(name: str, features: Any | None, modalities: list[str] | None) -> list[str] | None:
    """The modalities a content model reads (None: ID-only, no features), with a clear ModelError when
    ``modalities`` names one the FeatureSet lacks or names any without a FeatureSet."""
    if features is None:
        if modalities:
            raise ModelError(f"{name}: modalities {modalities} asked for but no item features were given")
        return None
    try:
        return select_modalities(features, modalities)
    except ModelError as exc:
        raise ModelError(f"{name}: {exc}") from None


def content_of(content: ItemContent, items: torch.Tensor) -> torch.Tensor:
    """``(len(items), out_dim)`` fused content of ``items`` (repeats allowed); when the batch has at least
    as many rows as there are items, the fuser runs once over the item table instead (cheaper)."""
    if len(items) >= content.n_items:
        return content()[items]
    return content(items)


class VBPR(BPRMF):
    """Visual Bayesian personalised ranking over any item content (see the module docstring).

    Parameters
    ----------
    factors, reg, item_bias, epochs, batch_size, learning_rate, patience, min_steps, valid_metric,
    eval_every, init_std, seed, device, verbose: as in :class:`~fusionrec.models.mf.BPRMF`.
    modalities: the FeatureSet's modalities to read (None: all of them).
    fuser: fuser config; its output dim is the size of ``c_i``, ``theta_u`` and ``beta'``.
    content_reg: L2 weight on ``theta_u``, ``beta'`` and the batch's ``c_i, c_j``.
    modality_dropout: chance to mask a present (item, modality) while training.

    With ``features=None`` it is BPR-MF with the same hyper-parameters (same initialisation and
    batches, so the same scores). ``user_vectors() @ item_vectors().T`` is the score:
    users ``[p_u, theta_u, 1]``, items ``[q_i, c_i, b_i + <beta', c_i>]``. Cold items are scored
    by :meth:`score_items` from their features alone (the content terms).
    """

    name = "vbpr"
    config_class = VBPRConfig  # type: ignore[assignment]  # mypy reads BPRMF's as its constructor type
    uses_features = True
    requires_features = False
    maps_cold_items = False  # cold items are scored by their content terms (score_items)

    def __init__(
        self,
        *,
        factors: int = 64,
        reg: float = 1e-2,
        item_bias: bool = True,
        epochs: int = 1000,
        batch_size: int | None = None,
        learning_rate: float = 5e-3,
        patience: int = 10,
        min_steps: int = 3000,
        valid_metric: str = "recall@20",
        eval_every: int = 1,
        init_std: float = 0.01,
        seed: int = 0,
        device: str = "cpu",
        verbose: bool = False,
        modalities: list[str] | None = None,
        fuser: AnyFuserConfig = MeanFuserConfig(dim=64),
        content_reg: float = 1e-2,
        modality_dropout: float = 0.0,
    ) -> None:
        super().__init__(
            factors=factors, reg=reg, item_bias=item_bias, epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate, patience=patience, min_steps=min_steps, valid_metric=valid_metric,
            eval_every=eval_every, init_std=init_std, seed=seed, device=device, verbose=verbose,
        )  # fmt: skip
        self.modalities, self.fuser, self.content_reg = modalities, fuser, content_reg
        self.modality_dropout = modality_dropout
        self._fit_features: Any | None = None
        self._content_dims: dict[str, int] | None = None  # set when rebuilding a saved model

    # ---------------------------------------------------------------- module
    def _fit(self, train: sp.csr_matrix, features: Any | None, valid: sp.csr_matrix | None) -> None:
        check_modality_names(self.name, features, self.modalities)
        self._fit_features, self._content_dims = features, None
        try:
            super()._fit(train, features, valid)
        finally:
            self._fit_features = None

    def _build_content(self) -> ItemContent | None:
        if self._fit_features is not None:
            return ItemContent.from_features(self._fit_features, self.modalities, self.fuser, self.modality_dropout)
        if self._content_dims is not None:
            return ItemContent(self._content_dims, self.n_items, self.fuser, self.modality_dropout)
        return None

    def _build_module(self) -> torch.nn.Module:
        # without content nothing else draws from the seeded generator: the same init as BPR-MF
        content = self._build_content()
        return _VBPRModule(self.n_users, self.n_items, self.factors, self.init_std, self.item_bias, content)

    def _vbpr(self) -> _VBPRModule:
        module = self.trainable_module()
        assert isinstance(module, _VBPRModule)
        return module

    # ---------------------------------------------------------------- training
    def batch_loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        module = self._vbpr()
        if module.content is None:
            return super().batch_loss(batch)
        users, positives, negatives = batch
        u, theta = module.user(users), module.theta(users)
        i, j = module.item(positives), module.item(negatives)
        c = content_of(module.content, torch.cat([positives, negatives]))
        c_i, c_j = c[: len(positives)], c[len(positives) :]
        positive = (u * i).sum(dim=1) + ((theta + module.beta) * c_i).sum(dim=1)
        negative = (u * j).sum(dim=1) + ((theta + module.beta) * c_j).sum(dim=1)
        penalised = [u, i, j]
        if module.bias is not None:
            b_i, b_j = module.bias(positives), module.bias(negatives)
            positive, negative = positive + b_i.squeeze(1), negative + b_j.squeeze(1)
            penalised += [b_i, b_j]
        loss = bpr_loss(positive, negative)
        if self.reg:
            loss = loss + self.reg * l2_penalty(*penalised)
        if self.content_reg:
            loss = loss + self.content_reg * l2_penalty(theta, c_i, c_j, module.beta.unsqueeze(0))
        return loss

    def prepare_scoring(self) -> None:
        module = self._vbpr()
        if module.content is None:
            super().prepare_scoring()
            return
        content = module.content.encode_all()  # (n_items, content dim)
        offset = content @ module.beta
        ids = module.item.weight
        if module.bias is not None:
            offset = offset + module.bias.weight.squeeze(1)
        if self._train is not None:  # items nobody trained on: their content terms alone (= score_items)
            cold = torch.from_numpy(np.asarray(self._train.getnnz(axis=0)).ravel() == 0).to(ids.device)
            if bool(cold.any()):
                ids = torch.where(cold[:, None], torch.zeros_like(ids), ids)
                offset = torch.where(cold, content @ module.beta, offset)
        users = torch.cat([module.user.weight, module.theta.weight], dim=1)
        items = torch.cat([ids, content], dim=1)
        self._export_factors(users, items, offset)

    # ---------------------------------------------------------------- cold items
    def score_items(self, users: np.ndarray, item_features: Any) -> np.ndarray:
        """``(len(users), n_new)`` float32 scores of items known only by ``item_features`` (a FeatureSet):
        ``<theta_u, c_new> + <beta', c_new>`` (no ID factors, no bias). The new rows are prepared with
        the training centres (:meth:`ItemContent.prepare_feature_set`); a trained modality the set
        lacks is missing for every new item."""
        index = self._check_users(users)
        module = self._vbpr()
        content = module.content
        if content is None:
            raise ModelError("vbpr was trained without item features (ID-only), so it cannot score new items")
        have = getattr(item_features, "modalities", None)
        if have is not None and not any(name in have for name in content.names):
            raise ModelError(f"vbpr was trained on {list(content.names)}; the new items' features have {sorted(have)}")
        features, masks = content.prepare_feature_set(item_features)
        was_training = content.training
        content.eval()
        try:
            with torch.no_grad():
                vectors = content.fuse(features, masks)
                scores = (module.theta.weight[torch.from_numpy(index)] + module.beta) @ vectors.T
        finally:
            content.train(was_training)
        return np.ascontiguousarray(scores.numpy(), dtype=np.float32)

    # ---------------------------------------------------------------- persistence
    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self._content_dims = ItemContent.saved_dims(state, f"{PARAM_PREFIX}{CONTENT}.")
        super()._set_state(state)
