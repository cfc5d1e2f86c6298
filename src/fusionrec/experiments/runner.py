"""Train-and-evaluate runs of named models on a split: what ``fusionrec demo`` and scripts call."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fusionrec.eval.evaluator import EvalResult, Evaluator
from fusionrec.eval.report import beyond_table, metrics_table

if TYPE_CHECKING:
    from rich.console import Console

    from fusionrec.data.splits import Split
    from fusionrec.models.base import Recommender

DEFAULT_BASELINES = ("mostpop", "itemknn", "ease", "bpr", "lightgcn")


@dataclass
class ModelRun:
    """A fitted model with its held-out result and how long it took."""

    name: str
    model: Recommender
    result: EvalResult
    train_time_s: float
    n_epochs: int | None = None
    best_epoch: int | None = None

    @property
    def time_per_epoch_s(self) -> float | None:
        return self.train_time_s / self.n_epochs if self.n_epochs else None


def train_and_evaluate(
    name: str,
    split: Split,
    k: Sequence[int] = (10, 20),
    config: Mapping[str, Any] | None = None,
    on: str = "test",
    features: Any | None = None,
) -> ModelRun:
    """Fit model ``name`` on train (valid for early stopping) and evaluate it on ``on``."""
    from fusionrec.models.registry import build_model

    model = build_model(name, dict(config) if config else None)
    start = time.perf_counter()
    model.fit(split.train, features=features, valid=split.valid, item_ids=split.item_map.ids)
    train_time = time.perf_counter() - start
    result = Evaluator(ks=k).evaluate(model, split, on=on)
    history = getattr(model, "history_", None)
    return ModelRun(
        name=name,
        model=model,
        result=result,
        train_time_s=train_time,
        n_epochs=history.n_epochs if history is not None else None,
        best_epoch=history.best_epoch if history is not None else None,
    )


def run_baselines(
    split: Split,
    models: Sequence[str] = DEFAULT_BASELINES,
    k: Sequence[int] = (10, 20),
    console: Console | None = None,
    configs: Mapping[str, Mapping[str, Any]] | None = None,
    keys: Sequence[str] | None = None,
    features: Any | None = None,
) -> dict[str, ModelRun]:
    """Train every model in ``models`` with its defaults (or ``configs[name]``), evaluate on test
    (valid items excluded too), print a table with 95 % intervals to ``console`` and return the runs.
    ``features`` (a FeatureSet aligned with the split's items) reaches every model; pure CF models ignore it."""
    runs: dict[str, ModelRun] = {}
    for name in models:
        if console is not None:
            console.print(f"training [bold]{name}[/] ...")
        runs[name] = train_and_evaluate(name, split, k=k, config=(configs or {}).get(name), features=features)
    if console is not None:
        console.print(baselines_table(runs, keys=keys))
        console.print(beyond_table({n: r.result for n, r in runs.items()}))
    return runs


def baselines_table(
    runs: Mapping[str, ModelRun],
    title: str = "test, full ranking (±: 95 % t-interval half-width)",
    keys: Sequence[str] | None = None,
) -> Any:
    """A rich table of runs: metrics (``keys``, default all) with intervals, train time, epochs, evaluation time."""
    extra = {
        "train s": {n: f"{r.train_time_s:.1f}" for n, r in runs.items()},
        "epochs": {n: (f"{r.n_epochs} (best {r.best_epoch})" if r.n_epochs else "-") for n, r in runs.items()},
    }
    return metrics_table({n: r.result for n, r in runs.items()}, keys=keys, extra_columns=extra, title=title)


@dataclass
class Trial:
    params: dict[str, Any]
    valid_value: float
    train_time_s: float
    n_epochs: int | None = None


@dataclass
class TuneResult:
    """A grid search: every trial's valid value, the chosen point and its test result."""

    metric: str
    trials: list[Trial]
    best: Trial
    best_run: ModelRun  # the chosen trial's own fitted model (evaluated on valid)
    test: EvalResult


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """All combinations of a ``{param: [values]}`` grid, in order (a scalar counts as one value)."""
    import itertools

    keys = list(grid)
    values = [v if isinstance(v, list | tuple) else [v] for v in grid.values()]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def grid_search(
    name: str,
    split: Split,
    grid: Mapping[str, Sequence[Any]],
    metric: str = "recall@20",
    k: Sequence[int] = (10, 20),
    base_config: Mapping[str, Any] | None = None,
    console: Console | None = None,
    features: Any | None = None,
) -> TuneResult:
    """Fit ``name`` at every grid point on train, choose by ``metric`` on valid, report test there.

    Test is evaluated once, for the chosen point only: selection never looks at test.
    """
    from fusionrec.ranking.keys import check_valid_metric, parse_metric_key

    _, metric_k = parse_metric_key(check_valid_metric(metric, what="metric"))
    assert metric_k is not None
    ks = tuple(sorted({*k, metric_k}))
    trials: list[Trial] = []
    best: tuple[float, Trial, ModelRun] | None = None
    for params in expand_grid(grid):
        config = dict(base_config or {}) | params
        if "valid_metric" in _config_fields(name):
            config.setdefault("valid_metric", metric)
        run = train_and_evaluate(name, split, k=ks, config=config, on="valid", features=features)
        value = run.result.mean()[metric]
        trial = Trial(params=params, valid_value=value, train_time_s=run.train_time_s, n_epochs=run.n_epochs)
        trials.append(trial)
        if console is not None:
            console.print(f"{name} {params}: valid {metric} = {value:.4f} ({run.train_time_s:.1f}s)")
        if best is None or value > best[0]:
            best = (value, trial, run)
    if best is None:
        raise ValueError("the grid is empty")
    _, best_trial, best_run = best
    test = Evaluator(ks=ks).evaluate(best_run.model, split, on="test")
    return TuneResult(metric=metric, trials=trials, best=best_trial, best_run=best_run, test=test)


def _config_fields(name: str) -> set[str]:
    from fusionrec.models.registry import config_class

    return set(config_class(name).model_fields)
