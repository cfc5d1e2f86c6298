"""Fusion as interchangeable parts: every fuser behind one interface, built from its config.

::

    fuser = build_fuser(AttentionFuserConfig(dim=64), {"text": 384, "image": 1280})
    z = fuser({"text": t, "image": i}, {"text": has_text, "image": has_image})  # (batch, 64)
    w = fuser.modality_weights(...)  # (batch, 2) in fuser.modality_names order

See :mod:`fusionrec.fusion.fuser_base` for the mask contract (a missing modality is never a
silent zero) and :mod:`fusionrec.fusion.config` for the configs. The kinds:

==================  ===================================================  ==========================
kind                fuser                                                missing modality
==================  ===================================================  ==========================
``mean``            :class:`MeanFuser` projection + masked mean           left out of the mean
``concat``          :class:`ConcatFuser` projections concatenated          learned embedding + bit
``weighted``        :class:`WeightedFuser` learned scalar per modality     softmax over present only
``gated``           :class:`GatedFuser` per-item sigmoid gates             gate dropped, renormalised
``attention``       :class:`AttentionFuser` learned query                  masked softmax
``self_attention``  :class:`SelfAttentionFuser` MHA over modality tokens   key padding + masked pool
``bilinear``        :class:`BilinearFuser` low-rank pairwise products      its pairs dropped
``mlp``             :class:`MLPFuser` concat + MLP                         as concat
``pca``             :class:`PCAFuser` frozen PCA + masked mean             left out of the mean
``linear``          :class:`LinearFuser` one linear map of the concat      learned offset
==================  ===================================================  ==========================

Every fuser maps an item with no modality to a learned, finite vector.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from fusionrec.fusion.attention import AttentionFuser, GatedFuser, SelfAttentionFuser
from fusionrec.fusion.config import (
    AnyFuserConfig,
    AttentionFuserConfig,
    BilinearFuserConfig,
    ConcatFuserConfig,
    GatedFuserConfig,
    LinearFuserConfig,
    MeanFuserConfig,
    MLPFuserConfig,
    PCAFuserConfig,
    SelfAttentionFuserConfig,
    WeightedFuserConfig,
    parse_fuser_config,
)
from fusionrec.fusion.fuser_base import Features, Fuser, Masks, masked_softmax, uniform_weights
from fusionrec.fusion.interaction import BilinearFuser, MLPFuser
from fusionrec.fusion.simple import ConcatFuser, LinearFuser, MeanFuser, PCAFuser, WeightedFuser

__all__ = [
    "FUSER_CLASSES",
    "AttentionFuser",
    "BilinearFuser",
    "ConcatFuser",
    "Features",
    "Fuser",
    "GatedFuser",
    "LinearFuser",
    "MLPFuser",
    "Masks",
    "MeanFuser",
    "PCAFuser",
    "SelfAttentionFuser",
    "WeightedFuser",
    "build_fuser",
    "masked_softmax",
    "uniform_weights",
]

FUSER_CLASSES: dict[str, type[Fuser]] = {
    "mean": MeanFuser,
    "concat": ConcatFuser,
    "weighted": WeightedFuser,
    "gated": GatedFuser,
    "attention": AttentionFuser,
    "self_attention": SelfAttentionFuser,
    "bilinear": BilinearFuser,
    "mlp": MLPFuser,
    "pca": PCAFuser,
    "linear": LinearFuser,
}


def build_fuser(
    config: AnyFuserConfig | Mapping[str, Any] | BaseModel, input_dims: Mapping[str, int]
) -> Fuser:
    """The fuser a config describes, over modalities ``input_dims`` ({name: feature dim}, in the
    order ``modality_names`` and ``modality_weights`` columns will have). A plain mapping is
    validated first (``{"kind": "gated", "dim": 32}``). A ``pca`` fuser still needs ``fit_pca``."""
    cfg = parse_fuser_config(config)
    dims = dict(input_dims)
    match cfg:
        case MeanFuserConfig():
            return MeanFuser(dims, dim=cfg.dim, project=cfg.project)
        case ConcatFuserConfig():
            return ConcatFuser(dims, dim_per_modality=cfg.dim_per_modality, indicator=cfg.indicator)
        case WeightedFuserConfig():
            return WeightedFuser(dims, dim=cfg.dim, project=cfg.project)
        case GatedFuserConfig():
            return GatedFuser(dims, dim=cfg.dim)
        case AttentionFuserConfig():
            return AttentionFuser(dims, dim=cfg.dim)
        case SelfAttentionFuserConfig():
            return SelfAttentionFuser(dims, dim=cfg.dim, heads=cfg.heads, dropout=cfg.dropout)
        case BilinearFuserConfig():
            return BilinearFuser(dims, dim=cfg.dim, rank=cfg.rank)
        case MLPFuserConfig():
            return MLPFuser(
                dims,
                dim=cfg.dim,
                dim_per_modality=cfg.dim_per_modality,
                hidden=cfg.hidden,
                dropout=cfg.dropout,
            )
        case PCAFuserConfig():
            return PCAFuser(dims, dim=cfg.dim, whiten=cfg.whiten)
        case LinearFuserConfig():
            return LinearFuser(dims, dim=cfg.dim)
    raise ValueError(f"no fuser for config {cfg!r}")  # pragma: no cover - the union is exhaustive
