"""two_tower with frozen text features vs fine-tuning the text encoder's last layer(s), end to end.

    OMP_NUM_THREADS=1 python benchmarks/bench_finetune.py [--split runs/ml1m-split]
        [--features runs/ml1m-features] [--modalities text] [--layers 1] [--learning-rate 2e-5]
        [--max-length 128] [--epochs N] [--device cpu|cuda] [--out results.json]
    python benchmarks/bench_finetune.py --synthetic      # a small planted catalog: checks the wiring

Protocol: the split's train part fits (valid early-stops, on valid Recall@20), test is reported once
with training and valid items excluded (NDCG@20, Recall@20 with 95 % t intervals, and the paired
per-user NDCG@20 difference fine-tuned minus frozen). Both variants share every other setting; the
fine-tuned one trains the last ``--layers`` transformer layers of the text model (MiniLM unless the
features came from another folder: ``--text-model PATH``) at their own learning rate, on the texts
the feature directory recorded (re-run ``fusionrec features`` for a directory made before that).

Cost (CPU): the frozen layers run once over every text (the cache line); each step then runs the
trainable layers on the batch's distinct items, so time per epoch grows with batch size x tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.table import Table

from bench_multimodal import load_inputs
from fusionrec.config import SplitConfig
from fusionrec.data.schema import Dataset, IdMap, Interactions, ItemColumns
from fusionrec.data.splits import Split, split_dataset
from fusionrec.eval.evaluator import Evaluator, mean_confidence_interval
from fusionrec.features.base import FeatureSet
from fusionrec.fusion.text_tower import TrainableTextEncoder, item_texts
from fusionrec.models.registry import build_model

console = Console(width=200)
ROOT = Path(__file__).resolve().parents[1]
K = 20


# --------------------------------------------------------------------------- the one assumed option
def two_tower_config(base: dict[str, Any], finetune: dict[str, Any] | None) -> dict[str, Any]:
    """The two_tower config of one variant. The ONLY place that spells the fine-tuning option
    (``text_finetune={"model", "layers", "learning_rate", "max_length"}``): adapt here if it changes."""
    config = dict(base)
    if finetune is not None:
        config["text_finetune"] = dict(finetune)
    return config


def text_tower_of(model: Any) -> TrainableTextEncoder | None:
    """The fitted model's text tower, wherever two_tower keeps it (for its cache report)."""
    module = getattr(model, "module", None)
    if isinstance(module, torch.nn.Module):
        for sub in module.modules():
            if isinstance(sub, TrainableTextEncoder):
                return sub
    return None


# --------------------------------------------------------------------------- data
def synthetic_inputs(cache_dir: Path, seed: int = 0) -> tuple[Split, FeatureSet]:
    """240 items in 4 topics (texts drawn from each topic's words), 160 users who like one topic."""
    from fusionrec.features.config import FeaturesConfig, RuntimeConfig
    from fusionrec.features.extract import extract_features

    rng = np.random.default_rng(seed)
    topics = [
        ["space", "alien", "ship", "planet", "crew", "star", "galaxy", "robot"],
        ["love", "wedding", "romance", "heart", "couple", "kiss", "summer", "letter"],
        ["detective", "murder", "police", "crime", "gang", "robbery", "heist", "killer"],
        ["toy", "cartoon", "family", "kids", "dog", "magic", "school", "friends"],
    ]
    n_items, n_users = 240, 160
    topic = np.arange(n_items) % len(topics)
    texts: list[str | None] = [
        "A film about " + " ".join(rng.choice(topics[t], size=int(rng.integers(4, 12)))) + "." for t in topic
    ]
    for i in rng.choice(n_items, size=12, replace=False):
        texts[i] = None  # items without text: masked
    liked = rng.integers(0, len(topics), n_users)
    users, items = [], []
    for u in range(n_users):
        pool = np.flatnonzero(topic == liked[u])
        chosen = rng.choice(pool, size=20, replace=False)
        users += [u] * len(chosen)
        items += chosen.tolist()
    ids = [f"i{i}" for i in range(n_items)]
    dataset = Dataset(
        name="synthetic-finetune",
        items=pd.DataFrame({"item_id": ids, "plot": texts}),
        interactions=Interactions(
            np.array(users), np.array(items), np.ones(len(users)), n_users=n_users, n_items=n_items
        ),
        user_map=IdMap([f"u{u}" for u in range(n_users)]),
        item_map=IdMap(ids),
        item_columns=ItemColumns(text=["plot"]),
    )
    split = split_dataset(dataset, SplitConfig())
    config = FeaturesConfig(runtime=RuntimeConfig(threads=1))
    features = extract_features(dataset, ["text"], cache_dir=cache_dir, config=config, progress=False).features
    return split, features


