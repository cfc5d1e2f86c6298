"""The item feature spaces diversity is measured in, and item-item similarity over candidate lists.

A space is an ``(n_items, d)`` float32 matrix of unit rows (:func:`item_space`):

- ``"fused"``: every modality of a FeatureSet, each modality's unit rows centred on the
  catalogue mean and normalised again, blocks weighted equally and concatenated (exactly
  :func:`~fusionrec.fusion.vectors.content_vectors` with the content model's centres), then unit
  length; an item missing a modality is compared on the modalities it has.
- a modality name (``"text"``, ``"image"``, ``"attributes"``, ...): that modality's centred unit rows.
- ``"model"``: the model's own ``item_vectors()`` (:class:`~fusionrec.models.base.SupportsVectors`:
  MF/BPR, LightGCN, two_tower, content, ...), unit length; a folded-in item bias is one coordinate.

Similarity is the cosine of the unit rows, ``s_ij = <v_i, v_j>`` in ``[-1, 1]``. An item without
content in the space (a masked modality row, or an all-zero vector) is a zero row: similarity 0 to
every other item, and self-similarity 1, i.e. it counts as orthogonal to everything (neither
penalised nor favoured by MMR, a direction of its own for the DPP).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from fusionrec.errors import ModelError
from fusionrec.fusion.vectors import centered_unit_rows, content_vectors, modality_centers, unit_rows
from fusionrec.models.base import SupportsVectors

#: spaces that are not a modality name
FUSED, MODEL = "fused", "model"
#: the catalogue-wide similarity matrix is precomputed up to this many items (8192^2 float32 = 256 MiB)
GRAM_ITEM_LIMIT = 8192


def space_names(features: Any | None = None) -> list[str]:
    """The spaces that can be asked for: ``fused``, ``model`` and the FeatureSet's modalities."""
    return [FUSED, MODEL, *(list(features.modalities) if features is not None else [])]


def item_space(
    space: str,
    features: Any | None = None,
    model: Any | None = None,
    center: bool = True,
    centers: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """``(n_items, d)`` float32 unit item vectors of ``space`` (module docstring); zero rows = no content.

    ``features`` is a FeatureSet (needed by ``fused`` and modality spaces), ``model`` a fitted
    Recommender (needed by ``model``). ``center`` removes each modality's mean unit row first (as the
    content model does: raw pretrained embeddings share one large direction). Raises ModelError
    naming what is missing. ``centers`` (``{modality: (d,) centre}``, e.g. the catalogue's
    :func:`~fusionrec.fusion.vectors.modality_centers`) are used instead of ``features``' own, so items
    added later land in the catalogue's space.
    """
    if space == MODEL:
        if model is None:
            raise ModelError("the 'model' space needs the fitted model")
        if not isinstance(model, SupportsVectors):
            name = getattr(model, "name", type(model).__name__)
            raise ModelError(
                f"{name} has no item vectors (not a factor model): use a feature space such as 'fused' "
                "or one modality instead of 'model'"
            )
        return unit_rows(np.asarray(model.item_vectors(), dtype=np.float32))
    if features is None:
        raise ModelError(f"the {space!r} space needs item features: pass a FeatureSet (--features DIR)")
    if space == FUSED:
        if not features.modalities:
            raise ModelError("the feature set has no modality to fuse")
        used = (centers if centers is not None else modality_centers(features)) if center else None
        return unit_rows(content_vectors(features, centers=used, renormalize=False))
    if space not in features.modalities:
        raise ModelError(f"unknown re-ranking space {space!r}; choose one of {space_names(features)}")
    modality = features.modalities[space]
    if not center:
        return unit_rows(modality.matrix, modality.present)
    return centered_unit_rows(modality.matrix, modality.present, None if centers is None else centers.get(space))


class CandidateRows(Protocol):
    """Similarities inside one batch of candidate lists ``items`` ``(b, N)``."""

    def row(self, positions: np.ndarray) -> np.ndarray:
        """``(b, N)`` float: similarity of candidate ``positions[u]`` of list ``u`` to each candidate of that list."""
        ...


class DenseRows:
    """:class:`CandidateRows` from an explicit ``(b, N, N)`` similarity tensor (tests, small inputs)."""

    def __init__(self, similarity: np.ndarray) -> None:
        self.similarity = np.asarray(similarity)
        if self.similarity.ndim != 3 or self.similarity.shape[1] != self.similarity.shape[2]:
            raise ModelError(f"similarity must be (b, N, N), got {self.similarity.shape}")

    def row(self, positions: np.ndarray) -> np.ndarray:
        return self.similarity[np.arange(len(positions)), positions, :]


class _GramRows:
    """Rows gathered from the catalogue's ``(n_items, n_items)`` similarity matrix: ``O(b N)`` per step."""

    def __init__(self, gram: np.ndarray, items: np.ndarray) -> None:
        self.gram, self.items = gram, items

    def row(self, positions: np.ndarray) -> np.ndarray:
        chosen = self.items[np.arange(len(positions)), positions]
        return self.gram[chosen[:, None], self.items]


class _VectorRows:
    """Rows from the candidates' gathered unit vectors ``(b, N, d)``: ``O(b N d)`` per step."""

    def __init__(self, unit: np.ndarray, items: np.ndarray) -> None:
        self.vectors = unit[items]  # (b, N, d)

    def row(self, positions: np.ndarray) -> np.ndarray:
        chosen = self.vectors[np.arange(len(positions)), positions]  # (b, d)
        return np.einsum("bd,bnd->bn", chosen, self.vectors)


class ItemSimilarity:
    """Cosine similarity between catalogue items, served for batches of candidate lists.

    ``vectors`` is ``(n_items, d)``; rows are scaled to unit length (zero rows stay zero: no
    content, similarity 0). Up to ``gram_item_limit`` items the ``(n_items, n_items)`` matrix is
    computed once (one ``n_items^2 d`` product, then every re-ranking step is a gather); larger
    catalogues gather the candidates' vectors per batch instead. Build it once and reuse it across
    batches and trade-off values.
    """

    def __init__(self, vectors: np.ndarray, gram_item_limit: int = GRAM_ITEM_LIMIT) -> None:
        values = np.asarray(vectors, dtype=np.float32)
        if values.ndim != 2:
            raise ModelError(f"item vectors must be (n_items, d), got shape {values.shape}")
        self.unit = unit_rows(values)
        self.gram: np.ndarray | None = None
        if self.n_items <= gram_item_limit:
            self.gram = self.unit @ self.unit.T

    @property
    def n_items(self) -> int:
        return int(self.unit.shape[0])

    def for_candidates(self, items: np.ndarray) -> CandidateRows:
        """The similarity rows of a batch of candidate lists ``items`` ``(b, N)`` (``-1`` slots give garbage rows, never read)."""
        safe = np.where(items >= 0, items, 0)
        if self.gram is not None:
            return _GramRows(self.gram, safe)
        return _VectorRows(self.unit, safe)
