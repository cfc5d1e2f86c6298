"""Build a small `fusionrec run` directory from the built-in sample (for the report tests and the run helper).

The layout is the run command's contract::

    RUN_DIR/experiment.yaml, run.json, results.json
    RUN_DIR/data/            a saved Dataset + validation.json + stats.json
    RUN_DIR/split/           Split.save
    RUN_DIR/features/        FeatureSet.save
    RUN_DIR/models/<name>/bundle/, metrics.json, history.json

``build_run_dir(root)`` trains mostpop, ease, a tiny bpr (a few epochs: its ``history.json`` has the
per-epoch valid values) and content (text + attributes features, explainable) and evaluates each on
test with ``Evaluator(ks=(10, 20))``. ``extras=True`` also writes an illustrative ``rerank/rerank.csv``
(the columns of ``benchmarks/bench_rerank.py``; made-up numbers, only for the report's layout tests).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MODELS: dict[str, dict[str, Any]] = {
    "mostpop": {},
    "ease": {},
    "bpr": {"epochs": 6, "patience": 6, "min_steps": 0},
    "content": {},
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write(path: Path, payload: Any) -> Path:
    from fusionrec.eval.report import _clean

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(payload), indent=2))
    return path


def metrics_payload(name: str, params: dict[str, Any], result: Any, train_s: float, history: Any) -> dict[str, Any]:
    """One model's ``metrics.json`` (the run contract) from its EvalResult and TrainHistory."""
    intervals = result.confidence_intervals()
    popularity = result.by_item_popularity()
    return {
        "model": name,
        "params": params,
        "mean": result.mean(),
        "ci": {k: list(v) for k, v in intervals.items()},
        "by_user_activity": result.by_user_activity(),
        "by_item_popularity": popularity,
        "train_s": train_s,
        "n_epochs": history.n_epochs if history is not None else None,
        "best_epoch": history.best_epoch if history is not None else None,
        "n_users": result.n_evaluated,
    }


def build_run_dir(
    root: Path, n_users: int = 120, n_items: int = 60, *, name: str = "sample", extras: bool = False
) -> Path:
    """Write a complete run directory under ``root`` and return it."""
    from fusionrec.config import SplitConfig
    from fusionrec.data.loaders import LoaderOptions, load_source
    from fusionrec.data.sample import SAMPLE_MAPPING, write_sample
    from fusionrec.data.splits import split_dataset
    from fusionrec.data.stats import dataset_stats
    from fusionrec.eval.evaluator import Evaluator
    from fusionrec.features.extract import extract_features
    from fusionrec.models.bundle import ModelBundle
    from fusionrec.models.registry import build_model

    started = _now()
    stages: dict[str, dict[str, Any]] = {}
    root.mkdir(parents=True, exist_ok=True)
    (root / "experiment.yaml").write_text(
        f"name: {name}\ndata:\n  source: sample\n  n_users: {n_users}\n  n_items: {n_items}\n"
        "split: {strategy: random, ratios: [0.8, 0.1, 0.1], min_rating: 3.0}\n"
        "features: [text, attributes]\nmodels: [" + ", ".join(MODELS) + "]\neval: {ks: [10, 20]}\n"
    )

    clock = time.perf_counter()
    source = write_sample(root / "source", n_users=n_users, n_items=n_items, audio=None)
    dataset, report = load_source("tabular", source, LoaderOptions(name=name, tabular=SAMPLE_MAPPING))
    dataset.save(root / "data")
    _write(root / "data" / "validation.json", report.to_dict())
    _write(root / "data" / "stats.json", dataset_stats(dataset).model_dump())
    stages["data"] = {"key": "sample", "cached": False, "seconds": time.perf_counter() - clock}

    clock = time.perf_counter()
    split = split_dataset(dataset, SplitConfig(strategy="random", ratios=(0.8, 0.1, 0.1), min_rating=3.0),
                          dataset_dir=root / "data")
    split.save(root / "split")
    stages["split"] = {"key": "random-0.8", "cached": False, "seconds": time.perf_counter() - clock}

    clock = time.perf_counter()
    features = extract_features(dataset, ("text", "attributes"), cache_dir=root / "cache", progress=False).features
    features.save(root / "features")
    stages["features"] = {"key": "text+attributes", "cached": False, "seconds": time.perf_counter() - clock}

    evaluator = Evaluator(ks=(10, 20))
    results = []
    for model_name, params in MODELS.items():
        clock = time.perf_counter()
        model = build_model(model_name, dict(params) or None)
        model.fit(split.train, features=features, valid=split.valid, item_ids=split.item_map.ids)
        train_s = time.perf_counter() - clock
        out = root / "models" / model_name
        ModelBundle.from_split(model, split, features if model_name == "content" else None).save(out / "bundle")
        result = evaluator.evaluate(model, split, on="test")
        history = getattr(model, "history_", None)
        payload = metrics_payload(model_name, params, result, train_s, history)
        _write(out / "metrics.json", payload)
        curve = (
            {"metric": history.metric, "values": [e.valid_metric for e in history.epochs]}
            if history is not None else {}
        )
        _write(out / "history.json", curve)
        results.append(payload)
        stages[f"model:{model_name}"] = {"key": model_name, "cached": False, "seconds": time.perf_counter() - clock}
    _write(root / "results.json", results)

    if extras:
        rows = ["method,diversity,ndcg,recall,ild_genres,ild_fused,coverage,ms_per_user"]
        for method, slope in (("none", 0.0), ("mmr", 0.12), ("dpp", 0.08)):
            for lam in (0.0, 0.3, 0.6, 0.9) if method != "none" else (0.0,):
                rows.append(f"{method},{lam},{0.30 - slope * lam:.4f},{0.35 - slope * lam:.4f},"
                            f"{0.60 + 0.25 * lam:.4f},{0.40 + 0.3 * lam:.4f},{0.5 + 0.3 * lam:.4f},0.2")
        (root / "rerank").mkdir(exist_ok=True)
        (root / "rerank" / "rerank.csv").write_text("\n".join(rows) + "\n")

    _write(root / "run.json", {
        "name": name, "started": started, "finished": _now(), "stages": stages,
        "data_source": "sample", "models": list(MODELS),
    })
    return root
