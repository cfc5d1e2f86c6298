"""Implicit ALS (Hu, Koren & Volinsky 2008): weighted matrix factorisation solved in closed form.

Every observed pair has preference 1 and confidence ``1 + alpha``, every other pair preference 0
and confidence 1; ``min sum_ui c_ui (p_ui - <x_u, y_i>)^2 + reg (|x|^2 + |y|^2)`` alternates exact
ridge solves: ``x_u = (Y^T Y + alpha Y_u^T Y_u + reg I)^-1 (1 + alpha) Y_u^T 1`` (``Y_u`` the rows
of the user's items), and the same for items. The Gram ``Y^T Y`` is shared, so a user costs
``O(|S_u| d^2 + d^3)``: the users of a batch are solved at once with batched Cholesky in PyTorch,
grouped by history length so padding stays small.

Each iteration solves items, then users, so the trained user vectors are exactly what
:meth:`ALS.partial_fit_users` gives for the same history: folding in new feedback is the model's own
user step (as implicit's ``recalculate_user``), a fraction of a millisecond per user.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from fusionrec.errors import ModelError
from fusionrec.models.base import Recommender, as_csr
from fusionrec.models.configs import ALSConfig
from fusionrec.models.history import check_update

CELLS_PER_BATCH = 1 << 18  # padded (rows x history length) cells gathered at once (x d floats)
SMALL_UPDATE = 8  # at most this many rows are solved one by one in numpy


def solve_rows(
    rows: sp.csr_matrix, factors: np.ndarray, gram: np.ndarray, alpha: float, reg: float
) -> np.ndarray:
    """``(n_rows, d)`` float32 ridge solutions ``(G + alpha F_r^T F_r + reg I)^-1 (1 + alpha) F_r^T 1``
    for each row ``r`` of the binary ``(n_rows, n_cols)`` matrix, ``F`` the ``(n_cols, d)`` fixed
    factors and ``G = F^T F``; an empty row gets zeros."""
    rows = sp.csr_matrix(rows)
    n_rows, dim = rows.shape[0], factors.shape[1]
    out = np.zeros((n_rows, dim), dtype=np.float32)
    lengths = np.diff(rows.indptr)
    order = np.flatnonzero(lengths > 0)
    order = order[np.argsort(lengths[order], kind="stable")]
    if len(order) <= SMALL_UPDATE:  # an online update: a few users, numpy beats torch's call overhead
        base_np = np.asarray(gram, dtype=np.float64) + reg * np.eye(dim)
        for row in order:
            picked = np.asarray(factors[rows.indices[rows.indptr[row] : rows.indptr[row + 1]]], dtype=np.float64)
            normal = base_np + alpha * (picked.T @ picked)
            out[row] = scipy.linalg.cho_solve(scipy.linalg.cho_factor(normal), (1.0 + alpha) * picked.sum(axis=0))
        return out
    fixed = torch.from_numpy(np.ascontiguousarray(factors, dtype=np.float32))
    base = torch.from_numpy(np.asarray(gram, dtype=np.float32)) + reg * torch.eye(dim)
    sorted_lengths = lengths[order]
    start = 0
    while start < len(order):
        # ascending lengths: the chunk's padded cost is its size times its last (longest) row
        cost = np.arange(1, len(order) - start + 1) * sorted_lengths[start:]
        stop = start + max(1, int(np.searchsorted(cost, CELLS_PER_BATCH, side="right")))
        chunk = order[start:stop]
        width = int(lengths[chunk].max())
        sub = rows[chunk]
        sub_lengths = np.diff(sub.indptr)
        padded = np.zeros((len(chunk), width), dtype=np.int64)
        valid = np.arange(width)[None, :] < sub_lengths[:, None]
        padded[valid] = sub.indices
        gathered = fixed[torch.from_numpy(padded)] * torch.from_numpy(valid)[..., None]  # (b, width, d)
        system = base + alpha * torch.bmm(gathered.transpose(1, 2), gathered)  # (b, d, d)
        target = (1.0 + alpha) * gathered.sum(dim=1, keepdim=True).transpose(1, 2)  # (b, d, 1)
        factor, info = torch.linalg.cholesky_ex(system)
        if bool(info.any()):
            raise ModelError("ALS: a ridge system is not positive definite; raise reg")
        out[chunk] = torch.cholesky_solve(target, factor).squeeze(2).numpy()
        start = stop
    return out


class ALS(Recommender):
    """Implicit-feedback ALS (module docstring); ``score = user_vectors() @ item_vectors().T``.

    Parameters
    ----------
    factors: embedding size ``d``.
    alpha: extra confidence of an observed pair (``c = 1 + alpha``).
    reg: ridge weight on every user and item vector.
    iterations: alternations (items then users) run.
    init_std: standard deviation of the normal initial item vectors.
    seed: the initialisation's seed.
    verbose: show a progress bar.
    """

    name = "als"
    config_class = ALSConfig
    vector_measure = "inner_product"

    def __init__(
        self,
        *,
        factors: int = 64,
        alpha: float = 2.0,
        reg: float = 50.0,
        iterations: int = 15,
        init_std: float = 0.01,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        self.factors, self.alpha, self.reg, self.iterations = factors, alpha, reg, iterations
        self.init_std, self.seed, self.verbose = init_std, seed, verbose
        self.user_factors = np.zeros((0, factors), dtype=np.float32)
        self.item_factors = np.zeros((0, factors), dtype=np.float32)
        self._item_gram: np.ndarray | None = None

    def _fit(self, train: sp.csr_matrix, features: Any | None, valid: sp.csr_matrix | None) -> None:
        rng = np.random.default_rng(self.seed)
        n_users, n_items = train.shape
        users = (rng.standard_normal((n_users, self.factors)) * self.init_std).astype(np.float32)
        items = np.zeros((n_items, self.factors), dtype=np.float32)
        by_item = train.T.tocsr()
        for _ in tqdm(range(self.iterations), desc="als", disable=not self.verbose):
            items = solve_rows(by_item, users, users.T @ users, self.alpha, self.reg)
            users = solve_rows(train, items, items.T @ items, self.alpha, self.reg)
        self.user_factors, self.item_factors = users, items
        self._item_gram = None

    def fold_in(self, rows: sp.csr_matrix) -> np.ndarray:
        """``(n_rows, d)`` user vectors for history rows ``(n_rows, n_items)``: the model's own user
        step with the item vectors fixed (exact, no approximation)."""
        self._check_fitted()
        if self._item_gram is None:  # Y^T Y, shared by every fold-in until the items change
            self._item_gram = self.item_factors.T @ self.item_factors
        return solve_rows(as_csr(rows), self.item_factors, self._item_gram, self.alpha, self.reg)

    def partial_fit_users(self, users: np.ndarray, interactions: sp.csr_matrix) -> None:
        """Set the histories of ``users`` to ``interactions`` (``(len(users), n_items)``, their whole
        current history) and re-solve their vectors; an index ``>= n_users`` adds a user."""
        self._check_fitted()
        index, rows = check_update(users, interactions, self.n_items)
        vectors = self.fold_in(rows)
        grown = max(self.n_users, int(index.max()) + 1 if len(index) else 0)
        if grown > self.n_users:
            extra = np.zeros((grown - self.n_users, self.factors), dtype=np.float32)
            self.user_factors = np.concatenate([self.user_factors, extra])
            self.n_users = grown
        self.user_factors[index] = vectors

    def score(self, users: np.ndarray, user_items: sp.csr_matrix | None = None) -> np.ndarray:
        """``(len(users), n_items)`` float32; with ``user_items`` the users' vectors are solved from those
        rows (:meth:`fold_in`, exact) instead of read from the table (an unknown user, e.g. -1, is fine)."""
        if user_items is None:
            vectors = self.user_factors[self._check_users(users)]
        else:
            rows = self._history_rows(users, user_items)
            vectors = self.fold_in(rows)
        return np.asarray(vectors @ self.item_factors.T, dtype=np.float32)

    def user_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self.user_factors

    def item_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self.item_factors

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors = np.array(state["user_factors"], dtype=np.float32)
        self.item_factors = np.array(state["item_factors"], dtype=np.float32)
        self._item_gram = None
