"""Training-free item content vectors: masked unit rows, centring, weighted per-modality concatenation.

Shared by the item-item graphs (cosine kNN), the ``content`` model, ``ease_side`` and the trained
models' :class:`~fusionrec.fusion.item_content.ItemContent`: a modality an item lacks is a zero
block (it adds nothing to a dot product or a norm), never a fake vector.

Centring: pretrained embeddings share a large common direction (MiniLM plots have mean pairwise
cosine ~0.3, EfficientNet's non-negative pooled activations far more), so raw cosines mostly
measure "is a movie". :func:`centered_unit_rows` removes the mean of the present unit rows
before normalising again; on ML-1M this doubles the content model's valid NDCG@20 (all
modalities 0.027 -> 0.050, text 0.010 -> 0.043).
The centre is fitted on the training catalogue and kept, so new items are transformed the same way.
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


def modality_center(matrix: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """``(d,)`` float32 mean of the present, non-zero unit rows (zeros when there is none)."""
    unit = unit_rows(matrix, present)
    keep = np.asarray(unit.any(axis=1), dtype=bool)
    return unit[keep].mean(axis=0).astype(np.float32) if keep.any() else np.zeros(unit.shape[1], dtype=np.float32)


def centered_unit_rows(matrix: np.ndarray, present: np.ndarray | None = None, center: np.ndarray | None = None) -> np.ndarray:
    """Unit rows, minus ``center`` (default: their own :func:`modality_center`), unit again; absent rows zero."""
    unit = unit_rows(matrix, present)
    keep = np.asarray(unit.any(axis=1), dtype=bool)
    mean = modality_center(matrix, present) if center is None else np.asarray(center, dtype=np.float32)
    return unit_rows(unit - mean[None, :], keep)


def modality_weights(names: Sequence[str], weights: Mapping[str, float] | None) -> dict[str, float]:
    """``a_m`` for each of ``names``, summing to 1: equal when ``weights`` is None, else the given
    values (a modality left out of ``weights`` gets 0); an error unless all >= 0 with a positive sum."""
    raw = {name: float((weights or {}).get(name, 1.0 if weights is None else 0.0)) for name in names}
    total = sum(raw.values())
    if any(v < 0 for v in raw.values()) or total <= 0:
        raise ModelError(f"modality weights must be >= 0 with a positive sum, got {raw}")
    return {name: value / total for name, value in raw.items()}


def content_vectors(
    features: Any,
    modalities: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
    centers: Mapping[str, np.ndarray] | None = None,
    renormalize: bool = True,
) -> np.ndarray:
    """``(n_items, sum d_m)`` float32 item vectors of a FeatureSet: per modality the unit
    feature rows (minus ``centers[m]`` and renormalised, when ``centers`` is given: see
    :func:`modality_centers`) scaled by ``sqrt(a_m)``, concatenated, and (``renormalize``) scaled to
    unit length (zero rows: no content). Without the last step an item that lacks a modality keeps a
    shorter vector (norm ``sqrt(sum of its present a_m)``) instead of inflating its other blocks: on
    ML-1M with half the plots removed the content model loses 11 % NDCG@20 instead of 27 %."""
    names = list(modalities) if modalities else list(features.modalities)
    missing = [m for m in names if m not in features.modalities]
    if missing:
        raise ModelError(f"no {missing} features (the feature set has {sorted(features.modalities)})")
    shares = modality_weights(names, weights)
    blocks = []
    for name in names:
        modality = features.modalities[name]
        if centers is not None and name in centers:
            rows = centered_unit_rows(modality.matrix, modality.present, centers[name])
        else:
            rows = unit_rows(modality.matrix, modality.present)
        blocks.append(rows * np.float32(np.sqrt(shares[name])))
    joined = np.concatenate(blocks, axis=1)
    return unit_rows(joined) if renormalize else joined.astype(np.float32)


def modality_centers(features: Any, modalities: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """``{modality: (d,) centre}`` of a FeatureSet's present unit rows (for :func:`content_vectors`)."""
    names = list(modalities) if modalities else list(features.modalities)
    return {name: modality_center(features.modalities[name].matrix, features.modalities[name].present) for name in names if name in features.modalities}
