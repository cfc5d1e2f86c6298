"""Every content model keeps working when modalities are missing: with 50 % of the items lacking
one modality, 30 % the other and 5 % with no content at all it trains and scores finite values,
and removing a modality from half the items is no cliff (test NDCG@20 >= 0.8x the full-feature
value and above MostPop). Also with the gaps filled by the cross-modal imputer."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest

from fusionrec.data.splits import Split
from fusionrec.eval.evaluator import Evaluator
from fusionrec.features.base import FeatureSet, ModalityFeatures, Provenance
from fusionrec.fusion.impute import ModalityImputer
from fusionrec.models.base import Recommender
from fusionrec.models.popularity import MostPop
from fusionrec.models.registry import build_model

from .conftest import planted_split

QUICK: dict[str, Any] = {"min_steps": 0, "patience": 3, "seed": 1}
#: small, fast configurations (the ones the models' own test files use)
CONFIGS: dict[str, dict[str, Any]] = {
    "content": {},
    "ease_side": {"l2": 20.0, "side_weight": 3.0},
    "vbpr": QUICK | {"factors": 16, "epochs": 30, "batch_size": 256, "learning_rate": 0.02, "reg": 1e-3,
                     "fuser": {"kind": "mean", "dim": 16}},
    "freedom": QUICK | {"factors": 16, "epochs": 30, "batch_size": 512, "learning_rate": 0.02, "edge_dropout": 0.5,
                        "fuser": {"kind": "mean", "dim": 16}},
    "two_tower": QUICK | {"epochs": 15, "seed": 0},
}
MODELS = list(CONFIGS)
ITEMS_PER_CLUSTER = 20


@cache
def _split() -> Split:
    return planted_split()


@cache
def _full_features() -> FeatureSet:
    """Text (16-d) and image (12-d) both carrying each item's planted cluster, plus noise; no gaps."""
    split = _split()
    rng = np.random.default_rng(0)
    cluster = np.arange(split.n_items) // ITEMS_PER_CLUSTER
    modalities = {}
    for name, dim, noise in (("text", 16, 0.5), ("image", 12, 0.7)):
        basis = rng.normal(size=(int(cluster.max()) + 1, dim))
        matrix = (basis[cluster] + noise * rng.normal(size=(split.n_items, dim))).astype(np.float32)
        provenance = Provenance(encoder=name, fingerprint=f"fp-{name}", created_at="2026-01-01T00:00:00+00:00")
        modalities[name] = ModalityFeatures(matrix, np.ones(split.n_items, dtype=bool), provenance)
    return FeatureSet(ids=split.item_map.ids, modalities=modalities)


def _remove(features: FeatureSet, shares: dict[str, float], none_share: float = 0.0, seed: int = 0) -> FeatureSet:
    """A copy of ``features`` where a random ``shares[m]`` of the items lose modality ``m`` (mask
    False, zero row) and a further ``none_share`` lose every modality."""
    rng = np.random.default_rng(seed)
    n = len(features)
    nothing = rng.random(n) < none_share
    out = {}
    for name, modality in features.modalities.items():
        lose = nothing | (rng.random(n) < shares.get(name, 0.0))
        matrix, present = modality.matrix.copy(), modality.present & ~lose
        matrix[~present] = 0.0
        out[name] = ModalityFeatures(matrix, present, modality.provenance)
    return FeatureSet(ids=features.ids, modalities=out)


@cache
def _heavy_gaps() -> FeatureSet:
    return _remove(_full_features(), {"image": 0.5, "text": 0.3}, none_share=0.05)


def _fit(name: str, features: FeatureSet) -> Recommender:
    split = _split()
    return build_model(name, CONFIGS[name]).fit(split.train, features=features, valid=split.valid, item_ids=split.item_map.ids)


def _ndcg(model: Any) -> float:
    return float(Evaluator(ks=(20,), beyond=False).evaluate(model, _split(), on="test").mean()["ndcg@20"])


@cache
def _fitted_ndcg(name: str, variant: str) -> float:
    features = _full_features() if variant == "full" else _remove(_full_features(), {"image": 0.5}, seed=1)
    return _ndcg(_fit(name, features))


def test_the_gaps_are_what_the_test_says() -> None:
    features = _heavy_gaps()
    image, text = features.modalities["image"].present, features.modalities["text"].present
    assert 0.45 < 1 - image.mean() < 0.6 and 0.3 < 1 - text.mean() < 0.42
    assert 0.03 < (~image & ~text).mean() < 0.25 and (~image & text).any() and (image & ~text).any()


@pytest.mark.parametrize("name", MODELS)
def test_trains_and_scores_with_heavy_gaps(name: str) -> None:
    split = _split()
    features = _heavy_gaps()
    model = _fit(name, features)
    users = np.arange(0, split.n_users, 7)
    scores = np.asarray(model.score(users))
    assert scores.shape == (len(users), split.n_items) and np.isfinite(scores).all()
    nothing = ~features.modalities["image"].present & ~features.modalities["text"].present
    items, _ = model.recommend(users, k=10, exclude=split.csr("train"))
    assert items.shape == (len(users), 10)
    assert _ndcg(model) > _ndcg(MostPop().fit(split.train)), "heavy gaps fell below MostPop"
    assert nothing.sum() > 0  # the no-content items were part of the catalogue that was scored


@pytest.mark.parametrize("name", MODELS)
def test_half_of_one_modality_removed_is_no_cliff(name: str) -> None:
    full, half = _fitted_ndcg(name, "full"), _fitted_ndcg(name, "half")
    mostpop = _ndcg(MostPop().fit(_split().train))
    assert half >= 0.8 * full, f"{name}: NDCG@20 {half:.4f} with half the images removed vs {full:.4f} with all"
    assert half > mostpop, f"{name}: NDCG@20 {half:.4f} vs MostPop {mostpop:.4f}"


@pytest.mark.parametrize("name", ["content", "ease_side"])
def test_imputed_gaps_train_and_are_no_worse_than_a_cliff(name: str) -> None:
    features = _heavy_gaps()
    imputer = ModalityImputer().fit(features)
    imputed = imputer.impute(features)
    report = imputer.report()
    assert report["image"]["n_imputed"] > 0 and report["text"]["n_imputed"] > 0
    assert report["image"]["held_out_cosine"] > 0.5, report  # both modalities carry the cluster
    model = _fit(name, imputed)
    scores = np.asarray(model.score(np.arange(10)))
    assert np.isfinite(scores).all()
    assert _ndcg(model) >= 0.8 * _fitted_ndcg(name, "full")
