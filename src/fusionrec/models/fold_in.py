"""Fold-in: a user vector for a new history, with the trained item vectors held fixed.

A factor model trained with BPR scores ``s_ui = <u, v_i>``; a user it never saw (or one with new
feedback) gets the vector that maximises the same regularised BPR objective over their history
``S`` against every other item, the item side frozen:

``max_u  mean_{i in S, j not in S} log sigmoid(<u, v_i - v_j>) - reg ||u||^2``

It is smooth and strictly convex in ``u`` (``reg > 0``), so Newton's method with a backtracking
line search reaches the optimum in a handful of steps from the current vector (or, for a new user,
the mean of the seed items): gradient and Hessian are a few matrix products over the ``(|S|,
n_items)`` pair weights, no sampling, no autograd, so the result is deterministic and an update of
one user with a short history takes about a millisecond. Columns listed in ``fixed`` keep the
value they have in ``init`` (a model that folds an item bias into its vectors has a constant ``1``
user column).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, log_expit

MAX_NEWTON_STEPS = 25
TOLERANCE = 1e-6  # stop when the squared Newton decrement (about twice the gap to the optimum; objective ~0.1-0.7) is below this
FULL_STEP_DECREMENT = 0.01  # below it the quadratic model is trusted: no line search


class BPRFoldIn:
    """The fold-in solver of one set of item vectors, prepared once (the free columns copied, the fixed
    columns' score computed) so an online update pays only for its own user.

    ``item_vectors`` ``(n_items, d)``; ``fixed`` columns of every user vector are set to ``fixed_values``.
    """

    def __init__(
        self,
        item_vectors: np.ndarray,
        *,
        reg: float = 0.01,
        fixed: Sequence[int] = (),
        fixed_values: Sequence[float] = (),
        max_steps: int = MAX_NEWTON_STEPS,
    ) -> None:
        items = np.asarray(item_vectors, dtype=np.float32)
        self.dim, self.reg, self.max_steps = items.shape[1], float(reg), max_steps
        self.fixed = np.asarray(fixed, dtype=np.int64)
        self.fixed_values = np.asarray(fixed_values, dtype=np.float32)
        self.free = np.setdiff1d(np.arange(self.dim), self.fixed)
        self.free_items = np.ascontiguousarray(items[:, self.free])
        self.offset = (items[:, self.fixed] @ self.fixed_values if len(self.fixed) else np.zeros(len(items))).astype(np.float32)

    def solve(self, rows: sp.csr_matrix, init: np.ndarray | None = None) -> np.ndarray:
        """``(n_rows, d)`` float32 user vectors for the histories ``rows`` (``(n_rows, n_items)`` CSR);
        an empty row gets zeros in the free columns. ``init`` (``(n_rows, d)``, e.g. the users'
        current vectors) is where Newton starts (default: the mean of the seed items)."""
        rows = sp.csr_matrix(rows)
        out = np.zeros((rows.shape[0], self.dim), dtype=np.float32)
        out[:, self.fixed] = self.fixed_values
        for row in np.flatnonzero(np.diff(rows.indptr) > 0):  # one small convex solve per user
            seeds = rows.indices[rows.indptr[row] : rows.indptr[row + 1]]
            start = None if init is None else np.asarray(init[row], dtype=np.float32)[self.free]
            out[row, self.free] = newton_user(self.free_items, self.offset, seeds, self.reg, start, self.max_steps)
        return out


def newton_user(
    items: np.ndarray, offset: np.ndarray, seeds: np.ndarray, reg: float, start: np.ndarray | None, max_steps: int
) -> np.ndarray:
    """The optimum ``(d,)`` of the fold-in objective for one user: ``items`` ``(n_items, d)`` free item
    columns, ``offset`` ``(n_items,)`` the fixed columns' score, ``seeds`` the history's item indices."""
    n_items = len(items)
    negative = np.ones(n_items, dtype=bool)
    negative[seeds] = False
    if not negative.any():  # the user has every item: nothing to rank, stay at the seed mean
        return items[seeds].mean(axis=0)
    pos, neg = items[seeds], items[negative]
    pos_offset, neg_offset = offset[seeds], offset[negative]
    n_pairs = float(len(seeds) * len(neg))
    user = pos.mean(axis=0) if start is None or not np.isfinite(start).all() else start.copy()

    def margins(u: np.ndarray) -> np.ndarray:
        return (pos @ u + pos_offset)[:, None] - (neg @ u + neg_offset)[None, :]  # (|S|, |N|)

    def objective(margin: np.ndarray, u: np.ndarray) -> float:
        return float(-log_expit(margin).sum() / n_pairs + reg * (u @ u))

    margin = margins(user)
    previous_hessian: np.ndarray | None = None
    for _ in range(max_steps):
        weight = expit(-margin)  # d(-log sigmoid)/d margin, negated
        gradient = -(pos.T @ weight.sum(axis=1) - neg.T @ weight.sum(axis=0)) / n_pairs + 2.0 * reg * user
        # after a full step the last Hessian estimates the decrement well: stop without a new one
        if previous_hessian is not None and float(gradient @ np.linalg.solve(previous_hessian, gradient)) < TOLERANCE:
            break
        curvature = weight * (1.0 - weight)
        cross = pos.T @ (curvature @ neg)  # (d, d)
        hessian = (
            (pos.T * curvature.sum(axis=1)) @ pos + (neg.T * curvature.sum(axis=0)) @ neg - cross - cross.T
        ) / n_pairs + 2.0 * reg * np.eye(len(user))
        step = np.linalg.solve(hessian, gradient)
        decrement = float(gradient @ step)
        if decrement < TOLERANCE:
            break
        if decrement < FULL_STEP_DECREMENT:  # close to the optimum: the full Newton step is safe
            user = user - step
            margin = margins(user)
            previous_hessian = hessian
            continue
        previous_hessian = None
        value, size = objective(margin, user), 1.0
        while True:  # backtracking (Armijo): far from the optimum, Newton steps overshoot
            candidate = user - size * step
            candidate_margin = margins(candidate)
            if objective(candidate_margin, candidate) <= value - 0.25 * size * decrement or size < 1e-4:
                break
            size *= 0.5
        user, margin = candidate, candidate_margin
    return user
