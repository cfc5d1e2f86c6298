"""Top-K accuracy metrics, vectorised over a batch of users.

Everything starts from two arrays per batch:

- ``top_k``: ``(n_users, K)`` int item indices, best first (``-1`` marks an empty slot when a user
  has fewer than ``K`` candidate items);
- ``truth``: ``(n_users, n_items)`` CSR of the held-out (relevant) items, rows aligned to ``top_k``.

From them, :func:`hit_matrix` gives ``hits[u, r] = 1`` when the item at rank ``r + 1`` is relevant,
and :func:`ranking_metrics` returns one value per user for every metric and cut-off at once.
Notation below: ``hit_r`` is 1 when the item at rank ``r`` (1-based) is relevant, ``|T|`` the number
of relevant items of the user, ``h@k = sum_{r<=k} hit_r``. The definitions are RecBole's (and
MMRec's, which copies them), binary relevance:

- ``precision@k = h@k / k``
- ``recall@k = h@k / |T|``
- ``f1@k = 2 * precision * recall / (precision + recall) = 2 h@k / (k + |T|)`` (0 without hits)
- ``ndcg@k = DCG@k / IDCG@k`` with ``DCG@k = sum_{r<=k} hit_r / log2(r + 1)`` and the ideal
  ``IDCG@k = sum_{r <= min(|T|, k)} 1 / log2(r + 1)``
- ``hit_rate@k = 1 if h@k > 0 else 0``
- ``map@k = (sum_{r<=k} hit_r * precision@r) / min(|T|, k)``
- ``mrr@k = 1 / r*`` where ``r*`` is the rank of the first relevant item if ``r* <= k``, else 0
- ``auc`` (full ranking, per user, then the plain mean over users): the Mann-Whitney statistic
  ``AUC_u = (#{(p, n): s_p > s_n} + 0.5 #{(p, n): s_p = s_n}) / (|T| * |N|)`` over relevant items
  ``p`` and the user's other candidate items ``n`` (all items minus excluded minus relevant).
  RecBole's ``GAUC`` is the same per-user value averaged with weights ``|T|``; we report the
  unweighted mean (every user counts once) and users without negatives are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.ranking.keys import RANKING_METRICS, metric_key, parse_metric_key

__all__ = ["RANKING_METRICS", "auc_per_user", "hit_matrix", "metric_key", "parse_metric_key", "ranking_metrics"]


def hit_matrix(top_k: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """``(n_users, K)`` bool: is ``top_k[u, r]`` in row ``u`` of ``truth``.

    Uses one sorted key array (``row * n_items + item``) and ``searchsorted``; no dense row is built.
    """
    top_k = np.asarray(top_k)
    n_rows, n_items = truth.shape
    if n_rows != top_k.shape[0]:
        raise ValueError(f"top_k has {top_k.shape[0]} rows and truth {n_rows}")
    if top_k.size == 0 or truth.nnz == 0:
        return np.zeros(top_k.shape, dtype=bool)
    truth = truth if truth.has_sorted_indices else truth.sorted_indices()
    row_of_entry = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(truth.indptr))
    keys = row_of_entry * n_items + truth.indices.astype(np.int64)
    queries = np.arange(n_rows, dtype=np.int64)[:, None] * n_items + top_k.astype(np.int64)
    pos = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return (keys[pos] == queries) & (top_k >= 0)


def _discounts(n: int) -> np.ndarray:
    """``1 / log2(r + 1)`` for ranks ``r = 1..n`` (float64)."""
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def ranking_metrics(
    hits: np.ndarray,
    n_relevant: np.ndarray,
    ks: Sequence[int],
    metrics: Iterable[str] = RANKING_METRICS,
) -> dict[str, np.ndarray]:
    """Per-user values of every ``metric@k``.

    Parameters
    ----------
    hits:
        ``(n_users, K)`` bool from :func:`hit_matrix`, ``K >= max(ks)``.
    n_relevant:
        ``(n_users,)`` int, the number of relevant items ``|T|`` of each user (must be > 0).
    ks:
        cut-offs, each ``<= K``.
    metrics:
        names from :data:`RANKING_METRICS`.

    Returns
    -------
    ``{"recall@20": (n_users,) float64, ...}``
    """
    hits = np.asarray(hits, dtype=bool)
    n_rel = np.asarray(n_relevant, dtype=np.float64)
    wanted = list(metrics)
    unknown = set(wanted) - set(RANKING_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; known: {RANKING_METRICS}")
    max_k = hits.shape[1]
    if any(k < 1 or k > max_k for k in ks):
        raise ValueError(f"cut-offs {list(ks)} must be in [1, {max_k}]")
    if np.any(n_rel <= 0):
        raise ValueError("every evaluated user needs at least one relevant item")

    hits_f = hits.astype(np.float64)
    cum_hits = np.cumsum(hits_f, axis=1)
    ranks = np.arange(1, max_k + 1, dtype=np.float64)
    disc = _discounts(max_k)
    out: dict[str, np.ndarray] = {}
    if "ndcg" in wanted:
        dcg = np.cumsum(hits_f * disc, axis=1)
        ideal = np.cumsum(disc)
    if "map" in wanted:
        sum_precision = np.cumsum(hits_f * (cum_hits / ranks), axis=1)
    if "mrr" in wanted:
        any_hit = hits.any(axis=1)
        first = np.where(any_hit, hits.argmax(axis=1), max_k)  # 0-based rank of first hit
    for k in ks:
        h = cum_hits[:, k - 1]
        for name in wanted:
            if name == "precision":
                value = h / k
            elif name == "recall":
                value = h / n_rel
            elif name == "f1":
                value = 2.0 * h / (k + n_rel)
            elif name == "ndcg":
                idcg = ideal[np.minimum(n_rel, k).astype(np.int64) - 1]
                value = dcg[:, k - 1] / idcg
            elif name == "hit_rate":
                value = (h > 0).astype(np.float64)
            elif name == "map":
                value = sum_precision[:, k - 1] / np.minimum(n_rel, k)
            else:  # mrr
                value = np.where(first < k, 1.0 / (first + 1.0), 0.0)
            out[metric_key(name, k)] = value
    return out


def auc_per_user(scores: torch.Tensor, excluded: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Full-ranking AUC of each user (formula in the module docstring); NaN when undefined.

    Parameters
    ----------
    scores:
        ``(n_users, n_items)`` float tensor where excluded items are ``-inf`` and no other is.
    excluded:
        ``(n_users,)`` int, how many items of each row are excluded (``-inf``).
    truth:
        ``(n_users, n_items)`` CSR of relevant items; none of them excluded.
    """
    n_rows, n_items = scores.shape
    n_pos = np.diff(truth.indptr)
    if n_rows == 0:
        return np.zeros(0)
    sorted_scores = torch.sort(scores, dim=1).values
    max_pos = int(n_pos.max()) if len(n_pos) else 0
    if max_pos == 0:
        return np.full(n_rows, np.nan)
    # Padded (n_users, max_pos) matrix of the relevant items' scores.
    row_of_entry = np.repeat(np.arange(n_rows), n_pos)
    slot = np.arange(truth.nnz) - np.repeat(truth.indptr[:-1], n_pos)
    rows_t = torch.from_numpy(row_of_entry)
    pos_scores = torch.full((n_rows, max_pos), float("inf"), dtype=scores.dtype)
    pos_scores[rows_t, torch.from_numpy(slot)] = scores[rows_t, torch.from_numpy(truth.indices.astype(np.int64))]
    below = torch.searchsorted(sorted_scores, pos_scores, side="left").numpy().astype(np.float64)
    upto = torch.searchsorted(sorted_scores, pos_scores, side="right").numpy().astype(np.float64)
    valid = np.arange(max_pos)[None, :] < n_pos[:, None]
    # Items strictly below (minus the -inf excluded ones) plus half of the equal ones other than itself.
    wins = np.where(valid, (below - excluded[:, None]) + 0.5 * (upto - below - 1.0), 0.0).sum(axis=1)
    wins -= n_pos * (n_pos - 1) / 2.0  # each positive-positive pair was counted once in total
    n_neg = n_items - excluded - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = wins / (n_pos * n_neg)
    return np.where((n_neg > 0) & (n_pos > 0), auc, np.nan)
