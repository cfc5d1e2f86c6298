"""The two-tower model: contract, every loss and fuser learns, cold items, exact history scoring, ID-only."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
import scipy.sparse as sp
import torch

from fusionrec.data.splits import Split
from fusionrec.errors import ModelError
from fusionrec.eval.evaluator import Evaluator
from fusionrec.features.base import FeatureSet, ModalityFeatures
from fusionrec.fusion.fusers import FUSER_CLASSES
from fusionrec.models.configs import TwoTowerConfig
from fusionrec.models.mf import BPRMF
from fusionrec.models.popularity import MostPop
from fusionrec.models.registry import build_model, config_class, load_model
from fusionrec.models.two_tower import TwoTower
from fusionrec.models.two_tower_towers import HistoryPool, log_inclusion
from fusionrec.training.losses import shared_negatives_softmax_loss

from .conftest import planted_split
from .contract import RecommenderContract
from .test_content import cluster_features

#: short training: the planted data is learnt in a few epochs
QUICK: dict[str, Any] = {"epochs": 15, "min_steps": 0, "patience": 3, "seed": 0}


@cache
def _planted() -> Split:
    return planted_split()


@cache
def _features() -> FeatureSet:
    return cluster_features(_planted())


def _recall(model: Any, split: Split, k: int = 10) -> float:
    return float(Evaluator(ks=(k,), beyond=False).evaluate(model, split, on="test").mean()[f"recall@{k}"])


@cache
def _mostpop_recall() -> float:
    return _recall(MostPop().fit(_planted().train), _planted())


def _fit(features: bool = True, **kwargs: Any) -> TwoTower:
    split = _planted()
    return TwoTower(**(QUICK | kwargs)).fit(
        split.train, features=_features() if features else None, valid=split.valid, item_ids=split.item_map.ids
    )


class TestTwoTower(RecommenderContract):
    min_gain_over_mostpop = 0.3

    def make_model(self) -> TwoTower:
        return TwoTower(**QUICK)

    def make_features(self, split: Split) -> FeatureSet:
        return cluster_features(split)


@pytest.mark.parametrize("loss", ["bpr", "bce", "softmax"])
def test_each_loss_beats_mostpop(loss: str) -> None:
    model = _fit(loss=loss)
    ours, baseline = _recall(model, _planted()), _mostpop_recall()
    assert ours > baseline + 0.3, f"{loss}: recall@10 {ours:.3f} vs MostPop {baseline:.3f}"


@pytest.mark.parametrize("kind", sorted(FUSER_CLASSES))
def test_every_fuser_trains(kind: str) -> None:
    model = _fit(fuser={"kind": kind}, epochs=4, patience=4)
    scores = model.score(np.arange(20))
    assert np.isfinite(scores).all()
    assert np.ptp(scores, axis=0).max() > 1e-3, "scores do not differ across users"
    assert _recall(model, _planted()) > _mostpop_recall() + 0.1


def test_content_beats_bprmf_on_items_without_training_interactions() -> None:
    """Half the items (alternate ones, so every cluster keeps some) lose all training interactions:
    BPR-MF only ever saw them as negatives; the item tower ranks them by content. Their scores are
    the content tower's alone (no ID part), so ``score_items`` from their features gives the same."""
    split, features = _planted(), _features()
    cold = np.arange(1, split.n_items, 2)
    keep = sp.diags((np.arange(split.n_items) % 2 == 0).astype(np.float32))
    train = sp.csr_matrix(split.csr("train") @ keep)
    train.eliminate_zeros()
    truth = (split.csr("valid") + split.csr("test")).tocsr()[:, cold]
    users_with_truth = np.flatnonzero(truth.getnnz(axis=1))
    tower = TwoTower(**QUICK).fit(train, features=features, valid=sp.csr_matrix(split.csr("valid") @ keep))
    mf = BPRMF(factors=16, epochs=30, batch_size=256, learning_rate=0.02, reg=1e-3, seed=1).fit(train)

    def cold_recall(scores: np.ndarray, k: int = 5) -> float:
        top = np.argsort(-scores, axis=1)[:, :k]
        rows = truth[users_with_truth]
        hits = np.take_along_axis(rows.toarray(), top, axis=1).sum(axis=1)
        return float(np.mean(hits / np.minimum(rows.getnnz(axis=1), k)))

    ours = cold_recall(tower.score(users_with_truth)[:, cold])
    baseline = cold_recall(mf.score(users_with_truth)[:, cold])
    assert ours > baseline + 0.3, f"cold recall@5 {ours:.3f} vs BPR-MF {baseline:.3f}"
    subset = FeatureSet(
        ids=np.asarray(split.item_map.ids)[cold],
        modalities={n: ModalityFeatures(m.matrix[cold], m.present[cold], m.provenance) for n, m in features.modalities.items()},
    )
    np.testing.assert_allclose(
        tower.score_items(users_with_truth, subset), tower.score(users_with_truth)[:, cold], rtol=1e-5, atol=1e-5
    )


def test_history_tower_scores_new_feedback_exactly(tmp_path: Path) -> None:
    """``score(users, user_items=X)`` equals the scores after the snapshot is swapped for ``X``,
    differs from the training snapshot's, and works for users unseen in training."""
    split = _planted()
    model = _fit(user_tower="history")
    users = np.arange(8)
    fresh = (split.csr("train") + split.csr("valid")).tocsr()
    live = model.score(users, user_items=fresh[users])
    before = model.score(users)
    assert np.abs(live - before).max() > 1e-3, "user_items made no difference"
    snapshot = model.history_matrix
    try:
        model.history_matrix = fresh
        np.testing.assert_allclose(model.score(users), live, rtol=1e-6, atol=1e-6)
    finally:
        model.history_matrix = snapshot
    np.testing.assert_allclose(model.score(np.array([-1]), user_items=fresh[:1]), live[:1], rtol=1e-6, atol=1e-6)
    with pytest.raises(ModelError, match="shape"):
        model.score(users, user_items=fresh[:3])
    loaded = load_model(model.save(tmp_path / "m"))  # the snapshot travels with the model
    assert isinstance(loaded, TwoTower) and (loaded.history_matrix != snapshot).nnz == 0
    np.testing.assert_array_equal(loaded.score(users, user_items=fresh[users]), live)


