"""The ablation's files: ``ablation.json``, ``ablation.csv`` and the ``ablation.png`` bar chart."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np

from fusionrec.experiments.ablation import REFERENCE, AblationResult

log = logging.getLogger(__name__)

def write_outputs(result: AblationResult, out_dir: str | Path) -> dict[str, Path]:
    """``ablation.json``, ``ablation.csv`` and (when matplotlib is installed) ``ablation.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "ablation.json", "csv": out / "ablation.csv"}
    paths["json"].write_text(json.dumps(result.to_dict(), indent=2))
    write_csv(result, paths["csv"])
    png = write_plot(result, out / "ablation.png")
    if png is not None:
        paths["png"] = png
    return paths


def write_csv(result: AblationResult, path: Path) -> Path:
    """One row per variant: labels, status, modalities, per metric mean/CI/delta/delta CI, time, fingerprints."""
    keys = result.metric_keys()
    parts = ("", "_low", "_high", "_delta", "_delta_low", "_delta_high")
    names = ("mean", "low", "high", "delta", "delta_low", "delta_high")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", "labels", "status", "reason", "modalities", "n_users", "train_time_s",
                         *[f"{k}{p}" for k in keys for p in parts], "encoders", "fingerprints"])
        for row in result.rows:
            values = [result.cells(row, k) for k in keys]
            writer.writerow([
                row.variant, "|".join(row.labels), row.status, row.reason or "", "+".join(row.modalities),
                row.result.n_evaluated if row.result is not None else "",
                "" if row.train_time_s is None else f"{row.train_time_s:.3f}",
                *["" if np.isnan(c[n]) else repr(float(c[n])) for c in values for n in names],
                json.dumps(row.encoders), json.dumps(row.fingerprints),
            ])
    return path


def write_plot(result: AblationResult, path: Path) -> Path | None:
    """Horizontal bars of ``result.metric`` per variant with 95 % error bars (n/a rows labelled)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: %s not written", path)
        return None
    rows = result.rows
    cells = [result.cells(r, result.metric) for r in rows]
    means = np.array([c["mean"] for c in cells])
    ok = ~np.isnan(means)
    err = np.array([[c["mean"] - c["low"], c["high"] - c["mean"]] for c in cells]).T
    y = np.arange(len(rows))[::-1]
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.42 * len(rows)))
    colors = ["#4c72b0" if REFERENCE in r.labels else "#dd8452" if r.variant.startswith("all[")
              else "#55a868" if r.modalities else "#8c8c8c" for r in rows]
    ax.barh(y[ok], means[ok], xerr=np.nan_to_num(err[:, ok]), color=np.array(colors)[ok], capsize=3)
    for yi, row, shown in zip(y, rows, ok, strict=True):
        if not shown:
            ax.text(0, yi, f"  {row.status}: {row.reason or ''}"[:90], va="center", fontsize=8, color="#8c8c8c")
    reference = result.cells(result.reference, result.metric)["mean"]
    ax.axvline(reference, color="#4c72b0", linestyle="--", linewidth=1)
    ax.set_yticks(y, [" = ".join(r.labels) for r in rows], fontsize=8)
    ax.set_xlabel(f"test {result.metric} (error bars: {result.level:.0%} interval)")
    ax.set_title(f"{result.model}: modality ablation")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
