"""ModelBundle: one self-contained artifact; Recommender.fit's feature checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from fusionrec.data.splits import Split
from fusionrec.errors import ModelError
from fusionrec.features.base import FeatureSet, ModalityFeatures, Provenance
from fusionrec.models.base import ModelConfig, Recommender
from fusionrec.models.bundle import ModelBundle
from fusionrec.models.ease import EASE
from fusionrec.models.popularity import MostPop
from fusionrec.models.registry import MODELS


class EchoConfig(ModelConfig):
    pass


class TextEcho(Recommender):
    """A minimal content model: score = user's mean text vector . item text vector (stores the vectors)."""

    name = "test_text_echo"
    config_class = EchoConfig
    required_modalities = ("text",)
    uses_features = True
    uses_history = True

    def __init__(self) -> None:
        self.vectors = np.zeros((0, 0), dtype=np.float32)

    def _fit(self, train: sp.csr_matrix, features: Any | None, valid: sp.csr_matrix | None) -> None:
        self.vectors = np.asarray(features["text"].matrix, dtype=np.float32)

    def score(self, users: np.ndarray, user_items: sp.csr_matrix | None = None) -> np.ndarray:
        rows = self._history_rows(users, user_items)
        return np.asarray(rows @ self.vectors @ self.vectors.T, dtype=np.float32)

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"vectors": self.vectors}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.vectors = state["vectors"]


@pytest.fixture(autouse=True)
def _register_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODELS, TextEcho.name, f"{__name__}:TextEcho")


def text_features(split: Split, fingerprint: str = "fp-minilm", ids: np.ndarray | None = None) -> FeatureSet:
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(split.n_items, 8)).astype(np.float32)
    provenance = Provenance(encoder="minilm", fingerprint=fingerprint, created_at="2026-01-01T00:00:00+00:00")
    modality = ModalityFeatures(matrix, np.ones(split.n_items, dtype=bool), provenance)
    return FeatureSet(ids=split.item_map.ids if ids is None else ids, modalities={"text": modality})


def test_bundle_round_trips_ids_seen_and_provenance(planted: Split, tmp_path: Path) -> None:
    model = MostPop().fit(planted.train)
    bundle = ModelBundle.from_split(model, planted)
    bundle.save(tmp_path / "b")
    loaded = ModelBundle.load(tmp_path / "b")
    np.testing.assert_array_equal(loaded.user_ids, planted.user_map.ids.astype(str))
    np.testing.assert_array_equal(loaded.item_ids, planted.item_map.ids.astype(str))
    assert (loaded.seen != planted.csr("train")).nnz == 0
    assert loaded.split == bundle.split and loaded.split["n_train"] == planted.csr("train").nnz
    np.testing.assert_array_equal(loaded.model.score(np.arange(5)), model.score(np.arange(5)))
    loaded.check_split(planted)


def test_history_model_stores_its_training_matrix_once(planted: Split, tmp_path: Path) -> None:
    bundle = ModelBundle.from_split(EASE(l2=10.0).fit(planted.train), planted)
    bundle.save(tmp_path / "b")
    assert not (tmp_path / "b" / "seen.npz").exists()
    loaded = ModelBundle.load(tmp_path / "b")
    assert loaded.seen is loaded.model.train_matrix and (loaded.seen != planted.csr("train")).nnz == 0


def test_content_model_bundle_is_self_contained_and_checks_fingerprints(planted: Split, tmp_path: Path) -> None:
    features = text_features(planted)
    model = TextEcho().fit(planted.train, features=features, item_ids=planted.item_map.ids)
    ModelBundle.from_split(model, planted, features).save(tmp_path / "b")
    loaded = ModelBundle.load(tmp_path / "b")  # no features needed to score known items
    assert loaded.features["text"]["fingerprint"] == "fp-minilm" and loaded.features["text"]["dim"] == 8
    np.testing.assert_allclose(loaded.model.score(np.arange(4)), model.score(np.arange(4)), rtol=1e-6)
    ModelBundle.load(tmp_path / "b", features=features)  # same encoder: fine
    with pytest.raises(ModelError, match="different encoder"):
        ModelBundle.load(tmp_path / "b", features=text_features(planted, fingerprint="fp-other"))


def test_fit_names_missing_and_misaligned_features(planted: Split) -> None:
    with pytest.raises(ModelError, match="needs the text modality but got no features"):
        TextEcho().fit(planted.train)
    shuffled = planted.item_map.ids.astype(str)[::-1].copy()
    with pytest.raises(ModelError, match="row 0 holds"):
        TextEcho().fit(planted.train, features=text_features(planted, ids=shuffled), item_ids=planted.item_map.ids)
    model = TextEcho()
    with pytest.raises(ModelError):
        model.fit(planted.train, features=text_features(planted, ids=shuffled), item_ids=planted.item_map.ids)
    assert not model._fitted


def test_bundle_refuses_a_split_with_other_ids(planted: Split, tmp_path: Path) -> None:
    from tests.models.conftest import planted_split

    bundle = ModelBundle.from_split(MostPop().fit(planted.train), planted)
    other = planted_split(n_users=100)
    with pytest.raises(ModelError, match="trained on"):
        bundle.check_split(other)


def test_recommend_with_live_history_and_candidates(planted: Split) -> None:
    model = EASE(l2=10.0).fit(planted.train)
    train = planted.csr("train")
    users = np.arange(6)
    items, _ = model.recommend(users, k=5, user_items=train[users])
    expected, _ = model.recommend(users, k=5, exclude=train)
    np.testing.assert_array_equal(items, expected)
    candidates = np.arange(0, planted.n_items, 3)
    restricted, _ = model.recommend(users, k=5, exclude=train, candidates=candidates)
    assert np.isin(restricted[restricted >= 0], candidates).all()
