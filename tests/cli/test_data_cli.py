from __future__ import annotations

from typer.testing import CliRunner

from fusionrec.cli import app
from fusionrec.data.splits import Split
from tests.conftest import random_dataset

runner = CliRunner()


def test_split_and_stats_cli(tmp_path) -> None:
    random_dataset().save(tmp_path / "ds")
    result = runner.invoke(app, ["split", str(tmp_path / "ds"), "--out", str(tmp_path / "s"),
                                 "--strategy", "cold_user", "--ratios", "0.7,0.1,0.2", "--seed", "4"])
    assert result.exit_code == 0, result.output
    split = Split.load(tmp_path / "s")
    assert split.info["config"]["strategy"] == "cold_user" and split.info["config"]["seed"] == 4
    assert not set(split.train.user.tolist()) & set(split.test.user.tolist())
    stats = runner.invoke(app, ["stats", str(tmp_path / "ds"), "--json"])
    assert stats.exit_code == 0 and '"n_users": 200' in stats.output


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path) -> None:
    result = runner.invoke(app, ["stats", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "no manifest.json" in result.output and "Traceback" not in result.output
    random_dataset(with_time=False).save(tmp_path / "ds")
    result = runner.invoke(app, ["split", str(tmp_path / "ds"), "--out", str(tmp_path / "s"), "--strategy", "temporal"])
    assert result.exit_code == 2 and "needs timestamps" in result.output
