"""Fold-in: a user vector for a new history, with the trained item vectors held fixed.

A factor model trained with BPR scores ``s_ui = <u, v_i>``; a user it never saw (or one with new
feedback) gets the vector that maximises the same regularised BPR objective over their history
``S`` against every other item, the item side frozen:

``max_u  mean_{i in S, j not in S} log sigmoid(<u, v_i - v_j>) - reg ||u||^2``

It is convex in ``u`` and solved for a batch of users at once by full-batch Adam in PyTorch (every
negative, no sampling, so the result is deterministic). Columns listed in ``fixed`` keep the value
they have in ``init`` (a model that folds an item bias into its vectors has a constant ``1`` user
column).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

BATCH_CELLS = 2_000_000  # (users x seeds x items) cells per chunk of users


def fold_in_bpr(
    item_vectors: np.ndarray,
    rows: sp.csr_matrix,
    *,
    reg: float = 0.01,
    steps: int = 100,
    learning_rate: float = 0.05,
    fixed: Sequence[int] = (),
    fixed_values: Sequence[float] = (),
) -> np.ndarray:
    """``(n_rows, d)`` float32 user vectors for the histories ``rows`` (``(n_rows, n_items)`` CSR);
    an empty row gets zeros in the free columns. ``fixed`` columns are set to ``fixed_values``."""
    items = torch.from_numpy(np.ascontiguousarray(item_vectors, dtype=np.float32))
    n_items, dim = items.shape
    rows = sp.csr_matrix(rows)
    lengths = np.diff(rows.indptr)
    out = np.zeros((rows.shape[0], dim), dtype=np.float32)
    for column, value in zip(fixed, fixed_values, strict=True):
        out[:, column] = value
    free = np.setdiff1d(np.arange(dim), np.asarray(fixed, dtype=np.int64))
    longest = max(int(lengths.max()) if len(lengths) else 0, 1)
    per_chunk = max(1, BATCH_CELLS // (longest * n_items))
    todo = np.flatnonzero(lengths > 0)
    for start in range(0, len(todo), per_chunk):
        chunk = todo[start : start + per_chunk]
        out[chunk] = _solve_chunk(items, rows[chunk], out[chunk], free, reg, steps, learning_rate)
    return out


def _solve_chunk(
    items: torch.Tensor,
    rows: sp.csr_matrix,
    start: np.ndarray,
    free: np.ndarray,
    reg: float,
    steps: int,
    learning_rate: float,
) -> np.ndarray:
    n_rows, n_items = rows.shape
    lengths = np.diff(rows.indptr)
    width = int(lengths.max())
    seeds = np.zeros((n_rows, width), dtype=np.int64)
    valid = np.arange(width)[None, :] < lengths[:, None]
    seeds[valid] = rows.indices
    seed_t, valid_t = torch.from_numpy(seeds), torch.from_numpy(valid)
    negative = torch.ones(n_rows, n_items, dtype=torch.bool)
    negative[torch.from_numpy(np.repeat(np.arange(n_rows), lengths)), torch.from_numpy(rows.indices.astype(np.int64))] = False
    n_pairs = (valid_t.sum(1, keepdim=True) * negative.sum(1, keepdim=True)).clamp(min=1).float()
    free_t = torch.from_numpy(free)
    base = torch.from_numpy(start.copy())
    # start from the mean of the seed items' free columns (a good, cheap initial direction)
    mean_seed = (items[seed_t] * valid_t[..., None]).sum(1) / valid_t.sum(1, keepdim=True).clamp(min=1)
    variable = mean_seed[:, free_t].clone().requires_grad_(True)
    optimiser = torch.optim.Adam([variable], lr=learning_rate)
    for _ in range(steps):
        optimiser.zero_grad()
        user = base.index_put((torch.arange(n_rows)[:, None], free_t[None, :]), variable)
        scores = user @ items.T  # (n_rows, n_items)
        positive = torch.gather(scores, 1, seed_t)  # (n_rows, width)
        pair = torch.nn.functional.logsigmoid(positive[:, :, None] - scores[:, None, :])
        pair = pair * (valid_t[:, :, None] & negative[:, None, :])
        loss = -(pair.sum((1, 2)) / n_pairs.squeeze(1)).sum() + reg * (variable**2).sum()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        user = base.index_put((torch.arange(n_rows)[:, None], free_t[None, :]), variable)
    return user.numpy().astype(np.float32)
