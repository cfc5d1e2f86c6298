"""`fusionrec demo`: the whole pipeline end to end, on ML-1M when it is at hand, else on a built-in sample.

Stages: ingest + validate -> stats -> split -> text/poster/attribute features (cached by content)
-> collaborative-filtering baselines trained and evaluated by full ranking.

Each stage writes what it produced under ``--out`` (dataset, split, features, models), so a
second run reuses the feature cache and any stage can be re-run alone with its own verb.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.rule import Rule
from rich.table import Table

from fusionrec.cli.app import app, console, friendly_errors
from fusionrec.cli.data import split_table
from fusionrec.config import SplitConfig
from fusionrec.data.loaders import LoaderOptions, load_source
from fusionrec.data.sample import SAMPLE_MAPPING, write_sample
from fusionrec.data.schema import Dataset
from fusionrec.data.splits import Split, split_dataset
from fusionrec.data.stats import dataset_stats, stats_table
from fusionrec.data.validate import ValidationReport

DEFAULT_SHARED = Path("..") / "shared" / "data"


def load_demo_data(data_root: Path, out: Path, use_sample: bool) -> tuple[Dataset, ValidationReport, str]:
    """ML-1M from ``data_root`` when present (and not ``use_sample``), else the generated sample."""
    ml1m = data_root / "ml-1m"
    if not use_sample and ml1m.exists():
        dataset, report = load_source("movielens", ml1m, LoaderOptions())
        return dataset, report, f"MovieLens-1M from {ml1m}"
    sample_dir = write_sample(out / "sample-source")
    options = LoaderOptions(name="sample", tabular=SAMPLE_MAPPING)
    dataset, report = load_source("tabular", sample_dir, options)
    return dataset, report, f"built-in sample written to {sample_dir}"


@app.command()
@friendly_errors
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes everything it produces.")] = Path("runs/demo"),
    data_root: Annotated[Path, typer.Option(help="Folder holding ml-1m/ (the shared real data).")] = DEFAULT_SHARED,
    sample: Annotated[bool, typer.Option("--sample", help="Use the built-in sample even if real data is present.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the split and of the models.")] = 0,
    skip_features: Annotated[bool, typer.Option("--skip-features", help="Do not run the pretrained encoders.")] = False,
    models: Annotated[str, typer.Option(help="Comma-separated models to train and evaluate (the content models need the features).")] = "mostpop,itemknn,ease,bpr,lightgcn,ease_side,two_tower",
) -> None:
    """Run the pipeline end to end: ingest -> validate -> split -> features -> train -> evaluate."""
    timings: dict[str, float] = {}
    out.mkdir(parents=True, exist_ok=True)

    console.print(Rule("1. ingest + validate"))
    start = time.perf_counter()
    dataset, report, where = load_demo_data(data_root, out, sample)
    dataset_dir = dataset.save(out / "dataset")
    timings["ingest + validate"] = time.perf_counter() - start
    console.print(f"data: {where}")
    console.print(report.table())
    console.print(stats_table(dataset_stats(dataset)))

    console.print(Rule("2. split"))
    start = time.perf_counter()
    split_config = SplitConfig(strategy="random", ratios=(0.8, 0.1, 0.1), seed=seed, min_rating=3.0)
    split: Split = split_dataset(dataset, split_config, dataset_dir=dataset_dir)
    split.save(out / "split")
    timings["split"] = time.perf_counter() - start
    console.print(split_table(split))

    if not skip_features:
        console.print(Rule("3. features (pretrained text + image encoders, attributes; cached by content)"))
        start = time.perf_counter()
        from fusionrec.cli.features import masked_table, summary_table
        from fusionrec.features.extract import extract_features

        modalities = ["text", "attributes"] + (["image"] if dataset.item_columns.image else [])
        extraction = extract_features(dataset, modalities, cache_dir=out / "feature-cache", progress=True)
        extraction.features.save(out / "features")
        timings["features"] = time.perf_counter() - start
        console.print(summary_table(extraction.reports))
        masked = masked_table(extraction.reports)
        if masked is not None:
            console.print(masked)

    console.print(Rule("4. train + evaluate CF and multimodal models (full ranking, test; valid for early stopping)"))
    start = time.perf_counter()
    from fusionrec.experiments.runner import run_baselines
    from fusionrec.models.registry import get_model_class

    names = [m.strip() for m in models.split(",") if m.strip()]
    features = extraction.features if not skip_features else None
    if features is None:
        content = [n for n in names if get_model_class(n).uses_features]
        if content:
            console.print(f"no features (--skip-features): not training the content models {', '.join(content)}")
        names = [n for n in names if n not in content]
    # the iterative models run on their defaults (sized to the data), seeded like the split
    configs = {name: {"seed": seed} for name in names if "seed" in get_model_class(name).config_class.model_fields}
    keys = ["recall@10", "recall@20", "ndcg@10", "ndcg@20", "precision@20", "mrr@20"]
    run_baselines(split, models=names, k=(10, 20), console=console, configs=configs, keys=keys, features=features)
    timings["train + evaluate"] = time.perf_counter() - start

    summary = Table(title="demo: time per stage")
    summary.add_column("stage")
    summary.add_column("seconds", justify="right")
    for stage, seconds in timings.items():
        summary.add_row(stage, f"{seconds:.2f}")
    console.print(summary)
    console.print(f"outputs in [bold]{out}[/]")
