"""The learned joint text-image space: contrastive heads beat chance and ridge on paired data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusionrec.fusion.joint import (
    JointSpace,
    evaluate_joint_space,
    exact_recall_at_k,
    projected_encoders,
)


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
