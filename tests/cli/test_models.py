"""train / evaluate / recommend / tune on a small planted split saved to disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fusionrec.cli import app
from fusionrec.data.splits import Split
from tests.cli.cli_workspace import saved_cluster_split, text

runner = CliRunner()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("models_cli")
    split_dir = saved_cluster_split(root)
    config = root / "ease.yaml"
    config.write_text("l2: 5.0\n")
    result = runner.invoke(app, ["train", str(split_dir), "--model", "ease", "--config", str(config), "--out", str(root / "ease")])
    assert result.exit_code == 0, result.output
    return split_dir, root / "ease"


def test_train_writes_a_loadable_model_dir(workspace: tuple[Path, Path]) -> None:
    _, model_dir = workspace
    meta = json.loads((model_dir / "model" / "model.json").read_text())
    assert meta["model"] == "ease" and meta["config"]["l2"] == 5.0
    for name in ("model/weights.npz", "ids.npz"):
        with np.load(model_dir / name, allow_pickle=False) as arrays:
            assert arrays.files
    bundle = json.loads((model_dir / "bundle.json").read_text())
    # EASE keeps its training matrix: the bundle's seen items are that one copy, not a second file.
    assert bundle["seen"] == "model-history" and not (model_dir / "seen.npz").exists()
    assert len(bundle["split"]["train_digest"]) == 64


def test_evaluate_json_has_metric_keys(workspace: tuple[Path, Path]) -> None:
    split_dir, model_dir = workspace
    result = runner.invoke(app, ["evaluate", str(model_dir), str(split_dir), "--on", "test", "--k", "10,20", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert {"recall@10", "recall@20", "ndcg@20", "precision@10", "n_evaluated", "n_skipped"} <= set(payload)
    assert 0 < payload["recall@20"] <= 1 and payload["ci"]["recall@20"][0] <= payload["recall@20"]
    table = runner.invoke(app, ["evaluate", str(model_dir), str(split_dir), "--on", "valid", "--groups", "--auc"])
    assert table.exit_code == 0, table.output
    assert "users evaluated" in text(table) and "item popularity" in text(table)


def test_recommend_for_split_users_writes_original_ids(workspace: tuple[Path, Path], tmp_path: Path) -> None:
    split_dir, model_dir = workspace
    out = tmp_path / "recs.tsv"
    result = runner.invoke(app, ["recommend", str(model_dir), "--split", str(split_dir), "--on", "test", "--k", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0] == "user_id\titem_id\trank"
    rows = [line.split("\t") for line in lines[1:]]
    assert rows[0][0].startswith("user") and rows[0][1].startswith("item") and rows[0][2] == "1"
    split = Split.load(split_dir)
    seen = set(zip(*(split.train.user, split.train.item), strict=True)) | set(zip(split.valid.user, split.valid.item, strict=True))
    for user_id, item_id, _ in rows:
        pair = (int(user_id[4:]), int(item_id[4:]))
        assert pair not in seen, "recommended an item the user already had"
    first_user = [r for r in rows if r[0] == rows[0][0]]
    assert [r[2] for r in first_user] == ["1", "2", "3", "4", "5"]


def test_recommend_for_a_users_file_and_unknown_user(workspace: tuple[Path, Path], tmp_path: Path) -> None:
    _, model_dir = workspace
    users = tmp_path / "users.txt"
    users.write_text("user_id\nuser3\nuser7\n")
    out = tmp_path / "recs.tsv"
    result = runner.invoke(app, ["recommend", str(model_dir), "--users", str(users), "--k", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 1 + 2 * 3
    users.write_text("user3\nnobody\n")
    bad = runner.invoke(app, ["recommend", str(model_dir), "--users", str(users), "--out", str(out)])
    assert bad.exit_code == 2 and "nobody" in text(bad) and "row 2" in text(bad)


def test_tune_picks_on_valid_and_reports_test(workspace: tuple[Path, Path], tmp_path: Path) -> None:
    split_dir, _ = workspace
    grid = tmp_path / "grid.yaml"
    grid.write_text("l2: [1.0, 50.0]\n")
    result = runner.invoke(app, ["tune", str(split_dir), "--model", "ease", "--grid", str(grid), "--json", "--out", str(tmp_path / "best")])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert len(payload["trials"]) == 2
    best = max(payload["trials"], key=lambda t: t["valid"])
    assert payload["best_params"] == best["params"] and "recall@20" in payload["test"]
    assert (tmp_path / "best" / "bundle.json").exists()


def test_errors_are_one_line_messages(workspace: tuple[Path, Path], tmp_path: Path) -> None:
    split_dir, _ = workspace
    unknown = runner.invoke(app, ["train", str(split_dir), "--model", "nope", "--out", str(tmp_path / "x")])
    assert unknown.exit_code == 2 and "unknown model" in text(unknown)
    bad = runner.invoke(app, ["train", str(split_dir), "--model", "ease", "--set", "l2=-3", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "invalid hyper-parameters for ease" in text(bad)
    metric = runner.invoke(
        app, ["train", str(split_dir), "--model", "bpr", "--set", "valid_metric=recal@x", "--out", str(tmp_path / "x")]
    )
    assert metric.exit_code == 2 and "valid_metric must look like 'recall@20'" in text(metric)
    assert "Traceback" not in metric.output and len(text(metric).strip().splitlines()) <= 3
    missing = runner.invoke(app, ["evaluate", str(tmp_path / "none"), str(split_dir)])
    assert missing.exit_code == 2 and "not a fusionrec model bundle" in text(missing)
    grid = tmp_path / "g.yaml"
    grid.write_text("alpha: [1]\n")
    unknown_param = runner.invoke(app, ["tune", str(split_dir), "--model", "ease", "--grid", str(grid)])
    assert unknown_param.exit_code == 2 and "unknown hyper-parameters" in text(unknown_param)


def test_train_iterative_model_with_overrides(workspace: tuple[Path, Path], tmp_path: Path) -> None:
    split_dir, _ = workspace
    out = tmp_path / "bpr"
    result = runner.invoke(
        app, ["train", str(split_dir), "--model", "bpr", "--set", "epochs=3", "--set", "factors=8", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "best valid recall@20" in text(result)
    evaluated = runner.invoke(app, ["evaluate", str(out), str(split_dir), "--json"])
    assert evaluated.exit_code == 0 and "ndcg@20" in json.loads(evaluated.output)
