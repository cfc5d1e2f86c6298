"""Vectorised negative sampling for pairwise losses (no Python loop over users or interactions)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def interaction_keys(matrix: sp.csr_matrix) -> np.ndarray:
    """Sorted int64 keys ``user * n_items + item`` of the stored entries of a CSR matrix."""
    matrix = matrix if matrix.has_sorted_indices else matrix.sorted_indices()
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    return rows * matrix.shape[1] + matrix.indices.astype(np.int64)


def contains(keys: np.ndarray, users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Bool: is ``(users[i], items[i])`` among ``keys`` (from :func:`interaction_keys`)."""
    if len(keys) == 0:
        return np.zeros(len(users), dtype=bool)
    query = users.astype(np.int64) * n_items + items.astype(np.int64)
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return keys[pos] == query


def sample_negatives(
    users: np.ndarray,
    positives: sp.csr_matrix,
    rng: np.random.Generator,
    keys: np.ndarray | None = None,
    max_rounds: int = 50,
) -> np.ndarray:
    """For each user in ``users`` one item drawn uniformly among the items it has not interacted with.

    Rejection sampling, all users at once: draw uniformly, redraw only the collisions; after
    ``max_rounds`` the rare users still colliding draw from their explicit complement. A user who
    has interacted with every item keeps a positive (there is no negative to give).
    """
    n_items = positives.shape[1]
    keys = interaction_keys(positives) if keys is None else keys
    negatives = rng.integers(0, n_items, size=len(users), dtype=np.int64)
    redo = np.flatnonzero(contains(keys, users, negatives, n_items))
    for _ in range(max_rounds):
        if len(redo) == 0:
            break
        negatives[redo] = rng.integers(0, n_items, size=len(redo), dtype=np.int64)
        redo = redo[contains(keys, users[redo], negatives[redo], n_items)]
    # The few users left have interacted with almost every item: draw from their complement.
    for user in np.unique(users[redo]):
        rows = redo[users[redo] == user]
        free = np.setdiff1d(np.arange(n_items), positives.indices[positives.indptr[user] : positives.indptr[user + 1]])
        if len(free):
            negatives[rows] = rng.choice(free, size=len(rows))
    return negatives


def bpr_triples(
    positives: sp.csr_matrix, rng: np.random.Generator, keys: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One epoch of ``(user, positive item, negative item)`` int64 triples: every training pair once,
    in random order, each with one uniformly sampled negative."""
    rows = np.repeat(np.arange(positives.shape[0], dtype=np.int64), np.diff(positives.indptr))
    order = rng.permutation(len(rows))
    users = rows[order]
    items = positives.indices.astype(np.int64)[order]
    return users, items, sample_negatives(users, positives, rng, keys=keys)
