"""`fusionrec run`: the run-folder layout, stage reuse, partial re-runs, resume and MLflow tracking."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fusionrec.cli import app
from fusionrec.data.schema import Dataset
from fusionrec.data.splits import Split
from fusionrec.models.bundle import ModelBundle

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
STAGES = ("data", "split", "models/mostpop", "models/ease")
runner = CliRunner()


def _run(experiment: Path, out: Path, *extra: str) -> str:
    result = runner.invoke(app, ["run", str(experiment), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result.output


def _finished(out: Path) -> dict[str, str]:
    return {s: json.loads((out / s / "stage.json").read_text())["finished"] for s in STAGES}


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "sample"
    _run(EXAMPLES / "sample.yaml", out)
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out


def test_sample_run_writes_the_layout(sample_run: Path) -> None:
    out = sample_run
    assert (out / "experiment.yaml").read_text() == (EXAMPLES / "sample.yaml").read_text()
    run = json.loads((out / "run.json").read_text())
    assert run["name"] == "sample" and run["models"] == ["mostpop", "ease"] and run["finished"]
    assert set(run["stages"]) == set(STAGES) and not any(s["cached"] for s in run["stages"].values())
    for stage in STAGES:
        meta = json.loads((out / stage / "stage.json").read_text())
        assert meta["status"] == "done" and len(meta["key"]) == 64 and meta["seconds"] >= 0
    dataset = Dataset.load(out / "data")
    assert dataset.n_users == 400
    assert json.loads((out / "data" / "validation.json").read_text())
    assert json.loads((out / "data" / "stats.json").read_text())["n_users"] == 400
    assert Split.load(out / "split").n_items == dataset.n_items
    assert not (out / "features").exists()
    results = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in results] == ["mostpop", "ease"]
    for name, result in zip(("mostpop", "ease"), results, strict=True):
        assert json.loads((out / "models" / name / "metrics.json").read_text()) == result
        assert set(result) >= {"model", "params", "mean", "ci", "by_user_activity", "by_item_popularity",
                               "train_s", "n_epochs", "best_epoch", "n_users"}
        low, high = result["ci"]["recall@20"]
        assert low <= result["mean"]["recall@20"] <= high
        assert json.loads((out / "models" / name / "history.json").read_text()) == {}
        assert ModelBundle.load(out / "models" / name / "bundle").model.n_items == dataset.n_items
    assert results[1]["params"] == {"l2": 100.0}
    assert results[1]["mean"]["recall@20"] > results[0]["mean"]["recall@20"] + 0.2


def test_second_run_reuses_every_stage(sample_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _copy(sample_run, tmp_path)
    before = _finished(out)

    def no_fit(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached model was fitted again")

    monkeypatch.setattr("fusionrec.experiments.runner.train_and_evaluate", no_fit)
    output = _run(EXAMPLES / "sample.yaml", out)
    for stage in STAGES:
        assert f"{stage}: cached (key " in output
    assert _finished(out) == before
    run = json.loads((out / "run.json").read_text())
    assert all(s["cached"] for s in run["stages"].values())
    assert "ease" in output and "±" in output  # the summary table from the cached metrics


def test_changing_one_model_reruns_only_that_model(sample_run: Path, tmp_path: Path) -> None:
    out = _copy(sample_run, tmp_path)
    before = _finished(out)
    changed = tmp_path / "sample.yaml"
    changed.write_text((EXAMPLES / "sample.yaml").read_text().replace("l2: 100.0", "l2: 50.0"))
    output = _run(changed, out)
    assert "models/ease: running" in output
    after = _finished(out)
    assert after["models/ease"] != before["models/ease"] or "models/ease: cached" not in output
    for stage in ("data", "split", "models/mostpop"):
        assert f"{stage}: cached" in output and after[stage] == before[stage]
    assert json.loads((out / "models" / "ease" / "metrics.json").read_text())["params"] == {"l2": 50.0}


def test_a_killed_run_resumes_at_the_first_stage_not_done(sample_run: Path, tmp_path: Path) -> None:
    out = _copy(sample_run, tmp_path)
    (out / "models" / "ease" / "stage.json").unlink()  # as if killed while fitting ease
    (out / "models" / "ease" / "metrics.json").unlink()
    output = _run(EXAMPLES / "sample.yaml", out)
    assert "models/mostpop: cached" in output and "models/ease: running" in output
    assert (out / "models" / "ease" / "metrics.json").exists()
    forced = _run(EXAMPLES / "sample.yaml", out, "--force")
    assert "cached" not in forced.split("stages")[0]


def test_a_bad_file_is_one_line_with_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "sample.yaml").read_text().replace("  ratios:", "  ratio:"))
    result = runner.invoke(app, ["run", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "split.ratio: unknown key (did you mean 'ratios'?)" in result.output.replace("\n", "")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("example", ["csv_catalog.yaml", "amazon.yaml"])
def test_csv_and_amazon_examples_run_end_to_end(example: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(EXAMPLES / example, out)
    results = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in results] == ["mostpop", "ease"]
    assert all(r["n_users"] > 0 for r in results)
    assert (out / "features").exists() == (example == "csv_catalog.yaml")


def test_mlflow_file_store_holds_the_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    experiment = tmp_path / "tracked.yaml"
    text = (EXAMPLES / "sample.yaml").read_text().replace("  mlflow: false", "  mlflow: true")
    bpr = "  - {name: bpr, model: bpr, params: {seed: 0, epochs: 3}}\nevaluation:"
    experiment.write_text(text.replace("evaluation:", bpr, 1))
    out = tmp_path / "run"
    output = _run(experiment, out)
    assert "tracking: mlflow: run" in output
    client = MlflowClient((out / "mlruns").resolve().as_uri())
    found = client.get_experiment_by_name("sample")
    assert found is not None
    runs = {r.info.run_name: r for r in client.search_runs([found.experiment_id])}
    assert set(runs) == {"sample", "mostpop", "ease", "bpr"}
    parent = runs["sample"].info.run_id
    assert runs["ease"].data.tags["mlflow.parentRunId"] == parent
    assert runs["ease"].data.metrics["recall_at_20"] > runs["mostpop"].data.metrics["recall_at_20"]
    assert runs["sample"].data.params["split.strategy"] == "random"
    assert runs["ease"].data.params["params.l2"] == "100.0"
    # per-epoch valid metric of the iterative model, step = epoch, as in its history.json
    curve = client.get_metric_history(runs["bpr"].info.run_id, "valid_recall_at_20")
    history = json.loads((out / "models" / "bpr" / "history.json").read_text())
    assert history["metric"] == "recall@20" and len(history["values"]) == 3
    assert [m.step for m in curve] == [1, 2, 3]
    assert [m.value for m in curve] == pytest.approx(history["values"])


def test_ablation_stage_writes_the_ablation_files(tmp_path: Path) -> None:
    text = (EXAMPLES / "csv_catalog.yaml").read_text().replace("  source: data/csv", f"  source: {EXAMPLES / 'data' / 'csv'}")
    extra = "  - {name: ease_side, model: ease_side}\nablation: {model: ease_side, metric: ndcg@10}\nevaluation:"
    experiment = tmp_path / "ablate.yaml"
    experiment.write_text(text.replace("evaluation:", extra, 1))
    out = tmp_path / "run"
    _run(experiment, out)
    assert {p.name for p in (out / "ablation").iterdir()} >= {"ablation.json", "ablation.csv", "stage.json"}
    assert json.loads((out / "ablation" / "ablation.json").read_text())["model"] == "ease_side"
    assert "ablation: cached" in _run(experiment, out)
