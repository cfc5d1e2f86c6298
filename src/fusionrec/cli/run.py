"""CLI verb `run`: an experiment file end to end, every stage cached in the run folder.

Wiring only: the config is :mod:`fusionrec.experiments.config`, the stages
:mod:`fusionrec.experiments.pipeline`, the tracking :mod:`fusionrec.experiments.tracking`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from fusionrec.cli.app import app, console, friendly_errors

if TYPE_CHECKING:
    from fusionrec.experiments.config import ExperimentConfig
    from fusionrec.experiments.pipeline import RunResult


def _cell(metrics: dict[str, Any], key: str) -> str:
    mean = metrics.get("mean", {}).get(key)
    if mean is None or not math.isfinite(mean):
        return "-"
    low, high = metrics.get("ci", {}).get(key, [math.nan, math.nan])
    half = (high - low) / 2 if math.isfinite(low) and math.isfinite(high) else math.nan
    return f"{mean:.4f}" + (f" ±{half:.4f}" if math.isfinite(half) else "")


def results_table(config: ExperimentConfig, results: list[dict[str, Any]]) -> Table:
    """Models x metrics (mean ± half-width of the interval), train seconds and epochs."""
    ev = config.evaluation
    keys = ev.keys or [f"{m}@{k}" for m in ("recall", "ndcg") for k in ev.ks]
    table = Table(title=f"{config.name}: {ev.on}, full ranking (±: {ev.level:.0%} {ev.ci}-interval half-width)")
    table.add_column("model", style="bold")
    for key in keys:
        table.add_column(key, justify="right")
    table.add_column("train s", justify="right")
    table.add_column("epochs", justify="right")
    for spec, metrics in zip(config.models, results, strict=True):
        epochs = f"{metrics['n_epochs']} (best {metrics['best_epoch']})" if metrics.get("n_epochs") else "-"
        table.add_row(escape(spec.name), *[_cell(metrics, k) for k in keys], f"{metrics['train_s']:.1f}", epochs)
    return table


def stages_table(result: RunResult) -> Table:
    """Per stage: reused or computed, and how long computing it took."""
    table = Table(title="stages")
    table.add_column("stage")
    table.add_column("cached?")
    table.add_column("seconds", justify="right")
    for name, record in result.stages.items():
        table.add_row(escape(name), "cached" if record.cached else "ran", f"{record.seconds:.2f}")
    return table


def print_summary(config: ExperimentConfig, result: RunResult) -> None:
    console.print(results_table(config, result.results))
    console.print(stages_table(result))
    console.print(f"tracking: {escape(result.tracking)}")
    console.print(f"outputs in [bold]{escape(str(result.run_dir))}[/]")


@app.command()
@friendly_errors
def run(
    experiment: Annotated[Path, typer.Argument(help="The experiment YAML (see examples/).")],
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default runs/<name>).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute every stage, cached or not.")] = False,
) -> None:
    """Run data -> split -> features -> models -> evaluation (-> ablation) from one experiment file;
    stages already done with the same settings are reused."""
    from fusionrec.experiments.config import load_experiment
    from fusionrec.experiments.pipeline import finish_run, run_experiment

    config = load_experiment(experiment)
    run_dir = out or Path("runs") / config.name
    result = run_experiment(config, run_dir, force=force, console=console,
                            source_text=experiment.read_text(encoding="utf-8"))
    print_summary(config, result)
    report = finish_run(result.run_dir)
    console.print(f"report: [bold]{report}[/]  (open it in a browser; `fusionrec report {result.run_dir}` rewrites it)")
