"""The fine-tuned text input of ``two_tower`` (``text_finetune``): a trainable text encoder as an
extra item-tower input.

With ``text_finetune`` set, the item tower reads the text modality through
:class:`~fusionrec.fusion.text_tower.TrainableTextEncoder` (the last ``layers`` transformer
layers trained with the recommendation loss at their own ``learning_rate``; the lower layers
frozen and cached) instead of the frozen text vectors, which are then left out of ItemContent.
Its output is the pooled text vector plus one presence bit (items without a text get a zero
vector and bit 0, so the tower MLP can tell "no text" from a text). The encoder's weights are in
the model's state dict, so a saved model is self-contained up to the base model's files (the
architecture is rebuilt from them when loading; scoring itself reads the exported vectors).

Cold items (``score_items``) would need the base model to encode new texts end to end: not
supported with ``text_finetune`` yet (a clear error says so).
"""

from __future__ import annotations

from typing import Any

import torch

from fusionrec.errors import ModelError
from fusionrec.fusion.text_tower import TrainableTextEncoder
from fusionrec.models.configs import TextFinetuneConfig

#: the extra-input name inside the item tower (and so in the state dict's keys)
TEXT_INPUT = "text_finetuned"


class FineTunedText(torch.nn.Module):
    """``(batch,)`` item indices (None: all) -> ``(batch, dim + 1)``: text vector and presence bit."""

    def __init__(self, encoder: TrainableTextEncoder, learning_rate: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.learning_rate = float(learning_rate)
        self.out_dim = int(encoder.dim) + 1

    def forward(self, items: torch.Tensor | None = None) -> torch.Tensor:
        if items is None:
            items = torch.arange(self.encoder.n_items, device=self.encoder.present.device)
        vectors = self.encoder(items)
        present = self.encoder.mask(items).to(vectors.dtype).unsqueeze(1)
        return torch.cat([vectors, present], dim=1)

    def parameter_groups(self) -> list[dict[str, Any]]:
        return self.encoder.parameter_groups(self.learning_rate)

    def release_cache(self) -> None:
        self.encoder.release_cache()

    def encode_new(self, item_features: Any) -> torch.Tensor:
        raise ModelError(
            "two_tower with text_finetune cannot score new items from features yet (the fine-tuned "
            "encoder would have to encode their texts end to end); use a model without text_finetune"
        )


def build_text_input(features: Any, config: TextFinetuneConfig) -> FineTunedText:
    """The fine-tuned text input over the texts the FeatureSet recorded for its ``text`` modality."""
    if features is None or "text" not in getattr(features, "modalities", {}):
        raise ModelError("two_tower text_finetune needs text features (a feature directory with a 'text' modality)")
    encoder = TrainableTextEncoder.from_features(
        features, model=config.model, n_trainable_layers=config.layers, max_length=config.max_length
    )
    return FineTunedText(encoder, config.learning_rate)


def load_text_input(state: dict[str, Any], prefix: str, config: TextFinetuneConfig) -> FineTunedText:
    """Rebuilt from a saved model's arrays (``prefix`` + the encoder's state keys)."""
    encoder = TrainableTextEncoder.from_state(state, prefix + "encoder.", model=config.model)
    return FineTunedText(encoder, config.learning_rate)
