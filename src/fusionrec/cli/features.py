"""`fusionrec features`: extract (or reuse from the cache) per-modality item features."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from fusionrec.cli.app import app, console, friendly_errors

if TYPE_CHECKING:
    from fusionrec.data.schema import Dataset
    from fusionrec.features.base import ExtractionReport
    from fusionrec.features.config import FeaturesConfig


def summary_table(reports: dict[str, ExtractionReport], title: str = "Features") -> Table:
    """One row per modality: encoder, dim, encoded, cached, masked (with reasons), items/s, time."""
    table = Table(title=title)
    for column in ("modality", "encoder", "items", "encoded", "cached", "masked", "items/s", "time"):
        table.add_column(column, justify="left" if column in ("modality", "encoder", "masked") else "right")
    for name, report in reports.items():
        reasons = report.reason_counts()
        masked = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items())) or "0"
        if report.truncated:
            masked += f" ({report.truncated} truncated)"
        rate = f"{report.items_per_s:,.1f}" if report.encoded and report.encode_seconds else "-"
        table.add_row(
            name,
            report.encoder,
            f"{report.n_items:,}",
            f"{report.encoded:,}",
            f"{report.cached:,}",
            masked,
            rate,
            f"{report.total_seconds:.1f}s",
        )
    return table


def masked_table(reports: dict[str, ExtractionReport], limit: int = 10) -> Table | None:
    """The first ``limit`` masked items per modality, with reason and path/detail."""
    rows = [(name, m) for name, report in reports.items() for m in report.masked[:limit]]
    if not rows:
        return None
    table = Table(title=f"Masked items (first {limit} per modality)")
    for column in ("modality", "item", "reason", "detail"):
        table.add_column(column)
    for name, item in rows:
        table.add_row(name, item.item_id, item.reason, item.detail)
    return table


def _quiet_model_loading() -> None:
    """Hide Hugging Face's per-load weight progress bars; ours shows items/s.

    Without importing transformers (seconds of start-up a cached run does not need): the
    environment variable is read when it is imported, and only then.
    """
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    else:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _load_dataset(path: Path, source: str | None) -> Dataset:
    from fusionrec.data.schema import Dataset

    if (path / "manifest.json").exists() and source is None:
        return Dataset.load(path)
    from fusionrec.data.loaders import LoaderOptions, load_source

    dataset, _ = load_source(source or "movielens", path, LoaderOptions())
    return dataset


def _build_config(
    config_file: Path | None,
    modality: str,
    encoder: str | None,
    batch_size: int | None,
    device: str | None,
    threads: int | None,
    workers: int | None,
) -> FeaturesConfig:
    from fusionrec.config import load_yaml_config
    from fusionrec.features.config import FeaturesConfig

    config = load_yaml_config(config_file, FeaturesConfig) if config_file else FeaturesConfig()
    section = getattr(config, modality, None)
    if encoder is not None and section is not None and hasattr(section, "encoder"):
        section.encoder = encoder
    if batch_size is not None and section is not None and hasattr(section, "batch_size"):
        section.batch_size = batch_size
    if device is not None:
        config.runtime.device = device
    if threads is not None:
        config.runtime.threads = threads
    if workers is not None:
        config.runtime.workers = workers
    return config


@app.command()
@friendly_errors
def features(
    dataset: Annotated[
        Path, typer.Argument(help="A dataset directory (`fusionrec ingest`), or a raw source with --source.")
    ],
    modality: Annotated[
        list[str], typer.Option("--modality", "-m", help="text | image | audio | attributes (repeatable).")
    ],
    encoder: Annotated[
        str | None,
        typer.Option(
            help="Encoder name (minilm, smollm2, efficientnet-lite0, whisper-tiny) or a model path."
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Items per forward pass.")] = None,
    workers: Annotated[int | None, typer.Option(help="Decoding worker processes (images, audio).")] = None,
    threads: Annotated[
        int | None, typer.Option(help="Compute threads (default: cores minus workers).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu (default) or cuda when available.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML with a FeaturesConfig.")] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Feature cache (default ~/.cache/fusionrec/features).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the FeatureSet (default DATASET/features).")
    ] = None,
    source: Annotated[str | None, typer.Option(help="Load DATASET as a raw source of this format.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    ray_address: Annotated[
        str | None, typer.Option("--ray", help="Encode on Ray: local (start a local cluster) or a cluster address.")
    ] = None,
) -> None:
    """Extract item features per modality; reuse cached vectors; report encoded / cached / masked."""
    from fusionrec.features.base import FeatureSet
    from fusionrec.features.extract import MODALITIES, extract_features

    unknown = [m for m in modality if m not in MODALITIES]
    if unknown:
        raise typer.BadParameter(f"unknown modality {unknown}; choose from {', '.join(MODALITIES)}")
    if encoder is not None and len(modality) > 1:
        raise typer.BadParameter("--encoder applies to one modality; pass one --modality with it")
    settings = _build_config(config, modality[0], encoder, batch_size, device, threads, workers)
    if batch_size is not None:
        for name in modality:
            section = getattr(settings, name)
            if hasattr(section, "batch_size"):
                section.batch_size = batch_size
    data = _load_dataset(dataset, source)
    _quiet_model_loading()
    if ray_address is None:
        result = extract_features(data, modality, cache_dir=cache_dir, config=settings, progress=progress)
    else:
        from fusionrec.distributed.cluster import connect
        from fusionrec.distributed.extract import extract_features_ray

        with connect(ray_address):
            result = extract_features_ray(data, modality, cache_dir=cache_dir, config=settings, progress=progress)
    target = out or (dataset / "features" if (dataset / "manifest.json").exists() else Path("features"))
    if (target / "manifest.json").exists():
        existing = FeatureSet.load(target)
        if len(existing) == len(result.features) and list(existing.ids) == list(result.features.ids):
            for name in existing.names:
                if name not in result.features:
                    result.features.add(name, existing[name])
    result.features.save(target)
    console.print(summary_table(result.reports))
    details = masked_table(result.reports)
    if details is not None:
        console.print(details)
    console.print(f"wrote {', '.join(result.features.names)} features to {target}")
