"""Full-ranking evaluation sharded by user on Ray; the same EvalResult as ``Evaluator.evaluate``.

The driver builds the :class:`~fusionrec.eval.evaluator.EvalPlan` (held-out truth, exclusions,
item groups) once; the model and the plan go to the object store once (``ray.put``); the users
are cut into the evaluator's own batches (``plan.users[lo : lo + batch_size]``) and contiguous
runs of whole batches form the shards, one remote task each, so every batch is scored exactly
as the local loop scores it. :meth:`~fusionrec.eval.evaluator.Evaluator.merge` on the driver
sorts the partial results by user: metric means and per-user arrays are identical to the local
path's.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from fusionrec.eval.evaluator import EvalPlan, EvalResult, Evaluator, PartialResult

if TYPE_CHECKING:
    from fusionrec.data.splits import Split
    from fusionrec.ranking.heldout import Scorer

__all__ = ["evaluate_plan_ray", "evaluate_ray", "shard_batches"]


def shard_batches(users: np.ndarray, batch_size: int, n_shards: int) -> list[list[np.ndarray]]:
    """The evaluator's batches of ``users``, grouped into at most ``n_shards`` contiguous shards."""
    batches = [users[lo : lo + batch_size] for lo in range(0, len(users), batch_size)]
    if not batches:
        return []
    groups = np.array_split(np.arange(len(batches)), min(n_shards, len(batches)))
    return [[batches[i] for i in group] for group in groups if len(group)]


def _evaluate_shard(
    evaluator: Evaluator, model: Scorer, plan: EvalPlan, batches: list[np.ndarray], threads: int
) -> tuple[list[PartialResult], dict[str, float]]:
    """One shard's partial results, and what the worker measured (seconds, peak RSS)."""
    import resource

    import torch

    torch.set_num_threads(threads)
    started = time.perf_counter()
    partials = [evaluator.evaluate_batch(model, plan, users) for users in batches]
    stats = {
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "n_users": float(sum(len(b) for b in batches)),
        "pid": float(os.getpid()),
    }
    return partials, stats


def evaluate_ray(
    evaluator: Evaluator,
    model: Scorer,
    split: Split,
    on: str = "test",
    candidates: np.ndarray | str | None = None,
    *,
    n_shards: int | None = None,
    threads_per_task: int = 1,
    stats: list[dict[str, float]] | None = None,
) -> EvalResult:
    """``evaluator.evaluate(model, split, on, candidates)`` with the batches on Ray tasks.

    Needs a Ray connection (:func:`fusionrec.distributed.cluster.connect`). ``n_shards``
    (default: the cluster's CPUs) remote tasks each score a contiguous run of the evaluator's
    batches with ``threads_per_task`` torch threads; ``stats``, when given, receives each
    task's seconds, peak RSS (MiB), user count and process id.
    """
    from fusionrec.distributed.cluster import require_ray

    require_ray()
    start = time.perf_counter()
    plan = evaluator.prepare_split(split, on, candidates)
    result = evaluate_plan_ray(evaluator, model, plan, n_shards=n_shards, threads_per_task=threads_per_task, stats=stats)
    result.time_s = time.perf_counter() - start
    return result


def evaluate_plan_ray(
    evaluator: Evaluator,
    model: Scorer,
    plan: EvalPlan,
    *,
    n_shards: int | None = None,
    threads_per_task: int = 1,
    stats: list[dict[str, float]] | None = None,
) -> EvalResult:
    """:meth:`Evaluator.evaluate_batch` over every batch of a prepared ``plan`` on Ray tasks, merged.

    The same result as ``evaluator.evaluate_matrices`` on the matrices ``plan`` was prepared from."""
    from fusionrec.distributed.cluster import n_workers, require_ray

    ray = require_ray()
    start = time.perf_counter()
    shards = shard_batches(plan.users, evaluator.batch_size, n_shards or n_workers())
    remote: Any = ray.remote(num_cpus=threads_per_task)(_evaluate_shard)
    model_ref, plan_ref, evaluator_ref = ray.put(model), ray.put(plan), ray.put(evaluator)
    futures = [remote.remote(evaluator_ref, model_ref, plan_ref, shard, threads_per_task) for shard in shards]
    partials: list[PartialResult] = []
    for shard_partials, shard_stats in ray.get(futures):
        partials.extend(shard_partials)
        if stats is not None:
            stats.append(shard_stats)
    result = evaluator.merge(plan, partials)
    result.time_s = time.perf_counter() - start
    return result
