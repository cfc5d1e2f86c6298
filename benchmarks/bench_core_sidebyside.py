"""Side by side: the core before and after a refactor, same split, same seed, same process settings.

    OMP_NUM_THREADS=1 python benchmarks/bench_core_sidebyside.py --old 3ade7fd [--epochs 3]

Checks out ``--old`` into a temporary git worktree and runs this script's ``--child`` part once
with that tree's ``src`` on ``sys.path`` and once with the current tree, each in its own process.
Each child loads ML-1M (ratings >= 3, per-user random 80/10/10, seed 0), fits MostPop, ItemKNN
(k=100) and EASE (l2=500), evaluates them on test (full ranking, @10/@20), and trains BPR-MF and
LightGCN for ``--epochs`` epochs with the same hyper-parameters in both trees (so time per epoch
compares like with like even when defaults changed). The table shows both and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ml-1m"
FACTOR_SETTINGS = {
    "bpr": {"factors": 64, "reg": 5e-3, "batch_size": 8192, "learning_rate": 5e-3},
    "lightgcn": {"factors": 64, "learning_rate": 0.05, "batch_size": 16384},
}


def child(epochs: int) -> dict[str, dict[str, float]]:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from fusionrec.config import SplitConfig
    from fusionrec.data.loaders import load_source
    from fusionrec.data.splits import split_dataset
    from fusionrec.eval.evaluator import Evaluator
    from fusionrec.models.registry import build_model

    dataset, _ = load_source("movielens", DATA)
    split = split_dataset(dataset, SplitConfig(strategy="random", ratios=(0.8, 0.1, 0.1), seed=0, min_rating=3.0))
    evaluator = Evaluator(ks=(10, 20))
    out: dict[str, dict[str, float]] = {}
    for name, config in (("mostpop", {}), ("itemknn", {"k": 100}), ("ease", {"l2": 500.0})):
        model = build_model(name, config)
        start = time.perf_counter()
        model.fit(split.train)
        fit_s = time.perf_counter() - start
        evaluator.evaluate(model, split, on="test")  # warm-up
        start = time.perf_counter()
        result = evaluator.evaluate(model, split, on="test")
        eval_s = time.perf_counter() - start
        out[name] = {**{k: result.mean()[k] for k in ("recall@20", "ndcg@20", "recall@10")}, "fit_s": fit_s, "eval_s": eval_s}
    for name, config in FACTOR_SETTINGS.items():
        fields = set(build_model(name).config_class.model_fields)
        settings = {k: v for k, v in {**config, "epochs": epochs, "patience": epochs, "seed": 0}.items() if k in fields}
        if "min_steps" in fields:
            settings["min_steps"] = 0
        model = build_model(name, settings)
        start = time.perf_counter()
        model.fit(split.train, valid=split.valid)
        total = time.perf_counter() - start
        history = model.history_  # type: ignore[attr-defined]
        out[name] = {
            "s_per_epoch": history.train_time_s / history.n_epochs,
            "valid_s_per_epoch": history.eval_time_s / history.n_epochs,
            "fit_s": total,
            "recall@20": evaluator.evaluate(model, split, on="test").mean()["recall@20"],
        }
    return out


def run_tree(src: Path, epochs: int) -> dict[str, dict[str, float]]:
    env = dict(os.environ, PYTHONPATH=str(src))
    result = subprocess.run(
        [sys.executable, __file__, "--child", "--epochs", str(epochs)], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"child for {src} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--old", default="3ade7fd", help="git revision to compare against")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.epochs)))
        return
    if not DATA.exists():
        print(f"skipped: {DATA} not found (MovieLens-1M is not redistributed)")
        return
    from rich.console import Console
    from rich.table import Table

    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.old], check=True, capture_output=True)
        try:
            old = run_tree(tree / "src", args.epochs)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    new = run_tree(ROOT / "src", args.epochs)
    table = Table(title=f"core side by side: {args.old} vs working tree (ML-1M, test, seed 0)")
    for column in ("model", "quantity", args.old, "now", "now / old"):
        table.add_column(column, justify="right")
    for model, values in new.items():
        for key, value in values.items():
            before = old.get(model, {}).get(key, float("nan"))
            ratio = value / before if before else float("nan")
            table.add_row(model, key, f"{before:.4f}", f"{value:.4f}", f"{ratio:.3f}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
