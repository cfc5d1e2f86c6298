"""One entry point: re-rank a model's candidate lists for diversity with MMR or a greedy DPP.

    items, scores = model.recommend(users, k=100, exclude=seen)      # (n_users, 100) candidates
    space = ItemSimilarity(item_space("fused", features))             # once per catalogue
    items, scores = rerank(items, scores, space, method="mmr", diversity=0.3, k=20)

The candidate arrays are the model's ``(n_users, N)`` top-N, best first (``recommend``'s output);
item ``-1`` marks an empty slot. Empty slots are moved last (valid candidates keep their order), each
list's scores are min-max normalised over its valid candidates (:func:`~fusionrec.rerank.greedy.normalize_relevance`,
so ``diversity`` means the same for any model), and :func:`~fusionrec.rerank.greedy.mmr_select` or
:func:`~fusionrec.rerank.greedy.dpp_select` choose ``k``. ``diversity = 0`` returns the first ``k``
candidates unchanged (exactly the model's order). At any trade-off the first item is the model's
top candidate: MMR picks it by definition, and the DPP's residuals all start equal, so relevance (at
``diversity = 1`` the tie rule, lower position first) decides its first pick.
"""

from __future__ import annotations

import numpy as np

from fusionrec.errors import ModelError
from fusionrec.rerank.greedy import (
    DEFAULT_JITTER,
    DEFAULT_STOP_EPS,
    check_diversity,
    dpp_select,
    mmr_select,
    normalize_relevance,
)
from fusionrec.rerank.space import ItemSimilarity

RERANK_METHODS = ("mmr", "dpp")


def _compact(items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Valid candidates first, in their given order, empty slots (``-1``) last: ``(items, scores, valid)``."""
    valid = items >= 0
    if valid.all() or not (valid[:, 1:] & ~valid[:, :-1]).any():  # already compact
        return items, scores, valid
    order = np.argsort(~valid, axis=1, kind="stable")
    return (np.take_along_axis(items, order, axis=1), np.take_along_axis(scores, order, axis=1),
            np.take_along_axis(valid, order, axis=1))  # fmt: skip


def rerank(
    items: np.ndarray,
    scores: np.ndarray,
    item_vectors: np.ndarray | ItemSimilarity,
    method: str = "mmr",
    diversity: float = 0.3,
    k: int = 20,
    batch_size: int = 512,
    jitter: float = DEFAULT_JITTER,
    stop_eps: float = DEFAULT_STOP_EPS,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank candidate lists for diversity: ``(items int64, scores float32)``, each ``(n_users, min(k, N))``.

    Parameters
    ----------
    items, scores:
        ``(n_users, N)`` candidate item indices (``-1`` = empty slot) and the model's scores, best first.
    item_vectors:
        ``(n_items, d)`` vectors of the space similarity is computed in (:func:`~fusionrec.rerank.space.item_space`),
        or an :class:`~fusionrec.rerank.space.ItemSimilarity` built from them (build it once when
        re-ranking many batches).
    method:
        ``"mmr"`` or ``"dpp"``.
    diversity:
        trade-off in ``[0, 1]``: 0 keeps the model's order, 1 ranks for diversity alone (after the first item).
    k:
        list length wanted; lists with fewer valid candidates end in ``-1`` slots.
    batch_size:
        users re-ranked at once (the DPP holds ``batch_size x k x N`` float64 Cholesky rows).
    jitter, stop_eps:
        DPP only: diagonal jitter and the residual below which a list is completed by relevance.

    Returns
    -------
    The chosen items in their new order with the model's own score of each (``-inf`` on empty slots).
    """
    if method not in RERANK_METHODS:
        raise ModelError(f"unknown re-ranking method {method!r}; choose one of {list(RERANK_METHODS)}")
    lam = check_diversity(diversity)
    if int(k) < 1:
        raise ModelError(f"k must be >= 1, got {k}")
    items = np.asarray(items, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float32)
    if items.ndim != 2 or items.shape != scores.shape:
        raise ModelError(f"items {items.shape} and scores {scores.shape} must be the same (n_users, N) shape")
    similarity = item_vectors if isinstance(item_vectors, ItemSimilarity) else ItemSimilarity(item_vectors)
    if items.size and items.max() >= similarity.n_items:
        raise ModelError(f"item index {int(items.max())} is outside the {similarity.n_items} item vectors")
    items, scores, valid = _compact(items, scores)
    if not np.isfinite(scores[valid]).all():
        raise ModelError("a candidate item has a non-finite score: mark empty slots with item -1")
    k = min(int(k), items.shape[1])
    if lam == 0.0:
        out_items, out_scores = items[:, :k].copy(), scores[:, :k].copy()
        out_scores[out_items < 0] = -np.inf
        return out_items, out_scores
    positions = np.full((items.shape[0], k), -1, dtype=np.int64)
    for lo in range(0, items.shape[0], max(int(batch_size), 1)):
        part = slice(lo, lo + max(int(batch_size), 1))
        relevance = normalize_relevance(scores[part], valid[part])
        rows = similarity.for_candidates(items[part])
        if method == "mmr":
            positions[part] = mmr_select(relevance, rows, lam, k)
        else:
            positions[part] = dpp_select(relevance, rows, lam, k, jitter=jitter, stop_eps=stop_eps)
    chosen = positions >= 0
    safe = np.where(chosen, positions, 0)
    out_items = np.where(chosen, np.take_along_axis(items, safe, axis=1), -1)
    out_scores = np.where(chosen, np.take_along_axis(scores, safe, axis=1), -np.inf).astype(np.float32)
    return out_items, out_scores
