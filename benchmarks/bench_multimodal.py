"""Multimodal models on ML-1M against the best CF model, with cornac's VBPR side by side.

    OMP_NUM_THREADS=2 python benchmarks/bench_multimodal.py [--split runs/ml1m-split]
        [--features runs/ml1m-features] [--only vbpr,freedom] [--fusers all|mean,attention] [--quick]

Protocol (the baselines' benchmark): ratings >= 3 are positives, per-user random 80/10/10 split
(seed 0), full ranking over all items with training (and, on test, valid) items excluded,
early stopping and hyper-parameter choice on valid Recall@20, test reported once. Features: MiniLM
plot text, EfficientNet-Lite0 posters, attributes (``fusionrec features`` / ``make demo``).

Every fusionrec model sees the same FeatureSet; cornac's VBPR gets the same three modalities, each
row L2-normalised and concatenated (its single ``item_image`` matrix), on the same split, scored by
our evaluator. Peak memory is the resident-set growth while fitting. Rows are printed as they
finish and written to ``--out`` (JSON) so a long run leaves its results behind.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from bench_baselines import PeakRSS, PeerScores, Row, _f, _uir
from fusionrec.data.splits import Split
from fusionrec.eval.evaluator import Evaluator
from fusionrec.experiments.runner import grid_search
from fusionrec.features.base import FeatureSet
from fusionrec.fusion.config import FUSER_KINDS
from fusionrec.fusion.vectors import unit_rows
from fusionrec.models.registry import build_model

console = Console(width=220)
ROOT = Path(__file__).resolve().parents[1]
KS = (10, 20)
BUDGET_S = 900.0
PEER_BEST_MULTIMODAL = 0.218  # FREEDOM in MMRec, 900 s on 2 cores (the measurement)


def load_inputs(split_dir: Path, features_dir: Path) -> tuple[Split, FeatureSet]:
    if not split_dir.exists() or not features_dir.exists():
        raise SystemExit(
            f"needs {split_dir} and {features_dir}: run `make demo` (ML-1M) or `fusionrec split` and "
            "`fusionrec features` first"
        )
    split = Split.load(split_dir)
    features = FeatureSet.load(features_dir)
    features.check_aligned(split.item_map.ids)
    return split, features


def fit_ours(name: str, config: dict[str, Any], split: Split, features: FeatureSet | None, evaluator: Evaluator,
             grid: dict[str, list[Any]] | None = None, label: str | None = None) -> Row:
    row = Row("fusionrec", label or name)
    try:
        with PeakRSS() as memory:
            if grid:
                tuned = grid_search(name, split, grid, metric="recall@20", k=KS, base_config=config, features=features)
                model, row.train_s = tuned.best_run.model, sum(t.train_time_s for t in tuned.trials)
                row.params = config | tuned.best.params
                row.note = "grid (total train s) " + ", ".join(f"{t.params}: {t.valid_value:.4f}" for t in tuned.trials)
            else:
                model = build_model(name, config)
                start = time.perf_counter()
                model.fit(split.train, features=features, valid=split.valid, item_ids=split.item_map.ids)
                row.train_s, row.params = time.perf_counter() - start, config
        row.memory_mb = memory.delta_mb
        history = getattr(model, "history_", None)
        if history is not None:
            row.epochs = f"{history.n_epochs} (best {history.best_epoch}{', stopped' if history.stopped_early else ''})"
            row.per_epoch_s = history.time_per_epoch_s
            best = history.best_value if history.best_value is not None else float("nan")
            row.note = f"best valid {history.metric} {best:.4f}; " + row.note
        row.result = evaluator.evaluate(model, split, on="test")
        row.eval_s = row.result.time_s
    except Exception as exc:
        row.note = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
        traceback.print_exc(file=sys.stderr)
    return row


def cornac_vbpr(split: Split, features: FeatureSet, evaluator: Evaluator, budget_s: float, quick: bool) -> Row:
    """cornac's VBPR on the same split and modalities (concatenated unit rows), epochs sized to the budget."""
    row = Row("cornac", "vbpr")
    try:
        import cornac
        from cornac.data import Dataset as CornacDataset
        from cornac.data import ImageModality
    except Exception as exc:
        row.note = f"not importable: {exc}"
        return row
    matrix = np.concatenate(
        [unit_rows(m.matrix, m.present) for m in features.modalities.values()], axis=1
    ).astype(np.float32)
    train_set = CornacDataset.from_uir(_uir(split.train), seed=0)
    modality = ImageModality(features=matrix, ids=[str(i) for i in range(split.n_items)], normalized=False)
    modality.build(id_map=train_set.iid_map)
    train_set.add_modalities(item_image=modality)
    user_of = np.array([train_set.uid_map.get(str(u), -1) for u in range(split.n_users)])
    item_of = np.array([train_set.iid_map.get(str(i), -1) for i in range(split.n_items)])
    settings = {"k": 32, "k2": 32, "batch_size": 1024, "learning_rate": 0.005, "lambda_w": 0.01, "lambda_b": 0.01,
                "lambda_e": 0.0}
    try:
        probe = cornac.models.VBPR(n_epochs=1, verbose=False, seed=0, **settings)
        start = time.perf_counter()
        probe.fit(train_set)
        per_epoch = time.perf_counter() - start
        epochs = 1 if quick else max(1, int(budget_s / per_epoch) - 1)
        model = cornac.models.VBPR(n_epochs=epochs, verbose=False, seed=0, **settings)
        with PeakRSS() as memory:
            start = time.perf_counter()
            model.fit(train_set)
            row.train_s = time.perf_counter() - start
        row.memory_mb, row.per_epoch_s, row.epochs = memory.delta_mb, row.train_s / epochs, str(epochs)
        row.params = settings | {"n_epochs": epochs}
        row.note = f"epochs sized to the {budget_s:.0f} s budget from a 1-epoch probe ({per_epoch:.1f} s); no early stopping in cornac"

        def score(users: np.ndarray) -> np.ndarray:
            return np.stack([model.score(int(u)) for u in users])

        row.result = evaluator.evaluate(PeerScores(score, user_of, item_of), split, on="test")
        row.eval_s = row.result.time_s
    except Exception as exc:
        row.note = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
        traceback.print_exc(file=sys.stderr)
    return row


