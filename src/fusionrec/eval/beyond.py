"""Beyond-accuracy metrics of top-K lists: coverage, diversity, novelty, popularity bias.

``top_k`` is ``(n_users, K)`` int item indices, ``-1`` for empty slots (ignored everywhere).
``item_popularity`` is ``(n_items,)``: the number of training interactions of each item.

- ``coverage = |union of recommended items| / n_items`` (RecBole's ``ItemCoverage``).
- ``ild_u = 1 - mean_{i != j in L_u} cos(f_i, f_j)`` over the user's list ``L_u`` and any item
  feature matrix ``f`` (a FeatureSet modality, or CF item vectors); items without features
  (``present`` False or a zero vector) are left out, lists with < 2 such items give NaN.
- ``novelty_u = mean_{i in L_u} -log2(p_i)``, ``p_i = max(pop_i, 1) / n_users``: the mean
  self-information of the recommended items (Zhou et al. 2010).
- ``avg_popularity_u = mean_{i in L_u} pop_i`` (RecBole's ``AveragePopularity``).
- ``gini = sum_j (2 j - m - 1) c_(j) / (m * sum_j c_j)`` over all ``m = n_items`` items' counts in the
  lists sorted ascending (RecBole's ``GiniIndex``): 0 = every item equally often, 1 = one item only.
"""

from __future__ import annotations

import numpy as np


def _valid(top_k: np.ndarray) -> np.ndarray:
    return np.asarray(top_k) >= 0


def catalog_coverage(top_k: np.ndarray, n_items: int) -> float:
    """Share of the catalog that appears in at least one list."""
    items = np.asarray(top_k)[_valid(top_k)]
    return float(len(np.unique(items)) / n_items) if n_items else 0.0


def intra_list_diversity(
    top_k: np.ndarray, item_features: np.ndarray, present: np.ndarray | None = None
) -> np.ndarray:
    """``(n_users,)`` float64: 1 - mean pairwise cosine similarity within each list.

    ``item_features`` is ``(n_items, d)`` float; ``present`` an optional ``(n_items,)`` bool mask.
    Uses ``sum_{i != j} <e_i, e_j> = ||sum_i e_i||^2 - sum_i ||e_i||^2`` on unit vectors, so the cost
    is ``O(n_users * K * d)`` with no ``K x K`` matrix.
    """
    top_k = np.asarray(top_k)
    feats = np.asarray(item_features, dtype=np.float64)
    norms = np.linalg.norm(feats, axis=1)
    usable = norms > 0
    if present is not None:
        usable &= np.asarray(present, dtype=bool)
    unit = np.where(usable[:, None], feats / np.where(norms > 0, norms, 1.0)[:, None], 0.0)
    safe = np.where(top_k >= 0, top_k, 0)
    take = (top_k >= 0) & usable[safe]
    vectors = unit[safe] * take[..., None]  # (n_users, K, d)
    count = take.sum(axis=1).astype(np.float64)
    summed = vectors.sum(axis=1)
    pair_sum = (summed * summed).sum(axis=1) - count  # each unit vector has norm 1
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_cos = pair_sum / (count * (count - 1.0))
    return np.where(count >= 2, 1.0 - mean_cos, np.nan)


def novelty(top_k: np.ndarray, item_popularity: np.ndarray, n_users: int) -> np.ndarray:
    """``(n_users,)`` mean self-information ``-log2(max(pop, 1) / n_users)`` of each list."""
    info = -np.log2(np.maximum(np.asarray(item_popularity, dtype=np.float64), 1.0) / max(n_users, 1))
    return _list_mean(top_k, info)


def average_popularity(top_k: np.ndarray, item_popularity: np.ndarray) -> np.ndarray:
    """``(n_users,)`` mean training popularity of each list's items."""
    return _list_mean(top_k, np.asarray(item_popularity, dtype=np.float64))


def gini_index(top_k: np.ndarray, n_items: int) -> float:
    """Gini index of how often each catalog item is recommended."""
    items = np.asarray(top_k)[_valid(top_k)]
    counts = np.sort(np.bincount(items, minlength=n_items).astype(np.float64))
    total = counts.sum()
    if total == 0 or n_items == 0:
        return 0.0
    j = np.arange(1, n_items + 1, dtype=np.float64)
    return float(((2 * j - n_items - 1) * counts).sum() / (n_items * total))


def _list_mean(top_k: np.ndarray, per_item: np.ndarray) -> np.ndarray:
    top_k = np.asarray(top_k)
    valid = top_k >= 0
    values = np.where(valid, per_item[np.where(valid, top_k, 0)], 0.0)
    count = valid.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, values.sum(axis=1) / count, np.nan)
