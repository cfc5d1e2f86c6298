"""Item content as a torch module: frozen per-modality features + a trainable fuser.

Every trained content model (``vbpr``, ``two_tower``, ``freedom``) reads item content the same way:
the FeatureSet's matrices are stored as buffers (so a saved model carries them and needs no feature
directory), each modality's rows are L2-normalised once (encoders differ wildly in scale: MiniLM is
unit-norm, EfficientNet's pooled activations are not, attributes are one-hot), and a
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
from fusionrec.fusion.vectors import unit_rows

FEATURE_PREFIX = "feat_"
MASK_PREFIX = "mask_"


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
        """Store unit-normalised copies of the matrices (absent rows zero) and the masks."""
        for name in self.names:
            mask = np.asarray(present[name], dtype=bool)
            values = unit_rows(np.asarray(matrices[name], dtype=np.float32), mask)
            if values.shape != tuple(getattr(self, FEATURE_PREFIX + name).shape):
                raise ModelError(f"{name} features have shape {values.shape}, expected {tuple(getattr(self, FEATURE_PREFIX + name).shape)}")
            getattr(self, FEATURE_PREFIX + name).copy_(torch.from_numpy(values))
            # a zero row (e.g. an all-zero attribute vector) carries no content: missing
            getattr(self, MASK_PREFIX + name).copy_(torch.from_numpy(mask & values.any(axis=1)))

    @staticmethod
    def dims_from_state(state: Mapping[str, np.ndarray], prefix: str) -> dict[str, int]:
        """``{modality: dim}`` from saved arrays whose keys are ``prefix + "feat_" + name``, in saved order."""
        start = prefix + FEATURE_PREFIX
        dims = {key[len(start) :]: int(value.shape[1]) for key, value in state.items() if key.startswith(start)}
        if not dims:
            raise ModelError(f"no saved item features under {start!r}: not a content model's weights")
        return dims

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
