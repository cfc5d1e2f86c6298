"""Cold start: content-mapped cold items, the cold candidate protocol, and users known only by seed
items, a text or a profile. Planted clusters make every expectation checkable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fusionrec.coldstart import ColdUserRecommender, ProfilePrior, TextRetriever, UserQuery
from fusionrec.data.schema import IdMap, Interactions
from fusionrec.data.splits import Split
from fusionrec.errors import DataError, ModelError
from fusionrec.eval.evaluator import Evaluator, cold_candidates
from fusionrec.features.base import FeatureSet, ModalityFeatures, Provenance
from fusionrec.models.base import SupportsColdStart
from fusionrec.models.registry import build_model

N_USERS, N_CLUSTERS, PER_CLUSTER = 200, 4, 25
N_ITEMS = N_CLUSTERS * PER_CLUSTER
ITEM_CLUSTER = np.repeat(np.arange(N_CLUSTERS), PER_CLUSTER)
WORDS = (["space", "robot", "alien", "planet"], ["love", "wedding", "romance", "kiss"],
         ["murder", "detective", "crime", "police"], ["cartoon", "family", "animal", "song"])  # fmt: skip
FAST = {"epochs": 40, "min_steps": 0, "patience": 40, "factors": 16}


class BagOfWords:
    """A deterministic text encoder: counts of the vocabulary's words (a stand-in for MiniLM)."""

    vocabulary: ClassVar[list[str]] = [w for words in WORDS for w in words]
    fingerprint = "bag-of-words-v1"
    modality, dim = "text", len(vocabulary)

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        return np.array([[str(t).lower().split().count(w) for w in self.vocabulary] for t in batch], dtype=np.float32) + 0.01


def _world(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Users, items of each interaction and each user's cluster: users pick mostly their cluster."""
    rng = np.random.default_rng(seed)
    user_cluster = rng.integers(0, N_CLUSTERS, N_USERS)
    chosen = rng.random((N_USERS, N_ITEMS)) < np.where(user_cluster[:, None] == ITEM_CLUSTER[None, :], 0.5, 0.02)
    users, items = np.nonzero(chosen)
    return users, items, user_cluster


def _features(seed: int = 0) -> FeatureSet:
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS[c], 3)) + " film" for c in ITEM_CLUSTER]
    text = BagOfWords().encode(texts)
    image = np.eye(N_CLUSTERS, dtype=np.float32)[ITEM_CLUSTER] + 0.3 * rng.random((N_ITEMS, N_CLUSTERS)).astype(np.float32)
    modalities = {
        "text": ModalityFeatures(text, np.ones(N_ITEMS, bool), Provenance(encoder="bow", fingerprint=BagOfWords.fingerprint, created_at="x"), texts),
        "image": ModalityFeatures(image, np.ones(N_ITEMS, bool), Provenance(encoder="img", fingerprint="img", created_at="x")),
    }
    return FeatureSet(ids=np.array([f"i{i}" for i in range(N_ITEMS)]), modalities=modalities)


def _split(cold_items: np.ndarray | None = None, cold_users: np.ndarray | None = None, seed: int = 0) -> Split:
    users, items, _ = _world(seed)
    rng = np.random.default_rng(seed + 1)
    part = rng.choice(3, size=len(users), p=[0.8, 0.1, 0.1])
    if cold_items is not None:
        part = np.where(np.isin(items, cold_items), 2, np.where(part == 2, 1, part))
    if cold_users is not None:
        part = np.where(np.isin(users, cold_users), 2, np.where(part == 2, 1, part))

    def inter(mask: np.ndarray) -> Interactions:
        return Interactions(users[mask], items[mask], np.ones(mask.sum()), n_users=N_USERS, n_items=N_ITEMS)

    return Split(inter(part == 0), inter(part == 1), inter(part == 2),
                 IdMap([f"u{i}" for i in range(N_USERS)]), IdMap([f"i{i}" for i in range(N_ITEMS)]))  # fmt: skip


COLD = np.concatenate([np.arange(c * PER_CLUSTER, c * PER_CLUSTER + 5) for c in range(N_CLUSTERS)])


@pytest.fixture(scope="module")
def cold_item_split() -> Split:
    return _split(cold_items=COLD)


