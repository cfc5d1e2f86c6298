"""`fusionrec online-report`: CTR and conversion per variant, from the server's event db or a log file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from fusionrec.cli.app import app, console, friendly_errors
from fusionrec.errors import DataError

if TYPE_CHECKING:  # pandas loads only when the verb runs
    from fusionrec.eval.online import OnlineReport


def _pct(value: float, digits: int = 2) -> str:
    return "—" if math.isnan(value) else f"{100 * value:.{digits}f} %"


def _interval(low: float, high: float) -> str:
    return "—" if math.isnan(low) else f"[{100 * low:.2f}, {100 * high:.2f}]"


def report_tables(report: OnlineReport) -> list[Table]:
    """The per-variant table and, with two or more variants, the comparisons with the control."""
    level = f"{round(report.level * 100)} %"
    table = Table(title=f"online metrics per variant ({report.n_events:,} events, {level} Wilson intervals)")
    for col in ("variant", "impressions", "clicks", "CTR", f"CTR {level}", "purchases", "conversion", f"conv. {level}", "users"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for v in report.variants:
        name = f"{v.variant} (control)" if v.variant == report.control and len(report.variants) > 1 else v.variant
        table.add_row(name, f"{v.impressions:,}", f"{v.clicks:,}", _pct(v.ctr), _interval(v.ctr_low, v.ctr_high),
                      f"{v.conversions:,}", _pct(v.conversion_rate, 3), _interval(v.conversion_low, v.conversion_high),
                      f"{v.users:,}")
    tables = [table]
    if report.comparisons:
        diff = Table(title=f"against {report.control!r}: difference (points), {level} interval, two-proportion z-test")
        for col in ("variant", "metric", "difference", "interval", "p-value"):
            diff.add_column(col, justify="left" if col in ("variant", "metric") else "right")
        for c in report.comparisons:
            p = "—" if math.isnan(c.p_value) else f"{c.p_value:.2g}"
            diff.add_row(c.variant, c.metric, "—" if math.isnan(c.difference) else f"{100 * c.difference:+.3f}",
                         _interval(c.low, c.high), p)
        tables.append(diff)
    return tables


@app.command("online-report")
@friendly_errors
def online_report_command(
    db: Annotated[Path | None, typer.Option("--db", help="The server's event database (SQLite).")] = None,
    log: Annotated[Path | None, typer.Option("--log", help="An event log: .csv, .tsv or .parquet with user_id, item_id, type, value, variant, ts.")] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Also write a bar chart of CTR and conversion per variant.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of tables.")] = False,
    control: Annotated[str | None, typer.Option("--control", help="Variant to compare the others with (default: 'control', else the most impressions).")] = None,
    level: Annotated[float, typer.Option("--level", help="Confidence level of the intervals.")] = 0.95,
) -> None:
    """CTR and conversion rate per A/B variant with Wilson intervals, and each variant against the control."""
    from fusionrec.eval.online import online_report, plot_online_report, read_event_log

    if (db is None) == (log is None):
        raise typer.BadParameter("give exactly one of --db PATH or --log FILE")
    if not 0 < level < 1:
        raise typer.BadParameter("--level must be between 0 and 1, e.g. 0.95")
    if db is not None:
        from fusionrec.serve.events import EventStore

        if not db.is_file():
            raise DataError("no event database at this path", file=str(db))
        with EventStore(db) as store:
            events = store.frame()
    else:
        assert log is not None
        events = read_event_log(log)
    report = online_report(events, level=level, control=control)
    if png is not None:
        plot_online_report(report, png)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    if not report.variants:
        console.print("no events in the log")
    for table in report_tables(report):
        console.print(table)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if png is not None:
        console.print(f"wrote {png}")
