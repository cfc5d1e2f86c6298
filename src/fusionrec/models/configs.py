"""Every model's typed hyper-parameters, in one light module (pydantic only: no torch, no SciPy
linear algebra), so the CLI and configs validate settings without importing a model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from fusionrec.fusion.config import AttentionFuserConfig, FuserConfig, ItemGraphConfig, MeanFuserConfig
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


class IterativeConfig(ModelConfig):
    """The fields of every model the shared Trainer fits (epochs, batches, early stopping, device)."""

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


class FactorModelConfig(IterativeConfig):
    """Hyper-parameters every embedding model trained with BPR by the shared Trainer has.

    The defaults are meant to work unchanged from a thousand interactions to millions:
    ``batch_size=None`` sizes the batch to the data (:func:`fusionrec.models.torch_base.auto_batch_size`), and early stopping
    cannot fire before ``min_steps`` optimiser steps, so a small set (where an epoch is a few
    batches) trains long enough and a large one stops on ``patience`` validations as before.
    """

    factors: int = Field(64, ge=1)
    reg: float = Field(1e-4, ge=0)


class BPRMFConfig(FactorModelConfig):
    """BPR-MF's hyper-parameters: those of every factor model, with its own defaults."""

    reg: float = Field(1e-2, ge=0)
    item_bias: bool = True
    epochs: int = Field(1000, ge=1)
    patience: int = Field(10, ge=1)
    min_steps: int = Field(3000, ge=0)
    init_std: float = Field(0.01, gt=0)


class ALSConfig(ModelConfig):
    """Implicit ALS (``fusionrec.models.als``): closed-form alternating ridge solves."""

    factors: int = Field(64, ge=1)
    alpha: float = Field(2.0, ge=0)  # observed pairs have confidence 1 + alpha (ML-1M valid: 2 > 5 > 10)
    reg: float = Field(50.0, gt=0)
    iterations: int = Field(15, ge=1)
    init_std: float = Field(0.01, gt=0)
    seed: int = 0
    verbose: bool = False


class LightGCNConfig(FactorModelConfig):
    n_layers: int = Field(3, ge=0)
    learning_rate: float | None = Field(None, gt=0)  # type: ignore[assignment]  # None: sized to the batch


class VBPRConfig(BPRMFConfig):
    """VBPR (``fusionrec.models.vbpr``): BPR-MF's fields and defaults plus the item content part."""

    modalities: list[str] | None = Field(None, min_length=1)  # None: every modality of the FeatureSet
    fuser: FuserConfig = Field(default_factory=lambda: MeanFuserConfig(dim=64))  # its projection is VBPR's E; out dim = size of theta_u
    content_reg: float = Field(1e-2, ge=0)  # L2 on theta_u, beta' and the batch's content vectors
    modality_dropout: float = Field(0.0, ge=0, lt=1)


class FreedomConfig(FactorModelConfig):
    """FREEDOM (``fusionrec.models.freedom``): LightGCN's training fields plus the two graphs."""

    n_ui_layers: int = Field(2, ge=0)
    n_mm_layers: int = Field(1, ge=0)
    edge_dropout: float = Field(0.8, ge=0, lt=1)  # share of user-item edges pruned each epoch
    content_weight: float = Field(1e-4, ge=0)  # weight of the content BPR terms
    content_mode: Literal["per_modality", "fused"] = "per_modality"
    modalities: list[str] | None = Field(None, min_length=1)  # None: every modality of the FeatureSet
    fuser: FuserConfig = Field(default_factory=lambda: MeanFuserConfig(dim=64))  # content projection; out dim must equal factors
    graph: ItemGraphConfig = Field(default_factory=ItemGraphConfig)  # modality_weights None: text 0.9, each other 0.1 (renormalised)
    modality_dropout: float = Field(0.0, ge=0, lt=1)
    learning_rate: float | None = Field(None, gt=0)  # type: ignore[assignment]  # None: sized to the batch


class ContentConfig(ModelConfig):
    modalities: list[str] | None = None
    modality_weights: dict[str, float] | None = None
    recency_half_life_days: float | None = Field(default=None, gt=0)
    center: bool = True


class EASESideConfig(ModelConfig):
    l2: float = Field(default=500.0, gt=0)
    side_weight: float = Field(default=10.0, ge=0)
    modalities: list[str] | None = None
    modality_weights: dict[str, float] | None = None
    dtype: Literal["float32", "float64"] = "float32"


class TextFinetuneConfig(ModelConfig):
    """End-to-end fine-tuning of the text encoder inside ``two_tower`` (``text_finetune``)."""

    model: str | None = None  # None: the model that made the text features (MiniLM by default)
    layers: int = Field(1, ge=1)  # the last N transformer layers are trained
    learning_rate: float = Field(2e-5, gt=0)  # their own Adam rate
    max_length: int = Field(128, ge=8)  # tokens per text


class TwoTowerConfig(IterativeConfig):
    """Two-tower retrieval (``fusionrec.models.two_tower``): content item tower, ID/history user tower."""

    dim: int = Field(64, ge=1)  # output size of both towers
    user_tower: Literal["id", "history", "both"] = "both"
    user_hidden: tuple[PositiveInt, ...] = ()  # hidden sizes of the MLP over the pooled history
    item_id_embedding: bool = True  # add an item ID embedding to the content (items with training interactions)
    item_id_dropout: float = Field(0.0, ge=0, lt=1)  # DropoutNet: drop item ID vectors in training (cold items)
    modalities: list[str] | None = Field(None, min_length=1)  # None: every modality of the FeatureSet
    fuser: FuserConfig = Field(default_factory=lambda: AttentionFuserConfig(dim=64))
    tower_hidden: tuple[PositiveInt, ...] = (128,)  # hidden sizes of the item tower's MLP over the fused content
    dropout: float = Field(0.1, ge=0, lt=1)
    modality_dropout: float = Field(0.0, ge=0, lt=1)
    text_finetune: TextFinetuneConfig | None = None  # train the text encoder's last layers (replaces the frozen text)
    normalize: bool = True  # cosine towers (unit vectors)
    loss: Literal["bpr", "bce", "softmax"] = "softmax"
    temperature: float = Field(0.2, gt=0)  # scores are divided by it in every loss
    n_negatives: int = Field(4, ge=1)  # bce: sampled negatives per positive
    in_batch_negatives: int = Field(1024, ge=0)  # softmax: the positives of this many batch rows are negatives
    uniform_negatives: int = Field(128, ge=0)  # softmax: and this many uniformly drawn items
    logq_correction: bool = True  # softmax: subtract log q (sampling probability) from the logits
    reg: float = Field(0.0, ge=0)  # L2 on the batch's ID embeddings
    weight_decay: float = Field(0.0, ge=0)  # Adam's, on every parameter
    learning_rate: float = Field(1e-3, gt=0)
    min_steps: int = Field(500, ge=0)
    init_std: float = Field(0.01, gt=0)
