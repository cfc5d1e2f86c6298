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

from fusionrec.fusion.vectors import content_vectors
from fusionrec.models.configs import EASESideConfig
from fusionrec.models.ease import EASE


class EASESide(EASE):
    """Collective EASE: EASE on interactions stacked with weighted item content (module docstring).

    Only the Gram matrix differs from :class:`~fusionrec.models.ease.EASE`; solving, scoring
    (also from new histories) and saving are EASE's.

    Parameters
    ----------
    l2: ridge weight lambda (as in EASE).
    side_weight: ``s``, the weight of the content rows; the content Gram is scaled by ``s^2``.
    modalities, modality_weights: which feature modalities make ``T`` and their weights ``a_m``.
    dtype: precision of the Gram matrix and its inverse.
    """

    name = "ease_side"
    config_class = EASESideConfig  # type: ignore[assignment]
    uses_features = True
    requires_features = False  # without features it is EASE (the ablation's ID-only row)

    def __init__(
        self,
        *,
        l2: float = 500.0,
        side_weight: float = 10.0,
        modalities: list[str] | None = None,
        modality_weights: dict[str, float] | None = None,
        dtype: Literal["float32", "float64"] = "float32",
    ) -> None:
        super().__init__(l2=l2, dtype=dtype)
        self.side_weight = side_weight
        self.modalities, self.modality_weights = modalities, modality_weights

    def _gram(self, train: sp.csr_matrix, features: Any | None) -> np.ndarray:
        """``X^T X + s^2 T^T T`` with ``T^T`` the unit content vectors (missing modalities left out)."""
        gram = super()._gram(train, features)
        if features is None:
            return gram
        side = np.asarray(content_vectors(features, self.modalities, self.modality_weights), dtype=self.dtype)
        gram += (self.side_weight**2) * (side @ side.T)
        return gram
