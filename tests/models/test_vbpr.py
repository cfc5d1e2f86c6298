"""VBPR: contract, ID-only is BPR-MF, content reaches cold items, exact cold-item scores, clear errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from fusionrec.data.splits import Split
from fusionrec.errors import ModelError
from fusionrec.eval.evaluator import Evaluator
from fusionrec.features.base import FeatureSet, ModalityFeatures
from fusionrec.fusion.config import MeanFuserConfig
from fusionrec.models.configs import VBPRConfig
from fusionrec.models.mf import BPRMF
from fusionrec.models.registry import build_model, config_class, load_model
from fusionrec.models.vbpr import VBPR

from .contract import RecommenderContract
from .test_content import cluster_features

SMALL = {"factors": 16, "epochs": 30, "batch_size": 256, "learning_rate": 0.02, "reg": 1e-3, "patience": 3, "seed": 1}


def small_vbpr(**overrides: object) -> VBPR:
    settings: dict[str, object] = {**SMALL, "min_steps": 0, "fuser": MeanFuserConfig(dim=16)} | overrides
    return VBPR.from_config(settings)


class TestVBPR(RecommenderContract):
    partial_fit_atol = 1e-2  # a warm-started BPR fold-in (contract docstring)

    def make_model(self) -> VBPR:
        return small_vbpr()

    def make_features(self, split: Split) -> FeatureSet:
        return cluster_features(split)


def _without_items(matrix: sp.csr_matrix, items: np.ndarray) -> sp.csr_matrix:
    out = matrix.tolil()
    out[:, items] = 0
    result = sp.csr_matrix(out)
    result.eliminate_zeros()
    return result


def cold_setting(split: Split) -> tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
    """Half the items (every other one: 10 per planted cluster) lose all their train and valid
    interactions: ``(cold items, train, valid, truth on the cold items)``."""
    cold = np.arange(0, split.n_items, 2)
    truth = (split.csr("valid") + split.csr("test")).tocsr()[:, cold]
    return cold, _without_items(split.csr("train"), cold), _without_items(split.csr("valid"), cold), truth


def recall_on(truth: sp.csr_matrix, score: Callable[[np.ndarray], np.ndarray], k: int = 10) -> float:
    """recall@k of ``score(users) -> (len(users), truth columns)`` against ``truth`` (nothing excluded)."""

    class Scorer:
        def score(self, users: np.ndarray) -> np.ndarray:
            return score(users)

    exclude = sp.csr_matrix(np.zeros(truth.shape, dtype=np.float32))
    return float(Evaluator(ks=(k,), beyond=False).evaluate_matrices(Scorer(), truth, exclude).mean()[f"recall@{k}"])


def subset(features: FeatureSet, items: np.ndarray) -> FeatureSet:
    """The FeatureSet of ``items`` only (new items, as a cold-start caller would pass them)."""
    return FeatureSet(
        ids=np.asarray(features.ids)[items],
        modalities={
            name: ModalityFeatures(m.matrix[items], m.present[items], m.provenance) for name, m in features.modalities.items()
        },
    )


def test_without_features_it_is_bprmf(planted: Split) -> None:
    vbpr = small_vbpr().fit(planted.train, valid=planted.valid)
    bpr = BPRMF(**SMALL, min_steps=0).fit(planted.train, valid=planted.valid)  # type: ignore[arg-type]
    users = np.arange(planted.n_users)
    np.testing.assert_array_equal(vbpr.score(users), bpr.score(users))
    with pytest.raises(ModelError, match="ID-only"):
        vbpr.score_items(users[:2], cluster_features(planted))


def test_content_ranks_cold_items_that_bprmf_cannot(planted: Split) -> None:
    features = cluster_features(planted)
    cold, train, valid, truth = cold_setting(planted)
    vbpr = small_vbpr().fit(train, features=features, valid=valid)
    bpr = BPRMF(**SMALL, min_steps=0).fit(train, valid=valid)  # type: ignore[arg-type]
    chance = recall_on(truth, lambda users: bpr.score(users)[:, cold])
    fitted = recall_on(truth, lambda users: vbpr.score(users)[:, cold])
    new = recall_on(truth, lambda users: vbpr.score_items(users, subset(features, cold)))
    assert fitted > chance + 0.3, (fitted, chance)
    assert new > chance + 0.3, (new, chance)


def test_score_items_is_the_content_part_of_score(planted: Split, tmp_path: Path) -> None:
    features = cluster_features(planted)
    model = small_vbpr(epochs=3).fit(planted.train, features=features)
    users = np.arange(0, planted.n_users, 7)
    full = model.score(users)
    p, q = model.user_vectors()[users, :16], model.item_vectors()[:, :16]
    assert model.module is not None
    bias = model.module.state_dict()["bias.weight"].numpy().ravel()
    content_part = model.score_items(users, features)
    assert content_part.shape == (len(users), planted.n_items) and content_part.dtype == np.float32
    np.testing.assert_allclose(content_part, full - p @ q.T - bias, rtol=1e-4, atol=1e-5)
    # a saved model carries its features and fuser: the same cold-item scores after loading
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, VBPR)
    np.testing.assert_array_equal(loaded.score_items(users, features), content_part)
    # a modality the new items lack is missing for all of them: items without an image score the same
    text_only = FeatureSet(ids=features.ids, modalities={"text": features.modalities["text"]})
    no_image = ~features.modalities["image"].present
    partial = loaded.score_items(users, text_only)
    np.testing.assert_allclose(partial[:, no_image], content_part[:, no_image], rtol=1e-5, atol=1e-6)
    assert not np.allclose(partial[:, ~no_image], content_part[:, ~no_image])


def test_modalities_are_checked(planted: Split) -> None:
    features = cluster_features(planted)
    with pytest.raises(ModelError, match=r"vbpr: no \['audio'\] features"):
        small_vbpr(modalities=["audio"]).fit(planted.train, features=features)
    with pytest.raises(ModelError, match="no item features"):
        small_vbpr(modalities=["text"]).fit(planted.train)
    model = small_vbpr(modalities=["text"], epochs=1).fit(planted.train, features=features)
    assert model.item_vectors().shape == (planted.n_items, 16 + 16 + 1)
    image_only = FeatureSet(ids=features.ids, modalities={"image": features.modalities["image"]})
    with pytest.raises(ModelError, match=r"trained on \['text'\]"):
        model.score_items(np.array([0]), image_only)
    with pytest.raises(ModelError, match="FeatureSet"):
        model.score_items(np.array([0]), object())


def test_modality_dropout_trains_and_config_is_registered(planted: Split) -> None:
    assert config_class("vbpr") is VBPRConfig
    model = build_model("vbpr", {"epochs": 1, "min_steps": 0, "modality_dropout": 0.5, "fuser": {"kind": "attention", "dim": 8}})
    assert isinstance(model, VBPR)
    model.fit(planted.train, features=cluster_features(planted))
    assert np.isfinite(model.score(np.arange(3))).all()
    with pytest.raises(ModelError, match="invalid hyper-parameters"):
        build_model("vbpr", {"modality_dropout": 1.0})
