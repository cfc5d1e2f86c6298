"""Item content as a torch module: frozen per-modality features + a trainable fuser.

Every trained content model (``vbpr``, ``two_tower``, ``freedom``) reads item content the same way:
the FeatureSet's matrices are stored as buffers (so a saved model carries them and needs no feature
directory), each modality's rows are L2-normalised and centred once (encoders differ wildly in
scale: MiniLM is unit-norm, EfficientNet's pooled activations are not, attributes are one-hot; and
each shares a large common direction: :func:`fusionrec.fusion.vectors.centered_unit_rows`; the
centres are buffers too, so :meth:`ItemContent.prepare` transforms new items alike), and a
:class:`~fusionrec.fusion.fuser_base.Fuser` built from a config turns them into one vector per
item, honouring the present-masks. ``modality_dropout`` drops a present modality of an item at
random while training (the mask says it is missing), so the model learns to cope when it is.

::

    content = ItemContent.from_features(features, ["text", "image"], {"kind": "attention", "dim": 64})
    z = content(items)            # (len(items), content.out_dim), differentiable w.r.t. the fuser
    z_all = content()             # (n_items, out_dim)

Saved and loaded through the owning model's state dict: :meth:`dims_from_state` recovers the
input dims from saved arrays, so a model can rebuild the module before loading its weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel

from fusionrec.errors import ModelError
from fusionrec.fusion.fuser_base import Fuser
from fusionrec.fusion.fusers import build_fuser
from fusionrec.fusion.simple import PCAFuser
from fusionrec.fusion.vectors import centered_unit_rows, modality_center

FEATURE_PREFIX = "feat_"
MASK_PREFIX = "mask_"
CENTER_PREFIX = "center_"


class ItemContent(torch.nn.Module):
    """``(n_items,)`` item indices -> ``(batch, out_dim)`` fused content vectors.

    Parameters
    ----------
    input_dims: ``{modality: feature dim}``, in fuser order.
    n_items: rows of every feature buffer.
    fuser: a fuser config (mapping or pydantic config; see :mod:`fusionrec.fusion.config`).
    modality_dropout: while ``training``, each present (item, modality) is masked with this
        probability (an item keeps at least its own fuser "empty" vector when all drop).
    """

    def __init__(
        self,
        input_dims: Mapping[str, int],
        n_items: int,
        fuser: Mapping[str, Any] | BaseModel,
        modality_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= modality_dropout < 1.0:
            raise ModelError(f"modality_dropout must be in [0, 1), got {modality_dropout}")
        self.names = tuple(input_dims)
        self.n_items = int(n_items)
        self.modality_dropout = float(modality_dropout)
        for name, dim in input_dims.items():
            self.register_buffer(FEATURE_PREFIX + name, torch.zeros(self.n_items, int(dim)))
            self.register_buffer(MASK_PREFIX + name, torch.zeros(self.n_items, dtype=torch.bool))
            self.register_buffer(CENTER_PREFIX + name, torch.zeros(int(dim)))
        try:
            self.fuser: Fuser = build_fuser(fuser, dict(input_dims))
        except ValueError as exc:
            raise ModelError(f"fuser: {exc}") from None

    @property
    def out_dim(self) -> int:
        return int(self.fuser.out_dim)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_features(
        cls,
        features: Any,
        modalities: Sequence[str] | None,
        fuser: Mapping[str, Any] | BaseModel,
        modality_dropout: float = 0.0,
    ) -> ItemContent:
        """Built from a FeatureSet (``modalities=None``: all of them, in the set's order)."""
        names = select_modalities(features, modalities)
        n_items = len(features.ids)
        module = cls({m: features.modalities[m].dim for m in names}, n_items, fuser, modality_dropout)
        module.set_features(
            {m: features.modalities[m].matrix for m in names}, {m: features.modalities[m].present for m in names}
        )
        if isinstance(module.fuser, PCAFuser):  # the PCA fuser is fitted on the present rows once
            module.fuser.fit_pca(module.feature_tensors(), module.mask_tensors())
        return module

    def set_features(self, matrices: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray]) -> None:
        """Fit each modality's centre on these rows and store the centred unit rows and the masks."""
        for name in self.names:
            mask = np.asarray(present[name], dtype=bool)
            getattr(self, CENTER_PREFIX + name).copy_(torch.from_numpy(modality_center(np.asarray(matrices[name]), mask)))
        features, masks = self.prepare({name: (matrices[name], present[name]) for name in self.names}, self.n_items)
        for name in self.names:
            getattr(self, FEATURE_PREFIX + name).copy_(features[name])
            getattr(self, MASK_PREFIX + name).copy_(masks[name])

    def prepare(
        self, inputs: Mapping[str, tuple[np.ndarray, np.ndarray]], n_rows: int | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Fuser inputs for (new) items: ``{modality: (matrix (n, d_m), present (n,))}`` -> centred
        unit-row tensors and masks on this module's device, with the stored centres. A modality
        absent from ``inputs`` is missing for every row (``n_rows`` then gives the row count); a
        zero row carries no content and is masked too."""
        known = set(self.names)
        unknown = sorted(set(inputs) - known)
        if unknown:
            raise ModelError(f"features for modalities {unknown} this model was not trained with (it has {list(self.names)})")
        if n_rows is None:
            if not inputs:
                raise ModelError("no item features given")
            n_rows = len(next(iter(inputs.values()))[1])
        device = getattr(self, CENTER_PREFIX + self.names[0]).device
        features, masks = {}, {}
        for name in self.names:
            dim = int(getattr(self, CENTER_PREFIX + name).shape[0])
            if name in inputs:
                matrix, present = np.asarray(inputs[name][0], dtype=np.float32), np.asarray(inputs[name][1], dtype=bool)
                if matrix.shape != (n_rows, dim) or present.shape != (n_rows,):
                    raise ModelError(f"{name} features have shape {matrix.shape} (mask {present.shape}), expected ({n_rows}, {dim})")
                center = getattr(self, CENTER_PREFIX + name).detach().cpu().numpy()
                values = centered_unit_rows(matrix, present, center)
            else:
                values, present = np.zeros((n_rows, dim), dtype=np.float32), np.zeros(n_rows, dtype=bool)
            features[name] = torch.from_numpy(values).to(device)
            masks[name] = torch.from_numpy(present & values.any(axis=1)).to(device)
        return features, masks

    def prepare_feature_set(self, item_features: Any) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """:meth:`prepare` for a FeatureSet of new items (its modalities this model lacks are ignored)."""
        modalities = getattr(item_features, "modalities", None)
        if modalities is None:
            raise ModelError("item_features must be a FeatureSet (with .ids and .modalities)")
        inputs = {name: (modalities[name].matrix, modalities[name].present) for name in self.names if name in modalities}
        return self.prepare(inputs, len(item_features.ids))

    def fuse(self, features: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The fuser on prepared inputs (see :meth:`prepare`), without modality dropout."""
        return self.fuser(features, masks)

    @staticmethod
    def dims_from_state(state: Mapping[str, np.ndarray], prefix: str) -> dict[str, int]:
        """``{modality: dim}`` from saved arrays whose keys are ``prefix + "feat_" + name``, in saved order."""
        start = prefix + FEATURE_PREFIX
        dims = {key[len(start) :]: int(value.shape[1]) for key, value in state.items() if key.startswith(start)}
        if not dims:
            raise ModelError(f"no saved item features under {start!r}: not a content model's weights")
        return dims

    @staticmethod
    def saved_dims(state: Mapping[str, np.ndarray], prefix: str) -> dict[str, int] | None:
        """:meth:`dims_from_state`, or None when nothing is saved under ``prefix`` (an ID-only model)."""
        if not any(key.startswith(prefix + FEATURE_PREFIX) for key in state):
            return None
        return ItemContent.dims_from_state(state, prefix)

    # ------------------------------------------------------------------ reading
    def feature_tensors(self, items: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = {}
        for name in self.names:
            values = getattr(self, FEATURE_PREFIX + name)
            out[name] = values if items is None else values[items]
        return out

    def mask_tensors(self, items: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = {}
        for name in self.names:
            mask = getattr(self, MASK_PREFIX + name)
            out[name] = mask if items is None else mask[items]
        return out

    def forward(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """Fused vectors of ``items`` (all items when None)."""
        features, masks = self.feature_tensors(items), self.mask_tensors(items)
        if self.training and self.modality_dropout > 0:
            masks = {
                name: mask & (torch.rand(mask.shape, device=mask.device) >= self.modality_dropout)
                for name, mask in masks.items()
            }
        return self.fuser(features, masks)

    def modality_weights(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, n_modalities)`` per-item modality weights (gates / attention) in ``names`` order."""
        return self.fuser.modality_weights(self.feature_tensors(items), self.mask_tensors(items))

    @torch.no_grad()
    def encode_all(self, batch_size: int = 8192) -> torch.Tensor:
        """``(n_items, out_dim)`` fused vectors in eval mode, in batches (no dropout)."""
        was_training = self.training
        self.eval()
        try:
            device = getattr(self, FEATURE_PREFIX + self.names[0]).device
            parts = [
                self(torch.arange(s, min(s + batch_size, self.n_items), device=device))
                for s in range(0, self.n_items, batch_size)
            ]
        finally:
            self.train(was_training)
        return torch.cat(parts) if parts else torch.zeros(0, self.out_dim)


def select_modalities(features: Any, modalities: Sequence[str] | None) -> list[str]:
    """The modality names to use, checked against the FeatureSet (a clear error names what is missing)."""
    if features is None:
        raise ModelError("needs item features; extract them with `fusionrec features` and pass --features DIR")
    names = list(modalities) if modalities else list(features.modalities)
    missing = [m for m in names if m not in features.modalities]
    if missing:
        raise ModelError(f"no {missing} features (the feature set has {sorted(features.modalities)})")
    if not names:
        raise ModelError("the feature set has no modality")
    return names
