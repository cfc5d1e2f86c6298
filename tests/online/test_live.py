"""Live updates: new feedback and new items count at once, and match a retrain where that is exact."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fusionrec.data.splits import Split
from fusionrec.errors import ModelError
from fusionrec.features.base import FeatureSet, ModalityFeatures
from fusionrec.models.als import ALS
from fusionrec.models.content import ContentRecommender
from fusionrec.models.ease import EASE
from fusionrec.models.itemknn import ItemKNN
from fusionrec.models.mf import BPRMF
from fusionrec.models.popularity import MostPop
from fusionrec.online.live import LiveRecommender
from tests.models.conftest import planted_split
from tests.models.test_content import cluster_features

ITEMS_PER_CLUSTER = 20


@pytest.fixture(scope="module")
def split() -> Split:
    return planted_split(items_per_cluster=ITEMS_PER_CLUSTER)


def _stream(split: Split, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The valid interactions of ``users`` as (user, item) event arrays."""
    valid = split.csr("valid")[users].tocoo()
    return users[valid.row], valid.col.astype(np.int64)


def _updated(split: Split, users: np.ndarray) -> sp.csr_matrix:
    full = split.csr("train").tolil()
    valid = split.csr("valid")
    for user in users:
        full[user] = (split.csr("train")[user] + valid[user]).toarray() > 0
    return sp.csr_matrix(full, dtype=np.float32)


@pytest.mark.parametrize("make", [lambda: EASE(l2=20.0), lambda: ItemKNN(k=30)])
def test_history_models_score_new_feedback_exactly(split: Split, make) -> None:  # type: ignore[no-untyped-def]
    model = make().fit(split.train)
    live = LiveRecommender(model)
    users = np.arange(5)
    live.add_interactions(*_stream(split, users))
    rows = _updated(split, users)[users]
    np.testing.assert_allclose(live.score(users), make().fit(split.train).score(users, user_items=rows), rtol=1e-6, atol=1e-6)
    items, _ = live.recommend(users, k=10)
    assert not rows[np.arange(5)[:, None], items].toarray().any(), "recommended an item the user just interacted with"


def test_content_profiles_after_updates_equal_a_full_retrain(split: Split) -> None:
    features = cluster_features(split)
    live = LiveRecommender(ContentRecommender().fit(split.train, features))
    users = np.arange(12)
    events_users, events_items = _stream(split, users)
    for user, item in zip(events_users, events_items, strict=True):  # one event at a time, as a stream
        live.add_interactions(np.array([user]), np.array([item]))
    retrained = ContentRecommender().fit(_updated(split, users), features)
    np.testing.assert_allclose(live.score(users), retrained.score(users), rtol=1e-5, atol=1e-6)
    assert len(live.stats.latencies_ms) == len(events_users)


def test_als_stream_equals_refolding_the_whole_history(split: Split) -> None:
    model = ALS(factors=16, alpha=5.0, reg=5.0, iterations=8).fit(split.train)
    live = LiveRecommender(model, history=split.csr("train"))  # a factor model keeps no history itself
    users = np.arange(6)
    live.add_interactions(*_stream(split, users))
    expected = model.fold_in(_updated(split, users)[users])
    np.testing.assert_allclose(model.user_vectors()[users], expected, rtol=1e-4, atol=1e-5)


def test_a_new_user_folded_into_bpr_gets_their_cluster(split: Split) -> None:
    model = BPRMF(factors=16, epochs=30, min_steps=0, seed=0).fit(split.train, valid=split.valid)
    live = LiveRecommender(model, history=split.csr("train"))
    newcomer = split.n_users
    cluster_items = np.arange(2 * ITEMS_PER_CLUSTER, 2 * ITEMS_PER_CLUSTER + 8)  # 8 items of cluster 2
    live.add_interactions(np.full(len(cluster_items), newcomer), cluster_items)
    assert live.n_users == newcomer + 1 and model.n_users == newcomer + 1
    items, _ = live.recommend(np.array([newcomer]), k=10)
    in_cluster = (items[0] // ITEMS_PER_CLUSTER == 2).mean()
    assert in_cluster >= 0.8, f"only {in_cluster:.0%} of the newcomer's top 10 is in their cluster"
    assert not np.isin(items[0], cluster_items).any()


def test_an_added_item_is_scored_from_content_at_once(split: Split) -> None:
    features = cluster_features(split)
    model = ContentRecommender().fit(split.train, features)
    live = LiveRecommender(model)
    twin = 7  # a new item whose content copies item 7's
    new = FeatureSet(
        ids=np.array(["new-item"]),
        modalities={
            name: ModalityFeatures(m.matrix[[twin]], m.present[[twin]], m.provenance) for name, m in features.modalities.items()
        },
    )
    (index,) = live.add_items(new)
    assert index == split.n_items and live.n_items == split.n_items + 1
    users = np.arange(30)
    scores = live.score(users)
    np.testing.assert_allclose(scores[:, index], scores[:, twin], rtol=1e-6, atol=1e-6)
    live.add_interactions(np.array([0]), np.array([index]))  # feedback on the new item is kept ...
    assert index in live.user_history(0)
    items, _ = live.recommend(np.array([0]), k=split.n_items)
    assert index not in items[0]  # ... and it is not recommended to that user again


def test_bad_updates_are_clear_errors(split: Split) -> None:
    with pytest.raises(ModelError, match="partial_fit_users"):
        LiveRecommender(MostPop().fit(split.train))
    with pytest.raises(ModelError, match="keeps no training history"):
        LiveRecommender(ALS(factors=4, iterations=1).fit(split.train))
    live = LiveRecommender(EASE(l2=20.0).fit(split.train))
    with pytest.raises(ModelError, match="interaction 1: user 0, item 9999"):
        live.add_interactions(np.array([0, 0]), np.array([1, 9999]))
    with pytest.raises(ModelError, match="one item per user"):
        live.add_interactions(np.array([0, 1]), np.array([1]))
    with pytest.raises(ModelError, match="score_items"):
        live.add_items(cluster_features(split))
    before = live.score(np.array([0]))
    np.testing.assert_array_equal(live.score(np.array([0])), before)  # failed updates changed nothing