# --------------------------------------------------------------------------- runs
def run_variant(name: str, config: dict[str, Any], split: Split, features: FeatureSet) -> dict[str, Any]:
    row: dict[str, Any] = {"variant": name, "config": config}
    try:
        model = build_model("two_tower", config)
        started = time.perf_counter()
        model.fit(split.train, features=features, valid=split.valid, item_ids=split.item_map.ids)
        row["train_s"] = time.perf_counter() - started
        result = Evaluator(ks=(K,)).evaluate(model, split, on="test")
    except Exception as exc:  # a variant that cannot run is reported, the other still runs
        row["error"] = " ".join(f"{type(exc).__name__}: {exc}".split())
        console.print(f"[red]{name} failed[/]: {row['error']}")
        if os.environ.get("BENCH_TRACEBACK"):
            traceback.print_exc()
        return row
    history = getattr(model, "history_", None)
    row["epochs"] = history.n_epochs if history is not None else None
    row["best_epoch"] = history.best_epoch if history is not None else None
    for metric in ("ndcg", "recall"):
        values = result.per_user[f"{metric}@{K}"]
        row[metric], row[f"{metric}_ci"] = float(np.nanmean(values)), mean_confidence_interval(values)
    row["_per_user_ndcg"] = result.per_user[f"ndcg@{K}"]
    tower = text_tower_of(model)
    if tower is not None:
        row["text_cache"] = dict(tower.cache_info)
    return row


def print_table(rows: list[dict[str, Any]]) -> None:
    table = Table(title=f"two_tower: frozen vs fine-tuned text encoder (test, @{K})")
    for column in ("variant", f"NDCG@{K}", f"Recall@{K}", "train s", "epochs (best)", "s/epoch", "text cache", "note"):
        table.add_column(column, justify="left" if column in ("variant", "note") else "right")
    for row in rows:
        if "error" in row:
            table.add_row(row["variant"], "-", "-", "-", "-", "-", "-", row["error"][:90])
            continue
        cache = row.get("text_cache")
        cache_text = f"{cache['megabytes']:.0f} MB, {cache['tokens']:,.0f} tok, {cache['seconds']:.0f}s" if cache else "-"
        epochs = row["epochs"] or 0
        table.add_row(
            row["variant"],
            f"{row['ndcg']:.4f} [{row['ndcg_ci'][0]:.4f}, {row['ndcg_ci'][1]:.4f}]",
            f"{row['recall']:.4f} [{row['recall_ci'][0]:.4f}, {row['recall_ci'][1]:.4f}]",
            f"{row['train_s']:.1f}",
            f"{epochs} ({row['best_epoch']})",
            f"{row['train_s'] / max(epochs, 1):.1f}",
            cache_text,
            "",
        )
    console.print(table)
    done = [r for r in rows if "error" not in r]
    if len(done) == 2:
        diff = done[1]["_per_user_ndcg"] - done[0]["_per_user_ndcg"]
        low, high = mean_confidence_interval(diff)
        console.print(f"paired NDCG@{K} difference ({done[1]['variant']} - {done[0]['variant']}): "
                      f"{np.nanmean(diff):+.4f} [{low:+.4f}, {high:+.4f}] over {len(diff)} users")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=Path, default=ROOT / "runs" / "ml1m-split")
    parser.add_argument("--features", type=Path, default=ROOT / "runs" / "ml1m-features")
    parser.add_argument("--synthetic", action="store_true", help="a small planted catalog instead (wiring check)")
    parser.add_argument("--modalities", default="text", help="comma-separated; the text one is fine-tuned")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=2e-5, help="of the text layers")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--text-model", default=None, help="model folder (default: the features' model)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--config", default="{}", help="JSON of extra two_tower settings for both variants")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.synthetic:
        split, features = synthetic_inputs(Path(tempfile.mkdtemp(prefix="bench-finetune-")))
    else:
        split, features = load_inputs(args.split, args.features)
    try:
        texts = item_texts(features)
    except Exception as exc:
        raise SystemExit(f"cannot fine-tune on {args.features}: {exc}") from None
    console.print(f"{split.n_users:,} users, {split.n_items:,} items, {sum(t is not None for t in texts):,} with text")

    base: dict[str, Any] = {"modalities": args.modalities.split(","), "device": args.device, **json.loads(args.config)}
    if args.epochs is not None:
        base["epochs"] = args.epochs
    if args.synthetic:
        base.setdefault("epochs", 3)
        base.setdefault("min_steps", 0)
    finetune = {"model": args.text_model, "layers": args.layers, "learning_rate": args.learning_rate,
                "max_length": args.max_length}  # fmt: skip
    rows = []
    for name, option in (("frozen text", None), (f"fine-tune last {args.layers}", finetune)):
        console.print(f"training [bold]{name}[/] ...")
        rows.append(run_variant(name, two_tower_config(base, option), split, features))
    print_table(rows)
    if args.out is not None:
        args.out.write_text(json.dumps([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows], indent=2, default=str))
    if any("error" in row for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
