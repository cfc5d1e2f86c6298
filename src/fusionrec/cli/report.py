"""`fusionrec report RUN_DIR`: one self-contained HTML page of a run (tables, plots, sample users' posters)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from fusionrec.cli.app import app, console, friendly_errors


@app.command("report")
@friendly_errors
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `fusionrec run`.")],
    out: Annotated[Path | None, typer.Option("--out", help="The HTML file (default: RUN_DIR/report.html).")] = None,
    users: Annotated[int, typer.Option("--users", min=0, help="Sample test users shown with their top-10.")] = 3,
    model: Annotated[
        str | None, typer.Option("--model", help="Model whose top-10 the sample users get (default: best by NDCG@20).")
    ] = None,
) -> None:
    """Write a self-contained HTML report: data stats and validation, metrics with 95 % intervals,
    plots (embedded PNGs) and a few users' history and recommendations as poster cards."""
    from fusionrec.experiments.report_html import write_report

    start = time.perf_counter()
    path = write_report(run_dir, out=out, users=users, model=model)
    console.print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, {time.perf_counter() - start:.1f} s)")
