"""Training losses shared by the models (each returns a scalar tensor, mean over the batch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(positive_scores: torch.Tensor, negative_scores: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking: ``mean(-log sigmoid(s_pos - s_neg))`` (= softplus of the gap)."""
    return F.softplus(negative_scores - positive_scores).mean()


def bce_loss(positive_scores: torch.Tensor, negative_scores: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with positives labelled 1 and negatives 0 (logits in)."""
    return F.softplus(-positive_scores).mean() + F.softplus(negative_scores).mean()


def sampled_softmax_loss(user_vectors: torch.Tensor, item_vectors: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """In-batch sampled softmax: row ``b`` of ``user_vectors`` (B, d) should pick item ``b`` of
    ``item_vectors`` (B, d) among the batch's items."""
    logits = user_vectors @ item_vectors.T / temperature
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


def l2_penalty(*tensors: torch.Tensor) -> torch.Tensor:
    """``sum ||t||^2 / 2`` over the tensors, divided by the batch size (rows of the first tensor)."""
    total = sum((t.pow(2).sum() for t in tensors), torch.zeros((), device=tensors[0].device))
    return total / (2.0 * max(len(tensors[0]), 1))
