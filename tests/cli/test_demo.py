from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fusionrec.cli import app
from fusionrec.data.schema import Dataset
from fusionrec.data.splits import Split

runner = CliRunner()


def test_demo_has_no_size_based_overrides() -> None:
    """The demo trains every model with its defaults (the defaults work on any data size)."""
    import fusionrec.cli.demo as demo

    assert not hasattr(demo, "LARGE_DATA_CONFIGS")


@pytest.mark.slow
def test_demo_on_the_sample_runs_end_to_end(tmp_path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--sample", "--out", str(out), "--models", "mostpop,ease"])
    assert result.exit_code == 0, result.output
    dataset = Dataset.load(out / "data")
    assert (dataset.n_users, dataset.n_items) == (400, 240)
    split = Split.load(out / "split")
    assert len(split.train) + len(split.valid) + len(split.test) <= len(dataset.interactions)
    assert (out / "features").exists()
    # the table lists both models, and EASE beats popularity on the sample's planted structure
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 5}
    assert "mostpop" in rows and "ease" in rows
    recall = {name: float(rows[name].split("│")[2].split("±")[0]) for name in ("mostpop", "ease")}
    assert recall["ease"] > recall["mostpop"] + 0.2
    # the demo ends with the HTML report, and says where it is
    report = out / "report.html"
    assert report.exists() and "report.html" in result.output
    html = report.read_text()
    assert "data:image/png;base64" in html and "ease" in html
