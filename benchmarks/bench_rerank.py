"""Diversity re-ranking on ML-1M: the accuracy / diversity / coverage trade-off of MMR and the greedy DPP.

    OMP_NUM_THREADS=1 python benchmarks/bench_rerank.py [--split runs/ml1m-split]
        [--features runs/ml1m-features] [--model ease --set l2=500] [--space fused]
        [--candidates 200] [--grid 0,0.1,...,0.9] [--quick] [--out runs/bench-rerank]

Protocol (the baselines' benchmark): ratings >= 3 are positives, per-user random 80/10/10 split,
test users ranked against every item with train and valid items excluded. The model (EASE,
l2 = 500 by default: the best model on this split) gives each test user its top ``--candidates``
items; :func:`fusionrec.rerank.rerank` picks 20 of them with MMR and the DPP at each trade-off
``λ`` of ``--grid`` (λ = 0 is the model's own list), similarity = cosine in ``--space`` (fused:
every modality, centred; see :mod:`fusionrec.rerank.space`). Per point:

- NDCG@20 and Recall@20 (:mod:`fusionrec.ranking.metrics`, the evaluator's functions and truth:
  held-out test items minus excluded ones; λ = 0 equals ``fusionrec evaluate``);
- intra-list diversity ``1 - mean pairwise cosine`` (:func:`fusionrec.eval.beyond.intra_list_diversity`)
  in two spaces: the **genre** multi-hot columns of the attributes modality (raw, uncentred: an
  interpretable measure the re-ranker does not optimise directly unless ``--space attributes``) and
  the **fused** centred content space (the one the re-ranker uses by default);
- item coverage of all the lists (:func:`fusionrec.eval.beyond.catalog_coverage`);
- re-ranking time per user in ms: wall time of re-ranking every test user (batches of 512), divided
  by the number of users; the one-off item-item similarity matrix is timed apart.

Measured (6038 test users, EASE l2=500, top-200, fused space): λ = 0 gives NDCG@20 0.3019; at
λ = 0.5 MMR 0.2892 / DPP 0.2935 with genre ILD 0.664 -> 0.710 / 0.707; at λ = 0.9 MMR 0.1749 / DPP
0.2204, genre ILD 0.798 both; 0.05-0.3 ms per user. In the attributes space (27 dims, many items
with identical rows) the DPP jumps already at λ = 0.1 (NDCG@20 0.281, genre ILD 0.753): a
duplicate's residual is the jitter, so its log-det gain ``log(1e-6)`` outweighs any relevance.

Writes ``rerank.csv``, ``rerank.json`` and ``rerank.png`` (NDCG@20 against each diversity measure
and against coverage, one curve per method, points labelled by λ) under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

from bench_multimodal import load_inputs
from fusionrec.eval.beyond import catalog_coverage, intra_list_diversity
from fusionrec.features.base import FeatureSet
from fusionrec.models.registry import build_model
from fusionrec.ranking.heldout import HeldOut
from fusionrec.ranking.metrics import hit_matrix, ranking_metrics
from fusionrec.rerank import ItemSimilarity, item_space, rerank

console = Console(width=200)
ROOT = Path(__file__).resolve().parents[1]
K = 20
BATCH = 512


@dataclass
class Point:
    method: str
    diversity: float
    ndcg: float
    recall: float
    ild_genres: float
    ild_fused: float
    coverage: float
    ms_per_user: float


def genre_matrix(features: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
    """``(n_items, n_genres)`` multi-hot genre columns of the attributes modality and its present-mask."""
    attributes = features["attributes"]
    columns = attributes.provenance.extra.get("columns", [])
    keep = [i for i, name in enumerate(columns) if str(name).startswith("genres=")]
    if not keep:
        raise SystemExit("the attributes modality has no genres=... columns: cannot measure genre diversity")
    return attributes.matrix[:, keep], attributes.present


def candidates(model: object, heldout: HeldOut, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n_users, n)`` top candidates and scores of the evaluated users, excluded items masked."""
    parts = [
        model.recommend(heldout.users[lo : lo + 2048], k=n, exclude=heldout.exclude)  # type: ignore[attr-defined]
        for lo in range(0, len(heldout.users), 2048)
    ]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def measure(
    method: str,
    diversity: float,
    top: np.ndarray,
    elapsed_s: float,
    truth: object,
    genres: tuple[np.ndarray, np.ndarray],
    fused: np.ndarray,
) -> Point:
    hits = hit_matrix(top, truth)  # type: ignore[arg-type]
    n_rel = np.diff(truth.indptr)  # type: ignore[attr-defined]
    metrics = ranking_metrics(hits, n_rel, (K,), ("ndcg", "recall"))
    return Point(
        method=method,
        diversity=diversity,
        ndcg=float(metrics[f"ndcg@{K}"].mean()),
        recall=float(metrics[f"recall@{K}"].mean()),
        ild_genres=float(np.nanmean(intra_list_diversity(top, genres[0], genres[1]))),
        ild_fused=float(np.nanmean(intra_list_diversity(top, fused))),
        coverage=catalog_coverage(top, fused.shape[0]),
        ms_per_user=1000.0 * elapsed_s / max(len(top), 1),
    )


def report(points: list[Point], title: str) -> None:
    table = Table(title=title)
    for column in (
        "method",
        "λ",
        f"ndcg@{K}",
        f"recall@{K}",
        "ILD genres",
        "ILD fused",
        "coverage",
        "ms/user",
    ):
        table.add_column(column, justify="left" if column == "method" else "right")
    for p in points:
        table.add_row(
            p.method,
            f"{p.diversity:.2f}",
            f"{p.ndcg:.4f}",
            f"{p.recall:.4f}",
            f"{p.ild_genres:.4f}",
            f"{p.ild_fused:.4f}",
            f"{p.coverage:.4f}",
            f"{p.ms_per_user:.3f}",
        )
    console.print(table)


