"""The Fuser interface and the masking helpers every fuser shares.

A fuser turns per-modality item features into one vector per item::

    fuser(features: {name: (batch, d_m) float}, masks: {name: (batch,) bool}) -> (batch, out_dim)

``masks[name][i]`` is True when item ``i`` HAS modality ``name``. A modality left out of ``masks``
is present for every item; every key of ``features`` must be one of the fuser's modalities and
every modality must be in ``features`` (a whole-batch-missing modality is given with an all-False
mask, not dropped). The values of a missing row are never read: they are replaced before any
arithmetic (so NaN placeholders are fine), and each fuser then either leaves the modality out
(masked mean / softmax / pairs) or puts a learned "missing" embedding in its place (concat-style
fusers), never a zero vector that is pooled as if it were a real feature. An item with no
modality at all gets a learned "no content" vector (``empty``) of the output size.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import torch
from torch import Tensor

Features = Mapping[str, Tensor]
Masks = Mapping[str, Tensor]


class Fuser(torch.nn.Module, ABC):
    """Base class of every fuser: ``out_dim``, ``modality_names`` (the column order of
    :meth:`modality_weights`), ``forward(features, masks)`` and ``modality_weights``."""

    out_dim: int
    modality_names: tuple[str, ...]

    def __init__(self, input_dims: Mapping[str, int]) -> None:
        super().__init__()
        if not input_dims:
            raise ValueError("a fuser needs at least one modality")
        for name, dim in input_dims.items():
            if not isinstance(name, str) or not name or "." in name:
                raise ValueError(f"modality names must be non-empty strings without '.', got {name!r}")
            if int(dim) < 1:
                raise ValueError(f"input dim of modality {name!r} must be >= 1, got {dim}")
        self.input_dims: dict[str, int] = {name: int(dim) for name, dim in input_dims.items()}
        self.modality_names = tuple(self.input_dims)

    @property
    def n_modalities(self) -> int:
        return len(self.modality_names)

    @abstractmethod
    def forward(self, features: Features, masks: Masks) -> Tensor:
        """(batch, out_dim), finite for every item, including items with no modality."""

    def modality_weights(self, features: Features, masks: Masks) -> Tensor:
        """(batch, n_modalities) in ``modality_names`` order: each row sums to 1 over the item's
        present modalities and is 0 on missing ones (all 0 for an item with none). This default is
        uniform over the present modalities; fusers with learned weights override it."""
        _, mask = self.inputs(features, masks)
        return uniform_weights(mask)

    # ------------------------------------------------------------------ shared helpers
    def inputs(self, features: Features, masks: Masks) -> tuple[list[Tensor], Tensor]:
        """The features in ``modality_names`` order with missing rows set to 0 (so their values
        can never reach the output), and the (batch, n_modalities) bool presence mask."""
        unknown = set(features) - set(self.modality_names)
        if unknown:
            raise ValueError(
                f"unknown modalities {sorted(unknown)}; this fuser has {list(self.modality_names)}"
            )
        unknown_masks = set(masks) - set(self.modality_names)
        if unknown_masks:
            raise ValueError(f"masks for unknown modalities {sorted(unknown_masks)}")
        missing = [name for name in self.modality_names if name not in features]
        if missing:
            raise ValueError(
                f"features lack modalities {missing}; pass them with an all-False mask when no item has them"
            )
        batch = features[self.modality_names[0]].shape[0]
        xs: list[Tensor] = []
        cols: list[Tensor] = []
        for name in self.modality_names:
            x = features[name]
            if x.dim() != 2 or x.shape != (batch, self.input_dims[name]):
                raise ValueError(
                    f"features[{name!r}] must be (batch={batch}, {self.input_dims[name]}), got {tuple(x.shape)}"
                )
            m = masks.get(name)
            if m is None:
                m = torch.ones(batch, dtype=torch.bool, device=x.device)
            elif m.dtype != torch.bool or m.shape != (batch,):
                raise ValueError(
                    f"masks[{name!r}] must be a (batch={batch},) bool tensor, got {m.dtype} {tuple(m.shape)}"
                )
            xs.append(torch.where(m[:, None], x, torch.zeros((), dtype=x.dtype, device=x.device)))
            cols.append(m)
        return xs, torch.stack(cols, dim=1)

    def extra_repr(self) -> str:
        return f"modalities={list(self.modality_names)}, out_dim={self.out_dim}"


def uniform_weights(mask: Tensor) -> Tensor:
    """1 / n_present on present modalities, 0 on missing; an all-missing row is all 0."""
    w = mask.to(torch.get_default_dtype())
    return w / w.sum(dim=1, keepdim=True).clamp(min=1.0)


def masked_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the True entries of each row only (missing get exactly 0); a row with no True
    entry is all 0. No -inf is used, so no NaN can appear, in the values or the gradients."""
    filled = torch.where(mask, logits, torch.full_like(logits, torch.finfo(logits.dtype).min))
    return torch.softmax(filled, dim=-1) * mask.to(logits.dtype)


def normalise(weights: Tensor, mask: Tensor) -> Tensor:
    """Non-negative ``weights`` zeroed on missing entries and rescaled to sum 1 per row (0 rows stay 0)."""
    w = weights * mask.to(weights.dtype)
    return w / w.sum(dim=1, keepdim=True).clamp(min=torch.finfo(w.dtype).tiny)


def pool(tokens: Tensor, weights: Tensor, mask: Tensor, empty: Tensor) -> Tensor:
    """Σ_m weights[:, m] · tokens[:, m] for rows with a present modality, ``empty`` for the rest."""
    pooled = torch.einsum("bm,bmd->bd", weights, tokens)
    return torch.where(mask.any(dim=1, keepdim=True), pooled, empty.expand_as(pooled))


def projections(input_dims: Mapping[str, int], dim: int, project: bool = True) -> torch.nn.ModuleDict:
    """One ``Linear(d_m, dim)`` per modality, or identities (``project=False``, every d_m == dim)."""
    if not project:
        wrong = {name: d for name, d in input_dims.items() if d != dim}
        if wrong:
            raise ValueError(f"project=False needs every input dim == {dim}; got {wrong}")
        return torch.nn.ModuleDict({name: torch.nn.Identity() for name in input_dims})
    return torch.nn.ModuleDict({name: torch.nn.Linear(d, dim) for name, d in input_dims.items()})


def resolve_dim(input_dims: Mapping[str, int], dim: int | None, project: bool, default: int = 128) -> int:
    """The output dim: ``dim`` (or ``default``) when projecting, the common input dim otherwise."""
    if project:
        return default if dim is None else dim
    dims = set(input_dims.values())
    if len(dims) != 1:
        raise ValueError(f"project=False needs equal input dims, got {dict(input_dims)}")
    common = dims.pop()
    if dim is not None and dim != common:
        raise ValueError(f"project=False keeps the input dim {common}; dim={dim} does not match")
    return common


def empty_vector(dim: int) -> torch.nn.Parameter:
    """The learned "no content" output for an item with no modality (small random init)."""
    return torch.nn.Parameter(torch.randn(dim) * 0.02)


def stack_tokens(projs: torch.nn.ModuleDict, names: tuple[str, ...], xs: list[Tensor]) -> Tensor:
    """(batch, n_modalities, dim): each modality's projected features."""
    return torch.stack([projs[name](x) for name, x in zip(names, xs, strict=True)], dim=1)
