"""CLI verb `ablate`: train and test one model on every modality subset (and encoder alternative).

Wiring only: the variants, runs, paired deltas and files are :mod:`fusionrec.experiments.ablation`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from fusionrec.cli.app import app, console, friendly_errors
from fusionrec.cli.models import model_config, parse_ks
from fusionrec.data.splits import Split
from fusionrec.models.registry import model_names

if TYPE_CHECKING:
    from fusionrec.experiments.ablation import AblationResult, AblationRow


def _fmt(value: float, digits: int = 4, sign: bool = False) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def ablation_table(result: AblationResult, keys: list[str]) -> Table:
    """Per variant: modalities and encoders, each metric ± half-width, the main metric's paired delta."""
    pct = f"{result.level:.0%}"
    table = Table(title=f"{result.model}: modality ablation, test (±: {pct} interval; Δ vs all, paired {pct} CI)")
    table.add_column("variant", style="bold")
    table.add_column("modalities")
    table.add_column("encoders")
    for key in keys:
        table.add_column(key, justify="right")
    table.add_column(f"Δ {result.metric} [{pct} CI]", justify="right")
    table.add_column("train s", justify="right")
    table.add_column("note")
    for row in result.rows:
        cells = [result.cells(row, key) for key in keys]
        shown = [_fmt(c["mean"]) + (f" ±{(c['high'] - c['low']) / 2:.4f}" if not math.isnan(c["low"]) else "")
                 for c in cells]
        if row.result is None:
            shown = ["n/a" if row.status == "not_applicable" else row.status] * len(keys)
        d = result.cells(row, result.metric)
        delta = "ref" if row is result.reference else (
            f"{_fmt(d['delta'], sign=True)} [{_fmt(d['delta_low'], sign=True)}, {_fmt(d['delta_high'], sign=True)}]"
            if row.result is not None else "")
        table.add_row(
            escape(" = ".join(row.labels)), "+".join(row.modalities) or "(ID only)",
            escape(", ".join(f"{m}={e}" for m, e in row.encoders.items()) or "-"), *map(escape, shown), delta,
            "" if row.train_time_s is None else f"{row.train_time_s:.1f}", escape(row.reason or ""),
        )
    return table


def _progress(index: int, total: int, row: AblationRow, result: AblationResult) -> None:
    label = escape(" = ".join(row.labels))
    if row.result is None:
        console.print(f"\\[{index}/{total}] {label}: {row.status} ({escape(row.reason or '')})")
        return
    cells = result.cells(row, result.metric)
    delta = "" if row is result.reference else f", Δ {_fmt(cells['delta'], sign=True)}"
    console.print(
        f"\\[{index}/{total}] {label} ({'+'.join(row.modalities) or 'ID only'}): "
        f"{result.metric} {_fmt(cells['mean'])}{delta} ({row.train_time_s:.1f}s)"
    )


@app.command()
@friendly_errors
def ablate(
    split_dir: Annotated[Path, typer.Argument(help="A split directory written by `fusionrec split`.")],
    model: Annotated[str, typer.Option("--model", "-m", help=f"A feature model, one of: {', '.join(model_names())}.")],
    features_dirs: Annotated[
        list[Path],
        typer.Option("--features", help="Feature directory (repeatable: the same modality from another encoder "
                                        "adds all[MODALITY=ENCODER] rows)."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Directory for ablation.json, ablation.csv, ablation.png.")],
    modalities: Annotated[
        str | None, typer.Option("--modalities", help="Comma-separated modalities to ablate (default: all).")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML of the model's hyper-parameters.")] = None,
    set_values: Annotated[
        list[str] | None, typer.Option("--set", help="Override one hyper-parameter (repeatable).")
    ] = None,
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")] = "10,20",
    metric: Annotated[str, typer.Option("--metric", help="Metric of the deltas column and the bar chart.")] = "ndcg@20",
    ci: Annotated[str, typer.Option("--ci", help="Intervals: t (paired t on per-user differences) or bootstrap.")] = "t",
) -> None:
    """Train on each modality alone, each removed, all and none (ID only); test each with 95 % intervals
    and paired deltas vs all; write JSON, CSV and a bar chart."""
    from fusionrec.experiments.ablation import FeaturePool, run_ablation
    from fusionrec.experiments.ablation_files import write_outputs
    from fusionrec.features.base import FeatureSet
    from fusionrec.ranking.keys import check_valid_metric

    try:
        check_valid_metric(metric, what="--metric")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if ci not in ("t", "bootstrap"):
        raise typer.BadParameter("--ci must be t or bootstrap")
    ks = parse_ks(k)
    values = model_config(model, config, set_values)
    names = [m.strip() for m in modalities.split(",") if m.strip()] if modalities is not None else None
    split = Split.load(split_dir)
    pool = FeaturePool.from_sets([(str(d), FeatureSet.load(d)) for d in features_dirs], split.item_map.ids)
    if names is not None:
        pool.check_names(names)
    console.print(f"ablating [bold]{escape(model)}[/] over {escape(', '.join(names or pool.names))} "
                  f"({len(features_dirs)} feature dir{'s' if len(features_dirs) > 1 else ''})")
    result = run_ablation(model, split, pool, modalities=names, config=values, ks=ks, metric=metric,
                          ci_method=ci, progress=_progress)
    paths = write_outputs(result, out)
    keys = list(dict.fromkeys([metric, f"recall@{max(result.ks)}"]))
    console.print(ablation_table(result, [key for key in keys if key in result.metric_keys()]))
    missing_png = "" if "png" in paths else " (no ablation.png: matplotlib is not installed)"
    console.print(f"wrote {', '.join(p.name for p in paths.values())} to {out}{missing_png}")
