"""MostPop: every user gets the items with the most training interactions."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.models.base import Recommender
from fusionrec.models.configs import MostPopConfig


class MostPop(Recommender):
    """``score(u, i) = number of training users of item i`` (the same list for everyone)."""

    name = "mostpop"
    config_class = MostPopConfig

    def __init__(self) -> None:
        self.item_counts = np.zeros(0, dtype=np.float32)

    def _fit(self, train: sp.csr_matrix, features: Any | None, valid: sp.csr_matrix | None) -> None:
        self.item_counts = np.asarray(train.sum(axis=0), dtype=np.float32).ravel()

    def score(self, users: np.ndarray, user_items: sp.csr_matrix | None = None) -> np.ndarray:
        """The popularity row for every user (a history, ``user_items``, changes nothing)."""
        n_rows = len(self._check_users(users)) if user_items is None else len(np.asarray(users).ravel())
        self._check_fitted()
        return np.tile(self.item_counts, (n_rows, 1))

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"item_counts": self.item_counts}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.item_counts = state["item_counts"].astype(np.float32)
