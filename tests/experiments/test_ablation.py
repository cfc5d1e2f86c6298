"""Modality / encoder ablation on planted data: rows, dedup, paired deltas, files, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fusionrec.data.splits import Split
from fusionrec.errors import DataError, ModelError
from fusionrec.eval.evaluator import mean_confidence_interval
from fusionrec.experiments.ablation import (
    STATUS_NA,
    AblationResult,
    FeaturePool,
    paired_delta,
    plan_variants,
    run_ablation,
    variant_config,
)
from fusionrec.experiments.ablation_files import write_outputs
from fusionrec.features.base import FeatureSet, ModalityFeatures, Provenance
from tests.models.conftest import planted_split
from tests.models.test_content import cluster_features


def _modality(matrix: np.ndarray, encoder: str, fingerprint: str, present: np.ndarray | None = None) -> ModalityFeatures:
    provenance = Provenance(encoder=encoder, fingerprint=fingerprint, created_at="2026-01-01T00:00:00+00:00")
    return ModalityFeatures(matrix, np.ones(len(matrix), bool) if present is None else present, provenance)


def _noise(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


@pytest.fixture(scope="module")
def split() -> Split:
    return planted_split()


@pytest.fixture(scope="module")
def signal_and_noise(split: Split) -> FeatureSet:
    """``text`` carries the planted clusters, ``noise`` nothing."""
    text = cluster_features(split).modalities["text"]
    noise = _modality(_noise(split.n_items, 16, 1), "random", "fp-noise")
    return FeatureSet(ids=split.item_map.ids, modalities={"text": text, "noise": noise})


@pytest.fixture(scope="module")
def content_two(split: Split, signal_and_noise: FeatureSet) -> AblationResult:
    pool = FeaturePool.from_sets([("feat", signal_and_noise)], split.item_map.ids)
    return run_ablation("content", split, pool, ks=(10, 20))


def _row(result: AblationResult, label: str):  # type: ignore[no-untyped-def]
    return next(r for r in result.rows if label in r.labels)


def test_two_modalities_merge_identical_subsets_and_content_has_no_id_only_row(content_two: AblationResult) -> None:
    assert [r.labels for r in content_two.rows] == [
        ["all"], ["only:text", "without:noise"], ["only:noise", "without:text"], ["none"]
    ]
    none = _row(content_two, "none")
    assert none.status == STATUS_NA and "requires item features" in (none.reason or "")
    assert none.result is None and none.modalities == [] and none.fingerprints == {}
    assert _row(content_two, "all").fingerprints == {"text": "fp-text", "noise": "fp-noise"}
    assert _row(content_two, "only:text").fingerprints == {"text": "fp-text"}


def test_removing_the_signal_modality_loses_with_an_interval_below_zero(content_two: AblationResult) -> None:
    key = "ndcg@20"
    without_signal = content_two.cells(_row(content_two, "without:text"), key)
    assert without_signal["delta"] < -0.05 and without_signal["delta_high"] < 0
    # dropping the noise keeps (or improves) the signal: no significant loss
    without_noise = content_two.cells(_row(content_two, "without:noise"), key)
    assert without_noise["delta_high"] > 0
    reference = content_two.cells(content_two.reference, key)
    assert reference["delta"] == 0 and reference["low"] < reference["mean"] < reference["high"]


def test_three_modalities_give_every_only_and_without_row(split: Split, signal_and_noise: FeatureSet) -> None:
    features = FeatureSet(ids=split.item_map.ids, modalities=dict(signal_and_noise.modalities))
    features.add("image", cluster_features(split).modalities["image"])
    pool = FeaturePool.from_sets([("feat", features)], split.item_map.ids)
    names = [v.name for v in plan_variants(pool)]
    assert names == ["all", "only:text", "only:noise", "only:image",
                     "without:text", "without:noise", "without:image", "none"]
    # a subset is never copied: the variant's FeatureSet shares the pool's matrices
    subset = plan_variants(pool)[1].feature_set(pool.ids)
    assert subset is not None and subset.modalities["text"].matrix is features.modalities["text"].matrix
    result = run_ablation("ease_side", split, pool, modalities=["text", "noise"], config={"l2": 500.0})
    assert [r.variant for r in result.rows] == ["all", "only:text", "only:noise", "none"]
    # ease_side without features is EASE: the ID-only row trains and has its own numbers
    none = result.cells(_row(result, "none"), "ndcg@20")
    assert _row(result, "none").status == "ok" and none["mean"] > 0 and none["delta"] != 0
    loss = result.cells(_row(result, "without:text"), "ndcg@20")
    assert loss["delta"] < -0.05 and loss["delta_high"] < 0


def test_a_second_encoder_of_a_modality_adds_an_all_row_with_its_fingerprint(
    split: Split, signal_and_noise: FeatureSet
) -> None:
    minilm = FeatureSet(ids=split.item_map.ids, modalities={
        "text": _modality(signal_and_noise["text"].matrix, "all-MiniLM-L6-v2", "fp-minilm"),
        "noise": signal_and_noise["noise"],
    })
    smol = FeatureSet(ids=split.item_map.ids, modalities={
        "text": _modality(_noise(split.n_items, 24, 5), "SmolLM2-135M", "fp-smol"),
        "noise": signal_and_noise["noise"],  # the same encoder in both dirs: one option
    })
    pool = FeaturePool.from_sets([("a", minilm), ("b", smol)], split.item_map.ids)
    assert [len(v) for v in pool.options.values()] == [2, 1]
    result = run_ablation("content", split, pool)
    assert result.rows[0].labels == ["all", "all[text=all-MiniLM-L6-v2]"]
    smol_row = _row(result, "all[text=SmolLM2-135M]")
    assert smol_row.fingerprints == {"text": "fp-smol", "noise": "fp-noise"}
    assert smol_row.encoders == {"text": "SmolLM2-135M", "noise": "random"}
    assert result.cells(smol_row, "ndcg@20")["delta_high"] < 0  # the noise "LLM" loses to the signal
    assert result.sources["b"]["text"]["fingerprint"] == "fp-smol"


def test_files_are_written_and_parse(content_two: AblationResult, tmp_path: Path) -> None:
    paths = write_outputs(content_two, tmp_path / "out")
    payload = json.loads(paths["json"].read_text())
    assert [r["variant"] for r in payload["rows"]] == ["all", "only:text", "only:noise", "none"]
    row = payload["rows"][2]
    assert row["fingerprints"] == {"noise": "fp-noise"} and row["train_time_s"] >= 0
    ndcg = row["metrics"]["ndcg@20"]
    assert ndcg["ci"][0] <= ndcg["mean"] <= ndcg["ci"][1] and ndcg["delta_ci"][1] < 0
    assert payload["rows"][3]["metrics"] == {} and payload["rows"][3]["status"] == STATUS_NA
    assert "paired" in payload["ci"]["delta"]
    with paths["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["variant"] for r in rows] == ["all", "only:text", "only:noise", "none"]
    assert rows[1]["labels"] == "only:text|without:noise" and rows[3]["ndcg@20"] == ""
    assert float(rows[2]["ndcg@20_delta_high"]) < 0 and json.loads(rows[0]["fingerprints"])["text"] == "fp-text"
    pytest.importorskip("matplotlib")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_paired_delta_uses_per_user_differences() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(400)
    users = np.arange(400)
    a = SimpleNamespace(users=users, per_user={"m": base + 0.01 + 0.001 * rng.normal(size=400)})
    b = SimpleNamespace(users=users, per_user={"m": base})
    delta, low, high = paired_delta(a, b, "m")  # type: ignore[arg-type]
    assert low > 0 and abs(delta - 0.01) < 1e-3
    unpaired = mean_confidence_interval(base)
    assert (high - low) < 0.05 * (unpaired[1] - unpaired[0])
    # users not shared by both are left out of the pairs
    c = SimpleNamespace(users=users[::2], per_user={"m": base[::2] + 0.5})
    assert paired_delta(c, b, "m")[0] == pytest.approx(0.5)  # type: ignore[arg-type]


def test_variant_config_names_the_subset_and_keeps_its_weights(signal_and_noise: FeatureSet, split: Split) -> None:
    pool = FeaturePool.from_sets([("f", signal_and_noise)], split.item_map.ids)
    only_noise = next(v for v in plan_variants(pool) if v.name == "only:noise")
    config = {"modality_weights": {"text": 1.0, "noise": 0.0}}
    assert variant_config("content", config, only_noise) == {"modalities": ["noise"], "modality_weights": None}
    assert variant_config("content", config, plan_variants(pool)[0])["modality_weights"] == config["modality_weights"]


def test_bad_inputs_are_clear_errors(split: Split, signal_and_noise: FeatureSet) -> None:
    pool = FeaturePool.from_sets([("feat", signal_and_noise)], split.item_map.ids)
    with pytest.raises(DataError, match=r"unknown modality 'audio'.*text, noise"):
        plan_variants(pool, ["text", "audio"])
    with pytest.raises(DataError, match="holds no modalities"):
        FeaturePool.from_sets([("empty", FeatureSet(ids=split.item_map.ids))], split.item_map.ids)
    with pytest.raises(DataError, match="not aligned"):
        shuffled = FeatureSet(ids=split.item_map.ids[::-1], modalities={"text": signal_and_noise["text"]})
        FeaturePool.from_sets([("shuffled", shuffled)], split.item_map.ids)
    with pytest.raises(ModelError, match="nothing to ablate"):
        run_ablation("ease", split, pool)
