"""EASE with item side information: collective EASE (Jeunen, Van Balen & Goethals 2020).

The side information enters as extra "users": with ``T`` the ``(d, n_items)`` matrix of item
content (per-modality unit feature rows, scaled by ``sqrt(a_m)``, transposed), EASE is solved on
the stacked matrix ``[X; s T]``, so the Gram matrix becomes ``X^T X + s^2 T^T T`` and

    P = (X^T X + s^2 T^T T + l2 I)^-1,   B_ij = -P_ij / P_jj (i != j),   score(u) = x_u B.

``s`` (``side_weight``) trades collaborative against content co-occurrence; ``s = 0`` is EASE.
It keeps EASE's speed (one dense Cholesky inverse, ``O(n_items^2)`` memory) and, because the
content block links items without interactions to the others, an item nobody has interacted
with still gets weights from users' histories (cold items). A missing modality is a zero column of
``T`` for that item: it adds nothing to the Gram matrix, so it is left out, not imputed.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from fusionrec.errors import ModelError
from fusionrec.models.base import Recommender
from fusionrec.models.configs import EASESideConfig
from fusionrec.models.content import ContentRecommender
from fusionrec.models.ease import _spd_inverse


class EASESide(Recommender):
    """Collective EASE: EASE on interactions stacked with weighted item content (module docstring).

    Parameters
    ----------
    l2: ridge weight lambda (as in EASE).
    side_weight: ``s``, the weight of the content rows; the content Gram is scaled by ``s^2``.
    modalities, modality_weights: which feature modalities make ``T`` and their weights ``a_m``.
    dtype: precision of the Gram matrix and its inverse.
    """

    name = "ease_side"
    config_class = EASESideConfig
    uses_features = True
    uses_history = True

    def __init__(
        self,
        *,
        l2: float = 500.0,
        side_weight: float = 10.0,
        modalities: list[str] | None = None,
        modality_weights: dict[str, float] | None = None,
        dtype: Literal["float32", "float64"] = "float32",
    ) -> None:
        self.l2, self.side_weight, self.dtype = l2, side_weight, dtype
        self.modalities, self.modality_weights = modalities, modality_weights
        self.weights = np.zeros((0, 0), dtype=np.float32)

    def _fit(self, train: sp.csr_matrix, features: Any | None, valid: sp.csr_matrix | None) -> None:
        if features is None:
            raise ModelError("ease_side needs item features; pass --features DIR (ease is the same model without them)")
        content = ContentRecommender(modalities=self.modalities, modality_weights=self.modality_weights)
        blocks = content.encode_items(features)  # (n_items, D): unit rows, missing modalities left out
        gram = np.asarray((train.T @ train).toarray(), dtype=self.dtype)
        side = np.asarray(blocks, dtype=self.dtype)
        gram += (self.side_weight**2) * (side @ side.T)
        gram[np.diag_indices_from(gram)] += self.l2
        precision = _spd_inverse(gram)
        weights = precision / (-np.diag(precision))[None, :]
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)

    def score(self, users: np.ndarray, user_items: sp.csr_matrix | None = None) -> np.ndarray:
        """``x_u B`` for each user's history row (training row or ``user_items``)."""
        return np.asarray(self._history_rows(users, user_items) @ self.weights, dtype=np.float32)

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.weights = state["weights"]
