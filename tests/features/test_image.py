"""Images: decoding every odd file without crashing, the real EfficientNet-Lite0, models by path."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fusionrec.data.schema import ItemColumns
from fusionrec.errors import DataError
from fusionrec.features.config import ImageEncoderConfig
from fusionrec.features.extract import FeaturesConfig, extract_features
from fusionrec.features.files import DecodeError
from fusionrec.features.image import ImagePreprocess, load_image_encoder

from .conftest import gradient_image, make_dataset


def _bytes(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_modes_are_converted_to_rgb() -> None:
    preprocess = ImagePreprocess(size=32)
    rgb = gradient_image(0)
    grey16 = Image.fromarray((np.arange(120 * 160).reshape(120, 160) * 3).astype(np.uint16))
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    palette.info["transparency"] = 0
    samples = {
        "jpeg": _bytes(rgb, "JPEG"),
        "cmyk": _bytes(rgb.convert("CMYK"), "JPEG"),
        "grey": _bytes(rgb.convert("L"), "PNG"),
        "rgba": _bytes(rgb.convert("RGBA"), "PNG"),
        "la": _bytes(rgb.convert("LA"), "PNG"),
        "palette+transparency": _bytes(palette, "PNG", transparency=0),
        "16-bit": _bytes(grey16, "PNG"),
        "tall": _bytes(gradient_image(1, size=(400, 60)), "PNG"),
    }
    for name, data in samples.items():
        array = preprocess.decode(data)
        assert array.shape == (3, 32, 32) and array.dtype == np.float32, name
        assert np.isfinite(array).all(), name
    # transparent pixels are composited on white, not black
    clear = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    white = preprocess.decode(_bytes(clear, "PNG"))
    assert np.allclose(white[0], (1.0 - 0.485) / 0.229, atol=1e-3)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"this is not an image at all", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image"),
    ],
)
def test_bad_bytes_raise_decode_error_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        ImagePreprocess(size=32).decode(data)
    assert caught.value.reason == reason


def test_truncated_and_huge_images_are_rejected() -> None:
    full = _bytes(gradient_image(0, size=(200, 200)), "JPEG", quality=95)
    with pytest.raises(DecodeError) as caught:
        ImagePreprocess(size=32).decode(full[: len(full) // 2])
    assert caught.value.reason in ("truncated", "corrupt")
    with pytest.raises(DecodeError) as caught:
        ImagePreprocess(size=32, max_pixels=10_000).decode(full)
    assert caught.value.reason == "too large" and "200x200" in str(caught.value)


def _poster_catalog(root: Path) -> pd.DataFrame:
    (root / "posters").mkdir()
    gradient_image(0, hue="red").save(root / "posters" / "good.jpg")
    gradient_image(1, hue="red").convert("CMYK").save(root / "posters" / "cmyk.jpg")
    gradient_image(2, hue="blue").convert("L").save(root / "posters" / "grey.png")
    data = _bytes(gradient_image(3, size=(300, 300)), "JPEG", quality=95)
    (root / "posters" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "posters" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage that is not a jpeg")
    (root / "posters" / "empty.jpg").write_bytes(b"")
    return pd.DataFrame(
        {
            "item_id": ["good", "cmyk", "grey", "truncated", "corrupt", "empty", "missing", "none"],
            "poster": [
                "posters/good.jpg", "posters/cmyk.jpg", "posters/grey.png", "posters/truncated.jpg",
                "posters/corrupt.jpg", "posters/empty.jpg", "posters/missing.jpg", None,
            ],
        }
    )  # fmt: skip


@pytest.mark.slow
def test_extraction_masks_and_reports_bad_files(tmp_path: Path, effnet: Any) -> None:
    dataset = make_dataset(_poster_catalog(tmp_path), ItemColumns(image="poster"), media_root=tmp_path)
    config = FeaturesConfig()
    config.runtime.workers = 1  # decode in a worker process, as in production
    result = extract_features(
        dataset,
        ["image"],
        cache_dir=tmp_path / "cache",
        config=config,
        progress=False,
        encoders={"image": effnet},
    )
    features, report = result.features["image"], result.reports["image"]
    assert features.matrix.shape == (8, 1280)
    np.testing.assert_array_equal(features.present, [True, True, True, False, False, False, False, False])
    assert np.all(features.matrix[~features.present] == 0)
    reasons = {m.item_id: m.reason for m in report.masked}
    assert reasons["truncated"] in ("truncated", "corrupt")
    assert reasons["corrupt"] in ("corrupt", "not an image")
    assert reasons["empty"] == "empty file"
    assert reasons["missing"] == "missing file" and reasons["none"] == "no image"
    details = {m.item_id: m.detail for m in report.masked}
    assert "missing.jpg" in details["missing"] and "truncated.jpg" in details["truncated"]
    assert report.encoded == 3 and report.cached == 0
    again = extract_features(
        dataset,
        ["image"],
        cache_dir=tmp_path / "cache",
        config=config,
        progress=False,
        encoders={"image": effnet},
    )
    assert again.reports["image"].encoded == 0 and again.reports["image"].cached == 3
    np.testing.assert_allclose(again.features["image"].matrix, features.matrix, atol=1e-6)


@pytest.mark.slow
def test_efficientnet_dims_similarity_and_backends_agree(tmp_path: Path, effnet: Any) -> None:
    paths = []
    base = gradient_image(0, size=(224, 224), hue="red")
    variants = {
        "red": base,
        "red_shifted": base.crop((10, 10, 214, 214)).resize((224, 224)),
        "blue": gradient_image(5, size=(224, 224), hue="blue").transpose(Image.Transpose.ROTATE_90),
    }
    for name, image in variants.items():
        image.save(tmp_path / f"{name}.png")
        paths.append(tmp_path / f"{name}.png")
    vectors = effnet.encode(paths)
    assert vectors.shape == (3, 1280) and vectors.dtype == np.float32 and effnet.dim == 1280
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit.T
    assert sims[0, 1] > sims[0, 2]
    from fusionrec.features.image import EfficientNetLiteEncoder

    eager = EfficientNetLiteEncoder(backend="torch")
    np.testing.assert_allclose(eager.encode(paths), vectors, atol=2e-3)
    assert eager.fingerprint == effnet.fingerprint  # same vectors, same cache
    with pytest.raises(DataError, match="missing"):
        effnet.encode([tmp_path / "missing.png"])


def _tiny_cnn() -> Any:
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, stride=2)
    ).eval()


def test_torchscript_image_model_by_path(tmp_path: Path) -> None:
    import torch

    torch.jit.script(_tiny_cnn()).save(str(tmp_path / "cnn.pt"))
    encoder = load_image_encoder(ImageEncoderConfig(encoder=str(tmp_path / "cnn.pt"), size=64))
    gradient_image(0).save(tmp_path / "a.png")
    assert encoder.dim == 16 and encoder.encode([tmp_path / "a.png"]).shape == (1, 16)


@pytest.mark.skipif(
    importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None,
    reason="ONNX route needs onnx + onnxruntime (the 'fast' extra)",
)
def test_onnx_image_model_by_path(tmp_path: Path) -> None:
    import warnings

    import torch

    model = _tiny_cnn()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.zeros(1, 3, 64, 64),), str(tmp_path / "cnn.onnx"), dynamo=False,
            input_names=["x"], dynamic_axes={"x": {0: "b"}},
        )  # fmt: skip
    encoder = load_image_encoder(ImageEncoderConfig(encoder=str(tmp_path / "cnn.onnx"), size=64))
    gradient_image(0).save(tmp_path / "a.png")
    out = encoder.encode([tmp_path / "a.png", tmp_path / "a.png"])
    assert encoder.dim == 16 and out.shape == (2, 16)
    pixels = torch.from_numpy(ImagePreprocess(size=64).decode((tmp_path / "a.png").read_bytes()))[None]
    with torch.inference_mode():
        expected = model(pixels).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(out[:1], expected, atol=1e-4)
