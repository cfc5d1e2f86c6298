"""ModalityImputer: a linear cross-modal relation is recovered, present rows and the input are
untouched, items without any content stay missing, unknown modalities are clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.errors import ModelError
from fusionrec.features.base import FeatureSet, ModalityFeatures, Provenance
from fusionrec.fusion.impute import ModalityImputer
from fusionrec.fusion.vectors import centered_unit_rows, unit_rows


def _linear_features(n: int = 600, seed: int = 0, shuffle_target: bool = False) -> tuple[FeatureSet, np.ndarray, np.ndarray]:
    """A (16-d) and B = A @ M + offset + small noise (12-d); 30 % of B and 10 % of A masked, 3 % of
    items with neither. Returns the features, B's true rows and the mask of B rows removed."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, 16)) + 0.5
    b = a @ rng.normal(size=(16, 12)) + 2.0 + 0.05 * rng.normal(size=(n, 12))
    if shuffle_target:
        b = b[rng.permutation(n)]
    b_removed = rng.random(n) < 0.3
    a_removed = ~b_removed & (rng.random(n) < 0.15)
    neither = rng.random(n) < 0.03
    b_present, a_present = ~(b_removed | neither), ~(a_removed | neither)
    mods = {}
    for name, matrix, present in (("a", a, a_present), ("b", b, b_present)):
        values = matrix.astype(np.float32)
        values[~present] = 0.0
        inputs = [f"{name}{i}" if p else "" for i, p in enumerate(present)] if name == "a" else None
        mods[name] = ModalityFeatures(values, present, Provenance(encoder=name, fingerprint=name, created_at="x"), inputs)
    return FeatureSet(ids=np.array([f"i{i}" for i in range(n)]), modalities=mods), b.astype(np.float32), b_removed & ~neither


def _cosines(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ux, uy = unit_rows(x), unit_rows(y)
    return np.asarray((ux * uy).sum(axis=1))


def test_a_linear_relation_is_recovered_and_a_shuffled_target_is_not() -> None:
    features, truth, removed = _linear_features()
    imputer = ModalityImputer().fit(features)
    out = imputer.impute(features)
    b = out.modalities["b"]
    assert b.present[removed].all()
    assert _cosines(b.matrix[removed], truth[removed]).mean() > 0.9
    # the centred directions (what the content models compare) match too
    center = imputer.centers_["b"]
    centred = (centered_unit_rows(b.matrix[removed], None, center) * centered_unit_rows(truth[removed], None, center)).sum(1)
    assert centred.mean() > 0.9
    report = imputer.report()["b"]
    assert report["held_out_cosine"] > 0.9 and report["n_imputed"] == removed.sum()
    assert report["n_train"] > 300 and report["l2"] > 0

    shuffled, shuffled_truth, shuffled_removed = _linear_features(shuffle_target=True)
    control = ModalityImputer().fit(shuffled)
    imputed = control.impute(shuffled).modalities["b"]
    c_center = control.centers_["b"]
    control_cos = (centered_unit_rows(imputed.matrix[shuffled_removed], None, c_center)
                   * centered_unit_rows(shuffled_truth[shuffled_removed], None, c_center)).sum(1).mean()
    assert control_cos < 0.3, control_cos
    assert _cosines(imputed.matrix[shuffled_removed], shuffled_truth[shuffled_removed]).mean() < 0.7  # mean-only level
    assert control.report()["b"]["held_out_cosine"] < 0.3


def test_confidence_is_one_on_present_rows_zero_without_content_and_lower_for_noise() -> None:
    features, _, removed = _linear_features()
    imputer = ModalityImputer().fit(features)
    confidence = imputer.confidence(features, "b")
    assert confidence.shape == (len(features),) and confidence.dtype == np.float32
    np.testing.assert_array_equal(confidence[features.modalities["b"].present], 1.0)
    none = ~features.modalities["a"].present & ~features.modalities["b"].present
    np.testing.assert_array_equal(confidence[none], 0.0)
    assert (confidence[removed] > 0).all() and (confidence[removed] <= 1).all()
    shuffled, _, shuffled_removed = _linear_features(shuffle_target=True)
    noise = ModalityImputer().fit(shuffled).confidence(shuffled, "b")[shuffled_removed]
    assert noise.mean() < 0.5 * confidence[removed].mean()
    with pytest.raises(ModelError, match="audio"):
        imputer.confidence(features, "audio")


def test_present_rows_are_bit_identical_and_the_input_is_unchanged() -> None:
    features, _, _ = _linear_features()
    before = {name: (m.matrix.copy(), m.present.copy(), m.provenance.model_copy(deep=True), m.inputs) for name, m in features.modalities.items()}
    out = ModalityImputer(l2=1.0).fit(features).impute(features)
    for name, (matrix, present, provenance, inputs) in before.items():
        original = features.modalities[name]
        np.testing.assert_array_equal(original.matrix, matrix)
        np.testing.assert_array_equal(original.present, present)
        assert original.provenance == provenance and original.inputs == inputs
        new = out.modalities[name]
        assert new.matrix is not original.matrix
        np.testing.assert_array_equal(new.matrix[present], matrix[present])
        assert new.matrix.dtype == np.float32
        imputed = new.present & ~present
        assert new.provenance.extra["imputed_rows"] == int(imputed.sum()) > 0
        assert new.provenance.extra["imputer"] == "ridge" and new.provenance.n_present == int(new.present.sum())
        np.testing.assert_allclose(np.linalg.norm(new.matrix[imputed], axis=1), 1.0, rtol=1e-5)
    assert out.modalities["a"].inputs == features.modalities["a"].inputs


def test_items_with_no_modality_stay_missing() -> None:
    features, _, _ = _linear_features()
    none = ~features.modalities["a"].present & ~features.modalities["b"].present
    assert none.any()
    out = ModalityImputer().fit(features).impute(features)
    for name in ("a", "b"):
        assert not out.modalities[name].present[none].any()
        assert not out.modalities[name].matrix[none].any()


def test_unknown_modality_and_unfitted_imputer_are_clear_errors() -> None:
    features, _, _ = _linear_features(n=100)
    with pytest.raises(ModelError, match="audio"):
        ModalityImputer().fit(features, ["a", "audio"])
    with pytest.raises(ModelError, match="audio"):
        ModalityImputer().fit(features, targets=["audio"])
    with pytest.raises(ModelError, match="not fitted"):
        ModalityImputer().impute(features)
    imputer = ModalityImputer().fit(features)
    only_a = FeatureSet(ids=features.ids, modalities={"a": features.modalities["a"]})
    with pytest.raises(ModelError, match="'b'"):
        imputer.impute(only_a)


def test_too_few_training_items_skips_the_target_without_raising() -> None:
    features, _, _ = _linear_features(n=100)
    imputer = ModalityImputer(min_train_items=10_000).fit(features)
    assert set(imputer.report()) == {"a", "b"} and all("skipped" in r for r in imputer.report().values())
    out = imputer.impute(features)
    np.testing.assert_array_equal(out.modalities["b"].present, features.modalities["b"].present)
    single = FeatureSet(ids=features.ids, modalities={"a": features.modalities["a"]})
    assert "skipped" in ModalityImputer().fit(single).report()["a"]
