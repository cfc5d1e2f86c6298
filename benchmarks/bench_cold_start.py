"""Cold-start items and users on ML-1M: every model with cold-start support against random / MostPop.

    OMP_NUM_THREADS=1 python benchmarks/bench_cold_start.py [--items-split runs/ml1m-cold-item]
        [--users-split runs/ml1m-cold-user] [--features runs/ml1m-features] [--only bpr,content]
        [--epochs 40] [--part items|users|both]

Cold items (``fusionrec split --strategy cold_item``: 10 % of the items go whole to valid, 10 % to
test): models are trained on the warm training interactions and early-stopped on a per-user random
10 % of them (the valid part holds only other cold items, which say nothing about the ID side);
then test is evaluated (a) ranking among the test's cold items only (the DropoutNet / CLCRec
protocol; ``fusionrec evaluate --candidates cold``), against random scores, and (b) ranking among
all items, with the share of cold items in the top-20.

Cold users (``--strategy cold_user``): 10 % of the users have all their interactions in test. Each
gets K = 0, 1, 3, 5 random seed interactions (seeded), the rest is the truth; the seeds are
excluded. Scored by :class:`fusionrec.coldstart.ColdUserRecommender` (history models score the
seed row, factor models fold the user in, the profile prior adds age / gender / occupation),
against MostPop. Rows print as they finish; JSON goes to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import scipy.sparse as sp
from rich.console import Console
from rich.table import Table

from fusionrec.coldstart import ColdUserRecommender, ProfilePrior
from fusionrec.data.schema import Interactions
from fusionrec.data.splits import Split
from fusionrec.eval.evaluator import Evaluator, cold_candidates
from fusionrec.features.base import FeatureSet
from fusionrec.models.registry import build_model

console = Console(width=200)
ROOT = Path(__file__).resolve().parents[1]
KS = (20,)
ITEM_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "content": ("content", {}),
    "ease_side": ("ease_side", {}),
    "bpr+map": ("bpr", {}),
    "lightgcn+map": ("lightgcn", {}),
    "freedom+map": ("freedom", {}),
    "vbpr": ("vbpr", {}),
    "two_tower": ("two_tower", {}),
    "two_tower id_dropout=0.5": ("two_tower", {"item_id_dropout": 0.5}),
}
USER_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "ease": ("ease", {}),
    "itemknn": ("itemknn", {}),
    "content": ("content", {}),
    "bpr (fold-in)": ("bpr", {}),
    "two_tower (history)": ("two_tower", {"user_tower": "history"}),
}
SEED_COUNTS = (0, 1, 3, 5)
ITERATIVE = {"bpr", "lightgcn", "freedom", "vbpr", "two_tower"}


class RandomScores:
    """Uniform random scores, seeded by the user index (the cold-item protocol's baseline)."""

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.stack([np.random.default_rng(int(u)).random(self.n_items, dtype=np.float32) for u in users])


class SeededScorer:
    """``score(users)`` of the cold-user recommender from each user's seed row (and profile)."""

    def __init__(self, recommender: ColdUserRecommender, seeds: sp.csr_matrix, profiles: list[dict[str, object]] | None) -> None:
        self.recommender, self.seeds, self.profiles = recommender, seeds, profiles

    def score(self, users: np.ndarray) -> np.ndarray:
        profiles = [self.profiles[int(u)] for u in users] if self.profiles is not None else None
        return self.recommender.score_rows(self.seeds[users], profiles)


def warm_holdout(train: Interactions, share: float = 0.1, seed: int = 0) -> tuple[Interactions, Interactions]:
    """A per-user random ``share`` of the training interactions for early stopping, the rest to fit."""
    held = np.random.default_rng(seed).random(len(train)) < share
    return train.select(~held), train.select(held)


def fit(kind: str, config: dict[str, Any], train: Interactions, valid: Interactions, features: FeatureSet,
        ids: np.ndarray, epochs: int | None) -> tuple[Any, float]:
    config = dict(config)
    if epochs is not None and kind in ITERATIVE:
        config.setdefault("epochs", epochs)
        config.setdefault("min_steps", 0)
    model = build_model(kind, config)
    start = time.perf_counter()
    model.fit(train, features=features, valid=valid, item_ids=ids)
    return model, time.perf_counter() - start


def cold_items(split: Split, features: FeatureSet, names: list[str], epochs: int | None) -> list[dict[str, Any]]:
    evaluator = Evaluator(ks=KS)
    fit_train, fit_valid = warm_holdout(split.train)
    candidates = cold_candidates(split.csr("train"), split.csr("test"))
    console.print(f"cold items: {len(candidates)} test items without training data, "
                  f"{len(split.test)} test interactions; random Recall@20 ~ {20 / len(candidates):.4f}")
    rows: list[dict[str, Any]] = []
    baselines: list[tuple[str, Any, float]] = [("random", RandomScores(split.n_items), 0.0)]
    baselines.append(("mostpop", build_model("mostpop", {}).fit(split.train), 0.0))
    for label, model, seconds in baselines + [(n, None, 0.0) for n in names]:
        if model is None:
            kind, config = ITEM_MODELS[label]
            model, seconds = fit(kind, config, fit_train, fit_valid, features, split.item_map.ids, epochs)
        among_cold = evaluator.evaluate(model, split, "test", candidates=candidates)
        among_all = evaluator.evaluate(model, split, "test")
        row = {
            "model": label, "train_s": seconds,
            "cold_recall@20": among_cold.mean()["recall@20"], "cold_ndcg@20": among_cold.mean()["ndcg@20"],
            "all_recall@20": among_all.mean()["recall@20"], "all_ndcg@20": among_all.mean()["ndcg@20"],
            "cold_share@20": among_all.beyond.get("cold_share", float("nan")),
            "map_l2": getattr(getattr(model, "cold_map", None), "l2", None),
        }
        rows.append(row)
        console.print(f"  {label}: cold-only R@20 {row['cold_recall@20']:.4f} N@20 {row['cold_ndcg@20']:.4f}; "
                      f"all items R@20 {row['all_recall@20']:.4f}, cold share {row['cold_share@20']:.3f} ({seconds:.0f}s)")
    random_recall = rows[0]["cold_recall@20"]
    for row in rows:
        row["x_random"] = row["cold_recall@20"] / random_recall if random_recall else float("nan")
    return rows


def seed_split(test: sp.csr_matrix, k: int, seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``(seeds, truth)``: per user ``k`` random test items as seeds, the rest as truth (vectorised)."""
    coo = test.tocoo()
    rng = np.random.default_rng(seed + k)
    order = np.lexsort((rng.random(len(coo.row)), coo.row))
    rows, cols = coo.row[order], coo.col[order]
    starts = np.searchsorted(rows, rows, side="left")
    position = np.arange(len(rows)) - starts
    pick = position < k
    shape = test.shape
    make = lambda m: sp.csr_matrix((np.ones(int(m.sum()), dtype=np.float32), (rows[m], cols[m])), shape=shape)  # noqa: E731
    return make(pick), make(~pick)


def cold_users(split: Split, features: FeatureSet, names: list[str], epochs: int | None) -> list[dict[str, Any]]:
    evaluator = Evaluator(ks=KS)
    train = split.csr("train")
    test = split.csr("test")
    dataset = split.load_dataset()
    assert dataset.users is not None, "the cold-user part needs the users table (age, gender, occupation)"
    prior = ProfilePrior(columns=["gender", "age", "occupation"]).fit(dataset.users, train)
    profiles = [{c: dataset.users[c].iloc[u] for c in prior.vocab} for u in range(split.n_users)]
    fit_train, fit_valid = warm_holdout(split.train)
    console.print(f"cold users: {len(np.unique(split.test.user))} test users without training data")
    mostpop = ColdUserRecommender(build_model("mostpop", {}).fit(split.train), train, profiles=prior)
    models: list[tuple[str, ColdUserRecommender, float]] = [("mostpop", mostpop, 0.0)]
    for label in names:
        kind, config = USER_MODELS[label]
        model, seconds = fit(kind, config, fit_train, fit_valid, features, split.item_map.ids, epochs)
        models.append((label, ColdUserRecommender(model, train, profiles=prior), seconds))
    rows: list[dict[str, Any]] = []
    for k in SEED_COUNTS:
        seeds, truth = seed_split(test, k)
        for label, recommender, seconds in models:
            for with_profile in (False, True):
                if label == "mostpop" and with_profile and k > 0:
                    continue
                if k == 0 and label != "mostpop":
                    continue  # without seeds every model falls back to popularity or the profile prior
                scorer = SeededScorer(recommender, seeds, profiles if with_profile else None)
                start = time.perf_counter()
                result = evaluator.evaluate_matrices(scorer, truth, seeds, train=train)
                name = ("profile prior" if label == "mostpop" else f"{label} + profile") if with_profile else label
                row = {"model": name, "k": k, "ndcg@20": result.mean()["ndcg@20"], "recall@20": result.mean()["recall@20"],
                       "n_users": result.n_evaluated, "train_s": seconds, "eval_s": time.perf_counter() - start}
                rows.append(row)
                console.print(f"  K={k} {name}: NDCG@20 {row['ndcg@20']:.4f} R@20 {row['recall@20']:.4f} "
                              f"({row['n_users']} users, {row['eval_s']:.1f}s)")
    base = {r["k"]: r["ndcg@20"] for r in rows if r["model"] == "mostpop"}
    for row in rows:
        row["x_mostpop"] = row["ndcg@20"] / base[row["k"]] if base.get(row["k"]) else float("nan")
    return rows


def print_tables(item_rows: list[dict[str, Any]], user_rows: list[dict[str, Any]]) -> None:
    if item_rows:
        table = Table(title="cold items (test): (a) among the cold items only, (b) among all items")
        for column in ("model", "(a) R@20", "(a) N@20", "x random", "(b) R@20", "(b) N@20", "cold share top-20", "train s"):
            table.add_column(column, justify="right")
        for r in item_rows:
            table.add_row(r["model"], f"{r['cold_recall@20']:.4f}", f"{r['cold_ndcg@20']:.4f}", f"{r['x_random']:.1f}",
                          f"{r['all_recall@20']:.4f}", f"{r['all_ndcg@20']:.4f}", f"{r['cold_share@20']:.3f}", f"{r['train_s']:.0f}")
        console.print(table)
    if user_rows:
        table = Table(title="cold users (test): K seed interactions, NDCG@20 (x MostPop)")
        for column in ("model", *[f"K={k}" for k in SEED_COUNTS]):
            table.add_column(column, justify="right")
        for name in dict.fromkeys(r["model"] for r in user_rows):
            cells = {r["k"]: f"{r['ndcg@20']:.4f} ({r['x_mostpop']:.2f}x)" for r in user_rows if r["model"] == name}
            table.add_row(name, *[cells.get(k, "-") for k in SEED_COUNTS])
        console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items-split", type=Path, default=ROOT / "runs" / "ml1m-cold-item")
    parser.add_argument("--users-split", type=Path, default=ROOT / "runs" / "ml1m-cold-user")
    parser.add_argument("--features", type=Path, default=ROOT / "runs" / "ml1m-features")
    parser.add_argument("--part", choices=("items", "users", "both"), default="both")
    parser.add_argument("--only", default="", help="comma-separated model rows (default: all)")
    parser.add_argument("--epochs", type=int, default=None, help="epoch cap of the iterative models (min_steps 0)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-cold-start.json")
    args = parser.parse_args()
    for path in (args.features, *([args.items_split] if args.part != "users" else []), *([args.users_split] if args.part != "items" else [])):
        if not path.exists():
            raise SystemExit(f"needs {path}: `fusionrec split runs/ml1m --strategy cold_item|cold_user --min-rating 3` and `fusionrec features`")
    features = FeatureSet.load(args.features)
    only = [n for n in args.only.split(",") if n]
    item_rows: list[dict[str, Any]] = []
    user_rows: list[dict[str, Any]] = []
    if args.part in ("items", "both"):
        names = [n for n in ITEM_MODELS if not only or n in only]
        item_rows = cold_items(Split.load(args.items_split), features, names, args.epochs)
    if args.part in ("users", "both"):
        names = [n for n in USER_MODELS if not only or n in only]
        user_rows = cold_users(Split.load(args.users_split), features, names, args.epochs)
    print_tables(item_rows, user_rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cold_items": item_rows, "cold_users": user_rows, "epochs": args.epochs}, indent=2, default=float))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
