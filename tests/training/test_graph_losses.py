from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fusionrec.training.graph import (
    SparseOperator,
    bipartite_adjacency,
    normalized_adjacency,
    sparse_mm,
    to_torch_sparse,
)
from fusionrec.training.losses import bce_loss, bpr_loss, l2_penalty, sampled_softmax_loss


def test_normalized_adjacency_hand_computed() -> None:
    # user 0 - items 0, 1; user 1 - item 1; item 2 isolated
    train = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 0]], dtype=np.float32))
    adjacency = bipartite_adjacency(train).toarray()
    assert adjacency.shape == (5, 5) and (adjacency == adjacency.T).all()
    norm = normalized_adjacency(train).toarray()
    degrees = np.array([2, 1, 1, 2, 0])
    assert norm[0, 2] == pytest.approx(1 / np.sqrt(2 * 1))  # user 0 (deg 2) - item 0 (deg 1)
    assert norm[0, 3] == pytest.approx(1 / np.sqrt(2 * 2))
    assert norm[1, 3] == pytest.approx(1 / np.sqrt(1 * 2))
    assert (norm[4] == 0).all() and degrees[4] == 0
    assert np.allclose(norm, norm.T)


def _gradients(product: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    weights = torch.linspace(-1.0, 2.0, product.numel()).reshape(product.shape)
    ((product**2) * weights).sum().backward()
    assert x.grad is not None
    return x.grad


def _reference(matrix: sp.csr_matrix, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward and gradient by torch.sparse.mm's own autograd and by dense autograd."""
    x_sparse = x.detach().clone().requires_grad_(True)
    coo = matrix.tocoo()
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    torch_sparse = torch.sparse_coo_tensor(indices, torch.from_numpy(coo.data), size=matrix.shape)
    out = torch.sparse.mm(torch_sparse, x_sparse)
    grad_sparse = _gradients(out, x_sparse)
    x_dense = x.detach().clone().requires_grad_(True)
    grad_dense = _gradients(torch.from_numpy(matrix.toarray()) @ x_dense, x_dense)
    return out.detach(), grad_sparse, grad_dense


def test_sparse_mm_gradient_symmetric_graph() -> None:
    rng = np.random.default_rng(0)
    train = sp.csr_matrix((rng.random((6, 5)) < 0.5).astype(np.float32))
    norm = normalized_adjacency(train)
    operator = SparseOperator.from_scipy(norm)
    assert operator.symmetric and operator.shape == (11, 11)
    x = torch.randn(11, 3, requires_grad=True, dtype=torch.float32)
    out = operator @ x
    grad = _gradients(out, x)
    ref_out, grad_sparse, grad_dense = _reference(norm, x)
    torch.testing.assert_close(out.detach(), ref_out)
    torch.testing.assert_close(grad, grad_sparse)
    torch.testing.assert_close(grad, grad_dense)


@pytest.mark.parametrize("shape", [(7, 7), (5, 9)])
def test_sparse_mm_gradient_non_symmetric(shape: tuple[int, int]) -> None:
    """An item-item kNN graph is not symmetric: the backward must use A^T, not A."""
    rng = np.random.default_rng(1)
    dense = np.where(rng.random(shape) < 0.4, rng.random(shape), 0.0).astype(np.float32)
    matrix = sp.csr_matrix(dense)
    assert shape[0] != shape[1] or abs(matrix - matrix.T).max() > 0.1
    operator = SparseOperator.from_scipy(matrix)
    assert not operator.symmetric
    x = torch.randn(shape[1], 4, requires_grad=True, dtype=torch.float32)
    out = operator.mm(x)
    grad = _gradients(out, x)
    ref_out, grad_sparse, grad_dense = _reference(matrix, x)
    torch.testing.assert_close(out.detach(), ref_out)
    torch.testing.assert_close(grad, grad_sparse)
    torch.testing.assert_close(grad, grad_dense)
    # the one-off helper agrees with the operator
    x_again = x.detach().clone().requires_grad_(True)
    torch.testing.assert_close(_gradients(sparse_mm(matrix, x_again), x_again), grad)


def test_to_torch_sparse_round_trip() -> None:
    matrix = sp.csr_matrix(np.array([[0, 2, 0], [1, 0, 3]], dtype=np.float32))
    np.testing.assert_array_equal(to_torch_sparse(matrix).to_dense().numpy(), matrix.toarray())


def test_losses() -> None:
    pos, neg = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])
    assert torch.isclose(bpr_loss(pos, neg), -torch.nn.functional.logsigmoid(pos - neg).mean())
    assert bce_loss(torch.tensor([10.0]), torch.tensor([-10.0])) < 1e-3
    assert torch.isclose(l2_penalty(torch.ones(4, 2), torch.ones(4, 1)), torch.tensor(12 / 8))
    users = torch.eye(3) * 10
    assert sampled_softmax_loss(users, torch.eye(3)) < 1e-3
