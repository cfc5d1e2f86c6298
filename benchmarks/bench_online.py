"""Real-time updates: stream the last interactions through ``partial_fit_users`` and compare with a retrain.

    OMP_NUM_THREADS=1 python benchmarks/bench_online.py [--data ../shared/data/ml-100k]
        [--models ease,itemknn,als,bpr] [--min-rating 3] [--max-events N] [--protocol global|per_user] [--out runs/bench-online.json]

Protocol (a global temporal split, ML-100K or ml-latest-small, which have timestamps): every
interaction sorted by time; the first 80 % are the base, the next 10 % arrive as a stream, the last
10 % are the test. The catalogue is the items of the base (stream and test interactions on later
items are dropped and counted: no CF model can score them). Users are numbered by first
appearance, so those first seen in the stream are new users the model must add.

For each model three states are evaluated on the test (full ranking, everything seen excluded):
- *static*: fitted on the base, nothing streamed (warm users only: it cannot serve new users);
- *online*: the same fit, then every stream event applied one at a time, in time order, through
  :class:`fusionrec.online.LiveRecommender` (``partial_fit_users``); each update is timed;
- *retrain*: fitted from scratch on base + stream.
The table reports NDCG@20 / recall@20 on warm and new users, online / retrain, and the latency of
one update (live history + model) p50 / p99. With implicit installed (``pip install -e .[bench]``)
its ALS ``partial_fit_users`` and ours are timed alone on the same rows, side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import scipy.sparse as sp
from rich.console import Console
from rich.table import Table
from tqdm.auto import tqdm

from fusionrec.data.loaders.movielens import load_movielens
from fusionrec.eval.evaluator import Evaluator
from fusionrec.models.registry import build_model, load_model
from fusionrec.online.live import LiveRecommender

console = Console(width=200)
ROOT = Path(__file__).resolve().parents[1]
MODELS: dict[str, dict[str, Any]] = {
    "ease": {"l2": 100.0},
    "itemknn": {"k": 100},
    "als": {},
    "bpr": {"epochs": 200, "min_steps": 1000},
}


@dataclass
class Stream:
    """The three time slices as ``(n_users, n_items)`` CSRs, users numbered by first appearance."""

    base: sp.csr_matrix
    stream_users: np.ndarray  # (n_events,) in time order
    stream_items: np.ndarray
    test: sp.csr_matrix
    n_base_users: int
    dropped: int  # stream/test interactions on items the base never saw

    @property
    def seen(self) -> sp.csr_matrix:
        events = sp.csr_matrix(
            (np.ones(len(self.stream_users), dtype=np.float32), (self.stream_users, self.stream_items)), shape=self.test.shape
        )
        seen = self.base + events
        seen.data[:] = 1.0
        return seen


def temporal_stream(data: Path, min_rating: float, max_events: int | None, protocol: str = "global") -> Stream:
    """``global``: the first 80 % of all interactions by time are the base, the next 10 % the stream, the
    last 10 % the test (users first seen in the stream are new users). ``per_user``: each user's own
    first 80 % / next 10 % / last 10 % by time (every user is in all three; far more test users);
    the stream is replayed in global time order either way."""
    dataset, _ = load_movielens(data, check_media=False)
    inter = dataset.interactions
    if inter.timestamp is None:
        raise SystemExit(f"{data} has no timestamps: use ML-100K or ml-latest-small")
    keep = inter.weight >= min_rating
    user, item, stamp = inter.user[keep], inter.item[keep], inter.timestamp[keep]
    order = np.lexsort((item, user, stamp))
    user, item = user[order], item[order]
    n = len(user)
    if protocol == "global":
        fraction = np.arange(n) / n
    else:  # the position of each interaction in its user's own timeline, in [0, 1)
        by_user = np.lexsort((np.arange(n), user))
        counts = np.bincount(user, minlength=inter.n_users)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.empty(n, dtype=np.int64)
        rank[by_user] = np.arange(n) - starts[user[by_user]]
        fraction = rank / counts[user]
    base_part, stream_part, test_part = fraction < 0.8, (fraction >= 0.8) & (fraction < 0.9), fraction >= 0.9
    base_items = np.unique(item[base_part])
    item_index = np.full(inter.n_items, -1, dtype=np.int64)
    item_index[base_items] = np.arange(len(base_items))
    _, first = np.unique(user, return_index=True)  # renumber users by their first interaction
    by_time = np.unique(user)[np.argsort(first)]
    user_index = np.full(inter.n_users, -1, dtype=np.int64)
    user_index[by_time] = np.arange(len(by_time))
    u, i = user_index[user], item_index[item]
    n_users, n_items = len(by_time), len(base_items)
    n_base_users = int(u[base_part].max()) + 1
    dropped = int((~base_part & (i < 0)).sum())

    def matrix(part: np.ndarray) -> sp.csr_matrix:
        ok = part & (i >= 0)
        out = sp.csr_matrix((np.ones(ok.sum(), dtype=np.float32), (u[ok], i[ok])), shape=(n_users, n_items))
        out.data[:] = 1.0
        return out

    stream = stream_part & (i >= 0)  # already in global time order
    stream_users, stream_items = u[stream], i[stream]
    if max_events is not None:
        stream_users, stream_items = stream_users[:max_events], stream_items[:max_events]
    return Stream(matrix(base_part), stream_users, stream_items, matrix(test_part), n_base_users, dropped)


@dataclass
class Row:
    model: str
    static: dict[str, float] = field(default_factory=dict)
    online: dict[str, float] = field(default_factory=dict)
    retrain: dict[str, float] = field(default_factory=dict)
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    mean_ms: float = float("nan")
    stream_s: float = float("nan")
    retrain_s: float = float("nan")


def groups(evaluator: Evaluator, model: Any, truth: sp.csr_matrix, exclude: sp.csr_matrix, n_base_users: int,
           warm_only: bool = False) -> dict[str, float]:
    """NDCG@20 / recall@20 on warm users (seen in the base) and new ones (first seen in the stream);
    test users with no history at all (first seen in the test) are cold users, left out of both."""
    out: dict[str, float] = {}
    n_users = int(model.n_users)
    truth, exclude = sp.csr_matrix(truth[:n_users]), sp.csr_matrix(exclude[:n_users])
    truth = sp.diags((np.diff(exclude.indptr) > 0).astype(np.float32)) @ truth
    truth.eliminate_zeros()
    warm = sp.csr_matrix(truth[:n_base_users])
    result = evaluator.evaluate_matrices(model, warm, sp.csr_matrix(exclude[:n_base_users])).mean()
    out |= {"warm ndcg@20": result["ndcg@20"], "warm recall@20": result["recall@20"]}
    if not warm_only and n_users > n_base_users:
        new = truth.tolil(copy=True)
        new[:n_base_users] = 0
        result = evaluator.evaluate_matrices(model, sp.csr_matrix(new), exclude).mean()
        out |= {"new ndcg@20": result["ndcg@20"], "new recall@20": result["recall@20"]}
    return out


def run_model(name: str, data: Stream, evaluator: Evaluator) -> Row:
    row = Row(name)
    config = MODELS[name]
    base = data.base[: data.n_base_users]
    model = build_model(name, config).fit(base)
    row.static = groups(evaluator, model, data.test[: data.n_base_users], base, data.n_base_users, warm_only=True)
    with tempfile.TemporaryDirectory() as tmp:  # the online copy starts from the very same fit
        live_model = load_model(model.save(Path(tmp) / "m"))
    live = LiveRecommender(live_model, history=base)
    start = time.perf_counter()
    for user, item in tqdm(zip(data.stream_users, data.stream_items, strict=True), total=len(data.stream_users),
                           desc=f"{name} stream", leave=False):
        live.add_interactions(np.array([user]), np.array([item]))
    row.stream_s = time.perf_counter() - start
    row.p50_ms, row.p99_ms = live.stats.percentile(50), live.stats.percentile(99)
    row.mean_ms = float(np.mean(live.stats.latencies_ms))
    seen = data.seen
    row.online = groups(evaluator, live, data.test, seen, data.n_base_users)
    start = time.perf_counter()
    retrained = build_model(name, config).fit(seen)
    row.retrain_s = time.perf_counter() - start
    row.retrain = groups(evaluator, retrained, data.test, seen, data.n_base_users)
    return row


def als_side_by_side(data: Stream) -> dict[str, float] | None:
    """implicit's CPU ALS and ours, same hyper-parameters and base; each one's ``partial_fit_users``
    timed alone on the same rows of the same stream (no live-history bookkeeping in either)."""
    try:
        from implicit.cpu.als import AlternatingLeastSquares
    except ImportError:
        return None
    base = sp.csr_matrix(data.base[: data.n_base_users])
    config = MODELS["als"] | {"factors": 64, "reg": 50.0, "alpha": 2.0, "iterations": 15}
    theirs = AlternatingLeastSquares(factors=64, regularization=50.0, alpha=2.0, iterations=15, random_state=0)
    theirs.fit(base, show_progress=False)
    ours = build_model("als", config).fit(base)
    history = data.base.tolil()
    timings: dict[str, list[float]] = {"implicit": [], "fusionrec": []}
    for user, item in zip(data.stream_users, data.stream_items, strict=True):
        history[user, item] = 1.0
        row = sp.csr_matrix(history[user], dtype=np.float32)
        for label, model in (("implicit", theirs), ("fusionrec", ours)):
            start = time.perf_counter()
            model.partial_fit_users(np.array([user]), row)
            timings[label].append((time.perf_counter() - start) * 1e3)
    return {f"{label} {q}": float(np.percentile(values, int(q[1:]))) for label, values in timings.items() for q in ("p50", "p99")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ml-100k")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--min-rating", type=float, default=3.0)
    parser.add_argument("--max-events", type=int, default=None)
    parser.add_argument("--protocol", choices=("global", "per_user"), default="global")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-online.json")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"needs {args.data} (ML-100K or ml-latest-small, with timestamps)")
    data = temporal_stream(args.data, args.min_rating, args.max_events, args.protocol)
    console.print(
        f"{args.data.name} ({args.protocol}): base {data.base.nnz:,} interactions ({data.n_base_users} users), stream "
        f"{len(data.stream_users):,} events ({data.base.shape[0] - data.n_base_users} new users), test "
        f"{data.test.nnz:,}; {data.dropped:,} later interactions on items the base never saw dropped; "
        f"{data.base.shape[1]:,} items"
    )
    evaluator = Evaluator(ks=(20,), beyond=False)
    rows = []
    table = Table(title="online updates vs static model and full retrain (test, temporal split)")
    for column in ("model", "static warm ndcg", "online warm ndcg", "retrain warm ndcg", "online/retrain warm",
                   "online new ndcg", "retrain new ndcg", "online/retrain new", "update p50 ms", "update p99 ms",
                   "stream s", "retrain s"):
        table.add_column(column, justify="right")
    for name in args.models.split(","):
        row = run_model(name.strip(), data, evaluator)
        rows.append(row)
        console.print(f"{row.model}: online {row.online} retrain {row.retrain} static {row.static}")
        warm_ratio = row.online["warm ndcg@20"] / row.retrain["warm ndcg@20"]
        new_ratio = row.online.get("new ndcg@20", np.nan) / row.retrain.get("new ndcg@20", np.nan)
        table.add_row(row.model, f"{row.static['warm ndcg@20']:.4f}", f"{row.online['warm ndcg@20']:.4f}",
                      f"{row.retrain['warm ndcg@20']:.4f}", f"{warm_ratio:.3f}", f"{row.online.get('new ndcg@20', np.nan):.4f}",
                      f"{row.retrain.get('new ndcg@20', np.nan):.4f}", f"{new_ratio:.3f}", f"{row.p50_ms:.2f}", f"{row.p99_ms:.2f}",
                      f"{row.stream_s:.1f}", f"{row.retrain_s:.1f}")
    console.print(table)
    peer = als_side_by_side(data)
    if peer is not None:
        console.print(
            f"ALS partial_fit_users alone, same stream: implicit p50 {peer['implicit p50']:.3f} ms / p99 "
            f"{peer['implicit p99']:.3f} ms; fusionrec p50 {peer['fusionrec p50']:.3f} ms / p99 {peer['fusionrec p99']:.3f} ms "
            f"(ours / implicit at p50: {peer['fusionrec p50'] / peer['implicit p50']:.2f}x)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"data": str(args.data.name), "protocol": args.protocol, "rows": [asdict(r) for r in rows], "implicit_als": peer}, indent=2))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
