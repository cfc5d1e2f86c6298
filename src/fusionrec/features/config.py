"""Settings of the features stage (YAML section ``features``): pydantic only, no model code.

Importing this module loads no torch, onnxruntime or transformers, so the CLI can build and
validate a :class:`FeaturesConfig` (and a fully cached run can finish) without them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fusionrec.config import StrictModel

Pooling = Literal["auto", "mean", "cls", "last"]


class TextTemplate(StrictModel):
    """How an item's text is built from its fields.

    ``parts`` are Python format strings over item-table columns (e.g. ``"{title} ({year})."``,
    ``"Directed by {director}."``, ``"{plot}"``); a part is dropped when any field it uses is
    missing (NaN, empty or one of ``missing_values``), list values are joined with ", ", and the
    kept parts are joined with ``separator``. ``None`` uses the dataset's text columns, in order.
    """

    parts: list[str] | None = None
    separator: str = " "
    missing_values: list[str] = Field(default_factory=lambda: ["", "N/A", "n/a", "nan", "None", "null"])


class TextEncoderConfig(StrictModel):
    """Settings of the text encoder (YAML ``features.text``)."""

    encoder: str = Field(default="minilm", description="'minilm', 'smollm2' or a local model folder")
    template: TextTemplate = TextTemplate()
    pooling: Pooling = "auto"
    normalize: bool = True
    max_length: int = Field(default=256, ge=8)
    dtype: Literal["float32", "bfloat16"] = "float32"
    instruction: str = Field(default="", description="prefix put before every text (decoder LLMs)")
    batch_size: int = Field(default=32, ge=1)
    gguf_file: str | None = None


class ImageEncoderConfig(StrictModel):
    """Settings of the image encoder (YAML ``features.image``)."""

    encoder: str = Field(
        default="efficientnet-lite0",
        description="'efficientnet-lite0', or a path: .onnx, TorchScript .pt, timm folder, HF CLIP folder",
    )
    batch_size: int = Field(default=32, ge=1)
    size: int | None = Field(default=None, description="input resolution; None = the model's own")
    fit: Literal["center_crop", "squash"] = "center_crop"
    max_pixels: int = Field(default=50_000_000, ge=1)
    backend: Literal["auto", "torch", "onnx"] = "auto"


class AudioEncoderConfig(StrictModel):
    """Settings of the audio encoder (YAML ``features.audio``)."""

    encoder: str = Field(default="whisper-tiny", description="'whisper-tiny' or a CTranslate2 Whisper folder")
    batch_size: int = Field(default=8, ge=1)
    max_seconds: float = Field(default=300.0, gt=0, description="only the first max_seconds of a clip")
    compute_type: str = Field(default="int8", description="CTranslate2 compute type: int8, float32, ...")
    trim: bool = Field(
        default=False,
        description="encode a clip of <= 30 s at its own length, not padded to 30 s (fast; approximate)",
    )


class AttributesConfig(StrictModel):
    """Item attribute / user profile encoding (YAML ``features.attributes``)."""

    categorical: Literal["onehot", "hash"] = "onehot"
    hash_dim: int = Field(default=64, ge=2)
    min_count: int = Field(default=1, ge=1, description="rarer categories share an '<other>' column")
    max_categories: int = Field(default=1000, ge=1)


class RuntimeConfig(StrictModel):
    """Where and how wide to compute. ``None`` = resolved from the cores available."""

    device: str = "cpu"
    threads: int | None = Field(default=None, ge=1, description="torch/onnx threads in this process")
    workers: int | None = Field(default=None, ge=0, description="decoding worker processes (images, audio)")


class FeaturesConfig(StrictModel):
    """Everything ``extract_features`` needs besides the data (YAML section ``features``)."""

    text: TextEncoderConfig = TextEncoderConfig()
    image: ImageEncoderConfig = ImageEncoderConfig()
    audio: AudioEncoderConfig = AudioEncoderConfig()
    attributes: AttributesConfig = AttributesConfig()
    runtime: RuntimeConfig = RuntimeConfig()


__all__ = [
    "AttributesConfig",
    "AudioEncoderConfig",
    "FeaturesConfig",
    "ImageEncoderConfig",
    "Pooling",
    "RuntimeConfig",
    "TextEncoderConfig",
    "TextTemplate",
]
