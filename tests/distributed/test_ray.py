"""The Ray paths against the local ones, on a real local Ray cluster (``ray.init(num_cpus=2)``):
extraction (features within 1e-5), sharded evaluation (identical metrics and per-user arrays),
a 2x2 Ray Tune grid (the same chosen point and valid values), and ``evaluate --ray local``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

ray = pytest.importorskip("ray", reason="ray is not installed (pip install -e .[ray])")

from fusionrec.cli import app  # noqa: E402
from fusionrec.eval.evaluator import Evaluator  # noqa: E402
from fusionrec.models.ease import EASE  # noqa: E402
from tests.cli.cli_workspace import saved_cluster_split  # noqa: E402
from tests.models.conftest import planted_split  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from fusionrec.data.loaders import LoaderOptions, load_source
    from fusionrec.data.sample import SAMPLE_MAPPING, write_sample

    root = tmp_path_factory.mktemp("ray_sample")
    source = write_sample(root / "source", n_users=40, n_items=30, audio=None)
    dataset, _ = load_source("tabular", source, LoaderOptions(name="sample", tabular=SAMPLE_MAPPING))
    return dataset


def test_ray_extraction_equals_local(cluster: Any, sample_dataset: Any, tmp_path: Path) -> None:
    from fusionrec.distributed.extract import extract_features_ray
    from fusionrec.features.config import FeaturesConfig
    from fusionrec.features.extract import extract_features

    config = FeaturesConfig()
    config.text.batch_size = 8  # several batches over the two workers
    local = extract_features(sample_dataset, ("text", "attributes"), cache_dir=tmp_path / "local", config=config, progress=False)
    distributed = extract_features_ray(
        sample_dataset, ("text", "attributes"), cache_dir=tmp_path / "ray", config=config, n_workers=2
    )
    for name in ("text", "attributes"):
        a, b = local.features[name], distributed.features[name]
        np.testing.assert_array_equal(a.present, b.present)
        np.testing.assert_allclose(a.matrix, b.matrix, atol=1e-5, rtol=0)
        assert a.provenance.fingerprint == b.provenance.fingerprint
    assert distributed.reports["text"].encoded == local.reports["text"].encoded > 0
    assert distributed.features["text"].inputs == local.features["text"].inputs
    again = extract_features(sample_dataset, ("text",), cache_dir=tmp_path / "ray", config=config, progress=False)
    assert again.reports["text"].encoded == 0 and again.reports["text"].cached == local.reports["text"].encoded
    np.testing.assert_array_equal(again.features["text"].matrix, distributed.features["text"].matrix)


def test_sharded_evaluation_equals_local(cluster: Any) -> None:
    from fusionrec.distributed.evaluate import evaluate_ray

    split = planted_split()
    model = EASE(l2=10.0).fit(split.train, item_ids=split.item_map.ids)
    evaluator = Evaluator(ks=(5, 10, 20), batch_size=32, auc=True)
    for on in ("valid", "test"):
        local = evaluator.evaluate(model, split, on=on)
        stats: list[dict[str, float]] = []
        distributed = evaluate_ray(evaluator, model, split, on=on, n_shards=3, stats=stats)
        assert len(stats) == 3 and sum(s["n_users"] for s in stats) == local.n_evaluated
        assert distributed.mean() == local.mean()
        np.testing.assert_array_equal(distributed.users, local.users)
        assert distributed.per_user.keys() == local.per_user.keys()
        for key in local.per_user:
            np.testing.assert_array_equal(distributed.per_user[key], local.per_user[key])
        np.testing.assert_array_equal(distributed.top_k, local.top_k)
        assert distributed.beyond == local.beyond and distributed.n_skipped == local.n_skipped
        assert distributed.by_item_popularity() == local.by_item_popularity()


def test_ray_tune_picks_the_local_point(cluster: Any) -> None:
    from fusionrec.distributed.tune import grid_search_ray
    from fusionrec.experiments.runner import grid_search

    split = planted_split()
    grid = {"l2": [1.0, 200.0], "dtype": ["float32", "float64"]}
    local = grid_search("ease", split, grid, metric="ndcg@10", k=(10, 20))
    distributed = grid_search_ray("ease", split, grid, metric="ndcg@10", k=(10, 20), max_concurrent=2)
    assert [t.params for t in distributed.trials] == [t.params for t in local.trials]
    assert [t.valid_value for t in distributed.trials] == [t.valid_value for t in local.trials]
    assert distributed.best.params == local.best.params
    assert distributed.test.mean() == local.test.mean()


def test_cli_evaluate_with_ray_prints_the_local_numbers(cluster: Any, tmp_path: Path) -> None:
    split_dir = saved_cluster_split(tmp_path)
    trained = runner.invoke(app, ["train", str(split_dir), "--model", "ease", "--set", "l2=5", "--out", str(tmp_path / "ease")])
    assert trained.exit_code == 0, trained.output
    args = ["evaluate", str(tmp_path / "ease"), str(split_dir), "--json"]
    local = runner.invoke(app, args)
    distributed = runner.invoke(app, [*args, "--ray", "local"])
    assert local.exit_code == 0 and distributed.exit_code == 0, local.output + distributed.output
    a, b = json.loads(local.output), json.loads(distributed.output)
    a.pop("eval_time_s"), b.pop("eval_time_s")
    assert a == b and "recall@20" in a


def test_cli_features_with_ray_writes_the_local_features(cluster: Any, sample_dataset: Any, tmp_path: Path) -> None:
    from fusionrec.features.base import FeatureSet

    directory = sample_dataset.save(tmp_path / "dataset")
    base = ["features", str(directory), "-m", "text", "-m", "attributes", "--batch-size", "8", "--no-progress"]
    local = runner.invoke(app, [*base, "--cache-dir", str(tmp_path / "c1"), "--out", str(tmp_path / "f1")])
    distributed = runner.invoke(app, [*base, "--cache-dir", str(tmp_path / "c2"), "--out", str(tmp_path / "f2"), "--ray", "local"])
    assert local.exit_code == 0 and distributed.exit_code == 0, local.output + distributed.output
    a, b = FeatureSet.load(tmp_path / "f1"), FeatureSet.load(tmp_path / "f2")
    for name in ("text", "attributes"):
        np.testing.assert_allclose(a[name].matrix, b[name].matrix, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(a[name].present, b[name].present)


def test_missing_ray_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from fusionrec.distributed.cluster import connect
    from fusionrec.errors import ModelError

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ModelError, match=r"pip install -e \"\.\[ray\]\""), connect("local"):
        pass


def test_lazy_import_loads_no_ray() -> None:
    import subprocess
    import sys

    code = "import sys, fusionrec.distributed, fusionrec.cli; assert 'ray' not in sys.modules, 'ray imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_cli_tune_with_ray_picks_the_local_point(cluster: Any, tmp_path: Path) -> None:
    split_dir = saved_cluster_split(tmp_path)
    grid = tmp_path / "grid.yaml"
    grid.write_text("l2: [1.0, 50.0]\n")
    args = ["tune", str(split_dir), "--model", "ease", "--grid", str(grid), "--json"]
    local, distributed = runner.invoke(app, args), runner.invoke(app, [*args, "--ray", "local"])
    assert local.exit_code == 0 and distributed.exit_code == 0, local.output + distributed.output
    a, b = json.loads(local.stdout), json.loads(distributed.stdout)  # Tune's banner goes to stderr
    assert a["best_params"] == b["best_params"] and a["test"] == b["test"]
    assert [t["valid"] for t in a["trials"]] == [t["valid"] for t in b["trials"]]
