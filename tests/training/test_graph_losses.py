from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fusionrec.training.graph import (
    bipartite_adjacency,
    normalized_adjacency,
    symmetric_spmm,
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


def test_symmetric_spmm_gradient_matches_dense() -> None:
    rng = np.random.default_rng(0)
    train = sp.csr_matrix((rng.random((6, 5)) < 0.5).astype(np.float32))
    norm = normalized_adjacency(train)
    x = torch.randn(11, 3, requires_grad=True, dtype=torch.float32)
    (symmetric_spmm(to_torch_sparse(norm), x) ** 2).sum().backward()
    x_dense = x.detach().clone().requires_grad_(True)
    ((torch.from_numpy(norm.toarray()) @ x_dense) ** 2).sum().backward()
    assert x.grad is not None and x_dense.grad is not None
    torch.testing.assert_close(x.grad, x_dense.grad)


def test_losses() -> None:
    pos, neg = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])
    assert torch.isclose(bpr_loss(pos, neg), -torch.nn.functional.logsigmoid(pos - neg).mean())
    assert bce_loss(torch.tensor([10.0]), torch.tensor([-10.0])) < 1e-3
    assert torch.isclose(l2_penalty(torch.ones(4, 2), torch.ones(4, 1)), torch.tensor(12 / 8))
    users = torch.eye(3) * 10
    assert sampled_softmax_loss(users, torch.eye(3)) < 1e-3
