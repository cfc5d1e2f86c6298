"""Every model's typed hyper-parameters, in one light module (pydantic only: no torch, no SciPy
linear algebra), so the CLI and configs validate settings without importing a model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fusionrec.models.base import ModelConfig, ValidMetric


class MostPopConfig(ModelConfig):
    pass


class ItemKNNConfig(ModelConfig):
    k: int = Field(100, ge=1)
    shrink: float = Field(10.0, ge=0)
    block_mb: int = Field(64, ge=1)


class EASEConfig(ModelConfig):
    l2: float = Field(500.0, gt=0)
    dtype: Literal["float32", "float64"] = "float32"


class FactorModelConfig(ModelConfig):
    """Hyper-parameters every embedding model trained with BPR by the shared Trainer has.

    The defaults are meant to work unchanged from a thousand interactions to millions:
    ``batch_size=None`` sizes the batch to the data (:func:`fusionrec.models.torch_base.auto_batch_size`), and early stopping
    cannot fire before ``min_steps`` optimiser steps, so a small set (where an epoch is a few
    batches) trains long enough and a large one stops on ``patience`` validations as before.
    """

    factors: int = Field(64, ge=1)
    reg: float = Field(1e-4, ge=0)
    epochs: int = Field(100, ge=1)
    batch_size: int | None = Field(None, ge=1)
    learning_rate: float = Field(5e-3, gt=0)
    patience: int = Field(5, ge=1)
    min_steps: int = Field(1000, ge=0)
    valid_metric: ValidMetric = "recall@20"
    eval_every: int = Field(1, ge=1)
    init_std: float = Field(0.1, gt=0)
    seed: int = 0
    device: str = "cpu"
    verbose: bool = False


class BPRMFConfig(FactorModelConfig):
    """BPR-MF's hyper-parameters: those of every factor model, with its own defaults."""

    reg: float = Field(1e-2, ge=0)
    item_bias: bool = True
    epochs: int = Field(1000, ge=1)
    patience: int = Field(10, ge=1)
    min_steps: int = Field(3000, ge=0)
    init_std: float = Field(0.01, gt=0)


class LightGCNConfig(FactorModelConfig):
    n_layers: int = Field(3, ge=0)
    learning_rate: float | None = Field(None, gt=0)  # type: ignore[assignment]  # None: sized to the batch


class ContentConfig(ModelConfig):
    modalities: list[str] | None = None
    modality_weights: dict[str, float] | None = None
    recency_half_life_days: float | None = Field(default=None, gt=0)


class EASESideConfig(ModelConfig):
    l2: float = Field(default=500.0, gt=0)
    side_weight: float = Field(default=10.0, ge=0)
    modalities: list[str] | None = None
    modality_weights: dict[str, float] | None = None
    dtype: Literal["float32", "float64"] = "float32"
