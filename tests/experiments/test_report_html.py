"""`fusionrec report RUN_DIR`: a self-contained HTML page of a run directory (built here from the sample).

The run directory comes from ``tests/experiments/run_dir.py`` (the `fusionrec run` layout). Checks:
every plot is an embedded PNG, nothing is fetched from outside, the tables name the models, the
sample users' cards are there (explained per modality for the content model), the page renders in
headless Chromium (no console errors, every image decoded; full-page screenshot under tmp_path, also
at ``$FUSIONREC_REPORT_SCREENSHOT`` when set) and the CLI's error on a directory without results.json.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fusionrec.cli import app
from fusionrec.experiments.report_html import write_report
from tests.experiments.run_dir import MODELS, build_run_dir

CHROMIUM = Path("/usr/bin/chromium")
# metrics per model, groups, per-epoch curves (bpr), diversity trade-off (extras)
EXPECTED_PLOTS = 4


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_run_dir(tmp_path_factory.mktemp("run") / "sample-run", extras=True)


@pytest.fixture(scope="module")
def report(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(run_dir, out=tmp_path_factory.mktemp("report") / "report.html", users=3, model="content")


def test_report_is_self_contained(report: Path) -> None:
    page = report.read_text()
    assert page.count('src="data:image/png;base64,') >= EXPECTED_PLOTS
    assert page.count('src="data:image/jpeg;base64,') > 0  # posters
    assert 'src="http' not in page and 'href="http' not in page and "url(http" not in page
    assert "<script src=" not in page and "<link" not in page
    for src in re.findall(r'<img src="([^"]{0,30})', page):
        assert src.startswith("data:image/"), src


def test_report_tables_and_cards(report: Path) -> None:
    page = report.read_text()
    metrics = page[page.index("<h2>Metrics</h2>"):page.index("<h2>Plots</h2>")]
    for name in MODELS:
        assert f"<b>{name}</b>" in metrics
    assert "ndcg@20" in metrics and "[" in metrics  # intervals
    assert "n_interactions" in page and "Validation" in page
    assert page.count('data-testid="user"') == 3
    assert page.count('class="card card-rec"') == 30
    assert 'class="bars"' in page and 'class="headline"' in page  # content explains per modality
    assert "no ablation in this run" in page  # an absent optional part is named, not an error


def test_default_model_is_best_and_default_path(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "features").rename(copy / "features-gone")
    path = write_report(copy, users=1)
    assert path == copy / "report.html"
    page = path.read_text()
    assert "★" in page and page.count('data-testid="user"') == 1
    assert "no features/ in the run" in page


def test_cli_error_without_results(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "results.json" in result.output
    assert "Traceback" not in result.output


def test_cli_writes_report(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out), "--users", "1"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "wrote" in result.output


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Debian's chromium is not installed at {CHROMIUM}")
def test_report_in_chromium(report: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--headless=new"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.resolve().as_uri())
            page.wait_for_load_state("load")
            widths = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            if os.environ.get("FUSIONREC_REPORT_SCREENSHOT"):
                page.screenshot(path=os.environ["FUSIONREC_REPORT_SCREENSHOT"], full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert len(widths) >= EXPECTED_PLOTS and all(w > 0 for w in widths), widths
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert (tmp_path / "report.png").stat().st_size > 10_000
