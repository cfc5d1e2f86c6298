"""The user-item bipartite graph, its symmetric normalisation, and a fast differentiable product with a
constant sparse matrix (symmetric or not), shared by every graph model."""

from __future__ import annotations

import warnings
from typing import Any, cast

import numpy as np
import scipy.sparse as sp
import torch


def bipartite_adjacency(train: sp.csr_matrix) -> sp.csr_matrix:
    """``(n_users + n_items)`` square symmetric 0/1 matrix ``[[0, R], [R^T, 0]]`` (float32 CSR)."""
    n_users, n_items = train.shape
    coo = sp.coo_matrix(train)
    rows = np.concatenate([coo.row, coo.col + n_users])
    cols = np.concatenate([coo.col + n_users, coo.row])
    size = n_users + n_items
    adjacency = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(size, size))
    adjacency.data[:] = 1.0  # duplicates summed above; keep binary
    adjacency.sort_indices()
    return adjacency


def normalized_adjacency(train: sp.csr_matrix, self_loops: bool = False) -> sp.csr_matrix:
    """``D^-1/2 A D^-1/2`` of the bipartite graph (LightGCN's propagation matrix); isolated nodes stay 0."""
    adjacency = bipartite_adjacency(train)
    if self_loops:
        adjacency = (adjacency + sp.identity(adjacency.shape[0], dtype=np.float32, format="csr")).tocsr()
    return symmetric_normalize(adjacency)


def symmetric_normalize(adjacency: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """``D^-1/2 A D^-1/2`` with ``D`` the row sums of ``A`` (float32 CSR, sorted); rows and columns
    of nodes without edges stay 0. The one normalisation every graph (bipartite, item-item) uses."""
    matrix = sp.csr_matrix(cast(Any, adjacency), dtype=np.float32)
    degree = np.asarray(matrix.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(degree, dtype=np.float64)
    nonzero = degree > 0
    inv_sqrt[nonzero] = degree[nonzero] ** -0.5
    scale = sp.diags(inv_sqrt.astype(np.float32))
    normalized = sp.csr_matrix(scale @ matrix @ scale, dtype=np.float32)
    normalized.sort_indices()
    return normalized


def to_torch_sparse(matrix: sp.csr_matrix, device: str | torch.device = "cpu") -> torch.Tensor:
    """A scipy CSR matrix as a torch sparse CSR tensor (float32, on ``device``), for ``torch.sparse.mm``."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(np.int64)),
            torch.from_numpy(matrix.indices.astype(np.int64)),
            torch.from_numpy(matrix.data),
            size=matrix.shape,
            check_invariants=False,
        ).to(device)


class _SparseMM(torch.autograd.Function):
    """``A @ X`` for a fixed sparse ``A``, differentiable in ``X``: the backward is ``A^T @ grad``
    with ``A^T`` stored as its own CSR tensor (the same tensor when ``A`` is symmetric), which
    avoids torch's generic sparse backward (several times slower on CPU)."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx, matrix: torch.Tensor, transposed: torch.Tensor, dense: torch.Tensor
    ) -> torch.Tensor:
        ctx.transposed = transposed  # type: ignore[attr-defined]
        return torch.sparse.mm(matrix, dense)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[None, None, torch.Tensor]:  # type: ignore[override]
        return None, None, torch.sparse.mm(ctx.transposed, grad.contiguous())  # type: ignore[attr-defined]


class SparseOperator:
    """A constant sparse matrix ``A`` (CSR on ``device``) with its transpose, for ``A @ X`` in autograd.

    Built from scipy by :meth:`from_scipy`, which detects a symmetric ``A`` (the normalised
    bipartite graph) and then keeps one tensor for both; a non-symmetric one (an item-item kNN
    graph) gets its transpose precomputed once, so every backward is one more sparse product.
    """

    def __init__(self, matrix: torch.Tensor, transposed: torch.Tensor) -> None:
        self.matrix = matrix
        self.transposed = transposed

    @classmethod
    def from_scipy(cls, matrix: sp.spmatrix | sp.sparray, device: str | torch.device = "cpu") -> SparseOperator:
        csr = sp.csr_matrix(cast(Any, matrix), dtype=np.float32)
        forward = to_torch_sparse(csr, device)
        transposed_csr = sp.csr_matrix(csr.T)
        symmetric = csr.shape[0] == csr.shape[1] and _nearly_equal(csr, transposed_csr)
        return cls(forward, forward if symmetric else to_torch_sparse(transposed_csr, device))

    @property
    def symmetric(self) -> bool:
        return self.transposed is self.matrix

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.matrix.shape
        return int(rows), int(cols)

    def mm(self, dense: torch.Tensor) -> torch.Tensor:
        """``A @ dense`` (``dense`` is ``(n_cols, d)``), with the gradient ``A^T @ grad`` for ``dense``."""
        return _SparseMM.apply(self.matrix, self.transposed, dense)  # type: ignore[no-any-return]

    def __matmul__(self, dense: torch.Tensor) -> torch.Tensor:
        return self.mm(dense)


def _nearly_equal(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    """Same shape and entries up to float32 rounding (``D^-1/2 A D^-1/2`` may differ in the last bit)."""
    difference = abs(a - b)
    if difference.nnz == 0:
        return True
    scale = max(float(abs(a).max()), 1e-30)
    return bool(difference.max() <= 1e-6 * scale)


def sparse_mm(matrix: SparseOperator | sp.spmatrix | sp.sparray, dense: torch.Tensor) -> torch.Tensor:
    """Differentiable (in ``dense``) product with a constant sparse matrix, symmetric or not.

    Pass a :class:`SparseOperator` when the product repeats (the transpose is built once there).
    """
    operator = matrix if isinstance(matrix, SparseOperator) else SparseOperator.from_scipy(matrix, dense.device)
    return operator.mm(dense)
