"""Per-modality explanations on a catalogue where each modality points at a known past item
(:mod:`tests.explain.catalogue`): the driving modality, its evidence, and what changes without it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from fusionrec.errors import ModelError
from fusionrec.explain import Explainer, ItemExplanation, explain_user, history_items, parse_genres, phrase
from fusionrec.explain.contributions import stacked_variants
from fusionrec.features.base import FeatureSet
from fusionrec.models.base import Recommender, SupportsColdStart
from fusionrec.models.content import ContentRecommender
from fusionrec.models.registry import build_model

from . import catalogue as cat

QUICK: dict[str, Any] = {"min_steps": 0, "patience": 3, "seed": 0}


def content_model(features: FeatureSet) -> ContentRecommender:
    return ContentRecommender(modality_weights=cat.WEIGHTS).fit(cat.interactions(), features)


def explain(model: Recommender, features: FeatureSet, **kwargs: Any) -> list[ItemExplanation]:
    return explain_user(model, features, 0, cat.HISTORY, titles=cat.titles(), genres=cat.genres(), **kwargs)


def test_text_drives_the_text_twins_and_cites_the_twin() -> None:
    features = cat.features()
    explained = explain(content_model(features), features, k=3)
    assert sorted(e.item for e in explained) == [1, 11, 21]  # the text twins of the history 0, 10, 20
    for e in explained:
        assert e.contributions is not None
        assert e.driver == "text"
        assert e.contributions["text"] > 0.25 > max(e.contributions["image"], e.contributions["attributes"])
        best = e.evidence_for("text")
        assert best is not None and best.item == e.item - 1 and best.similarity > 0.99
        assert best.phrase == f"plot like Title {e.item - 1}"
        assert e.headline == best
        assert e.fuser_weights is None  # the content model has no fuser


def test_removing_the_driving_modality_changes_the_explanation() -> None:
    features = cat.features()
    before = {e.item: e for e in explain(content_model(features), features, k=3)}
    no_text = cat.without(features, "text")
    model = content_model(no_text)
    after = explain(model, no_text, k=3)
    assert sorted(e.item for e in after) == [9, 19, 39]  # now the image twins of 0, 10, 20 lead
    for e in after:
        assert e.contributions is not None and e.contributions["text"] == 0.0
        assert e.driver == "image"
        assert (
            e.headline is not None and e.headline.phrase == f"poster like Title {(e.item + 1) % cat.N_ITEMS}"
        )
        assert e.evidence_for("text") is None  # no item has text any more
    # the items text drove before: explained by the refitted model, text is gone from them
    again = Explainer(model, no_text, titles=cat.titles()).explain(0, list(before), history=cat.HISTORY)
    for old, new in zip(before.values(), again, strict=True):
        assert old.driver == "text" and new.driver != "text"
        assert new.contributions is not None and new.contributions["text"] == 0.0
        assert new.score < old.score


def test_content_contributions_sum_to_the_score() -> None:
    features = cat.features()
    model = content_model(features)
    explained = explain(model, features, k=10)
    scores = model.score(np.array([0]))[0]
    for e in explained:
        assert e.contributions is not None and e.content_score is not None
        assert set(e.contributions) == {"text", "image", "attributes"}
        assert sum(e.contributions.values()) == pytest.approx(e.score, abs=1e-5)
        assert e.content_score == pytest.approx(e.score, abs=1e-5)
        assert e.score == pytest.approx(float(scores[e.item]), abs=1e-6)
    assert [e.score for e in explained] == sorted((e.score for e in explained), reverse=True)


def test_an_item_lacking_a_modality_gets_nothing_from_it() -> None:
    features = cat.features()
    (e,) = explain(content_model(features), features, items=[cat.NO_IMAGE])
    assert e.contributions is not None and e.contributions["image"] == 0.0
    assert {x.modality for x in e.evidence} == {"text", "attributes"}  # no poster evidence without a poster


def test_variants_mark_the_modality_missing_instead_of_zero_data() -> None:
    features = cat.features()
    items = np.array([3, 7])
    stacked = stacked_variants(features, items, ["text", "image"])
    assert list(stacked.ids) == ["i3", "i7"] * 3
    assert stacked["text"].present.tolist() == [True, True, False, False, True, True]
    assert stacked["image"].present.tolist() == [True, True, True, True, False, False]
    assert not stacked["text"].matrix[2:4].any()
    np.testing.assert_array_equal(
        stacked["attributes"].matrix, features["attributes"].matrix[np.tile(items, 3)]
    )


def test_genre_evidence_names_the_shared_genre() -> None:
    features = cat.features()
    (e,) = explain(content_model(features), features, items=[4], per_modality=2)  # item 4 is a Comedy
    genre = [x for x in e.evidence if x.modality == "attributes"]
    assert {x.item for x in genre} == {0, 20}  # the history's comedies (item 10 is Horror)
    assert {x.phrase for x in genre} == {"same genre (Comedy) as Title 0", "same genre (Comedy) as Title 20"}
    assert phrase("attributes", "X", ()) == "similar attributes to X"
    assert phrase("attributes", "X") == "same genre as X"
    assert phrase("audio", "X") == "sounds like X"
    assert parse_genres(["A|B", ["C"], None]) == [("A", "B"), ("C",), ()]


@pytest.mark.parametrize("name", ["ease", "mostpop", "itemknn"])
def test_id_models_give_no_contributions_but_evidence(name: str) -> None:
    features = cat.features()
    model = build_model(name, {}).fit(cat.interactions())
    explained = explain(model, features, items=[1, 39])
    for e in explained:
        assert e.contributions is None and e.content_score is None and e.driver is None
        assert "ID model" in e.method
    text_twin, image_twin = explained[0].evidence_for("text"), explained[1].evidence_for("image")
    assert text_twin is not None and text_twin.item == 0  # item 1's plot is item 0's
    assert image_twin is not None and image_twin.item == 0  # item 39's poster is item 0's


def test_ease_side_reads_content_only_when_fitting() -> None:
    features = cat.features()
    model = build_model("ease_side", {"l2": 5.0, "side_weight": 2.0}).fit(cat.interactions(), features)
    (e,) = explain(model, features, k=1)
    assert e.contributions is None and "fitting" in e.method
    assert e.evidence


@pytest.mark.parametrize(
    ("name", "config"),
    [
        (
            "vbpr",
            QUICK | {"factors": 8, "epochs": 5, "batch_size": 64, "fuser": {"kind": "attention", "dim": 16}},
        ),
        ("two_tower", QUICK | {"dim": 16, "epochs": 3, "fuser": {"kind": "gated", "dim": 16}}),
    ],
)
def test_trained_content_models_report_contributions_and_fuser_weights(
    name: str, config: dict[str, Any]
) -> None:
    features = cat.features()
    model = build_model(name, config).fit(cat.interactions(), features)
    explained = explain(model, features, items=[1, cat.NO_IMAGE, 39])
    for e in explained:
        assert e.contributions is not None and set(e.contributions) == {"text", "image", "attributes"}
        assert all(np.isfinite(v) for v in e.contributions.values())
        assert e.fuser_weights is not None and sum(e.fuser_weights.values()) == pytest.approx(1.0, abs=1e-5)
        assert e.driver in (None, *e.contributions)
    no_image = explained[1]
    assert no_image.contributions is not None and no_image.fuser_weights is not None
    assert no_image.fuser_weights["image"] == 0.0  # a missing modality gets no weight ...
    # ... and removing it changes nothing
    assert no_image.contributions["image"] == pytest.approx(0.0, abs=1e-6)
    if name == "vbpr":  # the content terms: the cold-item path's score of the same item
        assert isinstance(model, SupportsColdStart)
        cold = model.score_items(np.array([0]), _rows(features, [cat.NO_IMAGE]))
        assert no_image.content_score == pytest.approx(float(cold[0, 0]), abs=1e-5)


def _rows(features: FeatureSet, items: list[int]) -> FeatureSet:
    return stacked_variants(features, np.asarray(items), [])


def test_history_can_be_a_sparse_row_and_errors_are_clear() -> None:
    row = sp.csr_matrix((np.ones(3), ([0, 0, 0], cat.HISTORY)), shape=(1, cat.N_ITEMS))
    assert history_items(row).tolist() == cat.HISTORY.tolist()
    features = cat.features()
    model = content_model(features)
    assert explain_user(model, features, 0, row, k=2)[0].item in (1, 11, 21)
    short = FeatureSet(ids=features.ids[:5], modalities={})
    with pytest.raises(ModelError, match="5 items"):
        Explainer(model, short)
