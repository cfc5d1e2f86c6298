"""Evaluation reports: rich tables for people, JSON and CSV for scripts."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from fusionrec.eval.evaluator import EvalResult


def _fmt(value: float, digits: int = 4) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def default_keys(result: EvalResult) -> list[str]:
    """Recall, NDCG, precision, hit rate at every cut-off, then the rest."""
    preferred = [f"{m}@{k}" for m in ("recall", "ndcg", "precision", "hit_rate") for k in result.ks]
    return [k for k in preferred if k in result.per_user] + [
        k for k in result.per_user if k not in preferred and k.split("@")[0] in ("map", "mrr", "f1", "auc")
    ]


def metrics_table(
    results: Mapping[str, EvalResult],
    keys: Sequence[str] | None = None,
    ci: str | None = "t",
    extra_columns: Mapping[str, Mapping[str, str]] | None = None,
    title: str | None = None,
) -> Table:
    """One row per model: metric means (± half-width of the 95 % interval), users evaluated,
    evaluation time and any ``extra_columns`` (column -> model -> text)."""
    first = next(iter(results.values()), None)
    keys = list(keys) if keys is not None else (default_keys(first) if first else [])
    table = Table(title=title)
    table.add_column("model", style="bold")
    for key in keys:
        table.add_column(key, justify="right")
    for column in extra_columns or {}:
        table.add_column(column, justify="right")
    table.add_column("users", justify="right")
    table.add_column("eval s", justify="right")
    for name, result in results.items():
        means = result.mean()
        intervals = result.confidence_intervals(method=ci) if ci else {}
        cells = []
        for key in keys:
            cell = _fmt(means.get(key, float("nan")))
            if key in intervals and not math.isnan(intervals[key][0]):
                cell += f" ±{(intervals[key][1] - intervals[key][0]) / 2:.4f}"
            cells.append(cell)
        cells += [(extra_columns or {})[c].get(name, "") for c in extra_columns or {}]
        cells += [str(result.n_evaluated), f"{result.time_s:.2f}"]
        table.add_row(name, *cells)
    return table


def groups_table(result: EvalResult, by: str = "activity", keys: Sequence[str] | None = None) -> Table:
    """Breakdown of one result by user activity (``by="activity"``) or item popularity (``"popularity"``)."""
    groups = result.by_user_activity() if by == "activity" else result.by_item_popularity()
    if keys is None:
        keys = [f"recall@{k}" for k in result.ks] + ([f"ndcg@{k}" for k in result.ks] if by == "activity" else [])
    table = Table(title=f"by {'user activity' if by == 'activity' else 'item popularity (head = top 20 %, cold = no training data)'}")
    table.add_column("group", style="bold")
    table.add_column("users", justify="right")
    for key in keys:
        table.add_column(key, justify="right")
    for label, row in groups.items():
        table.add_row(label, str(int(row["n_users"])), *[_fmt(row.get(key, float("nan"))) for key in keys])
    return table


def beyond_table(results: Mapping[str, EvalResult]) -> Table:
    """Coverage, novelty, average popularity and Gini of each model's lists."""
    table = Table(title="beyond accuracy")
    names = ["coverage", "novelty", "avg_popularity", "gini"]
    names += [n for n in ("ild", "cold_share") if any(n in r.beyond for r in results.values())]
    table.add_column("model", style="bold")
    for name in names:
        table.add_column(name, justify="right")
    for model, result in results.items():
        table.add_row(model, *[_fmt(result.beyond.get(n, float("nan")), 3) for n in names])
    return table


def _clean(value: Any) -> Any:
    """JSON-safe: NaN -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def to_json(result: EvalResult, ci_method: str = "t") -> str:
    """The summary of one result (means, intervals, counts, groups) as JSON text."""
    return json.dumps(_clean(result.summary(ci_method=ci_method)), indent=2)


def write_json(results: Mapping[str, EvalResult], path: str | Path, ci_method: str = "t") -> Path:
    out = Path(path)
    out.write_text(json.dumps({n: _clean(r.summary(ci_method=ci_method)) for n, r in results.items()}, indent=2))
    return out


def write_csv(results: Mapping[str, EvalResult], path: str | Path, ci_method: str = "t") -> Path:
    """Long format: ``model, metric, mean, ci_low, ci_high, n_users``."""
    out = Path(path)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "part", "metric", "mean", "ci_low", "ci_high", "n_users"])
        for name, result in results.items():
            intervals = result.confidence_intervals(method=ci_method)
            for key, mean in result.mean().items():
                low, high = intervals[key]
                writer.writerow([name, result.part, key, mean, low, high, result.n_evaluated])
            for key, value in result.beyond.items():
                writer.writerow([name, result.part, key, value, "", "", result.n_evaluated])
    return out


def write_per_user_csv(result: EvalResult, path: str | Path) -> Path:
    """One row per evaluated user with every metric (for external significance tests)."""
    out = Path(path)
    keys = list(result.per_user)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "train_items", *keys])
        columns = [result.per_user[k] for k in keys]
        for row, user in enumerate(result.users):
            writer.writerow([int(user), int(result.user_activity[row]), *[float(c[row]) for c in columns]])
    return out
