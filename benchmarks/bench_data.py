"""Data stage speed: load + validate + stats + split time and peak memory.

Cases: ML-1M from ../shared/data (whole loader, and its ratings file alone) and a synthetic
20M-interaction CSV loaded through the tabular loader. Each case runs in its own process so the
peak RSS is that case's own.

    .venv/bin/python benchmarks/bench_data.py [--rows 20000000] [--data-root ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def case_ml1m_ratings(data_root: Path) -> dict[str, float]:
    from fusionrec.data.loaders.common import clean_interactions, read_delimited
    from fusionrec.data.validate import ValidationReport

    start = time.perf_counter()
    report = ValidationReport()
    path = data_root / "ml-1m" / "ratings_no_timestamp.csv"
    frame, lines = read_delimited(path, report, string_columns=["user_id", "movie_id"])
    frame = frame.rename(columns={"user_id": "user", "movie_id": "item"})
    cleaned = clean_interactions(frame, lines, report, file=str(path), rating_range=(1, 5))
    return {"rows": len(cleaned), "load + validate s": time.perf_counter() - start}


def case_ml1m(data_root: Path) -> dict[str, float]:
    from fusionrec.config import SplitConfig
    from fusionrec.data.loaders import LoaderOptions, load_source
    from fusionrec.data.splits import split_dataset
    from fusionrec.data.stats import dataset_stats

    start = time.perf_counter()
    dataset, _ = load_source("movielens", data_root / "ml-1m", LoaderOptions())
    loaded = time.perf_counter()
    dataset_stats(dataset)
    stats_done = time.perf_counter()
    split_dataset(dataset, SplitConfig(strategy="random", min_rating=3))
    split_done = time.perf_counter()
    return {
        "rows": len(dataset.interactions),
        "load + validate s": loaded - start,
        "stats s": stats_done - loaded,
        "split s": split_done - stats_done,
    }


def case_synthetic(rows: int) -> dict[str, float]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from fusionrec.config import SplitConfig
    from fusionrec.data.loaders import LoaderOptions, load_source
    from fusionrec.data.loaders.tabular import TabularMapping
    from fusionrec.data.splits import split_dataset
    from fusionrec.data.stats import dataset_stats

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "interactions.csv"
        n_users, n_items = rows // 100, max(rows // 400, 1000)
        table = pa.table(
            {
                "user_id": rng.integers(0, n_users, rows),
                "item_id": (rng.zipf(1.3, rows) % n_items),
                "rating": rng.integers(1, 6, rows).astype(np.float32),
                "timestamp": rng.integers(1_000_000_000, 1_600_000_000, rows),
            }
        )
        pacsv.write_csv(table, path)
        del table
        mapping = TabularMapping(user="user_id", item="item_id", rating="rating", timestamp="timestamp", rating_range=(1, 5))
        start = time.perf_counter()
        dataset, report = load_source("tabular", path, LoaderOptions(tabular=mapping))
        loaded = time.perf_counter()
        dataset_stats(dataset)
        stats_done = time.perf_counter()
        split_dataset(dataset, SplitConfig(strategy="random"))
        split_random = time.perf_counter()
        split_dataset(dataset, SplitConfig(strategy="temporal"))
        split_temporal = time.perf_counter()
    return {
        "rows": len(dataset.interactions),
        "duplicates dropped": report.counts.get("duplicate_interaction", 0),
        "load + validate s": loaded - start,
        "stats s": stats_done - loaded,
        "split s": split_random - stats_done,
        "temporal split s": split_temporal - split_random,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        result = {
            "ml1m-ratings": lambda: case_ml1m_ratings(args.data_root),
            "ml1m": lambda: case_ml1m(args.data_root),
            "synthetic": lambda: case_synthetic(args.rows),
        }[args.case]()
        result["peak RSS MB"] = _peak_rss_mb()
        print(json.dumps(result))
        return

    from rich.console import Console
    from rich.table import Table

    cases = ["synthetic"]
    if (args.data_root / "ml-1m").exists():
        cases = ["ml1m-ratings", "ml1m", *cases]
    else:
        print(f"no real data at {args.data_root}: ML-1M cases skipped")
    results = {}
    for case in cases:
        command = [sys.executable, __file__, "--case", case, "--rows", str(args.rows), "--data-root", str(args.data_root)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[case] = json.loads(output.strip().splitlines()[-1])
    columns = sorted({key for r in results.values() for key in r}, key=lambda k: (k != "rows", k))
    table = Table(title="data stage: load + validate + stats + split")
    table.add_column("case")
    for column in columns:
        table.add_column(column, justify="right")
    for case, result in results.items():
        table.add_row(case, *[f"{result[c]:,.2f}" if isinstance(result.get(c), float) else f"{result.get(c, '-'):,}" if isinstance(result.get(c), int) else "-" for c in columns])
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
