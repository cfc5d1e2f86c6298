"""The iterative models with their *default* hyper-parameters, small sparse data and ML-1M, next to MostPop.

    OMP_NUM_THREADS=2 python benchmarks/bench_defaults.py [--datasets small,ml1m] [--models bpr,lightgcn]

Checks that the defaults need no tuning at either end of the size range:

- ``small``: ml-latest-small, ratings >= 3.5, a random quarter of those interactions (seed 0), then
  5-core -- about 450 users, 860 items, 10k interactions, so with a fixed batch of thousands an
  epoch would be one or two optimiser steps (like an Amazon 5-core category);
- ``ml1m``: MovieLens-1M, ratings >= 3.

Both split per user at random 80/10/10 (seed 0); early stopping on valid Recall@20; test
Recall@20 / NDCG@20 by full ranking (train and valid items excluded). ``train s`` includes the
validations, ``s/epoch`` is the training part only. Skips with a message when ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from fusionrec.config import SplitConfig
from fusionrec.data.loaders import load_source
from fusionrec.data.splits import Split, split_dataset
from fusionrec.experiments.runner import train_and_evaluate

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
console = Console(width=160)


def small_split(root: Path) -> Split:
    dataset, _ = load_source("movielens", root / "ml-latest-small")
    inter = dataset.interactions
    inter = inter.select(inter.weight >= 3.5)
    inter = inter.select(np.random.default_rng(0).random(len(inter)) < 0.25)
    dataset = dataclasses.replace(dataset, interactions=inter)
    return split_dataset(dataset, SplitConfig(strategy="random", ratios=(0.8, 0.1, 0.1), seed=0, k_core=5))


def ml1m_split(root: Path) -> Split:
    dataset, _ = load_source("movielens", root / "ml-1m")
    return split_dataset(dataset, SplitConfig(strategy="random", ratios=(0.8, 0.1, 0.1), seed=0, min_rating=3.0))


DATASETS = {"small": ("ml-latest-small", small_split), "ml1m": ("ml-1m", ml1m_split)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="small,ml1m")
    parser.add_argument("--models", default="bpr,lightgcn")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    if not SHARED.exists():
        console.print(f"[yellow]skipped: {SHARED} is absent (the shared real data sets)[/]")
        return 0
    table = Table(title="defaults vs MostPop (test, full ranking)")
    for column in ("dataset", "train pairs", "model", "R@20", "N@20", "MostPop R@20", "epochs (best)", "steps", "train s", "s/epoch"):
        table.add_column(column, justify="left" if column in ("dataset", "model") else "right")
    for key in args.datasets.split(","):
        folder, build = DATASETS[key]
        if not (SHARED / folder).exists():
            console.print(f"[yellow]{key}: skipped, {SHARED / folder} is absent[/]")
            continue
        split = build(SHARED)
        pop = train_and_evaluate("mostpop", split, k=(20,)).result.mean()["recall@20"]
        for name in args.models.split(","):
            run = train_and_evaluate(name, split, k=(20,))
            mean = run.result.mean()
            history = getattr(run.model, "history_", None)
            table.add_row(
                key,
                f"{len(split.train):,}",
                name,
                f"{mean['recall@20']:.4f}",
                f"{mean['ndcg@20']:.4f}",
                f"{pop:.4f}",
                f"{run.n_epochs} ({run.best_epoch})",
                f"{history.n_steps:,}" if history is not None else "-",
                f"{run.train_time_s:.1f}",
                f"{history.time_per_epoch_s:.2f}" if history is not None else "-",
            )
            console.print(f"{key} {name}: R@20 {mean['recall@20']:.4f} (MostPop {pop:.4f}), {run.train_time_s:.1f}s")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
