"""Interaction fusers: low-rank bilinear pairs, and deep (concat + MLP) fusion."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from fusionrec.fusion.fuser_base import (
    Features,
    Fuser,
    Masks,
    empty_vector,
    pool,
    projections,
    stack_tokens,
    uniform_weights,
)
from fusionrec.fusion.simple import ConcatFuser


class BilinearFuser(Fuser):
    """Linear terms plus low-rank pairwise interactions over the PRESENT modality pairs.

    ``out = mean_present(L_m x_m) + P(mean over present pairs a<b of (U_a x_a) ⊙ (U_b x_b))`` with
    ``U_m: d_m -> rank`` and ``P: rank -> dim``. A pair with a missing side is dropped (not
    multiplied by a zero vector and averaged in): the divisor is the item's own count of present
    pairs, and an item with fewer than two modalities gets no interaction term at all. An item with
    no modality gets the learned ``empty`` vector. The pair sum is computed in O(M) as
    ``((Σu)² − Σu²) / 2`` over the present ``u_m = U_m x_m``.
    """

    def __init__(self, input_dims: Mapping[str, int], dim: int = 128, rank: int = 16) -> None:
        super().__init__(input_dims)
        self.out_dim = int(dim)
        self.rank = int(rank)
        self.linear = projections(self.input_dims, self.out_dim)
        self.factors = projections(self.input_dims, self.rank)
        self.pair_proj = torch.nn.Linear(self.rank, self.out_dim)
        self.empty = empty_vector(self.out_dim)

    def forward(self, features: Features, masks: Masks) -> Tensor:
        xs, mask = self.inputs(features, masks)
        present = mask.to(xs[0].dtype)
        linear = stack_tokens(self.linear, self.modality_names, xs)
        # a missing modality's factor is exactly 0, so every pair it is in drops out of the sum
        u = stack_tokens(self.factors, self.modality_names, xs) * present[:, :, None]
        pair_sum = (u.sum(dim=1) ** 2 - (u**2).sum(dim=1)) / 2
        n = present.sum(dim=1, keepdim=True)
        n_pairs = n * (n - 1) / 2
        interaction = self.pair_proj(pair_sum / n_pairs.clamp(min=1.0))
        interaction = torch.where(n_pairs > 0, interaction, torch.zeros_like(interaction))
        return pool(linear, uniform_weights(mask).to(linear.dtype), mask, self.empty) + interaction


class MLPFuser(Fuser):
    """Deep fusion: :class:`ConcatFuser` (learned missing embeddings + presence bits) then an MLP,
    ``Linear -> GELU -> Dropout`` per ``hidden`` width, and a final ``Linear`` to ``dim``.

    Missing modalities are handled by the concat stage (see there); an item with no modality gets
    the MLP of the all-missing concat, a defined learned vector.
    """

    def __init__(
        self,
        input_dims: Mapping[str, int],
        dim: int = 128,
        dim_per_modality: int = 64,
        hidden: Sequence[int] = (256,),
        dropout: float = 0.1,
    ) -> None:
        super().__init__(input_dims)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.out_dim = int(dim)
        self.concat = ConcatFuser(self.input_dims, dim_per_modality=dim_per_modality, indicator=True)
        layers: list[torch.nn.Module] = []
        width = self.concat.out_dim
        for h in hidden:
            layers += [torch.nn.Linear(width, int(h)), torch.nn.GELU(), torch.nn.Dropout(dropout)]
            width = int(h)
        layers.append(torch.nn.Linear(width, self.out_dim))
        self.mlp = torch.nn.Sequential(*layers)

    def forward(self, features: Features, masks: Masks) -> Tensor:
        return self.mlp(self.concat(features, masks))
