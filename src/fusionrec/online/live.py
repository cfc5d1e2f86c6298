"""A fitted model with live state: new feedback and new items count at the next request, no retrain.

:class:`LiveRecommender` keeps every user's current history (the training snapshot plus what
arrived since) and, on :meth:`~LiveRecommender.add_interactions`, hands the touched users' whole
new rows to the model's ``partial_fit_users`` (:class:`~fusionrec.models.base.SupportsPartialFit`):
exact for the history models (EASE, ItemKNN, content, a history two-tower) and ALS, a BPR fold-in
with the item vectors fixed for the other factor models. New users get the next free index.

New items (:meth:`~LiveRecommender.add_items`) are scored from their content alone through the
model's ``score_items`` (:class:`~fusionrec.models.base.SupportsColdStart`: content, vbpr,
two_tower, and the ID models fitted with features through their content-to-embedding map), so an
item added now is recommendable in the next call. Their columns follow the catalogue's: item index
``n_model_items + j`` is the ``j``-th added item. Interactions with added items are kept in the
live history (never recommended again to that user) but not passed to the model, whose item side
is fixed until the next retrain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.errors import ModelError
from fusionrec.models.base import Recommender, SupportsColdStart, SupportsPartialFit, as_csr
from fusionrec.models.history import replace_rows
from fusionrec.ranking.topk import as_score_tensor, keep_candidates, mask_rows, top_k_items


@dataclass
class UpdateStats:
    """Wall time of each :meth:`LiveRecommender.add_interactions` call, in milliseconds."""

    latencies_ms: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


class LiveRecommender:
    """``model`` (fitted, with ``partial_fit_users``) plus live histories and added items.

    ``history``: the ``(n_users, n_items)`` interactions the model was fitted on (the bundle's
    ``seen`` matrix); default: the model's own ``train_matrix`` (history models keep it). Rows are
    binary; everything in a user's live history is excluded from their recommendations. When it *is*
    the history model's matrix (a bundle shares it), updates are stored once, in the model.
    """

    def __init__(self, model: Recommender, history: sp.csr_matrix | None = None) -> None:
        if not isinstance(model, SupportsPartialFit):
            raise ModelError(f"{model.name} cannot take new feedback without a retrain (no partial_fit_users)")
        model._check_fitted()
        if history is None:
            history = getattr(model, "train_matrix", None)
            if history is None or history.shape[0] != model.n_users:
                raise ModelError(f"{model.name} keeps no training history: pass the interactions it was fitted on")
        if history is not getattr(model, "train_matrix", None):
            history = as_csr(history)
        assert history is not None
        if history.shape != (model.n_users, model.n_items):
            raise ModelError(f"history has shape {history.shape}, the model {(model.n_users, model.n_items)}")
        self.model = model
        self.history: sp.csr_matrix = history
        self.n_model_items = model.n_items
        self._added: list[Any] = []  # FeatureSets of added items, in index order
        self._added_counts: list[int] = []
        self.stats = UpdateStats()

    # ------------------------------------------------------------------ sizes
    @property
    def n_users(self) -> int:
        return int(self.history.shape[0])

    @property
    def n_items(self) -> int:
        """Catalogue items plus added ones."""
        return self.n_model_items + sum(self._added_counts)

    # ------------------------------------------------------------------ feedback
    def add_interactions(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Append ``(users[j], items[j])`` pairs (int arrays of equal length) to the live histories and
        update the model for every touched user at once; a user index ``>= n_users`` adds users (up to
        it). Returns the touched users, sorted. Items must be ``< n_items`` (added ones included)."""
        start = time.perf_counter()
        user_index = np.asarray(users, dtype=np.int64).ravel()
        item_index = np.asarray(items, dtype=np.int64).ravel()
        if len(user_index) != len(item_index):
            raise ModelError(f"{len(user_index)} users but {len(item_index)} items: one item per user")
        if not len(user_index):
            return user_index
        if user_index.min() < 0 or item_index.min() < 0 or item_index.max() >= self.n_items:
            bad = int(np.flatnonzero((user_index < 0) | (item_index < 0) | (item_index >= self.n_items))[0])
            raise ModelError(
                f"interaction {bad}: user {int(user_index[bad])}, item {int(item_index[bad])} is out of range "
                f"(items 0..{self.n_items - 1}, users >= 0)"
            )
        touched, local = np.unique(user_index, return_inverse=True)
        n_users = max(self.n_users, int(touched[-1]) + 1)
        rows = self._merged_rows(touched, local, item_index)
        shared = self.model.uses_history and self.n_items == self.n_model_items and self.history is getattr(
            self.model, "train_matrix", None
        )
        if rows.shape[1] > self.n_model_items:  # the model knows only the catalogue's columns
            model_rows = rows[:, : self.n_model_items]
        else:
            model_rows = rows
        self.model.partial_fit_users(touched, model_rows)  # type: ignore[attr-defined]
        if shared:  # a history model just stored exactly these rows: share its matrix, copy nothing twice
            self.history = self.model.train_matrix
        else:
            self.history = replace_rows(self._widened(self.n_items), touched, rows, n_rows=n_users)
        self.stats.latencies_ms.append((time.perf_counter() - start) * 1e3)
        return touched

    def _widened(self, width: int) -> sp.csr_matrix:
        if self.history.shape[1] == width:
            return self.history
        return sp.csr_matrix((self.history.data, self.history.indices, self.history.indptr), shape=(self.n_users, width))

    def _merged_rows(self, touched: np.ndarray, local: np.ndarray, items: np.ndarray) -> sp.csr_matrix:
        """``(len(touched), n_items)`` binary CSR: each touched user's live row plus their new items
        (one sort of the few entries involved, one CSR built: the update's hot path)."""
        width = self.n_items
        indptr, indices = self.history.indptr, self.history.indices
        known = touched < self.n_users
        starts = np.where(known, indptr[np.minimum(touched, self.n_users - 1)], 0)
        lengths = np.where(known, indptr[np.minimum(touched, self.n_users - 1) + 1] - starts, 0)
        offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        old = indices[offsets + np.arange(int(lengths.sum()))].astype(np.int64)
        owner = np.repeat(np.arange(len(touched)), lengths)
        keys = np.unique(np.concatenate([owner * width + old, local.astype(np.int64) * width + items]))
        row_of = keys // width
        row_ptr = np.searchsorted(row_of, np.arange(len(touched) + 1)).astype(np.int32)
        data = np.ones(len(keys), dtype=np.float32)
        return sp.csr_matrix((data, (keys % width).astype(np.int32), row_ptr), shape=(len(touched), width))

    def user_history(self, user: int) -> np.ndarray:
        """Item indices in ``user``'s live history (sorted; empty for an unknown user)."""
        if user < 0 or user >= self.n_users:
            return np.zeros(0, dtype=np.int64)
        row = self.history[user]
        return np.sort(row.indices.astype(np.int64))

    # ------------------------------------------------------------------ items
    def add_items(self, item_features: Any) -> np.ndarray:
        """Add the items of ``item_features`` (a FeatureSet with the model's modalities, one row per
        new item); they are scored from content at once. Returns their item indices."""
        if not isinstance(self.model, SupportsColdStart):
            raise ModelError(f"{self.model.name} cannot score items from their content (no score_items); retrain to add items")
        count = len(np.asarray(item_features.ids))
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        self.model.score_items(np.zeros(1, dtype=np.int64), item_features)  # fail now, not at the next request
        first = self.n_items
        self._added.append(item_features)
        self._added_counts.append(count)
        return np.arange(first, first + count, dtype=np.int64)

    # ------------------------------------------------------------------ scoring
    def score(self, users: np.ndarray) -> np.ndarray:
        """``(len(users), n_items)`` float32: the model's scores (updated histories included) followed by
        the added items' content scores."""
        index = np.asarray(users, dtype=np.int64).ravel()
        if len(index) and (index.min() < 0 or index.max() >= self.n_users):
            raise ModelError(f"user indices must be in [0, {self.n_users}) (new users arrive through add_interactions)")
        parts = [np.asarray(self.model.score(index), dtype=np.float32)]
        for features in self._added:
            parts.append(np.asarray(self.model.score_items(index, features), dtype=np.float32))  # type: ignore[attr-defined]
        return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

    def recommend(
        self,
        users: np.ndarray,
        k: int = 10,
        candidates: np.ndarray | None = None,
        exclude_seen: bool = True,
        exclude: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` ``(items int64, scores float32)`` per user, best first, never an item of their live
        history (``exclude_seen``) nor of ``exclude`` (rows aligned with ``users``, e.g. dislikes);
        ``candidates`` (item indices) restricts the ranking."""
        index = np.asarray(users, dtype=np.int64).ravel()
        scores = as_score_tensor(self.score(index))
        if exclude_seen:
            mask_rows(scores, self._widened(self.n_items)[index])
        if exclude is not None:
            mask_rows(scores, exclude)
        if candidates is not None:
            keep_candidates(scores, candidates)
        return top_k_items(scores, k)
