"""CLIP encoders from a local folder: ordinary Encoders whose vectors live in CLIP's joint space.

:class:`HFClipTextEncoder` and :class:`HFClipImageEncoder` are the two towers of a Hugging Face
CLIP folder; :class:`OpenClipImageEncoder` is the image tower of an open_clip folder. The image
encoders share the decoding pipeline of ``features.image_pipeline``; ``features.image``'s
``load_image_encoder`` picks them for a CLIP folder. (A joint space *learned* from the catalog's
own pairs is a trained fusion: ``fusionrec.fusion.joint``.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusionrec.errors import ModelError
from fusionrec.features.base import make_fingerprint
from fusionrec.features.fingerprint import folder_identity
from fusionrec.features.image_pipeline import ImagePreprocess, TorchImageEncoder


def _clip_model(path: str | Path, device: str) -> Any:
    from transformers import CLIPModel

    try:
        return CLIPModel.from_pretrained(str(path)).eval().to(device)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a CLIP model from {path}: {exc}") from exc


def _features(output: Any) -> torch.Tensor:
    """``get_*_features`` returns a tensor (older transformers) or an output with ``pooler_output``."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class HFClipTextEncoder:
    """The text tower of a local Hugging Face CLIP folder; L2-normalised joint-space vectors."""

    modality = "text"

    def __init__(self, path: str | Path, device: str = "cpu", max_length: int = 77) -> None:
        from transformers import AutoTokenizer

        self.model = _clip_model(path, device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.device = device
        self.max_length = min(max_length, int(self.model.config.text_config.max_position_embeddings))
        self.dim = int(self.model.config.projection_dim)
        self.identity = folder_identity(path)
        self.name = f"clip-text:{Path(path).name}"

    @property
    def fingerprint(self) -> str:
        return make_fingerprint(
            {"encoder": "hf-clip-text", "model": self.identity, "max_length": self.max_length}
        )

    def sort_key(self, text: str) -> int:
        return len(text)

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        inputs = self.tokenizer(
            list(batch), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            out = _features(self.model.get_text_features(**{k: v.to(self.device) for k, v in inputs.items()}))
            return torch.nn.functional.normalize(out.float(), dim=-1).cpu().numpy()


class HFClipImageEncoder(TorchImageEncoder):
    """The image tower of a local Hugging Face CLIP folder (its own size / mean / std)."""

    def __init__(self, path: str | Path, device: str = "cpu", fit: str = "center_crop") -> None:
        self.model = _clip_model(path, device)
        processor_file = Path(path) / "preprocessor_config.json"
        processor = json.loads(processor_file.read_text()) if processor_file.exists() else {}
        size = int(self.model.config.vision_config.image_size)
        mean = tuple(processor.get("image_mean", (0.48145466, 0.4578275, 0.40821073)))
        std = tuple(processor.get("image_std", (0.26862954, 0.26130258, 0.27577711)))
        self.preprocess = ImagePreprocess(size=size, fit=fit, mean=mean, std=std)  # type: ignore[arg-type]
        self.device = device
        self.dim = int(self.model.config.projection_dim)
        self.identity = folder_identity(path)
        self.name = f"clip-image:{Path(path).name}"
        self.pooling = "clip-projection"

    def forward(self, pixels: Any) -> np.ndarray:
        with torch.inference_mode():
            out = _features(self.model.get_image_features(pixel_values=pixels.to(self.device)))
            return torch.nn.functional.normalize(out.float(), dim=-1).cpu().numpy()


class OpenClipImageEncoder(TorchImageEncoder):
    """An open_clip model folder (``open_clip_config.json`` + weights); needs ``open_clip_torch``."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        try:
            import open_clip
        except ImportError as exc:
            raise ModelError("open_clip models need open_clip_torch (and torchvision)") from exc
        folder = Path(path)
        config = json.loads((folder / "open_clip_config.json").read_text())
        weights = next(p for p in folder.iterdir() if p.suffix in (".bin", ".safetensors", ".pt"))
        model_cfg = config.get("model_cfg", {})
        name = config.get("model_name") or model_cfg.get("name", "ViT-B-32")
        self.model = open_clip.create_model(name, pretrained=str(weights), device=device).eval()
        pre = config.get("preprocess_cfg", {})
        size = int(model_cfg.get("vision_cfg", {}).get("image_size", 224))
        self.preprocess = ImagePreprocess(
            size=size,
            mean=tuple(pre.get("mean", (0.48145466, 0.4578275, 0.40821073))),  # type: ignore[arg-type]
            std=tuple(pre.get("std", (0.26862954, 0.26130258, 0.27577711))),  # type: ignore[arg-type]
        )
        self.device = device
        self.dim = int(model_cfg.get("embed_dim", 512))
        self.identity = folder_identity(folder)
        self.name = f"open_clip:{name}"
        self.pooling = "clip-projection"

    def forward(self, pixels: Any) -> np.ndarray:
        with torch.inference_mode():
            out = self.model.encode_image(pixels.to(self.device))
            return torch.nn.functional.normalize(out.float(), dim=-1).cpu().numpy()
