"""Score tensors, row masking and deterministic top-k: the one way fusionrec ranks items."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import scipy.sparse as sp
import torch


def as_score_tensor(scores: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A writable, contiguous float32 CPU tensor (zero-copy when the array already is one)."""
    if isinstance(scores, torch.Tensor):
        return scores.detach().to(device="cpu", dtype=torch.float32).contiguous()
    array = np.asarray(scores, dtype=np.float32)
    if not array.flags.writeable or not array.flags.c_contiguous:
        array = np.array(array, dtype=np.float32, order="C", copy=True)
    return torch.from_numpy(array)


def binary_csr(matrix: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """Float32 CSR with every stored non-zero set to 1, explicit zeros dropped, indices sorted."""
    csr = sp.csr_matrix(cast(Any, matrix), dtype=np.float32)
    csr.eliminate_zeros()
    csr.data[:] = 1.0
    csr.sort_indices()
    return csr


def mask_rows(scores: torch.Tensor, exclude_rows: sp.csr_matrix) -> None:
    """Set ``scores[r, i] = -inf`` for every stored entry ``(r, i)`` of ``exclude_rows`` (in place)."""
    if exclude_rows.nnz == 0:
        return
    rows = np.repeat(np.arange(exclude_rows.shape[0]), np.diff(exclude_rows.indptr))
    scores[torch.from_numpy(rows), torch.from_numpy(exclude_rows.indices.astype(np.int64))] = float("-inf")


def keep_candidates(scores: torch.Tensor, candidates: np.ndarray) -> None:
    """Set every column not in ``candidates`` (item indices) to ``-inf`` (in place)."""
    keep = torch.zeros(scores.shape[1], dtype=torch.bool)
    keep[torch.from_numpy(np.asarray(candidates, dtype=np.int64))] = True
    scores[:, ~keep] = float("-inf")


def top_k_items(scores: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items of each row, best first: ``(items int64, scores float32)``, both ``(rows, k)``.

    Ties are broken towards the lower item index. Slots whose score is ``-inf`` (fewer than ``k``
    candidates) get item ``-1``. Only rows with a tie at the k-th place are sorted in full.
    """
    n_rows, n_items = scores.shape
    k = min(k, n_items)
    if n_rows == 0 or k == 0:
        return np.zeros((n_rows, k), dtype=np.int64), np.zeros((n_rows, k), dtype=np.float32)
    values, index = torch.topk(scores, k, dim=1, largest=True, sorted=True)
    n_at_least = (scores >= values[:, -1:]).sum(dim=1)
    tied = torch.nonzero(n_at_least > k).flatten()
    if len(tied):
        full = torch.sort(scores[tied], dim=1, descending=True, stable=True)
        values[tied] = full.values[:, :k]
        index[tied] = full.indices[:, :k]
    items = index.numpy()
    vals = values.numpy()
    if k > 1 and np.any(vals[:, 1:] == vals[:, :-1]):
        order = np.lexsort((items, -vals.astype(np.float64)), axis=-1)
        items = np.take_along_axis(items, order, axis=1)
        vals = np.take_along_axis(vals, order, axis=1)
    items = np.where(np.isneginf(vals), -1, items)
    return items.astype(np.int64), vals.astype(np.float32)
