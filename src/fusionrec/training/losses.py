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


def shared_negatives_softmax_loss(
    user_vectors: torch.Tensor,
    positive_vectors: torch.Tensor,
    negative_vectors: torch.Tensor,
    temperature: float = 1.0,
    positive_log_q: torch.Tensor | None = None,
    negative_log_q: torch.Tensor | None = None,
    not_negative: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sampled softmax: row ``b`` of ``user_vectors`` (B, d) should pick its positive
    ``positive_vectors[b]`` (B, d) over the ``negative_vectors`` (N, d) the batch shares.

    Logits are ``<u, v> / temperature - log q``: ``positive_log_q`` (B,) and ``negative_log_q`` (N,)
    are the log probabilities that the sampler includes each item (the logQ correction of Yi et al.
    2019: popular items, drawn as in-batch negatives more often, are not pushed down for it).
    ``not_negative`` (B, N) bool drops pairs that are no negative (e.g. the row's own positive).
    Costs one ``(B, N)`` matrix: ``-log softmax`` of the positive among ``[positive, negatives]``.
    """
    scaled = user_vectors / temperature
    positive = (scaled * positive_vectors).sum(dim=1)
    if positive_log_q is not None:
        positive = positive - positive_log_q
    bias = -negative_log_q if negative_log_q is not None else torch.zeros(len(negative_vectors), device=user_vectors.device)
    negative = torch.addmm(bias.to(scaled.dtype), scaled, negative_vectors.T)
    if not_negative is not None:
        negative = negative.masked_fill(not_negative, float("-inf"))
    return (torch.logaddexp(positive, torch.logsumexp(negative, dim=1)) - positive).mean()


def l2_penalty(*tensors: torch.Tensor) -> torch.Tensor:
    """``sum ||t||^2 / 2`` over the tensors, divided by the batch size (rows of the first tensor)."""
    total = sum((t.pow(2).sum() for t in tensors), torch.zeros((), device=tensors[0].device))
    return total / (2.0 * max(len(tensors[0]), 1))
