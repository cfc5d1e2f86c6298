"""CLI verbs `ingest` (load a source, report, save a Dataset) and `validate` (report only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fusionrec.cli.app import app, console, friendly_errors
from fusionrec.data.loaders import FORMATS, LoaderOptions, check_dataset, load_options, load_source
from fusionrec.data.schema import Dataset
from fusionrec.data.stats import dataset_stats, stats_table
from fusionrec.data.validate import ValidationReport
from fusionrec.errors import DataError

FORMAT_HELP = f"Source format: {', '.join(FORMATS)}"
CONFIG_HELP = "YAML file: loader options (strict, check_media, name, tabular, meta) or a bare tabular column mapping."
META_HELP = "Amazon meta file (default: meta_<name>.json[.gz] beside the reviews)."
MEDIA_HELP = "Check that image/audio files exist (missing ones are reported and masked)."


def _options(config: Path | None, meta: Path | None, name: str | None, check_media: bool) -> LoaderOptions:
    """Options from --config, with the flags given on the command line taking precedence."""
    options = load_options(config) if config is not None else LoaderOptions()
    updates: dict[str, object] = {}
    if meta is not None:
        updates["meta"] = meta
    if name is not None:
        updates["name"] = name
    if not check_media:
        updates["check_media"] = False
    return options.model_copy(update=updates)


def _show(dataset: Dataset, report: ValidationReport) -> None:
    console.print(report.table())
    console.print(stats_table(dataset_stats(dataset)))


@app.command()
@friendly_errors
def ingest(
    format: Annotated[str, typer.Argument(help=f"{FORMAT_HELP}.", show_default=False)],
    source: Annotated[Path, typer.Argument(help="File or folder to read (which one depends on the format).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset directory to write (Parquet + manifest.json).")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help=CONFIG_HELP)] = None,
    meta: Annotated[Path | None, typer.Option("--meta", help=META_HELP)] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail (exit 2, nothing saved) on any error-severity issue.")] = False,
    check_media: Annotated[bool, typer.Option("--check-media/--no-check-media", help=MEDIA_HELP)] = True,
    name: Annotated[str | None, typer.Option("--name", help="Dataset name (default: from the source).")] = None,
    json_report: Annotated[bool, typer.Option("--json", help="Also write the report to OUT/validation_report.json.")] = False,
) -> None:
    """Load SOURCE in FORMAT, print the validation report and stats, and save the dataset to OUT."""
    options = _options(config, meta, name, check_media)
    # Strict is applied here, after the report is printed, so a failing run still shows every issue.
    dataset, report = load_source(format, source, options.model_copy(update={"strict": False}))
    _show(dataset, report)
    if strict or options.strict:
        report.raise_if_errors()
    dataset.save(out)
    if json_report:
        (out / "validation_report.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
    console.print(f"saved {dataset.n_users:,} users, {dataset.n_items:,} items, "
                  f"{len(dataset.interactions):,} interactions to {out}")


@app.command()
@friendly_errors
def validate(
    source: Annotated[Path, typer.Argument(help="A saved dataset directory, or a raw source (then give --format).")],
    format: Annotated[str | None, typer.Option("--format", "-f", help=f"{FORMAT_HELP} (raw sources only).")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help=CONFIG_HELP)] = None,
    meta: Annotated[Path | None, typer.Option("--meta", help=META_HELP)] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 2 on any error-severity issue.")] = False,
    check_media: Annotated[bool, typer.Option("--check-media/--no-check-media", help=MEDIA_HELP)] = True,
    json_report: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of tables.")] = False,
) -> None:
    """Check a dataset directory (media files, text, extras) or a raw source; print report + stats."""
    if (source / "manifest.json").is_file():
        dataset = Dataset.load(source)
        report = check_dataset(dataset, source, check_media=check_media)
    elif format is None:
        raise DataError("not a dataset directory (no manifest.json): give the source's --format", file=str(source))
    else:
        options = _options(config, meta, None, check_media)
        strict = strict or options.strict
        dataset, report = load_source(format, source, options.model_copy(update={"strict": False}))
    if json_report:
        console.print_json(json.dumps(report.to_dict(), default=str))
    else:
        _show(dataset, report)
    if strict:
        report.raise_if_errors()
