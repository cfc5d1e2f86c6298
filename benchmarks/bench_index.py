"""ANN index: build time, recall@20 against exact search, and single-query latency, at 1M synthetic items.

    python benchmarks/bench_index.py [--n 1000000] [--d 64] [--queries 1000] [--nprobe 16,32,64,125]
        [--threads 2] [--quick] [--out runs/bench-index.json]

Data (:func:`synthetic_items`): a clustered Gaussian mixture shaped like trained factor vectors, so
that approximate search is not trivial: ``n / 1000`` cluster centres ``~ N(0, I_d)``, every item its
centre plus ``N(0, 0.9^2 I_d)`` noise (neighbourhoods of different clusters overlap), scaled by a
log-normal "popularity" norm (sigma 0.2), with a constant last coordinate standing in for a folded
item bias. Queries (users) are drawn from the same mixture. Each configuration is timed on the same
vectors: the exact flat index (the brute-force baseline, which also gives the truth for recall) and
IVF-Flat at several ``nprobe``; plus ML-1M scale (3,883 items, exact, as the server builds it).

Latency is one query at a time (what a request does), top-20, ``perf_counter`` around
``VectorIndex.search``; recall@20 = mean share of the exact top-20 returned. The goal of issue 12:
at 1M items p99 < 25 ms with recall@20 >= 0.95 on 2 cores. ``run_index_bench`` is the function
``bench_serve.py`` calls.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from fusionrec.serve.index import VectorIndex, default_nlist, default_nprobe, recall_of

console = Console(width=160)
ML1M_ITEMS = 3_883


def synthetic_items(n: int, d: int = 64, n_queries: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(items (n, d), queries (n_queries, d))`` float32 from one clustered mixture (see module doc)."""
    rng = np.random.default_rng(seed)
    n_clusters = max(8, n // 1000)
    centres = rng.standard_normal((n_clusters, d)).astype(np.float32)

    def draw(m: int, popularity: bool) -> np.ndarray:
        out = np.empty((m, d), dtype=np.float32)
        for start in range(0, m, 100_000):  # chunks: 1M x 64 float64 noise would need 512 MB at once
            size = min(100_000, m - start)
            rows = centres[rng.integers(0, n_clusters, size)] + 0.9 * rng.standard_normal((size, d)).astype(np.float32)
            if popularity:
                rows *= rng.lognormal(0.0, 0.2, size=(size, 1)).astype(np.float32)
            rows[:, -1] = 1.0  # the folded bias column: every user vector multiplies it by the same weight
            out[start : start + size] = rows
        return out

    return draw(n, True), draw(n_queries, False)


def _latency(index: VectorIndex, queries: np.ndarray, k: int, n: int) -> np.ndarray:
    """Milliseconds of ``n`` single-query searches (after 10 warm-up queries)."""
    for q in queries[:10]:
        index.search(q[None, :], k)
    times = np.empty(min(n, len(queries)))
    for i in range(len(times)):
        start = time.perf_counter()
        index.search(queries[i : i + 1], k)
        times[i] = time.perf_counter() - start
    return times * 1e3


def _row(name: str, index: VectorIndex, queries: np.ndarray, truth: np.ndarray, k: int, build_s: float,
         n_latency: int) -> dict[str, Any]:
    got, _ = index.search(queries, k)
    ms = _latency(index, queries, k, n_latency)
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"index": name, "kind": index.kind, "n": len(index), "nlist": index.nlist, "nprobe": index.nprobe,
            "build_s": build_s, "recall": recall_of(got, truth), "p50_ms": float(p50), "p95_ms": float(p95),
            "p99_ms": float(p99), "k": k}


def run_index_bench(n: int, d: int = 64, queries: int = 1000, *, k: int = 20, nprobes: tuple[int, ...] | None = None,
                    seed: int = 0, threads: int | None = None, exact: bool = True,
                    n_latency: int | None = None) -> list[dict[str, Any]]:
    """One dict per configuration: index, kind, n, nlist, nprobe, build_s, recall (@k vs exact),
    p50_ms / p95_ms / p99_ms of single-query top-``k`` searches, k.

    ``exact`` also times the flat index (its truth is computed either way: a batched flat search).
    ``nprobes``: IVF settings to time (default: the library default and a few around it; ``()``: none)."""
    items, qs = synthetic_items(n, d, queries, seed)
    start = time.perf_counter()
    flat = VectorIndex.build(items, exact_threshold=n + 1, threads=threads)
    flat_s = time.perf_counter() - start
    truth, _ = flat.search(qs, k)
    rows = []
    if exact:
        rows.append(_row("exact flat", flat, qs, truth, k, flat_s, n_latency or min(queries, 300)))
    del flat
    if nprobes != () and n >= 39 * 8:  # () = exact only
        start = time.perf_counter()
        ivf = VectorIndex.build(items, exact_threshold=0, threads=threads)
        ivf_s = time.perf_counter() - start
        base = default_nprobe(default_nlist(n))
        for probe in nprobes or tuple(sorted({max(1, base // 4), max(1, base // 2), base, 2 * base})):
            ivf.nprobe = int(probe)
            rows.append(_row(f"ivf nprobe={probe}", ivf, qs, truth, k, ivf_s, n_latency or queries))
    return rows


def _table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for col in ("index", "n", "nlist", "build s", "recall@k", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(col, justify="left" if col == "index" else "right")
    for r in rows:
        table.add_row(r["index"], f"{r['n']:,}", str(r["nlist"]), f"{r['build_s']:.1f}", f"{r['recall']:.4f}",
                      f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}", f"{r['p99_ms']:.2f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="synthetic items")
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--nprobe", type=str, default=None, help="comma-separated IVF nprobe values")
    parser.add_argument("--threads", type=int, default=None, help="FAISS OpenMP threads (default: as set)")
    parser.add_argument("--quick", action="store_true", help="100k items, 300 queries (about 20 s)")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON")
    args = parser.parse_args()
    n, queries = (100_000, 300) if args.quick else (args.n, args.queries)
    nprobes = tuple(int(p) for p in args.nprobe.split(",")) if args.nprobe else None
    import faiss

    threads = args.threads or faiss.omp_get_max_threads()
    rows = run_index_bench(n, args.d, queries, nprobes=nprobes, threads=args.threads)
    console.print(_table(rows, f"{n:,} synthetic items x {args.d}, {queries} queries, top-20, {threads} threads"))
    small = run_index_bench(ML1M_ITEMS, args.d, queries, nprobes=(), threads=args.threads)
    console.print(_table(small, f"ML-1M scale: {ML1M_ITEMS:,} items x {args.d} (exact, as served)"))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"threads": threads, "rows": rows + small}, indent=2))


if __name__ == "__main__":
    main()
