"""Missing modalities on ML-1M: NDCG@20 as posters, then plots, are removed from 0-75 % of the items,
with the gap left as a mask or filled by the cross-modal imputer.

    OMP_NUM_THREADS=1 python benchmarks/bench_missing.py [--split runs/ml1m-split]
        [--features runs/ml1m-features] [--models content,ease_side] [--shares 0,0.25,0.5,0.75]
        [--modalities image,text] [--variants mask,impute] [--out runs/bench-missing]

Protocol (the baselines' benchmark): ratings >= 3 are positives, per-user random 80/10/10 split
(seed 0), full ranking over all items with train and valid items excluded, test reported. For each
modality a seeded permutation of the items that have it is drawn once; share ``s`` removes the
first ``s`` of them (mask False, zero row), so the removed sets are nested (25 % within 50 % ...).
Variants: ``mask`` (models see the gaps; a missing modality is left out of an item's vector) and
``impute`` (a :class:`~fusionrec.fusion.impute.ModalityImputer` fitted on the masked FeatureSet fills
the removed rows from the item's other modalities: ridge, l2 by held-out cosine; at 0 % it fills only
the items that never had that modality). Every model uses every modality of the FeatureSet (text =
MiniLM plots, image = EfficientNet-Lite0 posters, attributes). Models: ``content`` (centred
cosine profile, training-free) and ``ease_side`` (closed form), default configs.

``--diagnose`` adds ``content*`` / ``impute-conf`` rows: the content model with the imputed rows
scaled by :meth:`~fusionrec.fusion.impute.ModalityImputer.confidence` (a per-row weight a FeatureSet
cannot carry today, so nothing in the library does this yet).

Writes ``results.json``, ``results.csv`` and ``ndcg.png`` (a column of panels per modality, a row per model) under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from bench_multimodal import load_inputs
from fusionrec.data.splits import Split
from fusionrec.eval.evaluator import Evaluator
from fusionrec.features.base import FeatureSet, ModalityFeatures
from fusionrec.fusion.impute import ModalityImputer
from fusionrec.fusion.vectors import centered_unit_rows
from fusionrec.models.content import ContentRecommender
from fusionrec.models.registry import build_model

console = Console(width=200)
ROOT = Path(__file__).resolve().parents[1]
NAMES = {"image": "posters", "text": "plots"}


@dataclass
class Row:
    model: str
    modality: str
    share: float
    variant: str
    ndcg: float = float("nan")
    recall: float = float("nan")
    delta: float = float("nan")  # relative to the same model / modality / variant at share 0
    fit_s: float = float("nan")
    n_present: int = 0
    imputed: int = 0
    note: str = ""
    imputer: dict[str, Any] = field(default_factory=dict)


def remove(features: FeatureSet, modality: str, order: np.ndarray, share: float) -> FeatureSet:
    """A copy of ``features`` without ``modality`` on the first ``share`` of ``order`` (item indices)."""
    source = features.modalities[modality]
    drop = order[: round(share * len(order))]
    matrix, present = source.matrix.copy(), source.present.copy()
    matrix[drop], present[drop] = 0.0, False
    provenance = source.provenance.model_copy(update={"n_present": int(present.sum())})
    modalities = dict(features.modalities) | {modality: ModalityFeatures(matrix, present, provenance, source.inputs)}
    return FeatureSet(ids=features.ids, modalities=modalities, entity=features.entity)


def true_cosine(original: FeatureSet, imputed: FeatureSet, modality: str, rows: np.ndarray, center: np.ndarray) -> float:
    """Mean cosine, in the centred space, between the imputed and the true rows of the removed items."""
    if len(rows) == 0 or not imputed.modalities[modality].present[rows].any():
        return float("nan")
    rows = rows[imputed.modalities[modality].present[rows]]
    guess = centered_unit_rows(imputed.modalities[modality].matrix[rows], None, center)
    truth = centered_unit_rows(original.modalities[modality].matrix[rows], None, center)
    return float((guess * truth).sum(axis=1).mean())


def confidence_weighted_content(split: Split, data: FeatureSet, scale: dict[str, np.ndarray]) -> ContentRecommender:
    """Diagnostic: ``content`` with each block of ``scale``'s modalities multiplied by a per-row
    weight (the imputer's confidence); the item vectors are the blocks in modality order."""
    model = ContentRecommender().fit(split.train, features=data, item_ids=split.item_map.ids)
    start = 0
    for name, modality in data.modalities.items():
        stop = start + modality.dim
        if name in scale:
            model.item_vectors_[:, start:stop] *= scale[name][:, None].astype(np.float32)
        start = stop
    return model


def run(args: argparse.Namespace) -> list[Row]:
    split, features = load_inputs(args.split, args.features)
    console.print(f"split {args.split}: {split.n_users} users, {split.n_items} items, train {len(split.train)}; features "
                  + ", ".join(f"{n} {m.dim}-d ({m.provenance.encoder}, {int(m.present.sum())} present)" for n, m in features.modalities.items()))
    evaluator = Evaluator(ks=(20,), beyond=False)
    rows: list[Row] = []
    for modality in args.modalities:
        if modality not in features.modalities:
            raise SystemExit(f"no {modality!r} features (have {sorted(features.modalities)})")
        order = np.random.default_rng(args.seed).permutation(np.flatnonzero(features.modalities[modality].present))
        for share in args.shares:
            masked = remove(features, modality, order, share)
            for variant in args.variants:
                report: dict[str, Any] = {}
                data, imputed = masked, 0
                if variant == "impute":
                    start = time.perf_counter()
                    imputer = ModalityImputer(seed=args.seed).fit(masked, targets=[modality])
                    data = imputer.impute(masked)
                    report = imputer.report()[modality] | {"fit_impute_s": time.perf_counter() - start}
                    report["removed_true_cosine"] = true_cosine(features, data, modality, order[: round(share * len(order))],
                                                                imputer.centers_[modality])
                    imputed = int(report.get("n_imputed", 0))
                for name in args.models:
                    row = Row(name, modality, share, variant, n_present=int(data.modalities[modality].present.sum()),
                              imputed=imputed, imputer=report)
                    try:
                        start = time.perf_counter()
                        model = build_model(name, {})
                        model.fit(split.train, features=data, valid=split.valid, item_ids=split.item_map.ids)
                        row.fit_s = time.perf_counter() - start
                        means = evaluator.evaluate(model, split, on="test").mean()
                        row.ndcg, row.recall = float(means["ndcg@20"]), float(means["recall@20"])
                    except Exception as exc:  # a failure is a result here ("never raises" is what we measure)
                        row.note = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
                    base = next((r for r in rows if (r.model, r.modality, r.variant, r.share) == (name, modality, variant, 0.0)), None)
                    if base is not None and base.ndcg > 0:
                        row.delta = row.ndcg / base.ndcg - 1.0
                    rows.append(row)
                    _say(row)
            if args.diagnose:
                imputer = ModalityImputer(seed=args.seed).fit(masked, targets=[modality])
                confidence = {modality: imputer.confidence(masked, modality)}
                filled = imputer.impute(masked)
                n_filled = int(imputer.report()[modality].get("n_imputed", 0))
                row = Row("content*", modality, share, "impute-conf", n_present=int(filled.modalities[modality].present.sum()),
                          imputed=n_filled)
                start = time.perf_counter()
                means = evaluator.evaluate(confidence_weighted_content(split, filled, confidence), split, on="test").mean()
                row.fit_s, row.ndcg, row.recall = time.perf_counter() - start, float(means["ndcg@20"]), float(means["recall@20"])
                base = next((r for r in rows if (r.model, r.modality, r.variant, r.share) == ("content*", modality, "impute-conf", 0.0)), None)
                row.delta = row.ndcg / base.ndcg - 1.0 if base is not None and base.ndcg > 0 else float("nan")
                rows.append(row)
                _say(row)
    return rows


def _say(row: Row) -> None:
    console.print(f"{row.model:9s} {row.modality:6s} {row.share:4.0%} {row.variant:11s} ndcg@20 {row.ndcg:.4f} recall@20 "
                  f"{row.recall:.4f} ({row.fit_s:.1f} s){' ' + row.note if row.note else ''}")


def print_table(rows: list[Row]) -> None:
    table = Table(title="ML-1M test, full ranking: share of the items that lost one modality (others kept)")
    for column in ("model", "modality", "share removed", "variant", "NDCG@20", "Recall@20", "Δ vs 0 %", "present", "imputed", "fit s"):
        table.add_column(column, justify="left" if column in ("model", "modality", "variant") else "right")
    for r in rows:
        table.add_row(r.model, f"{r.modality} ({NAMES.get(r.modality, r.modality)})", f"{r.share:.0%}", r.variant, f"{r.ndcg:.4f}",
                      f"{r.recall:.4f}", "-" if r.delta != r.delta else f"{r.delta:+.1%}", str(r.n_present), str(r.imputed), f"{r.fit_s:.1f}")
    console.print(table)
    imputers = {(r.modality, r.share): r.imputer for r in rows if r.variant == "impute"}
    if imputers:
        cosine = Table(title="Imputer (ridge from the other modalities), per removed modality and share")
        for column in ("modality", "share removed", "l2", "held-out cosine", "mean-only cosine", "cosine on removed rows", "n train", "n imputed", "s"):
            cosine.add_column(column, justify="left" if column == "modality" else "right")
        for (modality, share), rep in imputers.items():
            if "skipped" in rep:
                cosine.add_row(modality, f"{share:.0%}", "-", "-", "-", "-", "-", "0", "-")
                continue
            cosine.add_row(modality, f"{share:.0%}", f"{rep['l2']:.3g}", f"{rep['held_out_cosine']:.3f}",
                           f"{rep['held_out_cosine_mean_only']:.3f}", f"{rep['removed_true_cosine']:.3f}", str(rep["n_train"]), str(rep["n_imputed"]), f"{rep['fit_impute_s']:.1f}")
        console.print(cosine)
    failed = [r for r in rows if r.note]
    for r in failed:
        console.print(f"[bold red]{r.model} {r.modality} {r.share:.0%} {r.variant}[/] {r.note}")


def write_files(rows: list[Row], out: Path, meta: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2, default=float))
    columns = ["model", "modality", "share", "variant", "ndcg", "recall", "delta", "fit_s", "n_present", "imputed", "note"]
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([c.replace("ndcg", "ndcg@20").replace("recall", "recall@20") for c in columns])
        for r in rows:
            writer.writerow([getattr(r, c) for c in columns])
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        console.print("matplotlib is not installed: ndcg.png not written")
        return
    modalities = list(dict.fromkeys(r.modality for r in rows))
    models = list(dict.fromkeys(r.model for r in rows))
    # one panel per modality (columns); one row of panels per model, since their NDCG scales differ
    fig, axes = plt.subplots(len(models), len(modalities), figsize=(5.5 * len(modalities), 3.2 * len(models)),
                             squeeze=False, sharey="row", sharex=True)
    for i, model in enumerate(models):
        for j, modality in enumerate(modalities):
            ax = axes[i][j]
            for variant, style in (("mask", "--"), ("impute", "-"), ("impute-conf", "-.")):
                line = sorted((r.share, r.ndcg) for r in rows if (r.model, r.modality, r.variant) == (model, modality, variant))
                if line:
                    ax.plot([100 * s for s, _ in line], [v for _, v in line], style, marker="o", label=f"{model} / {variant}")
            ax.set_title(f"{model}: {modality} ({NAMES.get(modality, modality)}) removed", fontsize=10)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("test NDCG@20")
                ax.legend(fontsize=8)
            if i == len(models) - 1:
                ax.set_xlabel("% of items without it")
    fig.suptitle("ML-1M: missing modalities, mask only vs imputation")
    fig.tight_layout()
    fig.savefig(out / "ndcg.png", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--split", type=Path, default=ROOT / "runs" / "ml1m-split")
    parser.add_argument("--features", type=Path, default=ROOT / "runs" / "ml1m-features")
    parser.add_argument("--models", default="content,ease_side", help="comma-separated registry names")
    parser.add_argument("--shares", default="0,0.25,0.5,0.75", help="comma-separated shares of the items to strip")
    parser.add_argument("--modalities", default="image,text", help="modalities to remove, one sweep each")
    parser.add_argument("--variants", default="mask,impute", help="mask and/or impute")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--diagnose", action="store_true",
                        help="also content* impute-conf (imputed rows weighted by the imputer's confidence)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-missing")
    args = parser.parse_args()
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.modalities = [m.strip() for m in args.modalities.split(",") if m.strip()]
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    args.shares = sorted({float(s) for s in args.shares.split(",") if s.strip()} | {0.0})
    if not set(args.variants) <= {"mask", "impute"} or any(not 0 <= s <= 1 for s in args.shares):
        raise SystemExit("--variants takes mask,impute and --shares values in [0, 1]")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    start = time.perf_counter()
    rows = run(args)
    print_table(rows)
    meta = {"split": str(args.split), "features": str(args.features), "seed": args.seed, "total_s": time.perf_counter() - start,
            "omp_threads": os.environ["OMP_NUM_THREADS"]}
    write_files(rows, args.out, meta)
    console.print(f"wrote {args.out}/results.json, results.csv, ndcg.png in {meta['total_s']:.0f} s")
    if any(r.note for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
