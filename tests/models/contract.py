"""The contract every Recommender honours; each model's test file subclasses RecommenderContract."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fusionrec.data.splits import Split
from fusionrec.errors import ModelError, NotFittedError
from fusionrec.eval.evaluator import Evaluator
from fusionrec.models.base import Recommender, SupportsPartialFit, SupportsVectors
from fusionrec.models.popularity import MostPop
from fusionrec.models.registry import load_model

_FITTED: dict[tuple[type, str], Recommender] = {}


class RecommenderContract:
    """Subclass and implement ``make_model``; the tests use the ``planted`` fixture."""

    #: recall@10 on test must beat MostPop's by at least this much
    min_gain_over_mostpop: float = 0.05

    def make_model(self) -> Recommender:
        raise NotImplementedError

    def make_features(self, split: Split) -> Any | None:
        """The FeatureSet a content model is fitted with (None for pure CF models)."""
        return None

    def fitted(self, split: Split) -> Recommender:
        key = (type(self), repr(sorted(self.make_model().get_config().model_dump().items())))
        if key not in _FITTED:
            features = self.make_features(split)
            _FITTED[key] = self.make_model().fit(
                split.train, features=features, valid=split.valid, item_ids=split.item_map.ids
            )
        return _FITTED[key]

    def test_constructor_matches_config(self) -> None:
        model = self.make_model()
        cls = type(model)
        params = cls.constructor_parameters()
        fields = cls.config_class.model_fields
        assert set(params) == set(fields), "constructor keywords and config fields must be the same"
        for name, field in fields.items():
            default = field.get_default(call_default_factory=True)
            assert params[name] == default, f"default of {name} differs between __init__ and config"
        assert all(
            p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in inspect.signature(cls.__init__).parameters.items() if n != "self"
        )
        rebuilt = cls.from_config(model.get_config().model_dump())
        assert rebuilt.get_config() == model.get_config()

    def test_unfitted_model_refuses_to_score(self) -> None:
        with pytest.raises(NotFittedError):
            self.make_model().score(np.array([0]))

    def test_score_shape_and_dtype(self, planted: Split) -> None:
        model = self.fitted(planted)
        scores = np.asarray(model.score(np.array([0, 3, 5])))
        assert scores.shape == (3, planted.n_items)
        assert scores.dtype == np.float32
        assert np.isfinite(scores).all()

    def test_recommend_excludes_and_orders(self, planted: Split) -> None:
        model = self.fitted(planted)
        train = planted.csr("train")
        users = np.arange(10)
        items, scores = model.recommend(users, k=7, exclude=train)
        assert items.shape == scores.shape == (10, 7)
        assert not train[users[:, None], items].toarray().any(), "recommended a training item"
        assert (np.diff(scores, axis=1) <= 0).all(), "scores must be non-increasing"
        full = model.score(users)
        np.testing.assert_allclose(scores, np.take_along_axis(full, items, axis=1), rtol=1e-6)

    def test_beats_mostpop_on_held_out_data(self, planted: Split) -> None:
        evaluator = Evaluator(ks=(10,), beyond=False)
        ours = evaluator.evaluate(self.fitted(planted), planted, on="test").mean()["recall@10"]
        baseline = evaluator.evaluate(MostPop().fit(planted.train), planted, on="test").mean()["recall@10"]
        assert ours > baseline + self.min_gain_over_mostpop, f"recall@10 {ours:.3f} vs MostPop {baseline:.3f}"

    def test_save_load_gives_identical_scores(self, planted: Split, tmp_path: Path) -> None:
        model = self.fitted(planted)
        model.save(tmp_path / "m")
        with np.load(tmp_path / "m" / "weights.npz", allow_pickle=False) as weights:
            assert all(weights[k].dtype != object for k in weights.files)
        loaded = load_model(tmp_path / "m")
        assert type(loaded) is type(model)
        assert loaded.get_config() == model.get_config()
        users = np.arange(planted.n_users)
        np.testing.assert_array_equal(loaded.score(users), model.score(users))

    def test_features_argument_is_accepted(self, planted: Split) -> None:
        if self.make_model().uses_features:
            pytest.skip("a content model reads its features (tested by fitted())")
        model = self.make_model().fit(planted.train, features=object(), valid=None)
        assert np.asarray(model.score(np.array([1]))).shape == (1, planted.n_items)

    def test_vectors_reproduce_scores(self, planted: Split) -> None:
        model = self.fitted(planted)
        if not isinstance(model, SupportsVectors):
            pytest.skip("not a factorised model")
        users = np.arange(5)
        user_vectors, item_vectors = model.user_vectors()[users], model.item_vectors()
        assert model.vector_measure in ("inner_product", "cosine")
        if model.vector_measure == "cosine":
            user_vectors = user_vectors / np.linalg.norm(user_vectors, axis=1, keepdims=True)
            item_vectors = item_vectors / np.linalg.norm(item_vectors, axis=1, keepdims=True)
        np.testing.assert_allclose(user_vectors @ item_vectors.T, model.score(users), rtol=1e-5, atol=1e-6)

    #: how closely ``partial_fit_users`` matches scoring from the same history, relative to the largest
    #: score: exact models 1e-5; a BPR fold-in warm-started from the old vector stops at a tolerance
    #: in directions the tiny ridge barely pins down, so it is compared at 1e-2
    partial_fit_atol: float = 1e-5

    def test_partial_fit_users_takes_new_feedback_at_once(self, planted: Split, tmp_path: Path) -> None:
        """``partial_fit_users`` (the whole new history per user) changes those users' scores at once
        to what scoring from that history gives, leaves everyone else alone, and adds new users."""
        if not isinstance(self.make_model(), SupportsPartialFit):
            pytest.skip("no partial_fit_users")
        live = load_model(self.fitted(planted).save(tmp_path / "m"))  # a copy: the fitted model is shared
        assert isinstance(live, SupportsPartialFit)
        users, others = np.arange(6), np.arange(6, 20)
        new_rows = (planted.csr("train") + planted.csr("valid")).tocsr()[users]
        expected = live.score(users, user_items=new_rows)
        expected_new = live.score(np.array([-1]), user_items=new_rows[:1])  # no ID vector for a newcomer
        untouched = live.score(others)
        live.partial_fit_users(users, new_rows)
        updated = live.score(users)
        atol = self.partial_fit_atol * float(np.abs(expected).max())
        np.testing.assert_allclose(updated, expected, rtol=1e-4, atol=atol)
        assert not np.allclose(updated, self.fitted(planted).score(users)), "new feedback changed nothing"
        np.testing.assert_array_equal(live.score(others), untouched)
        newcomer = planted.n_users
        try:
            live.partial_fit_users(np.array([newcomer]), new_rows[:1])
        except ModelError as exc:  # a model that cannot add users says so
            assert "new user" in str(exc)
            return
        assert live.n_users == newcomer + 1
        np.testing.assert_allclose(live.score(np.array([newcomer])), expected_new, rtol=1e-4, atol=atol)
        with pytest.raises(ModelError):
            live.partial_fit_users(np.array([0, 0]), new_rows[:2])

    def test_scoring_from_new_histories_equals_a_refit(self, planted: Split) -> None:
        """``score(users, user_items=X)`` is what a model refitted on X gives (history models), and a
        clear error otherwise."""
        model = self.fitted(planted)
        train = planted.csr("train")
        users = np.arange(8)
        if not model.uses_history:
            try:
                model.score(users, user_items=train[users])
            except ModelError:
                return
            return  # models that ignore histories (MostPop) may accept them
        # New feedback: each user also gets their valid items; the refit sees it too, but the item
        # model (weights, similarities) must stay the one learnt from train for an exact match, so
        # compare against the same model rebuilt with the new rows as its snapshot.
        new_rows = (train + planted.csr("valid")).tocsr()[users]
        live = model.score(users, user_items=new_rows)
        snapshot = model.train_matrix
        try:
            model.train_matrix = (train + planted.csr("valid")).tocsr()
            np.testing.assert_allclose(live, model.score(users), rtol=1e-6, atol=1e-6)
        finally:
            model.train_matrix = snapshot
        # An unknown user (index -1) scored from a history works without a lookup.
        cold = model.score(np.array([-1]), user_items=new_rows[:1])
        np.testing.assert_allclose(cold, live[:1], rtol=1e-6, atol=1e-6)
        with pytest.raises(ModelError):
            model.score(users, user_items=new_rows[:3])
