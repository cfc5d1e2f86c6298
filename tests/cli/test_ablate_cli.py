"""`fusionrec ablate` end to end on a tiny split and feature dirs saved to disk."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fusionrec.cli import app
from fusionrec.data.splits import Split
from fusionrec.features.base import FeatureSet, ModalityFeatures, Provenance
from tests.cli.cli_workspace import ITEM_CLUSTERS, saved_cluster_split, text

runner = CliRunner()


def _modality(matrix: np.ndarray, encoder: str, fingerprint: str) -> ModalityFeatures:
    provenance = Provenance(encoder=encoder, fingerprint=fingerprint, created_at="2026-01-01T00:00:00+00:00")
    return ModalityFeatures(matrix.astype(np.float32), np.ones(len(matrix), bool), provenance)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A 4-cluster split, a dir with ``text`` (the clusters) + ``image`` (noise), a dir with another text encoder."""
    root = tmp_path_factory.mktemp("ablate_cli")
    split_dir = saved_cluster_split(root)
    item_map = Split.load(split_dir).item_map
    rng, n_items, cluster_i = np.random.default_rng(1), len(ITEM_CLUSTERS), ITEM_CLUSTERS
    signal = np.eye(4)[cluster_i] + 0.2 * rng.normal(size=(n_items, 4))
    first = FeatureSet(ids=item_map.ids, modalities={
        "text": _modality(signal, "all-MiniLM-L6-v2", "fp-minilm"),
        "image": _modality(rng.normal(size=(n_items, 6)), "efficientnet", "fp-image"),
    })
    second = FeatureSet(ids=item_map.ids, modalities={"text": _modality(rng.normal(size=(n_items, 8)), "SmolLM2-135M", "fp-smol")})
    return split_dir, first.save(root / "minilm"), second.save(root / "smol")


def test_ablate_writes_the_table_files_and_prints_progress(workspace: tuple[Path, Path, Path], tmp_path: Path) -> None:
    split_dir, first, second = workspace
    out = tmp_path / "ablation"
    result = runner.invoke(app, ["ablate", str(split_dir), "--model", "content", "--features", str(first),
                                 "--features", str(second), "--out", str(out), "--k", "5,10", "--metric", "ndcg@10"])
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "ablation.json").read_text())
    variants = [r["variant"] for r in payload["rows"]]
    assert variants == ["all", "all[text=SmolLM2-135M]", "only:text", "only:image", "none"]
    assert payload["rows"][1]["fingerprints"] == {"text": "fp-smol", "image": "fp-image"}
    assert payload["rows"][-1]["status"] == "not_applicable" and payload["metric"] == "ndcg@10"
    only_image = payload["rows"][3]
    assert only_image["labels"] == ["only:image", "without:text"] and only_image["metrics"]["ndcg@10"]["delta_ci"][1] < 0
    with (out / "ablation.csv").open() as handle:
        assert [r["variant"] for r in csv.DictReader(handle)] == variants
    assert (out / "ablation.png").exists()
    shown = text(result)
    assert "[1/5] all = all[text=all-MiniLM-L6-v2]" in shown and "[5/5] none" in shown
    assert "modality ablation" in shown and "(ID only)" in shown and "requires item features" in shown


def test_ablate_ease_side_subset_of_modalities(workspace: tuple[Path, Path, Path], tmp_path: Path) -> None:
    split_dir, first, _ = workspace
    result = runner.invoke(app, ["ablate", str(split_dir), "-m", "ease_side", "--features", str(first), "--out",
                                 str(tmp_path), "--modalities", "text", "--set", "l2=5"])
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "ablation.json").read_text())
    assert [r["labels"] for r in payload["rows"]] == [["all", "only:text"], ["without:text", "none"]]
    assert payload["config"] == {"l2": 5}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--modalities", "text,audio"], "unknown modality 'audio'"),
        (["--metric", "ndcg"], "--metric must look like"),
        (["--set", "nope=1"], "invalid hyper-parameters for content"),
    ],
)
def test_bad_options_are_one_line_errors(
    workspace: tuple[Path, Path, Path], tmp_path: Path, extra: list[str], message: str
) -> None:
    split_dir, first, _ = workspace
    result = runner.invoke(app, ["ablate", str(split_dir), "-m", "content", "--features", str(first),
                                 "--out", str(tmp_path), *extra])
    assert result.exit_code == 2 and message in text(result), result.output
    assert "Traceback" not in result.output and not (tmp_path / "ablation.json").exists()


def test_empty_feature_dirs_and_models_without_features_are_errors(
    workspace: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    split_dir, first, _ = workspace
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    no_modalities = FeatureSet(ids=[f"item{i}" for i in range(40)]).save(tmp_path / "none")
    for features, message in ((empty_dir, "not a feature set directory"), (no_modalities, "holds no modalities")):
        result = runner.invoke(app, ["ablate", str(split_dir), "-m", "content", "--features", str(features),
                                     "--out", str(tmp_path / "out")])
        assert result.exit_code == 2 and message in text(result), result.output
    result = runner.invoke(app, ["ablate", str(split_dir), "-m", "ease", "--features", str(first), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "nothing to ablate" in text(result), result.output
