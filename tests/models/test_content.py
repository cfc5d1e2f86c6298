"""The content recommender: contract, content signal beats MostPop, cold items, recency, missing modalities."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.data.schema import Interactions
from fusionrec.data.splits import Split
from fusionrec.errors import ModelError
from fusionrec.eval.evaluator import Evaluator
from fusionrec.features.base import FeatureSet, ModalityFeatures, Provenance
from fusionrec.models.content import ContentRecommender
from fusionrec.models.popularity import MostPop

from .contract import RecommenderContract


def cluster_features(split: Split, items_per_cluster: int = 20, noise: float = 0.5, seed: int = 0) -> FeatureSet:
    """Two modalities that carry each item's planted cluster (one-hot + noise), one with gaps."""
    rng = np.random.default_rng(seed)
    n_items = split.n_items
    cluster = np.arange(n_items) // items_per_cluster
    n_clusters = int(cluster.max()) + 1
    modalities = {}
    for name, dim, share_missing in (("text", 16, 0.0), ("image", 12, 0.3)):
        basis = rng.normal(size=(n_clusters, dim))
        matrix = (basis[cluster] + noise * rng.normal(size=(n_items, dim))).astype(np.float32)
        present = rng.random(n_items) >= share_missing
        matrix[~present] = 0.0
        provenance = Provenance(encoder=name, fingerprint=f"fp-{name}", created_at="2026-01-01T00:00:00+00:00")
        modalities[name] = ModalityFeatures(matrix, present, provenance)
    return FeatureSet(ids=split.item_map.ids, modalities=modalities)


class TestContent(RecommenderContract):
    def make_model(self) -> ContentRecommender:
        return ContentRecommender()

    def make_features(self, split: Split) -> FeatureSet:
        return cluster_features(split)


def test_needs_features_and_names_unknown_modalities(planted: Split) -> None:
    with pytest.raises(ModelError, match="needs item features"):
        ContentRecommender().fit(planted.train)
    with pytest.raises(ModelError, match="audio"):
        ContentRecommender(modalities=["audio"]).fit(planted.train, features=cluster_features(planted))


def test_cold_item_matching_a_users_taste_ranks_above_one_that_does_not(planted: Split) -> None:
    features = cluster_features(planted)
    model = ContentRecommender().fit(planted.train, features=features)
    user = 0
    liked_cluster = int(np.bincount(planted.csr("train")[user].indices // 20).argmax())
    other_cluster = (liked_cluster + 1) % 6
    new = FeatureSet(
        ids=["cold-match", "cold-other"],
        modalities={
            name: ModalityFeatures(
                f.matrix[[liked_cluster * 20, other_cluster * 20]] + 0.01,
                np.ones(2, dtype=bool),
                f.provenance,
            )
            for name, f in features.modalities.items()
        },
    )
    scores = model.score_items(np.array([user]), new)
    assert scores[0, 0] > scores[0, 1]


def test_a_missing_modality_is_left_out_not_averaged_as_zero(planted: Split) -> None:
    features = cluster_features(planted)
    model = ContentRecommender().fit(planted.train, features=features)
    vectors = model.item_vectors()
    image = features.modalities["image"]
    missing = np.flatnonzero(~image.present)
    # An item without a poster is described by its text alone: the text block at its own weight
    # (norm sqrt(1/2) of two equal modalities, not inflated to 1), image block exactly 0.
    np.testing.assert_allclose(np.linalg.norm(vectors[missing], axis=1), np.sqrt(0.5), rtol=1e-5)
    present = np.flatnonzero(image.present)
    np.testing.assert_allclose(np.linalg.norm(vectors[present], axis=1), 1.0, rtol=1e-5)
    assert not vectors[missing, 16:].any()
    # Removing every poster still trains, scores and beats MostPop.
    no_image = cluster_features(planted)
    no_image.modalities["image"].present[:] = False
    no_image.modalities["image"].matrix[:] = 0
    evaluator = Evaluator(ks=(10,), beyond=False)
    ours = evaluator.evaluate(ContentRecommender().fit(planted.train, features=no_image), planted).mean()["recall@10"]
    base = evaluator.evaluate(MostPop().fit(planted.train), planted).mean()["recall@10"]
    assert ours > base + 0.05


def test_recency_weights_favour_recent_items(planted: Split) -> None:
    # One user, two clusters: old interactions in cluster 0, recent ones in cluster 1.
    n_items = planted.n_items
    items = np.array([0, 1, 2, 20, 21, 22])
    day = 86400
    train = Interactions(
        np.zeros(6), items, np.ones(6), n_users=1, n_items=n_items,
        timestamp=np.array([0, 0, 0, 300 * day, 300 * day, 300 * day]),
    )
    features = cluster_features(planted)
    flat = ContentRecommender().fit(train, features=features)
    recent = ContentRecommender(recency_half_life_days=30).fit(train, features=features)
    cluster0, cluster1 = np.arange(3, 20), np.arange(23, 40)

    def gap(model: ContentRecommender) -> float:
        scores = model.score(np.array([0]))[0]
        return float(scores[cluster1].mean() - scores[cluster0].mean())

    assert gap(recent) > gap(flat) + 0.1
