"""The user-item bipartite graph and its symmetric normalisation, shared by every graph model."""

from __future__ import annotations

import warnings

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
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(degree, dtype=np.float64)
    nonzero = degree > 0
    inv_sqrt[nonzero] = degree[nonzero] ** -0.5
    scale = sp.diags(inv_sqrt.astype(np.float32))
    normalized = sp.csr_matrix(scale @ adjacency @ scale, dtype=np.float32)
    normalized.sort_indices()
    return normalized


def to_torch_sparse(matrix: sp.csr_matrix) -> torch.Tensor:
    """A scipy CSR matrix as a torch sparse CSR tensor (float32), for ``torch.sparse.mm``."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(np.int64)),
            torch.from_numpy(matrix.indices.astype(np.int64)),
            torch.from_numpy(matrix.data),
            size=matrix.shape,
            check_invariants=False,
        )


class _SymmetricSpMM(torch.autograd.Function):
    """``A @ X`` for a fixed symmetric sparse ``A``: the backward is ``A @ grad`` again, which avoids
    torch's generic sparse backward (several times slower on CPU)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, matrix: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        ctx.matrix = matrix  # type: ignore[attr-defined]
        return torch.sparse.mm(matrix, dense)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:  # type: ignore[override]
        return None, torch.sparse.mm(ctx.matrix, grad.contiguous())  # type: ignore[attr-defined]


def symmetric_spmm(matrix: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """Differentiable (in ``dense``) product with a constant symmetric sparse matrix."""
    return _SymmetricSpMM.apply(matrix, dense)  # type: ignore[no-any-return]
