"""EASE (Steck 2019): a closed-form item-item linear model."""

from __future__ import annotations

from typing import Any, Literal, cast

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from fusionrec.errors import ModelError
from fusionrec.models.base import Recommender, empty_csr
from fusionrec.models.configs import EASEConfig


class EASE(Recommender):
    """``B = argmin ||X - X B||^2 + l2 ||B||^2`` subject to ``diag(B) = 0``, solved in closed form:
    ``P = (X^T X + l2 I)^-1``, ``B_ij = -P_ij / P_jj`` (``i != j``); ``score(u) = x_u B``.

    One dense Cholesky inverse of the ``(n_items, n_items)`` Gram matrix (LAPACK ``potrf``/``potri``),
    so memory is ``O(n_items^2)``: fine up to a few tens of thousands of items.

    Parameters
    ----------
    l2: the ridge weight lambda.
    dtype: precision of the Gram matrix and its inverse; float32 (default) is about twice as fast
        and, with the usual lambdas (>= 10), gives the same rankings as float64 to within ties.
    """

    name = "ease"
    config_class = EASEConfig
    uses_history = True

    def __init__(self, *, l2: float = 500.0, dtype: Literal["float32", "float64"] = "float32") -> None:
        self.l2, self.dtype = l2, dtype
        self.weights = np.zeros((0, 0), dtype=np.float32)
        self.train_matrix = empty_csr()

    def _fit(self, train: sp.csr_matrix, features: Any | None, valid: sp.csr_matrix | None) -> None:
        gram = self._gram(train, features)
        gram[np.diag_indices_from(gram)] += self.l2
        precision = _spd_inverse(gram)
        weights = precision / (-np.diag(precision))[None, :]
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)

    def _gram(self, train: sp.csr_matrix, features: Any | None) -> np.ndarray:
        """``X^T X`` as a dense ``(n_items, n_items)`` array of ``dtype`` (what variants add to)."""
        return np.asarray((train.T @ train).toarray(), dtype=self.dtype)

    def score(self, users: np.ndarray, user_items: sp.csr_matrix | None = None) -> np.ndarray:
        """``x_u B`` for each user's history row (the training row, or ``user_items``: exact, no refit)."""
        return np.asarray(self._history_rows(users, user_items) @ self.weights, dtype=np.float32)

    def partial_fit_users(self, users: np.ndarray, interactions: sp.csr_matrix) -> None:
        """New feedback: the users' history rows become ``interactions``; their scores from the learnt
        item model change at once (exact; the item model itself is not refitted)."""
        self._replace_history(users, interactions)

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.weights = state["weights"]


def _spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix via Cholesky (about 3x fewer flops than LU)."""
    potrf, potri = cast(Any, scipy.linalg.lapack.get_lapack_funcs(("potrf", "potri"), (matrix,)))
    factor, info = potrf(matrix, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise ModelError(f"Gram matrix is not positive definite (potrf info {info}); raise l2")
    inverse, info = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise ModelError(f"inverting the Gram matrix failed (potri info {info})")
    upper = np.triu(inverse)
    return upper + np.triu(inverse, 1).T
