"""Recommenders: one model per module behind the :class:`Recommender` interface."""

from fusionrec.models.base import (
    ModelConfig,
    Recommender,
    SupportsColdStart,
    SupportsFeatures,
    SupportsPartialFit,
    SupportsVectors,
)
from fusionrec.models.registry import build_model, get_model_class, load_model, model_names

__all__ = [
    "ModelConfig",
    "Recommender",
    "SupportsColdStart",
    "SupportsFeatures",
    "SupportsPartialFit",
    "SupportsVectors",
    "build_model",
    "get_model_class",
    "load_model",
    "model_names",
]
