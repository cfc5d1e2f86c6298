"""Grid search on Ray Tune: one trial per grid point, selection on valid, test at the chosen point.

Every trial runs :func:`fusionrec.experiments.runner.train_and_evaluate` on valid with the
evaluator the local :func:`~fusionrec.experiments.runner.grid_search` uses (same cut-offs, the
selection metric's k added) and reports the valid metric to Tune. The grid is
:func:`~fusionrec.experiments.runner.expand_grid`'s list, addressed by position
(``tune.grid_search(range(n))``) so that any parameter value travels and the order is the local
one; ties go to the first point, as locally. The chosen point is refitted on the driver and
evaluated on valid (its ``best_run``) and then on test, once: selection never looks at test.
Returns the same :class:`~fusionrec.experiments.runner.TuneResult`.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fusionrec.eval.evaluator import Evaluator
from fusionrec.experiments.runner import Trial, TuneResult, expand_grid, train_and_evaluate

if TYPE_CHECKING:
    from rich.console import Console

    from fusionrec.data.splits import Split

__all__ = ["grid_search_ray"]


def _trial(
    config: dict[str, Any],
    *,
    name: str,
    split: Split,
    points: list[dict[str, Any]],
    base: dict[str, Any],
    ks: tuple[int, ...],
    metric: str,
    features: Any | None,
    threads: int,
) -> None:
    """One Tune trial: fit grid point ``config["point"]``, report its valid metric."""
    import torch
    from ray import tune

    torch.set_num_threads(threads)
    params = points[int(config["point"])]
    run = train_and_evaluate(name, split, k=ks, config=base | params, on="valid", features=features)
    tune.report(
        {
            "valid": float(run.result.mean()[metric]),
            "train_time_s": run.train_time_s,
            "n_epochs": -1 if run.n_epochs is None else run.n_epochs,
        }
    )


def grid_search_ray(
    name: str,
    split: Split,
    grid: Mapping[str, Sequence[Any]],
    metric: str = "recall@20",
    k: Sequence[int] = (10, 20),
    base_config: Mapping[str, Any] | None = None,
    console: Console | None = None,
    features: Any | None = None,
    *,
    max_concurrent: int | None = None,
    threads_per_trial: int = 1,
    storage_path: str | None = None,
) -> TuneResult:
    """:func:`fusionrec.experiments.runner.grid_search` with the trials on Ray Tune.

    Needs a Ray connection (:func:`fusionrec.distributed.cluster.connect`); the split and the
    features go to the object store once (``tune.with_parameters``). ``max_concurrent`` trials
    run at once (default: as many as the cluster's CPUs allow at ``threads_per_trial`` each);
    Tune's trial folders go under ``storage_path`` (default a temporary folder).
    """
    from fusionrec.distributed.cluster import require_ray
    from fusionrec.experiments.runner import _config_fields
    from fusionrec.ranking.keys import check_valid_metric, parse_metric_key

    require_ray()
    from ray import tune

    _, metric_k = parse_metric_key(check_valid_metric(metric, what="metric"))
    assert metric_k is not None
    ks = tuple(sorted({*k, metric_k}))
    points = expand_grid(grid)
    if not points:
        raise ValueError("the grid is empty")
    base = dict(base_config or {})
    if "valid_metric" in _config_fields(name):
        base.setdefault("valid_metric", metric)
    trainable = tune.with_resources(
        tune.with_parameters(
            _trial, name=name, split=split, points=points, base=base, ks=ks, metric=metric,
            features=features, threads=threads_per_trial,
        ),
        {"cpu": threads_per_trial},
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="fusionrec-tune-") as tmp:
        tuner = tune.Tuner(
            trainable,
            param_space={"point": tune.grid_search(list(range(len(points))))},
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent),
            run_config=tune.RunConfig(storage_path=storage_path or tmp, verbose=0, name=f"grid-{name}"),
        )
        with contextlib.redirect_stdout(sys.stderr):  # Tune's banner would corrupt --json output
            grid_results = tuner.fit()
        by_point: dict[int, dict[str, Any]] = {}
        for position in range(len(grid_results)):
            trial_result = grid_results[position]
            if trial_result.error is not None:
                raise trial_result.error
            config: dict[str, Any] = trial_result.config or {}
            by_point[int(config["point"])] = dict(trial_result.metrics or {})
    trials: list[Trial] = []
    for index, params in enumerate(points):
        metrics = by_point[index]
        epochs = int(metrics["n_epochs"])
        trial = Trial(
            params=params,
            valid_value=float(metrics["valid"]),
            train_time_s=float(metrics["train_time_s"]),
            n_epochs=None if epochs < 0 else epochs,
        )
        trials.append(trial)
        if console is not None:
            console.print(f"{name} {params}: valid {metric} = {trial.valid_value:.4f} ({trial.train_time_s:.1f}s, on Ray)")
    best = trials[0]
    for trial in trials[1:]:
        if trial.valid_value > best.valid_value:  # first of equals wins, as in grid_search
            best = trial
    best_run = train_and_evaluate(name, split, k=ks, config=base | best.params, on="valid", features=features)
    test = Evaluator(ks=ks).evaluate(best_run.model, split, on="test")
    return TuneResult(metric=metric, trials=trials, best=best, best_run=best_run, test=test)