@pytest.mark.parametrize("name", ["bpr", "lightgcn", "content", "vbpr", "two_tower"])
def test_a_cold_item_that_matches_a_users_taste_ranks_above_one_that_does_not(name: str, cold_item_split: Split) -> None:
    split, features = cold_item_split, _features()
    config = {"content": {}, "two_tower": {"epochs": 30, "min_steps": 0, "patience": 30, "dim": 16},
              "vbpr": {**FAST}, "bpr": FAST, "lightgcn": {**FAST, "epochs": 30}}[name]  # fmt: skip
    model = build_model(name, config).fit(split.train, features=features, valid=None, item_ids=split.item_map.ids)
    assert isinstance(model, SupportsColdStart)
    _, _, user_cluster = _world()
    users = np.arange(N_USERS)
    scores = model.score(users)[:, COLD]  # (users, cold items)
    same = user_cluster[:, None] == ITEM_CLUSTER[COLD][None, :]
    # per user: mean score of their cluster's cold items vs the other cold items
    mean_same = (scores * same).sum(1) / same.sum(1)
    mean_other = (scores * ~same).sum(1) / (~same).sum(1)
    assert (mean_same > mean_other).mean() > 0.9
    # the protocol of DropoutNet: ranked among the cold items only, far above random
    result = Evaluator(ks=(5,)).evaluate(model, split, "test", candidates="cold").mean()
    assert result["recall@5"] > 1.5 * (5 / len(COLD))  # random: 5 / 20
    # score_items on the same items' features gives the cold rows of score for the content-mapped models
    if getattr(model, "cold_map", None) is not None:
        np.testing.assert_allclose(model.score_items(users[:5], _subset(features, COLD)), scores[:5], rtol=1e-4, atol=1e-5)


def _subset(features: FeatureSet, rows: np.ndarray) -> FeatureSet:
    mods = {n: ModalityFeatures(m.matrix[rows], m.present[rows], m.provenance) for n, m in features.modalities.items()}
    return FeatureSet(ids=features.ids[rows], modalities=mods)


def test_content_map_is_saved_and_an_id_model_without_features_says_it_cannot(cold_item_split: Split, tmp_path: Any) -> None:
    split, features = cold_item_split, _features()
    model = build_model("bpr", FAST).fit(split.train, features=features, item_ids=split.item_map.ids)
    loaded = type(model).load(model.save(tmp_path / "bpr"))
    np.testing.assert_array_equal(loaded.score(np.arange(5)), model.score(np.arange(5)))
    np.testing.assert_allclose(loaded.score_items(np.arange(5), _subset(features, COLD)), model.score_items(np.arange(5), _subset(features, COLD)))
    plain = build_model("bpr", FAST).fit(split.train)
    with pytest.raises(ModelError, match="without item features"):
        plain.score_items(np.arange(2), features)


def test_cold_candidates_and_the_cold_group(cold_item_split: Split) -> None:
    split = cold_item_split
    candidates = cold_candidates(split.csr("train"), split.csr("test"))
    np.testing.assert_array_equal(candidates, COLD)
    model = build_model("content", {}).fit(split.train, features=_features(), item_ids=split.item_map.ids)
    evaluator = Evaluator(ks=(10,))
    among_cold = evaluator.evaluate(model, split, "test", candidates="cold")
    explicit = evaluator.evaluate_matrices(model, split.csr("test"), split.csr("train") + split.csr("valid"), train=split.csr("train"), candidates=COLD)
    assert among_cold.mean() == pytest.approx(explicit.mean())
    among_all = evaluator.evaluate(model, split, "test")
    groups = among_all.by_item_popularity()
    assert "cold" in groups and groups["cold"]["n_users"] > 0
    assert 0 < among_all.beyond["cold_share"] <= 1
    assert among_cold.mean()["recall@10"] > among_all.mean()["recall@10"]  # fewer, all-relevant candidates
    with pytest.raises(ValueError, match="candidates"):
        evaluator.evaluate(model, split, "test", candidates="warm")


# --------------------------------------------------------------------------- cold users
COLD_USERS = np.arange(0, N_USERS, 5)


@pytest.fixture(scope="module")
def cold_user_split() -> Split:
    return _split(cold_users=COLD_USERS)


def _seeded_ndcg(recommender: ColdUserRecommender, split: Split, k_seeds: int, profiles: list[dict[str, object]] | None = None) -> float:
    test = split.csr("test")
    rng = np.random.default_rng(0)
    seeds = sp.lil_matrix(test.shape, dtype=np.float32)
    for u in COLD_USERS:
        row = test[u].indices
        if k_seeds:
            seeds[u, rng.choice(row, size=min(k_seeds, len(row) - 1), replace=False)] = 1.0
    seeds_csr = seeds.tocsr()
    truth = (test - test.multiply(seeds_csr)).tocsr()
    truth.eliminate_zeros()

    class Scorer:
        def score(self, users: np.ndarray) -> np.ndarray:
            rows = [profiles[int(u)] for u in users] if profiles is not None else None
            return recommender.score_rows(seeds_csr[users], rows)

    return Evaluator(ks=(10,)).evaluate_matrices(Scorer(), truth, seeds_csr, train=split.csr("train")).mean()["ndcg@10"]


