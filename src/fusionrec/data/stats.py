"""Stats summary of a Dataset: sizes, density, activity quantiles, ratings, time, modality coverage."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
from pydantic import BaseModel
from rich.table import Table

from fusionrec.data.schema import Dataset

QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)


class DatasetStats(BaseModel):
    name: str
    n_users: int
    n_users_active: int
    n_items: int
    n_items_interacted: int
    n_interactions: int
    density: float
    user_count_quantiles: dict[str, float]
    item_count_quantiles: dict[str, float]
    rating_histogram: dict[str, int]
    time_range: tuple[str, str] | None
    modality_coverage: dict[str, float]


def utc_text(seconds: int) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM:SS`` UTC, on any platform (no C ``gmtime``); a time outside
    years 1..9999 (loaders reject those, but a Dataset can be built by hand) as ``<seconds> s (out of range)``."""
    try:
        return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError):
        return f"{seconds} s (out of range)"


def _quantiles(counts: np.ndarray) -> dict[str, float]:
    if len(counts) == 0:
        return {f"q{int(q * 100)}": 0.0 for q in QUANTILES}
    values = np.quantile(counts, QUANTILES)
    return {f"q{int(q * 100)}": float(v) for q, v in zip(QUANTILES, values, strict=True)}


def _present(column: pd.Series) -> np.ndarray:
    """Rows where a modality value is present: not null and, for strings/lists, not empty."""
    present = column.notna().to_numpy().copy()
    if pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column):
        lengths = column.map(lambda v: len(v) if hasattr(v, "__len__") else 1, na_action="ignore")
        present &= lengths.fillna(0).to_numpy() > 0
    return present


def modality_coverage(dataset: Dataset) -> dict[str, float]:
    """Share of catalog items that have each modality (text: any text column non-empty)."""
    items, cols = dataset.items, dataset.item_columns
    n = max(len(items), 1)
    coverage: dict[str, float] = {}
    if cols.text:
        has_text = np.zeros(len(items), dtype=bool)
        for name in cols.text:
            column = items[name]
            has_text |= _present(column.astype(str).str.strip().where(column.notna()))
        coverage["text"] = float(has_text.sum() / n)
    for label, path_column in (("image", cols.image), ("audio", cols.audio)):
        if path_column:
            coverage[label] = float(_present(items[path_column]).sum() / n)
    for name in (*cols.categorical, *cols.multi_valued, *cols.numeric):
        coverage[f"attr:{name}"] = float(_present(items[name]).sum() / n)
    return coverage


def dataset_stats(dataset: Dataset) -> DatasetStats:
    """Compute the summary; all counts are vectorised (bincount), no loop over interactions."""
    inter = dataset.interactions
    per_user = np.bincount(inter.user, minlength=dataset.n_users)
    per_item = np.bincount(inter.item, minlength=dataset.n_items)
    active_users, active_items = per_user[per_user > 0], per_item[per_item > 0]
    ratings, counts = np.unique(inter.weight, return_counts=True)
    histogram = {f"{r:g}": int(c) for r, c in zip(ratings, counts, strict=True)}
    if len(histogram) > 20:  # continuous weights: bin them
        hist, edges = np.histogram(inter.weight, bins=10)
        histogram = {f"[{a:.3g}, {b:.3g})": int(c) for a, b, c in zip(edges[:-1], edges[1:], hist, strict=True)}
    time_range = None
    if inter.timestamp is not None and len(inter):
        time_range = (utc_text(int(inter.timestamp.min())), utc_text(int(inter.timestamp.max())))
    n_active_u, n_active_i = len(active_users), len(active_items)
    density = len(inter) / (n_active_u * n_active_i) if n_active_u and n_active_i else 0.0
    return DatasetStats(
        name=dataset.name,
        n_users=dataset.n_users,
        n_users_active=n_active_u,
        n_items=dataset.n_items,
        n_items_interacted=n_active_i,
        n_interactions=len(inter),
        density=density,
        user_count_quantiles=_quantiles(active_users),
        item_count_quantiles=_quantiles(active_items),
        rating_histogram=histogram,
        time_range=time_range,
        modality_coverage=modality_coverage(dataset),
    )


def stats_table(stats: DatasetStats) -> Table:
    """A rich table of the summary, for the CLI."""
    table = Table(title=f"Dataset: {stats.name}")
    table.add_column("statistic")
    table.add_column("value", overflow="fold")
    table.add_row("users (with interactions / total)", f"{stats.n_users_active:,} / {stats.n_users:,}")
    table.add_row("items (with interactions / catalog)", f"{stats.n_items_interacted:,} / {stats.n_items:,}")
    table.add_row("interactions", f"{stats.n_interactions:,}")
    table.add_row("density", f"{stats.density:.4%}")
    for label, quantiles in (("per-user count", stats.user_count_quantiles), ("per-item count", stats.item_count_quantiles)):
        table.add_row(f"{label} min/25/50/75/90/max", " / ".join(f"{v:g}" for v in quantiles.values()))
    total = max(stats.n_interactions, 1)
    table.add_row(
        "ratings",
        "  ".join(f"{r}: {c:,} ({c / total:.1%})" for r, c in stats.rating_histogram.items()),
    )
    table.add_row("time range (UTC)", " .. ".join(stats.time_range) if stats.time_range else "no timestamps")
    for modality, share in stats.modality_coverage.items():
        table.add_row(f"coverage {modality}", f"{share:.2%}")
    return table