def report(rows: list[Row], ease_ndcg: float | None) -> None:
    table = Table(title="ML-1M (ratings >= 3), random 80/10/10, full ranking, test; ± = 95 % t half-width")
    for column in ("library", "model", "recall@10", "recall@20", "ndcg@10", "ndcg@20", "x EASE", "train s",
                   "epochs", "s/epoch", "peak MB", "in budget"):
        table.add_column(column, justify="left" if column in ("library", "model") else "right")
    for row in rows:
        cells = ["-"] * 5
        if row.result is not None:
            means, ci = row.result.mean(), row.result.confidence_intervals()
            cells = [f"{means[k]:.4f}±{(ci[k][1] - ci[k][0]) / 2:.4f}" for k in ("recall@10", "recall@20", "ndcg@10", "ndcg@20")]
            cells.append(f"{means['ndcg@20'] / ease_ndcg:.3f}" if ease_ndcg else "-")
        fits = "-" if row.train_s != row.train_s else ("yes" if row.train_s <= BUDGET_S else "no")
        table.add_row(row.library, row.model, *cells, _f(row.train_s, 1), row.epochs, _f(row.per_epoch_s, 2),
                      _f(row.memory_mb, 0), fits)
    console.print(table)
    for row in rows:
        if row.note:
            console.print(f"[bold]{row.library}/{row.model}[/] {row.note}")


def dump(rows: list[Row], path: Path) -> None:
    out = []
    for row in rows:
        entry: dict[str, Any] = {"library": row.library, "model": row.model, "train_s": row.train_s, "epochs": row.epochs,
                                 "per_epoch_s": row.per_epoch_s, "memory_mb": row.memory_mb, "note": row.note,
                                 "params": row.params}
        if row.result is not None:
            entry["test"] = row.result.mean()
            entry["ci95"] = {k: list(v) for k, v in row.result.confidence_intervals().items()}
        out.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=float))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", type=Path, default=ROOT / "runs" / "ml1m-split")
    parser.add_argument("--features", type=Path, default=ROOT / "runs" / "ml1m-features")
    parser.add_argument("--only", default="", help="comma-separated rows to run (ease, content, ease_side, vbpr, "
                        "freedom, two_tower, fusers, cornac)")
    parser.add_argument("--fusers", default="all", help="fuser kinds for the two_tower sweep (all or a list)")
    parser.add_argument("--sweep-epochs", type=int, default=8, help="epoch cap of each run in the fuser sweep")
    parser.add_argument("--quick", action="store_true", help="1-2 epochs per model (a smoke run)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-multimodal.json")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    split, features = load_inputs(args.split, args.features)
    console.print(f"split {args.split}: {split.n_users} users, {split.n_items} items, train {len(split.train)}; "
                  f"features {', '.join(f'{n} {m.dim}-d ({m.provenance.encoder})' for n, m in features.modalities.items())}")
    wanted = set(filter(None, args.only.split(",")))

    def run(name: str) -> bool:
        return not wanted or name in wanted

    quick = {"epochs": 2, "min_steps": 0} if args.quick else {}
    evaluator = Evaluator(ks=KS)
    rows: list[Row] = []

    def add(row: Row) -> None:
        rows.append(row)
        value = row.result.mean()["ndcg@20"] if row.result is not None else float("nan")
        console.print(f"{row.library}/{row.model}: test ndcg@20 {value:.4f}, train {row.train_s:.1f} s {row.note[:120]}")
        dump(rows, args.out)

    ease_ndcg = None
    if run("ease"):
        add(fit_ours("ease", {}, split, None, evaluator, grid={"l2": [200.0, 500.0, 1000.0]}))
        ease_ndcg = rows[-1].result.mean()["ndcg@20"] if rows[-1].result is not None else None
    if run("content"):
        add(fit_ours("content", {}, split, features, evaluator))
    if run("ease_side"):
        add(fit_ours("ease_side", {"l2": 500.0}, split, features, evaluator, grid={"side_weight": [3.0, 10.0, 30.0]}))
    for name in ("vbpr", "freedom", "two_tower"):
        if run(name):
            add(fit_ours(name, {"verbose": True} | quick, split, features, evaluator))
    if run("fusers"):
        kinds = FUSER_KINDS if args.fusers == "all" else tuple(args.fusers.split(","))
        for kind in kinds:
            sweep = {"fuser": {"kind": kind}, "epochs": args.sweep_epochs, "min_steps": 0}
            add(fit_ours("two_tower", sweep | quick, split, features, evaluator,
                         label=f"two_tower[{kind}]"))
    if run("cornac"):
        add(cornac_vbpr(split, features, evaluator, BUDGET_S, args.quick))
    report(rows, ease_ndcg)
    console.print(f"goals: best multimodal >= 1.10 x EASE ndcg@20; every multimodal model > {PEER_BEST_MULTIMODAL} "
                  f"(the best peer multimodal result) within {BUDGET_S:.0f} s. Results in {args.out}")


if __name__ == "__main__":
    main()
