"""Replacing users' rows of a history matrix without rebuilding it entry by entry.

Online updates (``partial_fit_users``) set a few users' histories at a time; a CSR row replacement
copies the untouched stretches of ``indptr`` / ``indices`` / ``data`` as whole slices (one memcpy per
run between replaced rows), so an update costs O(nnz) bytes moved and no Python loop over entries:
about a millisecond for ML-1M's million interactions.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import scipy.sparse as sp

from fusionrec.errors import ModelError


def check_update(users: np.ndarray, rows: sp.csr_matrix | sp.spmatrix | sp.sparray, n_items: int) -> tuple[np.ndarray, sp.csr_matrix]:
    """``(users int64, rows CSR float32)`` of an update, checked: one row per user, ``n_items`` columns,
    no negative or repeated user index (a repeated user would make "the last row wins" silent)."""
    index = np.asarray(users, dtype=np.int64).ravel()
    matrix = sp.csr_matrix(cast(Any, rows), dtype=np.float32)
    if matrix.shape != (len(index), n_items):
        raise ModelError(f"interactions have shape {matrix.shape}, expected {(len(index), n_items)} (one row per user)")
    if len(index) and index.min() < 0:
        raise ModelError(f"user indices must be >= 0, got {int(index.min())}")
    if len(np.unique(index)) != len(index):
        raise ModelError("each user may appear once per update (merge their rows first)")
    matrix.sum_duplicates()
    matrix.sort_indices()
    return index, matrix


def replace_rows(matrix: sp.csr_matrix, users: np.ndarray, rows: sp.csr_matrix, n_rows: int | None = None) -> sp.csr_matrix:
    """``matrix`` (``(n, n_items)`` CSR) with row ``users[j]`` replaced by ``rows[j]``; it grows to
    ``n_rows`` (default: ``max(n, max(users) + 1)``) rows, the new ones empty unless replaced."""
    users = np.asarray(users, dtype=np.int64).ravel()
    n_old = matrix.shape[0]
    total = max(n_old, int(users.max()) + 1 if len(users) else 0, n_rows or 0)
    old_lengths = np.zeros(total, dtype=np.int64)
    old_lengths[:n_old] = np.diff(matrix.indptr)
    lengths = old_lengths.copy()
    lengths[users] = np.diff(rows.indptr)
    indptr = np.zeros(total + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    data = np.empty(int(indptr[-1]), dtype=np.float32)
    # untouched runs of rows: copied as slices (a run ends at each replaced user)
    kept = np.ones(n_old, dtype=np.int8)
    kept[users[users < n_old]] = 0
    edges = np.diff(np.concatenate([[0], kept, [0]]))
    for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):  # one slice per run
        source = slice(int(matrix.indptr[start]), int(matrix.indptr[stop]))
        target = slice(int(indptr[start]), int(indptr[stop]))
        indices[target], data[target] = matrix.indices[source], matrix.data[source]
    order = np.argsort(users, kind="stable")
    for j in order:  # one slice per replaced user (updates carry few users)
        user = int(users[j])
        target = slice(int(indptr[user]), int(indptr[user + 1]))
        source = slice(int(rows.indptr[j]), int(rows.indptr[j + 1]))
        indices[target], data[target] = rows.indices[source], rows.data[source]
    if indptr[-1] < np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    return sp.csr_matrix((data, indices, indptr), shape=(total, matrix.shape[1]))
