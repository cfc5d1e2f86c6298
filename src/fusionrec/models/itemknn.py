"""ItemKNN: item-item cosine similarity with shrinkage, ``k`` neighbours per item, all sparse."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.models.base import Recommender, csr_from_state, csr_to_state
from fusionrec.models.base import empty_csr as _empty_csr
from fusionrec.models.configs import ItemKNNConfig
from fusionrec.ranking.topk import top_k_items


class ItemKNN(Recommender):
    """``sim(i, j) = |U_i ∩ U_j| / (sqrt|U_i| sqrt|U_j| + shrink)`` over training users; each
    target item ``j`` keeps its ``k`` most similar items ``N_k(j)``;
    ``score(u, j) = sum_{i in I_u ∩ N_k(j)} sim(i, j)`` (RecBole's ItemKNN).

    The similarity is computed in blocks of rows (at most ``block_mb`` of dense floats at a time)
    and stored sparse, ``k`` entries per item.
    """

    name = "itemknn"
    config_class = ItemKNNConfig
    uses_history = True

    def __init__(self, *, k: int = 100, shrink: float = 10.0, block_mb: int = 64) -> None:
        self.k, self.shrink, self.block_mb = k, shrink, block_mb
        self.similarity = _empty_csr()  # (n_items, n_items): [i, j] = sim of neighbour i of j
        self.train_matrix = _empty_csr()

    def _fit(self, train: sp.csr_matrix, features: Any | None, valid: sp.csr_matrix | None) -> None:
        n_items = train.shape[1]
        by_item = train.T.tocsr()
        norms = np.sqrt(np.asarray(train.sum(axis=0)).ravel()).astype(np.float32)
        k = min(self.k, max(n_items - 1, 1))
        block = max(1, (self.block_mb << 20) // (4 * max(n_items, 1)))
        rows, cols, vals = [], [], []
        for start in range(0, n_items, block):
            stop = min(start + block, n_items)
            co = (by_item[start:stop] @ train).toarray()  # (block, n_items) co-occurrence counts
            sim = co / (norms[start:stop, None] * norms[None, :] + self.shrink + 1e-12)
            sim[np.arange(stop - start), np.arange(start, stop)] = 0.0
            # Ties at the k-th place go to the lower item index (deterministic).
            top, top_vals = top_k_items(torch.from_numpy(np.ascontiguousarray(sim, dtype=np.float32)), k)
            keep = top_vals > 0
            rows.append(np.broadcast_to(np.arange(start, stop)[:, None], top.shape)[keep])
            cols.append(top[keep])
            vals.append(top_vals[keep].astype(np.float32))
        targets, neighbours = np.concatenate(rows), np.concatenate(cols)
        # Store transposed: row = neighbour i, column = target j, so scores = X_u @ similarity.
        self.similarity = sp.csr_matrix(
            (np.concatenate(vals), (neighbours, targets)), shape=(n_items, n_items), dtype=np.float32
        )

    def score(self, users: np.ndarray, user_items: sp.csr_matrix | None = None) -> np.ndarray:
        """Sum of neighbour similarities over each user's history (training row or ``user_items``)."""
        rows = self._history_rows(users, user_items)
        return np.asarray((rows @ self.similarity).toarray(), dtype=np.float32)

    def partial_fit_users(self, users: np.ndarray, interactions: sp.csr_matrix) -> None:
        """New feedback: the users' history rows become ``interactions``; their scores from the learnt
        item model change at once (exact; the item model itself is not refitted)."""
        self._replace_history(users, interactions)

    def _get_state(self) -> dict[str, np.ndarray]:
        return csr_to_state("similarity", self.similarity)

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.similarity = csr_from_state("similarity", state)