def test_both_tower_takes_user_items_for_known_and_new_users_and_id_tower_refuses_them() -> None:
    split = _planted()
    fresh = (split.csr("train") + split.csr("valid")).tocsr()
    both = _fit(user_tower="both")
    assert both.score(np.array([2, 3]), user_items=fresh[[2, 3]]).shape == (2, split.n_items)
    # a user unseen in training (-1) has no ID vector: scored from the history alone, and a known
    # user's row does not change when an unknown one shares the batch
    mixed = both.score(np.array([2, -1]), user_items=fresh[[2, 3]])
    np.testing.assert_allclose(mixed[0], both.score(np.array([2]), user_items=fresh[[2]])[0], rtol=1e-5, atol=1e-6)
    assert np.isfinite(mixed[1]).all() and np.abs(mixed[1] - mixed[0]).max() > 1e-4
    ids = _fit(user_tower="id")
    with pytest.raises(ModelError, match="user_tower='id'"):
        ids.score(np.array([0]), user_items=fresh[:1])
    np.testing.assert_allclose(ids.user_vectors()[:4] @ ids.item_vectors().T, ids.score(np.arange(4)), rtol=1e-5, atol=1e-6)


def test_leave_one_out_pool_leaves_the_target_item_out() -> None:
    history = sp.csr_matrix(np.array([[1, 1, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    vectors = torch.arange(8, dtype=torch.float32).reshape(4, 2)
    pool = HistoryPool(history, torch.device("cpu"))
    pooled = pool.leave_one_out(torch.tensor([0, 0, 1]), torch.tensor([1, 3, 1]), vectors)
    expected = torch.stack([(vectors[0] + vectors[3]) / 2, (vectors[0] + vectors[1]) / 2, torch.zeros(2)])
    torch.testing.assert_close(pooled, expected)


def test_shared_negatives_softmax_is_cross_entropy_over_positive_and_negatives() -> None:
    torch.manual_seed(0)
    users, positives, negatives = torch.randn(5, 3), torch.randn(5, 3), torch.randn(4, 3)
    log_q_pos, log_q_neg = torch.randn(5), torch.randn(4)
    drop = torch.zeros(5, 4, dtype=torch.bool)
    drop[1, 2] = True
    loss = shared_negatives_softmax_loss(users, positives, negatives, 0.5, log_q_pos, log_q_neg, drop)
    logits = torch.cat([((users * positives).sum(1) / 0.5 - log_q_pos)[:, None], users @ negatives.T / 0.5 - log_q_neg], 1)
    logits[1, 3] = float("-inf")
    expected = torch.nn.functional.cross_entropy(logits, torch.zeros(5, dtype=torch.long))
    torch.testing.assert_close(loss, expected)
    # log q: the chance that an item is among B popularity draws and S uniform ones
    share = torch.tensor([0.5, 0.0])
    q = log_inclusion(share, n_rows=2, n_uniform=1, n_items=4).exp()
    torch.testing.assert_close(q, torch.tensor([1 - 0.25 * 0.75, 1 - 0.75]))


def test_without_features_the_item_tower_is_the_id_embedding(tmp_path: Path) -> None:
    model = _fit(features=False, user_tower="both")
    assert model._module().items.content is None
    loaded = load_model(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.score(np.arange(10)), model.score(np.arange(10)))
    assert _recall(model, _planted()) > _mostpop_recall() + 0.3
    with pytest.raises(ModelError, match="without item features"):
        model.score_items(np.array([0]), _features())
    with pytest.raises(ModelError, match="item_id_embedding"):
        TwoTower(item_id_embedding=False, **QUICK).fit(_planted().train)


def test_score_items_checks_the_features() -> None:
    model = _fit(epochs=2)
    features = _features()
    text = features.modalities["text"]
    narrow = ModalityFeatures(text.matrix[:, :5], text.present, text.provenance)
    with pytest.raises(ModelError, match="shape"):
        model.score_items(np.array([0]), FeatureSet(ids=features.ids, modalities={"text": narrow}))
    with pytest.raises(ModelError, match="FeatureSet"):
        model.score_items(np.array([0]), object())
    # a trained modality the new items lack is missing for all of them, not an error
    text_only = model.score_items(np.array([0, 1]), FeatureSet(ids=features.ids, modalities={"text": text}))
    assert text_only.shape == (2, len(features.ids)) and np.isfinite(text_only).all()


def test_config_rejects_unknown_keys_and_is_registered() -> None:
    assert config_class("two_tower") is TwoTowerConfig
    with pytest.raises(pydantic.ValidationError):
        TwoTowerConfig.model_validate({"dims": 32})
    with pytest.raises(pydantic.ValidationError):
        TwoTowerConfig.model_validate({"fuser": {"kind": "attention", "heads": 2}})
    with pytest.raises(ModelError, match="invalid hyper-parameters"):
        build_model("two_tower", {"loss": "hinge"})
    model = build_model("two_tower", {"fuser": {"kind": "gated", "dim": 8}, "user_tower": "history"})
    assert isinstance(model, TwoTower) and model.fuser.kind == "gated"
