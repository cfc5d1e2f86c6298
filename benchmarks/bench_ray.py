"""Local versus Ray (1 and 2 workers): feature extraction and full-ranking evaluation.

    OMP_NUM_THREADS=1 python benchmarks/bench_ray.py [--split runs/ml1m-split] [--dataset runs/ml1m]
        [--text-items 1000] [--synthetic-items 1000000] [--synthetic-interactions 5000000]
        [--synthetic-users 1000] [--out runs/bench-ray.json]

Bounded to a few minutes on 2 cores (one local Ray cluster, ``num_cpus=2``; every process with
one compute thread, so "local" is one core and "Ray 2" is two):

- **ML-1M evaluation**: EASE (l2=500) fitted in-process on the saved split, every test user
  ranked against all 3,706 items: ``Evaluator.evaluate`` versus
  :func:`fusionrec.distributed.evaluate.evaluate_ray` with 1 and 2 shards (results asserted equal).
- **ML-1M text extraction**: MiniLM on the first ``--text-items`` items (a fresh cache per run):
  plan / encode / commit locally versus :func:`fusionrec.distributed.extract.extract_features_ray`
  with 1 and 2 workers (features asserted within 1e-5).
- **Synthetic evaluation**: ``--synthetic-items`` items (1M) and a train matrix of
  ``--synthetic-interactions`` interactions (5M by default, not the issue's 50M: exclusions only
  enter the per-user cost through each user's own history, so the per-user cost is measured here
  and the 50M figures are extrapolated, and said to be); a 64-dim random factor model (score =
  ``U[users] @ V.T``), ``--synthetic-users`` evaluated users, each with one held-out item.

Memory: the peak RSS of the driver and of each Ray worker process, sampled every 0.1 s during each
phase with psutil (Ray workers are the processes whose command line starts with ``ray::``); the
evaluation tasks also report their own ``ru_maxrss``.

At the end the bench prints a table and a scaling estimate for a 100-node cluster from the
measured per-user and per-item costs and the driver-side costs (plan, commit, prepare, merge),
naming what becomes the bottleneck.

Measured (2-core shared VM, OMP_NUM_THREADS=1, defaults; about 4 minutes in all; wall s, peak RSS MiB):

    task                      local             Ray 1 worker              Ray 2 workers
    ML-1M eval, EASE, 6,038u  1.10 s  drv 595   3.38 s  drv 667  wk 508   2.58 s  drv 739  wk 574/487
    ML-1M text, MiniLM, 1000i 52.5 s  drv 1075  61.9 s  drv 1043 wk 933   38.8 s  drv 1043 wk 916/871
    synthetic 1M items, 5M
      interactions, 1,000u    16.6 s  drv 2089  17.7 s  drv 1477 wk 1444  15.5 s  drv 1796 wk 1721/1412

Results are asserted equal to the local ones (evaluation bit-identical, features within 1e-5).
ML-1M evaluation is too small for Ray: a worker's first task imports torch and fusionrec and
fetches the model (~2 s fixed). Extraction: ~9 s per worker to start and load MiniLM, then 1.35x
with 2 workers. At 1M items the two evaluation tasks each ran at 27.6 ms per user against 16.6 ms
alone (scoring writes a 4 MB row per user: two processes on two cores share memory bandwidth), so
2 workers gave only 1.07x here; on separate nodes the per-user cost is the single-process one.
The 50M-interaction set was not run (5M measured): the per-user cost depends on the item count,
not on the interactions; prepare and the plan size are scaled linearly to 50M in the estimate:

    100 nodes x 16 cores: evaluation of 1M users x 1M items ~17 s of scoring, but the model (0.51 GB)
    and the whole plan (0.53 GB at 50M) go to every node (<= 84 s at 10 Gb/s from the driver):
    the bottleneck is that broadcast, then the driver's merge memory (0.22 GB per 1M users).
    Extraction of 1M texts: 42 s of encoding across the cluster, but the driver's serial plan
    (0.045 ms/item) + commit (0.029 ms/item) takes 74 s: the driver is the bottleneck above ~700
    workers (and for images/audio it also reads every file to hash it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

ROWS: list[dict[str, Any]] = []


class MemorySampler:
    """Peak RSS (MiB) of the driver and of every ``ray::`` process while the block runs."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.driver = 0.0
        self.workers: dict[int, float] = {}
        self._stop = threading.Event()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.driver = max(self.driver, me.memory_info().rss / 2**20)
            for proc in psutil.process_iter(["pid", "cmdline", "memory_info"]):
                cmd = proc.info.get("cmdline") or []
                info = proc.info.get("memory_info")
                if cmd and cmd[0].startswith("ray::") and "IDLE" not in cmd[0] and info is not None:
                    self.workers[proc.pid] = max(self.workers.get(proc.pid, 0.0), info.rss / 2**20)
            self._stop.wait(self.interval)

    @contextmanager
    def run(self) -> Iterator[MemorySampler]:
        thread = threading.Thread(target=self._sample, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()


def measure(task: str, mode: str, fn: Callable[[], Any], units: int, unit: str) -> Any:
    """Run ``fn`` under the memory sampler; record wall time, per-unit cost and peak RSS."""
    sampler = MemorySampler()
    with sampler.run():
        started = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - started
    workers = sorted(sampler.workers.values(), reverse=True)
    ROWS.append(
        {
            "task": task,
            "mode": mode,
            "seconds": seconds,
            "units": units,
            "unit": unit,
            "ms_per_unit": 1000 * seconds / max(units, 1),
            "driver_peak_mb": sampler.driver,
            "worker_peak_mb": workers[:4],
        }
    )
    print(f"  {task:<22} {mode:<8} {seconds:8.2f}s  driver {sampler.driver:7.0f} MiB  workers {[round(w) for w in workers[:4]]}")
    return value


class RandomFactors:
    """A factor model with random vectors: ``score(users) = U[users] @ V.T`` (float32)."""

    def __init__(self, n_users: int, n_items: int, dim: int = 64, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.user_factors = rng.standard_normal((n_users, dim), dtype=np.float32)
        self.item_factors = rng.standard_normal((n_items, dim), dtype=np.float32)

    def score(self, users: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.user_factors[users]) @ torch.from_numpy(self.item_factors).T


def _same(a: Any, b: Any) -> None:
    assert a.mean() == b.mean(), (a.mean(), b.mean())
    for key in a.per_user:
        np.testing.assert_array_equal(a.per_user[key], b.per_user[key])


def bench_ml1m_eval(split_dir: Path) -> dict[str, float]:
    from fusionrec.data.splits import Split
    from fusionrec.distributed.evaluate import evaluate_ray
    from fusionrec.eval.evaluator import Evaluator
    from fusionrec.models.ease import EASE

    split = Split.load(split_dir)
    model = EASE(l2=500.0).fit(split.train, item_ids=split.item_map.ids)
    evaluator = Evaluator(ks=(10, 20), batch_size=512)
    n_users = int((np.diff(split.csr("test").indptr) > 0).sum())
    local = measure("ml1m eval (EASE)", "local", lambda: evaluator.evaluate(model, split, on="test"), n_users, "user")
    for shards in (1, 2):
        stats: list[dict[str, float]] = []
        result = measure(
            "ml1m eval (EASE)", f"ray {shards}",
            lambda s=shards, st=stats: evaluate_ray(evaluator, model, split, on="test", n_shards=s, stats=st),
            n_users, "user",
        )  # fmt: skip
        _same(local, result)
        ROWS[-1]["task_peak_mb"] = [round(s["peak_rss_mb"]) for s in stats]
    return {"recall@20": local.mean()["recall@20"], "n_users": n_users}


def bench_text(dataset_dir: Path, n_items: int) -> dict[str, float]:
    from fusionrec.data.schema import Dataset, IdMap
    from fusionrec.distributed.extract import extract_features_ray
    from fusionrec.features.config import FeaturesConfig
    from fusionrec.features.extract import EncoderHandle, commit, encode_all, plan
    from fusionrec.features.store import FeatureStore

    full = Dataset.load(dataset_dir)
    keep = full.interactions.item < n_items
    dataset = dataclasses.replace(
        full,
        items=full.items.iloc[:n_items].reset_index(drop=True),
        item_map=IdMap(list(full.item_map.ids[:n_items])),
        interactions=dataclasses.replace(full.interactions.select(keep), n_items=n_items),
    )
    config = FeaturesConfig()
    config.runtime.threads = 1
    costs: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = FeatureStore(Path(tmp) / "local")
        handle = EncoderHandle("text", config, threads=1, model_dir=store.root / "models")
        started = time.perf_counter()
        work = plan(dataset, "text", handle, store, config)
        costs["plan_ms_per_item"] = 1000 * (time.perf_counter() - started) / n_items
        handle.encoder  # noqa: B018  (load outside the timing, as extract_features does)
        results = measure("ml1m text (MiniLM)", "local", lambda: list(encode_all(handle, work.batches)), n_items, "item")
        started = time.perf_counter()
        local, _ = commit(work, results, store)
        costs["commit_ms_per_item"] = 1000 * (time.perf_counter() - started) / n_items
        for workers in (1, 2):
            out = measure(
                "ml1m text (MiniLM)", f"ray {workers}",
                lambda w=workers: extract_features_ray(dataset, ["text"], cache_dir=Path(tmp) / f"ray{w}", config=config, n_workers=w),
                n_items, "item",
            )  # fmt: skip
            np.testing.assert_allclose(out.features["text"].matrix, local.matrix, atol=1e-5, rtol=0)
    return costs


def bench_synthetic(n_items: int, n_interactions: int, n_eval: int) -> dict[str, float]:
    import scipy.sparse as sp

    from fusionrec.distributed.evaluate import evaluate_plan_ray
    from fusionrec.eval.evaluator import Evaluator

    rng = np.random.default_rng(0)
    n_users = max(n_eval, n_interactions // 50)
    started = time.perf_counter()
    users = rng.integers(0, n_users, n_interactions, dtype=np.int32)
    items = (rng.random(n_interactions) ** 3 * n_items).astype(np.int32)  # a popularity skew
    train = sp.csr_matrix((np.ones(n_interactions, np.float32), (users, items)), shape=(n_users, n_items))
    evaluated = rng.choice(n_users, n_eval, replace=False)
    truth = sp.csr_matrix(
        (np.ones(n_eval, np.float32), (evaluated, rng.integers(0, n_items, n_eval))), shape=(n_users, n_items)
    )
    build_s = time.perf_counter() - started
    model = RandomFactors(n_users, n_items)
    evaluator = Evaluator(ks=(10, 20), batch_size=64)
    started = time.perf_counter()
    prepared = evaluator.prepare(truth, train, train=train, part="test")
    prepare_s = time.perf_counter() - started
    label = f"synthetic {n_items // 1000}k items"
    local = measure(label, "local", lambda: evaluator.evaluate_matrices(model, truth, train, train=train), n_eval, "user")
    for shards in (1, 2):
        stats: list[dict[str, float]] = []
        result = measure(
            label, f"ray {shards}",
            lambda s=shards, st=stats: evaluate_plan_ray(evaluator, model, prepared, n_shards=s, stats=st),
            n_eval, "user",
        )  # fmt: skip
        _same(local, result)
        ROWS[-1]["task_peak_mb"] = [round(s["peak_rss_mb"]) for s in stats]
        task_ms = 1000 * sum(s["seconds"] for s in stats) / n_eval
    import pickle

    return {
        "build_s": build_s,
        "prepare_s": prepare_s,
        "n_users": n_users,
        "nnz": int(train.nnz),
        "plan_bytes": len(pickle.dumps(prepared, protocol=pickle.HIGHEST_PROTOCOL)),
        "task_ms_per_user": task_ms,
    }


def scaling_estimate(text: dict[str, float], synth: dict[str, float], n_items: int) -> str:
    """The 100-node estimate from the measured single-core costs and driver-side costs."""

    def row(task: str, mode: str) -> dict[str, Any]:
        return next(r for r in ROWS if r["task"].startswith(task) and r["mode"] == mode)

    cores, gbit = 100 * 16, 10.0
    # evaluation: per user-core (the tasks' own timing, = the local single-core cost), 50M interactions
    per_user = synth["task_ms_per_user"]
    n_users = 1_000_000  # a 50M-interaction set at 50 interactions per user
    scale = 50_000_000 / max(synth["nnz"], 1)
    score_s = n_users * per_user / 1000 / cores
    model_gb = (n_users + n_items) * 64 * 4 / 1e9
    plan_gb = synth["plan_bytes"] * scale / 1e9
    ship_s = 100 * (model_gb + plan_gb) * 8 / gbit
    prepare_s = synth["prepare_s"] * scale
    merge_gb = n_users * (20 * 8 + 8 * 8) / 1e9
    # extraction: per item-core (local single core), fixed start-up of a worker, serial driver work
    per_item = row("ml1m text", "local")["ms_per_unit"]
    startup_s = row("ml1m text", "ray 1")["seconds"] - row("ml1m text", "local")["seconds"]
    driver_ms = text["plan_ms_per_item"] + text["commit_ms_per_item"]
    n_enc = 1_000_000
    encode_s = n_enc * per_item / 1000 / cores + max(startup_s, 0.0)
    driver_s = n_enc * driver_ms / 1000
    crossover = per_item / max(driver_ms, 1e-9)
    eval_bottleneck = "shipping the model and the whole plan to every node" if ship_s > score_s else "scoring"
    extract_bottleneck = "the driver's serial plan + commit" if driver_s > encode_s else "encoding"
    return "\n".join(
        [
            f"Scaling estimate: 100 nodes x 16 cores = {cores:,} single-thread workers, {gbit:g} Gb/s from the driver.",
            f"Evaluation, {n_items:,} items, {n_users:,} users (50M interactions; measured at {synth['nnz']:,}, "
            f"driver-side costs scaled linearly x{scale:.0f}):",
            f"  scoring + masking + top-k {per_user:.1f} ms per user-core (Ray tasks' own timing) -> {score_s:.0f} s;",
            f"  model {model_gb:.2f} GB + plan (truth + exclusions) {plan_gb:.2f} GB put once, pulled by 100 nodes: "
            f"<= {ship_s:.0f} s if all from the driver (Ray also pulls from nodes that have a copy);",
            f"  driver prepare ~{prepare_s:.1f} s; merged per-user arrays ~{merge_gb:.2f} GB on the driver.",
            f"  Bottleneck: {eval_bottleneck}; next the driver's memory for the merged arrays. "
            "Remedy: per-shard plans (each task gets its users' rows only) and means reduced on the workers.",
            f"Extraction, {n_enc:,} items of ML-1M-like text with MiniLM:",
            f"  {per_item:.1f} ms per item-core -> {encode_s:.0f} s of encoding (incl. ~{max(startup_s, 0):.0f} s "
            "worker start + model load);",
            f"  the driver plans ({text['plan_ms_per_item']:.3f} ms/item: render, hash, store lookup) and commits "
            f"({text['commit_ms_per_item']:.3f} ms/item) serially -> {driver_s:.0f} s.",
            f"  Bottleneck: {extract_bottleneck} (encoding stops being the limit above ~{crossover:.0f} workers); "
            "for images/audio also the driver reading every file to hash it. Remedy: plan and commit per shard "
            "on the workers into a shared store.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", type=Path, default=Path("runs/ml1m-split"))
    parser.add_argument("--dataset", type=Path, default=Path("runs/ml1m"))
    parser.add_argument("--text-items", type=int, default=1000)
    parser.add_argument("--synthetic-items", type=int, default=1_000_000)
    parser.add_argument("--synthetic-interactions", type=int, default=5_000_000)
    parser.add_argument("--synthetic-users", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-ray.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    from fusionrec.distributed.cluster import connect

    with connect("local", num_cpus=2):
        print("ML-1M evaluation")
        ml1m = bench_ml1m_eval(args.split)
        print("ML-1M text extraction")
        text = bench_text(args.dataset, args.text_items)
        print("synthetic evaluation")
        synth = bench_synthetic(args.synthetic_items, args.synthetic_interactions, args.synthetic_users)
    print()
    print(f"{'task':<22} {'mode':<7} {'wall s':>8} {'ms/unit':>9} {'driver MiB':>10}  worker peak MiB (sampled / task ru_maxrss)")
    for r in ROWS:
        tasks = r.get("task_peak_mb", "")
        print(
            f"{r['task']:<22} {r['mode']:<7} {r['seconds']:8.2f} {r['ms_per_unit']:7.2f}/{r['unit'][0]} "
            f"{r['driver_peak_mb']:10.0f}  {[round(w) for w in r['worker_peak_mb']]} {tasks}"
        )
    estimate = scaling_estimate(text, synth, args.synthetic_items)
    print()
    print(estimate)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": ROWS, "ml1m": ml1m, "text": text, "synthetic": synth, "estimate": estimate}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
