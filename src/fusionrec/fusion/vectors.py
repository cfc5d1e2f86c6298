"""Training-free item content vectors: masked unit rows and weighted per-modality concatenation.

Shared by the item-item graphs (cosine kNN), the ``content`` model and ``ease_side``: a modality
an item lacks is a zero block (it adds nothing to a dot product or a norm), never a fake vector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fusionrec.errors import ModelError


def unit_rows(matrix: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """``(n, d)`` float32 rows scaled to unit length; rows not ``present`` or all zero stay zero."""
    values = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    keep = norms > 0
    if present is not None:
        keep &= np.asarray(present, dtype=bool)[:, None]
    return np.where(keep, values / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


def modality_weights(names: Sequence[str], weights: Mapping[str, float] | None) -> dict[str, float]:
    """``a_m`` for each of ``names``, summing to 1: equal when ``weights`` is None, else the given
    values (a modality left out of ``weights`` gets 0); an error unless all >= 0 with a positive sum."""
    raw = {name: float((weights or {}).get(name, 1.0 if weights is None else 0.0)) for name in names}
    total = sum(raw.values())
    if any(v < 0 for v in raw.values()) or total <= 0:
        raise ModelError(f"modality weights must be >= 0 with a positive sum, got {raw}")
    return {name: value / total for name, value in raw.items()}


def content_vectors(
    features: Any, modalities: Sequence[str] | None = None, weights: Mapping[str, float] | None = None
) -> np.ndarray:
    """``(n_items, sum d_m)`` float32 unit item vectors of a FeatureSet: per modality the unit
    feature rows scaled by ``sqrt(a_m)``, concatenated, renormalised (zero rows: no content)."""
    names = list(modalities) if modalities else list(features.modalities)
    missing = [m for m in names if m not in features.modalities]
    if missing:
        raise ModelError(f"no {missing} features (the feature set has {sorted(features.modalities)})")
    shares = modality_weights(names, weights)
    blocks = [
        unit_rows(features.modalities[name].matrix, features.modalities[name].present) * np.float32(np.sqrt(shares[name]))
        for name in names
    ]
    return unit_rows(np.concatenate(blocks, axis=1))