@pytest.mark.parametrize("name", ["ease", "itemknn", "content", "bpr", "two_tower"])
def test_three_seed_items_beat_mostpop_for_users_the_model_never_saw(name: str, cold_user_split: Split) -> None:
    split, features = cold_user_split, _features()
    config = {"ease": {"l2": 10.0}, "itemknn": {}, "content": {}, "bpr": FAST,
              "two_tower": {"epochs": 30, "min_steps": 0, "patience": 30, "dim": 16, "user_tower": "history"}}[name]  # fmt: skip
    train = split.csr("train")
    model = build_model(name, config).fit(split.train, features=features, item_ids=split.item_map.ids)
    mostpop = ColdUserRecommender(build_model("mostpop", {}).fit(split.train), train)
    seeded = ColdUserRecommender(model, train)
    assert _seeded_ndcg(seeded, split, 0) == pytest.approx(_seeded_ndcg(mostpop, split, 0))  # no seeds: popularity
    assert _seeded_ndcg(seeded, split, 3) > 2.0 * _seeded_ndcg(mostpop, split, 3)


def test_fold_in_keeps_the_bias_column_and_recovers_a_users_taste(cold_user_split: Split) -> None:
    split = cold_user_split
    model = build_model("bpr", FAST).fit(split.train)
    rows = sp.csr_matrix((np.ones(3, np.float32), ([0, 0, 0], [30, 31, 32])), shape=(1, N_ITEMS))  # cluster 1 items
    vector = model.fold_in_users(rows)
    assert vector.shape == (1, model.item_vectors().shape[1]) and vector[0, -1] == 1.0
    top = np.argsort(-(vector @ model.item_vectors().T)[0])[:10]
    assert (ITEM_CLUSTER[top] == 1).mean() >= 0.8
    assert model.fold_in_users(sp.csr_matrix((1, N_ITEMS), dtype=np.float32))[0, :-1].tolist() == [0.0] * (vector.shape[1] - 1)


def test_an_unknown_user_with_text_gets_items_about_that_text(cold_user_split: Split) -> None:
    split, features = cold_user_split, _features()
    model = build_model("ease", {"l2": 10.0}).fit(split.train)
    recommender = ColdUserRecommender(model, split.csr("train"), features=features, text_encoder=BagOfWords(), text_seeds=5)
    for cluster, words in enumerate(WORDS):
        items, _ = recommender.recommend([UserQuery(text=f"I like {words[0]} and {words[1]} stories")], k=10)
        assert (ITEM_CLUSTER[items[0]] == cluster).mean() >= 0.8, (cluster, ITEM_CLUSTER[items[0]])
    retriever = TextRetriever(features, BagOfWords())
    assert (ITEM_CLUSTER[retriever.top_items(["detective crime"], 10)[0]] == 2).all()
    with pytest.raises(ModelError, match="empty"):
        retriever.similarity([" "])

    class OtherEncoder(BagOfWords):
        fingerprint = "something-else"

    with pytest.raises(ModelError, match="not the one"):
        TextRetriever(features, OtherEncoder())
    with pytest.raises(ModelError, match="text features"):
        ColdUserRecommender(model, split.csr("train")).score([UserQuery(text="space")])


def test_profile_prior_beats_mostpop_when_attributes_carry_taste(cold_user_split: Split) -> None:
    split = cold_user_split
    _, _, user_cluster = _world()
    rng = np.random.default_rng(3)
    noisy = np.where(rng.random(N_USERS) < 0.8, user_cluster, rng.integers(0, N_CLUSTERS, N_USERS))
    users = pd.DataFrame({"user_id": [f"u{i}" for i in range(N_USERS)], "segment": [f"s{c}" for c in noisy],
                          "zip": [f"{i:05d}" for i in range(N_USERS)], "age": rng.choice([18.0, 25.0], N_USERS)})  # fmt: skip
    train = split.csr("train")
    prior = ProfilePrior().fit(users, train)
    assert "zip" not in prior.vocab and "segment" in prior.vocab  # too many values: skipped
    assert prior.score([{"age": 18}]).shape == prior.score([{"age": "18"}]).shape  # 18 and 18.0 are one value
    profiles = [{"segment": users["segment"][u]} for u in range(N_USERS)]
    model = build_model("ease", {"l2": 10.0}).fit(split.train)
    recommender = ColdUserRecommender(model, train, profiles=prior)
    popular = _seeded_ndcg(ColdUserRecommender(build_model("mostpop", {}).fit(split.train), train), split, 0)
    assert _seeded_ndcg(recommender, split, 0, profiles) > 1.5 * popular
    assert _seeded_ndcg(recommender, split, 1, profiles) > _seeded_ndcg(recommender, split, 1) * 0.95
    with pytest.raises(DataError, match="unknown profile attribute"):
        prior.score([{"shoe": "9"}])
    with pytest.raises(ModelError, match="ProfilePrior"):
        ColdUserRecommender(model, train).score([UserQuery(profile={"segment": "s1"})])
    items, _ = recommender.recommend([UserQuery(items=[0, 1], profile={"segment": "s0"})], k=5)
    assert not set(items[0]) & {0, 1}
