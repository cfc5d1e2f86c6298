"""Per-item weighting fusers: sigmoid gates, a learned attention query, self-attention."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from fusionrec.fusion.fuser_base import (
    Features,
    Fuser,
    Masks,
    empty_vector,
    masked_softmax,
    normalise,
    pool,
    projections,
    stack_tokens,
    uniform_weights,
)


class GatedFuser(Fuser):
    """Per-item gates: ``g_m = sigmoid(w_m · [h_m ; c] + b_m)`` where ``h_m`` is modality m's
    projection to ``dim`` and ``c`` the masked mean of the item's PRESENT projections (so a gate
    sees the item's other content, never a missing one). Gates of missing modalities are dropped
    and the rest normalised to sum 1; the output is the gated sum of the projections, the learned
    ``empty`` vector for an item with no modality."""

    def __init__(self, input_dims: Mapping[str, int], dim: int = 128) -> None:
        super().__init__(input_dims)
        self.out_dim = int(dim)
        self.proj = projections(self.input_dims, self.out_dim)
        bound = 1.0 / math.sqrt(2 * self.out_dim)
        self.gate_weight = torch.nn.Parameter(
            torch.empty(self.n_modalities, 2 * self.out_dim).uniform_(-bound, bound)
        )
        self.gate_bias = torch.nn.Parameter(torch.zeros(self.n_modalities))
        self.empty = empty_vector(self.out_dim)

    def _weights(self, features: Features, masks: Masks) -> tuple[Tensor, Tensor, Tensor]:
        xs, mask = self.inputs(features, masks)
        tokens = stack_tokens(self.proj, self.modality_names, xs)  # (B, M, D)
        context = torch.einsum("bm,bmd->bd", uniform_weights(mask).to(tokens.dtype), tokens)
        gate_in = torch.cat([tokens, context.unsqueeze(1).expand_as(tokens)], dim=2)  # (B, M, 2D)
        gates = torch.sigmoid(torch.einsum("bmk,mk->bm", gate_in, self.gate_weight) + self.gate_bias)
        return normalise(gates, mask), tokens, mask

    def modality_weights(self, features: Features, masks: Masks) -> Tensor:
        return self._weights(features, masks)[0]

    def forward(self, features: Features, masks: Masks) -> Tensor:
        weights, tokens, mask = self._weights(features, masks)
        return pool(tokens, weights, mask, self.empty)


class AttentionFuser(Fuser):
    """A learned query attends over the modality tokens: ``h_m = P_m x_m``, ``k_m = tanh(W h_m + e_m)``
    (``e_m`` a learned modality embedding), ``a = softmax over PRESENT m of q·k_m / sqrt(dim)``,
    output ``Σ a_m h_m``. Missing modalities get attention exactly 0; an item with none gets the
    learned ``empty`` vector."""

    def __init__(self, input_dims: Mapping[str, int], dim: int = 128) -> None:
        super().__init__(input_dims)
        self.out_dim = int(dim)
        self.proj = projections(self.input_dims, self.out_dim)
        self.key = torch.nn.Linear(self.out_dim, self.out_dim)
        self.modality_embedding = torch.nn.Parameter(torch.randn(self.n_modalities, self.out_dim) * 0.02)
        self.query = torch.nn.Parameter(torch.randn(self.out_dim) / math.sqrt(self.out_dim))
        self.empty = empty_vector(self.out_dim)

    def _weights(self, features: Features, masks: Masks) -> tuple[Tensor, Tensor, Tensor]:
        xs, mask = self.inputs(features, masks)
        tokens = stack_tokens(self.proj, self.modality_names, xs)
        keys = torch.tanh(self.key(tokens) + self.modality_embedding)
        scores = keys @ self.query / math.sqrt(self.out_dim)  # (B, M)
        return masked_softmax(scores, mask), tokens, mask

    def modality_weights(self, features: Features, masks: Masks) -> Tensor:
        return self._weights(features, masks)[0]

    def forward(self, features: Features, masks: Masks) -> Tensor:
        weights, tokens, mask = self._weights(features, masks)
        return pool(tokens, weights, mask, self.empty)


class SelfAttentionFuser(Fuser):
    """Modality tokens ``P_m x_m + e_m`` through one ``nn.MultiheadAttention`` layer (``heads``
    heads, batch_first) with ``key_padding_mask`` = missing, a residual and LayerNorm, then the mean
    over the PRESENT tokens. A missing token is never attended to and never pooled. An item with
    no modality gets the learned ``empty`` vector (its padding mask is lifted internally so the
    attention stays finite, and its output is then replaced).

    :meth:`modality_weights` is the attention each modality RECEIVES, averaged over heads and over
    the item's present query tokens (rows sum to 1 over present modalities). Call it in eval mode:
    in train mode attention dropout perturbs it.
    """

    def __init__(
        self, input_dims: Mapping[str, int], dim: int = 64, heads: int = 4, dropout: float = 0.0
    ) -> None:
        super().__init__(input_dims)
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.out_dim = int(dim)
        self.proj = projections(self.input_dims, self.out_dim)
        self.modality_embedding = torch.nn.Parameter(torch.randn(self.n_modalities, self.out_dim) * 0.02)
        self.attn = torch.nn.MultiheadAttention(self.out_dim, heads, dropout=dropout, batch_first=True)
        self.norm = torch.nn.LayerNorm(self.out_dim)
        self.empty = empty_vector(self.out_dim)

    def _attend(
        self, features: Features, masks: Masks, need_weights: bool
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        xs, mask = self.inputs(features, masks)
        tokens = stack_tokens(self.proj, self.modality_names, xs) + self.modality_embedding
        # An all-missing row would make every key padded (a NaN softmax): lift its padding, since
        # its output is replaced by `empty` anyway.
        padding = ~mask & mask.any(dim=1, keepdim=True)
        out, attn = self.attn(
            tokens,
            tokens,
            tokens,
            key_padding_mask=padding,
            need_weights=need_weights,
            average_attn_weights=True,
        )
        return self.norm(tokens + out), attn, mask

    def modality_weights(self, features: Features, masks: Masks) -> Tensor:
        _, attn, mask = self._attend(features, masks, need_weights=True)
        assert attn is not None  # (B, M_query, M_key)
        received = torch.einsum("bq,bqk->bk", uniform_weights(mask).to(attn.dtype), attn)
        return normalise(received, mask)

    def forward(self, features: Features, masks: Masks) -> Tensor:
        hidden, _, mask = self._attend(features, masks, need_weights=False)
        return pool(hidden, uniform_weights(mask).to(hidden.dtype), mask, self.empty)
