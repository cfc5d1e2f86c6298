"""Pooling fusers: mean, concat, learned scalar weights, a plain linear map, frozen PCA."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from fusionrec.fusion.fuser_base import (
    Features,
    Fuser,
    Masks,
    empty_vector,
    masked_softmax,
    pool,
    projections,
    resolve_dim,
    stack_tokens,
    uniform_weights,
)


class MeanFuser(Fuser):
    """Project each modality to ``dim`` (or keep it: ``project=False``), average the PRESENT ones.

    A missing modality is left out of the mean (the divisor is the item's own count of present
    modalities); an item with none gets the learned ``empty`` vector.
    """

    def __init__(self, input_dims: Mapping[str, int], dim: int | None = None, project: bool = True) -> None:
        super().__init__(input_dims)
        self.out_dim = resolve_dim(self.input_dims, dim, project)
        self.proj = projections(self.input_dims, self.out_dim, project)
        self.empty = empty_vector(self.out_dim)

    def forward(self, features: Features, masks: Masks) -> Tensor:
        xs, mask = self.inputs(features, masks)
        return pool(stack_tokens(self.proj, self.modality_names, xs), uniform_weights(mask), mask, self.empty)


class ConcatFuser(Fuser):
    """Each modality projected to ``dim_per_modality``, concatenated in ``modality_names`` order,
    then (``indicator=True``) one presence bit per modality: ``out_dim = M·dpm (+ M)``.

    A missing modality's slot holds a learned per-modality "missing" embedding, not zeros: a zero
    slot would be indistinguishable from a real feature that projects near zero, and downstream
    layers would read it as content. The learned embedding is trained to be whatever is least
    harmful in that slot, and the presence bit tells later layers explicitly which slots are real.
    An item with no modality gets the concatenated missing embeddings (and all-zero bits), a
    defined learned vector.
    """

    def __init__(
        self, input_dims: Mapping[str, int], dim_per_modality: int = 64, indicator: bool = True
    ) -> None:
        super().__init__(input_dims)
        self.dim_per_modality = int(dim_per_modality)
        self.indicator = bool(indicator)
        self.proj = projections(self.input_dims, self.dim_per_modality)
        self.missing = torch.nn.Parameter(torch.randn(self.n_modalities, self.dim_per_modality) * 0.02)
        self.out_dim = self.n_modalities * self.dim_per_modality + (
            self.n_modalities if self.indicator else 0
        )

    def forward(self, features: Features, masks: Masks) -> Tensor:
        xs, mask = self.inputs(features, masks)
        tokens = stack_tokens(self.proj, self.modality_names, xs)  # (B, M, dpm)
        filled = torch.where(mask[:, :, None], tokens, self.missing.unsqueeze(0).expand_as(tokens))
        parts = [filled.flatten(1)]
        if self.indicator:
            parts.append(mask.to(filled.dtype))
        return torch.cat(parts, dim=1)


class WeightedFuser(Fuser):
    """One learned scalar logit per modality; each item's weights are the softmax over ITS present
    modalities only (a missing one gets weight 0 and the others are renormalised), then the
    weighted sum of the projected features. An item with none gets the learned ``empty`` vector."""

    def __init__(self, input_dims: Mapping[str, int], dim: int | None = None, project: bool = True) -> None:
        super().__init__(input_dims)
        self.out_dim = resolve_dim(self.input_dims, dim, project)
        self.proj = projections(self.input_dims, self.out_dim, project)
        self.logits = torch.nn.Parameter(torch.zeros(self.n_modalities))
        self.empty = empty_vector(self.out_dim)

    def modality_weights(self, features: Features, masks: Masks) -> Tensor:
        _, mask = self.inputs(features, masks)
        return masked_softmax(self.logits.expand(mask.shape[0], -1), mask)

    def forward(self, features: Features, masks: Masks) -> Tensor:
        xs, mask = self.inputs(features, masks)
        weights = masked_softmax(self.logits.expand(mask.shape[0], -1), mask)
        return pool(stack_tokens(self.proj, self.modality_names, xs), weights, mask, self.empty)


class LinearFuser(Fuser):
    """One learned linear map of the concatenated raw inputs: ``b + Σ_m W_m x_m`` to ``dim``.

    A missing modality's block contributes a learned per-modality offset ``c_m`` instead of
    ``W_m x_m`` (the linear image of a learned "missing" input, as in :class:`ConcatFuser`), never
    ``W_m · 0``; an item with no modality gets ``b + Σ_m c_m``, a defined learned vector.
    """

    def __init__(self, input_dims: Mapping[str, int], dim: int = 128) -> None:
        super().__init__(input_dims)
        self.out_dim = int(dim)
        self.weights = torch.nn.ModuleDict(
            {name: torch.nn.Linear(d, self.out_dim, bias=False) for name, d in self.input_dims.items()}
        )
        self.bias = torch.nn.Parameter(torch.zeros(self.out_dim))
        self.missing = torch.nn.Parameter(torch.randn(self.n_modalities, self.out_dim) * 0.02)

    def forward(self, features: Features, masks: Masks) -> Tensor:
        xs, mask = self.inputs(features, masks)
        terms = stack_tokens(self.weights, self.modality_names, xs)  # (B, M, dim)
        filled = torch.where(mask[:, :, None], terms, self.missing.unsqueeze(0).expand_as(terms))
        return self.bias + filled.sum(dim=1)


class PCAFuser(Fuser):
    """A frozen per-modality PCA to ``dim`` components, then the masked mean (as :class:`MeanFuser`).

    For very high-dimensional inputs (e.g. 4096-d LLM features): :meth:`fit_pca` fits the mean and
    the top ``dim`` principal axes of each modality from its PRESENT rows only (exact SVD when
    small, ``torch.pca_lowrank`` otherwise; signs fixed so the largest loading is positive) and
    stores them as buffers (saved in the state dict, never trained). A modality with fewer than
    ``dim`` input dims (or fitting rows) keeps the components it has; the remaining output
    coordinates are zero columns of its projection. ``whiten`` divides each component by its
    standard deviation. The only parameter is the learned ``empty`` vector for items with no
    modality. Calling the fuser before ``fit_pca`` is a RuntimeError.
    """

    fitted: Tensor

    def __init__(self, input_dims: Mapping[str, int], dim: int = 64, whiten: bool = False) -> None:
        super().__init__(input_dims)
        self.out_dim = int(dim)
        self.whiten = bool(whiten)
        for i, d in enumerate(self.input_dims.values()):
            self.register_buffer(f"pca_mean_{i}", torch.zeros(d))
            self.register_buffer(f"pca_components_{i}", torch.zeros(d, self.out_dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.empty = empty_vector(self.out_dim)

    def _buffers_of(self, i: int) -> tuple[Tensor, Tensor]:
        mean = getattr(self, f"pca_mean_{i}")
        comps = getattr(self, f"pca_components_{i}")
        assert isinstance(mean, Tensor) and isinstance(comps, Tensor)
        return mean, comps

    @torch.no_grad()
    def fit_pca(self, features: Features, masks: Masks, niter: int = 4) -> PCAFuser:
        """Fit every modality's PCA on its present rows (at least 2 needed); returns self."""
        xs, mask = self.inputs(features, masks)
        for i, (name, x) in enumerate(zip(self.modality_names, xs, strict=True)):
            rows = x[mask[:, i]].to(torch.float32)
            n, d = rows.shape
            if n < 2:
                raise ValueError(f"fit_pca needs at least 2 present rows of {name!r}, got {n}")
            mean = rows.mean(dim=0)
            centred = rows - mean
            k = min(self.out_dim, d, n - 1)
            if min(n, d) <= 4 * k + 10:
                _, s, vh = torch.linalg.svd(centred, full_matrices=False)
                s, v = s[:k], vh[:k].T
            else:
                _, s, v = torch.pca_lowrank(centred, q=min(k + 10, n, d), center=False, niter=niter)
                s, v = s[:k], v[:, :k]
            signs = torch.sign(v.gather(0, v.abs().argmax(dim=0, keepdim=True)))
            v = v * torch.where(signs == 0, torch.ones_like(signs), signs)
            if self.whiten:
                std = s / (n - 1) ** 0.5
                v = v / std.clamp(min=1e-6 * float(std.max().clamp(min=1e-12)))
            buf_mean, buf_comps = self._buffers_of(i)
            buf_mean.copy_(mean)
            buf_comps.zero_()
            buf_comps[:, :k] = v.to(buf_comps.dtype)
        self.fitted.fill_(True)
        return self

    def forward(self, features: Features, masks: Masks) -> Tensor:
        if not bool(self.fitted):
            raise RuntimeError("PCAFuser: call fit_pca(features, masks) before using it")
        xs, mask = self.inputs(features, masks)
        tokens = []
        for i, x in enumerate(xs):
            mean, comps = self._buffers_of(i)
            tokens.append((x - mean) @ comps)
        return pool(torch.stack(tokens, dim=1), uniform_weights(mask).to(tokens[0].dtype), mask, self.empty)