def plot(points: list[Point], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        console.print("matplotlib is not installed: no plot written")
        return False
    panels = (("ild_genres", "intra-list diversity (genres)"), ("ild_fused", "intra-list diversity (fused content)"),
              ("coverage", "item coverage"))  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.3))
    for axis, (key, label) in zip(axes, panels, strict=True):
        for method, marker in (("mmr", "o"), ("dpp", "s")):
            mine = [p for p in points if p.method == method]
            if not mine:
                continue
            xs, ys = [getattr(p, key) for p in mine], [p.ndcg for p in mine]
            axis.plot(xs, ys, marker=marker, label=method.upper())
            for p, x, y in zip(mine, xs, ys, strict=True):
                axis.annotate(
                    f"{p.diversity:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7
                )
        axis.set_xlabel(label)
        axis.set_ylabel(f"NDCG@{K}")
        axis.grid(alpha=0.3)
        axis.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", type=Path, default=ROOT / "runs" / "ml1m-split")
    parser.add_argument("--features", type=Path, default=ROOT / "runs" / "ml1m-features")
    parser.add_argument(
        "--model", default="ease", help="registry name of the model that gives the candidates"
    )
    parser.add_argument("--set", dest="set_values", action="append", default=None,
                        help="model hyper-parameter key=value (repeatable; default for ease: l2=500)")  # fmt: skip
    parser.add_argument("--space", default="fused", help="re-ranking space: fused, a modality name, or model")
    parser.add_argument("--candidates", type=int, default=200, help="the model's top-N that is re-ranked")
    parser.add_argument("--grid", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9", help="trade-offs λ")
    parser.add_argument("--methods", default="mmr,dpp")
    parser.add_argument("--quick", action="store_true", help="1000 test users, 100 candidates, 4 trade-offs")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-rerank")
    args = parser.parse_args()

    split, features = load_inputs(args.split, args.features)
    values = [
        item.split("=", 1) for item in (args.set_values or (["l2=500"] if args.model == "ease" else []))
    ]
    config = {key: yaml.safe_load(raw) for key, raw in values}
    grid = [float(v) for v in args.grid.split(",") if v]
    n_candidates = args.candidates
    if args.quick:
        grid, n_candidates = [0.0, 0.3, 0.6, 0.9], min(n_candidates, 100)
    methods = [m for m in args.methods.split(",") if m]

    start = time.perf_counter()
    model = build_model(args.model, config)
    model.fit(split.train, features=features, valid=split.valid, item_ids=split.item_map.ids)
    fit_s = time.perf_counter() - start
    train = split.csr("train")
    heldout = HeldOut.build(split.csr("test"), (train + split.csr("valid")).tocsr())
    if args.quick:
        heldout = HeldOut(
            heldout.truth, heldout.exclude, heldout.users[:: max(1, len(heldout.users) // 1000)]
        )
    start = time.perf_counter()
    items, scores = candidates(model, heldout, n_candidates)
    candidates_s = time.perf_counter() - start
    truth = heldout.truth[heldout.users]

    start = time.perf_counter()
    similarity = ItemSimilarity(item_space(args.space, features, model))
    similarity_s = time.perf_counter() - start
    fused = item_space("fused", features)
    genres = genre_matrix(features)
    console.print(
        f"{args.model} {config} fitted in {fit_s:.1f} s; top-{n_candidates} of {len(heldout.users)} test users in "
        f"{candidates_s:.1f} s; {args.space} similarity ({similarity.unit.shape[1]} dims, "
        f"{similarity.n_items}^2 matrix) in {similarity_s:.1f} s"
    )

    points: list[Point] = []
    for method in methods:
        for diversity in grid:
            start = time.perf_counter()
            top, _ = rerank(
                items, scores, similarity, method=method, diversity=diversity, k=K, batch_size=BATCH
            )
            elapsed = time.perf_counter() - start
            points.append(measure(method, diversity, top, elapsed, truth, genres, fused))
            p = points[-1]
            console.print(f"{method} λ={diversity:g}: ndcg@{K} {p.ndcg:.4f}, ILD genres {p.ild_genres:.4f}, "
                          f"coverage {p.coverage:.4f}, {p.ms_per_user:.3f} ms/user")  # fmt: skip

    title = (f"ML-1M test, {args.model} top-{n_candidates} re-ranked to {K} in the {args.space} space, "
             f"{len(heldout.users)} users")  # fmt: skip
    report(points, title)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"model": args.model, "config": config, "space": args.space, "candidates": n_candidates, "k": K,
            "n_users": len(heldout.users), "fit_s": fit_s, "candidates_s": candidates_s, "similarity_s": similarity_s,
            "quick": args.quick}  # fmt: skip
    (args.out / "rerank.json").write_text(
        json.dumps({"meta": meta, "points": [asdict(p) for p in points]}, indent=2)
    )
    with open(args.out / "rerank.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(points[0])))
        writer.writeheader()
        writer.writerows(asdict(p) for p in points)
    wrote_png = plot(points, args.out / "rerank.png", title)
    console.print(f"wrote {args.out}/rerank.csv, rerank.json" + (", rerank.png" if wrote_png else ""))


if __name__ == "__main__":
    main()
