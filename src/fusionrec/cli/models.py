"""CLI verbs of the model stage: `train`, `evaluate`, `recommend`, `tune`.

A model directory is a :class:`~fusionrec.models.bundle.ModelBundle`: the model, the split's id
maps, the seen-items matrix (stored once) and the provenance of the split and features, all
loadable without pickle.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import scipy.sparse as sp
import typer
import yaml
from rich.table import Table

from fusionrec.cli.app import app, console, friendly_errors
from fusionrec.data.splits import Split
from fusionrec.errors import DataError, ModelError
from fusionrec.models.base import Recommender, as_csr
from fusionrec.models.bundle import ModelBundle
from fusionrec.models.registry import build_model, config_class, model_names

# --------------------------------------------------------------------------- helpers
RayOption = Annotated[
    str | None, typer.Option("--ray", help="Run on Ray: local (start a local cluster) or a cluster address.")
]
FeaturesOption = Annotated[
    Path | None, typer.Option("--features", help="Feature directory from `fusionrec features` (content models).")
]


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(p) for p in text.replace(" ", "").split(",") if p})
    except ValueError:
        raise typer.BadParameter(f"--k takes comma-separated integers such as 10,20, not {text!r}") from None
    if not ks or ks[0] < 1:
        raise typer.BadParameter("--k needs at least one cut-off >= 1")
    return ks


def _coerce(value: str) -> Any:
    """A --set value as YAML (so 0.01, 3, true, [1, 2] keep their types)."""
    return yaml.safe_load(value)


def model_config(name: str, config_file: Path | None, overrides: list[str] | None) -> dict[str, Any]:
    """Hyper-parameters from a YAML file (the config class's fields) and ``key=value`` overrides."""
    values: dict[str, Any] = {}
    if config_file is not None:
        if not config_file.exists():
            raise DataError("config file not found", file=str(config_file))
        loaded = yaml.safe_load(config_file.read_text()) or {}
        if not isinstance(loaded, dict):
            raise DataError("a model config must be a mapping of hyper-parameter: value", file=str(config_file))
        values.update(loaded)
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set takes key=value, not {item!r}")
        values[key.strip()] = _coerce(raw)
    try:
        config_class(name).model_validate(values)
    except ValueError as exc:
        where = f" ({config_file})" if config_file else ""
        raise ModelError(f"invalid hyper-parameters for {name}{where}: {validation_message(exc)}") from None
    return values


def validation_message(exc: ValueError) -> str:
    """A pydantic error as ``field: reason; ...`` on one line (the exception text otherwise)."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    parts = []
    for error in errors():
        where = ".".join(str(p) for p in error.get("loc", ())) or "config"
        parts.append(f"{where}: {str(error.get('msg', '')).removeprefix('Value error, ')}")
    return "; ".join(parts)


def save_model_dir(model: Recommender, directory: Path, split: Split, features: Any | None = None) -> Path:
    """The model as a self-contained bundle (ids, seen items, provenance)."""
    return ModelBundle.from_split(model, split, features).save(directory)


def load_features(features_dir: Path | None) -> Any | None:
    if features_dir is None:
        return None
    from fusionrec.features.base import FeatureSet

    return FeatureSet.load(features_dir)


# --------------------------------------------------------------------------- verbs
@app.command()
@friendly_errors
def train(
    split_dir: Annotated[Path, typer.Argument(help="A split directory written by `fusionrec split`.")],
    model: Annotated[str, typer.Option("--model", "-m", help=f"One of: {', '.join(model_names())}.")],
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    config: Annotated[Path | None, typer.Option("--config", help="YAML of the model's hyper-parameters.")] = None,
    set_values: Annotated[
        list[str] | None, typer.Option("--set", help="Override one hyper-parameter, e.g. --set l2=300 (repeatable).")
    ] = None,
    features_dir: FeaturesOption = None,
) -> None:
    """Fit a model on the split's train part (valid for early stopping) and save it as a bundle."""
    values = model_config(model, config, set_values)
    split = Split.load(split_dir)
    recommender = build_model(model, values)
    features = load_features(features_dir)
    start = time.perf_counter()
    recommender.fit(split.train, features=features, valid=split.valid, item_ids=split.item_map.ids)
    elapsed = time.perf_counter() - start
    save_model_dir(recommender, out, split, features)
    history = getattr(recommender, "history_", None)
    line = f"trained [bold]{model}[/] in {elapsed:.1f}s"
    if history is not None and history.best_epoch is not None:
        line += f", {history.n_epochs} epochs, best valid {history.metric} {history.best_value:.4f} at epoch {history.best_epoch}"
    console.print(line + f"; saved to {out}")


@app.command()
@friendly_errors
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="A model directory written by `fusionrec train`.")],
    split_dir: Annotated[Path, typer.Argument(help="The split the model was trained on.")],
    on: Annotated[str, typer.Option("--on", help="valid (excludes train items) or test (excludes train+valid).")] = "test",
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")] = "10,20",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (keys such as recall@20) instead of tables.")] = False,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Also write metric, mean, CI rows to this CSV.")] = None,
    ci: Annotated[str, typer.Option("--ci", help="Confidence intervals: t or bootstrap.")] = "t",
    auc: Annotated[bool, typer.Option("--auc", help="Also compute full-ranking AUC (sorts every row).")] = False,
    groups: Annotated[bool, typer.Option("--groups", help="Print breakdowns by user activity and item popularity.")] = False,
    candidates: Annotated[
        str, typer.Option("--candidates", help="all (rank every item) or cold (only the held-out items without training data).")
    ] = "all",
    ray_address: RayOption = None,
) -> None:
    """Full-ranking evaluation of a saved model on valid or test, with 95 % confidence intervals.

    On a cold-item split, `--candidates cold` ranks among the cold items only (the DropoutNet /
    CLCRec protocol); `all` ranks them among every item and `--groups` reports cold and warm apart."""
    from fusionrec.eval.evaluator import Evaluator  # lazy: torch loads only when needed
    from fusionrec.eval.report import _clean, beyond_table, groups_table, metrics_table, write_csv
    if on not in ("valid", "test"):
        raise typer.BadParameter("--on must be valid or test")
    if ci not in ("t", "bootstrap"):
        raise typer.BadParameter("--ci must be t or bootstrap")
    if candidates not in ("all", "cold"):
        raise typer.BadParameter("--candidates must be all or cold")
    ks = parse_ks(k)
    bundle = ModelBundle.load(model_dir)
    split = Split.load(split_dir)
    bundle.check_split(split)
    evaluator, chosen = Evaluator(ks=ks, auc=auc), None if candidates == "all" else "cold"
    if ray_address is None:
        result = evaluator.evaluate(bundle.model, split, on=on, candidates=chosen)
    else:
        from fusionrec.distributed.cluster import connect
        from fusionrec.distributed.evaluate import evaluate_ray

        with connect(ray_address):
            result = evaluate_ray(evaluator, bundle.model, split, on=on, candidates=chosen)
    if candidates == "cold" and result.n_evaluated == 0:
        raise DataError(f"no {on} interaction is with an item that has no training data: is this a cold-item split?")
    name = bundle.name
    if csv_path is not None:
        write_csv({name: result}, csv_path, ci_method=ci)
    if as_json:
        summary = result.summary(ci_method=ci)
        flat = summary["metrics"] | {k_: v for k_, v in summary.items() if k_ != "metrics"}
        typer.echo(json.dumps(_clean(flat | {"model": name}), indent=2))
        return
    scope = f"full ranking over {result.n_items} items" if candidates == "all" else "ranking among the cold items"
    console.print(metrics_table({name: result}, ci=ci, title=f"{on}, {scope}"))
    console.print(f"{result.n_evaluated} users evaluated, {result.n_skipped} without {on} items skipped")
    console.print(beyond_table({name: result}))
    if groups:
        console.print(groups_table(result, by="activity"))
        console.print(groups_table(result, by="popularity"))


def _read_user_file(path: Path) -> list[str]:
    if not path.exists():
        raise DataError("file not found", file=str(path))
    lines = [line.strip().split("\t")[0].split(",")[0] for line in path.read_text().splitlines()]
    values = [v for v in lines if v]
    if values and values[0].lower() in ("user", "user_id", "userid"):
        values = values[1:]
    if not values:
        raise DataError("no user ids in file", file=str(path))
    return values


@app.command()
@friendly_errors
def recommend(
    model_dir: Annotated[Path, typer.Argument(help="A model directory written by `fusionrec train`.")],
    out: Annotated[Path | None, typer.Option("--out", help="TSV to write: user_id, item_id, rank (1 = best).")] = None,
    users: Annotated[Path | None, typer.Option("--users", help="File of user ids, one per line.")] = None,
    split_dir: Annotated[Path | None, typer.Option("--split", help="Recommend for the users held out in --on of this split.")] = None,
    on: Annotated[str, typer.Option("--on", help="With --split: valid or test.")] = "test",
    k: Annotated[int, typer.Option("--k", help="Items per user.")] = 20,
    batch_size: Annotated[int, typer.Option(help="Users scored at once.")] = 2048,
    seed_items: Annotated[str | None, typer.Option("--items", help="New user: item ids they picked, comma-separated.")] = None,
    text: Annotated[str | None, typer.Option("--text", help="New user: what they like, in words (needs --features).")] = None,
    profile: Annotated[
        list[str] | None, typer.Option("--profile", help="New user: a profile attribute, e.g. --profile age=25 (repeatable).")
    ] = None,
    features_dir: FeaturesOption = None,
    dataset_dir: Annotated[Path | None, typer.Option("--dataset", help="Dataset for titles and profiles (default: the split's).")] = None,
    text_encoder: Annotated[str, typer.Option("--text-encoder", help="The encoder that made the text features.")] = "minilm",
    rerank_method: Annotated[
        str | None, typer.Option("--rerank", help="Re-rank for diversity: mmr or dpp (see fusionrec.rerank).")
    ] = None,
    diversity: Annotated[
        float | None, typer.Option("--diversity", help="With --rerank: trade-off in [0, 1], 0 = the model's order (default 0.3).")
    ] = None,
    rerank_space: Annotated[
        str | None,
        typer.Option("--rerank-space", help="With --rerank: fused (needs --features), a modality name, or model (item vectors)."),
    ] = None,
    rerank_candidates: Annotated[
        int | None, typer.Option("--rerank-candidates", help="With --rerank: the model's top-N re-ranked to --k (default 100).")
    ] = None,
) -> None:
    """Top-k recommendations with original ids; items the user saw in training are never listed
    (nor valid items when recommending for --on test of a split).

    `--rerank mmr|dpp --diversity 0.3` takes the model's top `--rerank-candidates` and picks `--k`
    of them greedily for relevance and diversity (MMR or a fast greedy DPP) in the item space of
    `--rerank-space`: `fused` (every modality of `--features`), one modality, or `model` (a
    factor model's item vectors); diversity 0 keeps the model's order.

    A user the model never saw: `--items`, `--text` and/or `--profile` print a table with titles
    (seed items scored as a history or folded in, the text's nearest items as seeds, the profile
    prior of users alike; see `fusionrec.coldstart`)."""
    rerank_given = rerank_method is not None
    if not rerank_given and (diversity is not None or rerank_space is not None or rerank_candidates is not None):
        raise typer.BadParameter("--diversity, --rerank-space and --rerank-candidates need --rerank mmr|dpp")
    if seed_items is not None or text is not None or profile:
        from fusionrec.cli.recommend_cold import recommend_cold

        if rerank_given:
            raise typer.BadParameter("--rerank works with --users or --split, not with a new user's --items/--text/--profile")
        if users is not None or split_dir is not None:
            raise typer.BadParameter("--items/--text/--profile describe one new user: drop --users/--split")
        recommend_cold(model_dir, items=seed_items, text=text, profile=profile, k=k, features_dir=features_dir,
                       dataset_dir=dataset_dir, text_encoder=text_encoder)  # fmt: skip
        return
    if out is None:
        raise typer.BadParameter("--out FILE is needed with --users or --split")
    if (users is None) == (split_dir is None):
        raise typer.BadParameter("give exactly one of --users FILE or --split SPLIT, or describe a new user with --items/--text/--profile")
    bundle = ModelBundle.load(model_dir)
    recommender = bundle.model
    user_ids, item_ids = bundle.user_ids, bundle.item_ids
    user_map = bundle.user_map
    exclude: sp.csr_matrix | None = bundle.seen
    if users is not None:
        external = _read_user_file(users)
        index = user_map.lookup(external)
        if (index < 0).any():
            first = int(np.flatnonzero(index < 0)[0])
            raise DataError(
                f"user {external[first]!r} is not known to the model ({int((index < 0).sum())} unknown)",
                file=str(users),
                row=first + 1,
            )
    else:
        assert split_dir is not None
        if on not in ("valid", "test"):
            raise typer.BadParameter("--on must be valid or test")
        split = Split.load(split_dir)
        bundle.check_split(split)
        exclude = split.csr("train") if on == "valid" else (split.csr("train") + split.csr("valid")).tocsr()
        index = np.flatnonzero(np.diff(split.csr(on).indptr) > 0).astype(np.int32)
    exclude_matrix = as_csr(exclude) if exclude is not None else None
    reranker = (
        _reranker(recommender, item_ids, rerank_method, diversity, rerank_space, rerank_candidates, k, features_dir)
        if rerank_method is not None
        else None
    )
    rows_written = 0
    with out.open("w") as handle:
        handle.write("user_id\titem_id\trank\n")
        for lo in range(0, len(index), batch_size):
            batch = index[lo : lo + batch_size]
            if reranker is None:
                items, _ = recommender.recommend(batch, k=k, exclude=exclude_matrix)
            else:
                candidates, scores = recommender.recommend(batch, k=reranker.n_candidates, exclude=exclude_matrix)
                items, _ = reranker(candidates, scores)
            ranks = np.broadcast_to(np.arange(1, items.shape[1] + 1), items.shape)
            valid = items >= 0
            batch_users = np.broadcast_to(user_ids[batch][:, None], items.shape)[valid]
            lines = [
                f"{u}\t{i}\t{r}\n"
                for u, i, r in zip(batch_users, item_ids[items[valid]], ranks[valid], strict=True)
            ]
            handle.writelines(lines)
            rows_written += len(lines)
    how = "" if reranker is None else f", re-ranked by {reranker.describe()}"
    console.print(f"wrote {rows_written} recommendations for {len(index)} users to {out}{how}")


class _Reranker:
    """The re-ranking `recommend` applies to each batch of candidate lists (wiring of fusionrec.rerank)."""

    def __init__(self, similarity: Any, method: str, diversity: float, space: str, n_candidates: int, k: int) -> None:
        self.similarity, self.method, self.diversity = similarity, method, diversity
        self.space, self.n_candidates, self.k = space, n_candidates, k

    def __call__(self, items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from fusionrec.rerank import rerank

        return rerank(items, scores, self.similarity, method=self.method, diversity=self.diversity, k=self.k)

    def describe(self) -> str:
        return f"{self.method} (diversity {self.diversity:g}, {self.space} space, from the top {self.n_candidates})"


def _reranker(
    model: Recommender, item_ids: np.ndarray, method: str, diversity: float | None, space: str | None,
    n_candidates: int | None, k: int, features_dir: Path | None,
) -> _Reranker:  # fmt: skip
    """Check the --rerank options and build the item similarity once (clear errors, exit code 2)."""
    from fusionrec.rerank import FUSED, MODEL, RERANK_METHODS, ItemSimilarity, item_space

    if method not in RERANK_METHODS:
        raise typer.BadParameter(f"--rerank must be one of {', '.join(RERANK_METHODS)}, not {method!r}")
    diversity = 0.3 if diversity is None else diversity
    if not 0.0 <= diversity <= 1.0:
        raise typer.BadParameter(f"--diversity must be in [0, 1], got {diversity:g}")
    space = space or FUSED
    n_candidates = 100 if n_candidates is None else n_candidates
    if n_candidates < k:
        raise typer.BadParameter(f"--rerank-candidates ({n_candidates}) must be at least --k ({k})")
    features = None
    if space != MODEL:
        if features_dir is None:
            raise typer.BadParameter(
                f"--rerank-space {space} needs --features DIR (the item features to measure diversity in), "
                f"or use --rerank-space {MODEL} with a factor model"
            )
        from fusionrec.features.base import FeatureSet

        features = FeatureSet.load(features_dir)
        features.check_aligned(item_ids)
    return _Reranker(ItemSimilarity(item_space(space, features, model)), method, diversity, space, n_candidates, k)


@app.command()
@friendly_errors
def tune(
    split_dir: Annotated[Path, typer.Argument(help="A split directory written by `fusionrec split`.")],
    model: Annotated[str, typer.Option("--model", "-m", help=f"One of: {', '.join(model_names())}.")],
    grid: Annotated[Path, typer.Option("--grid", help="YAML mapping hyper-parameter -> list of values.")],
    metric: Annotated[str, typer.Option("--metric", help="Selection metric on valid, e.g. recall@20.")] = "recall@20",
    k: Annotated[str, typer.Option("--k", help="Cut-offs reported on test.")] = "10,20",
    config: Annotated[Path | None, typer.Option("--config", help="YAML of fixed hyper-parameters.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Save the chosen model here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    features_dir: FeaturesOption = None,
    ray_address: RayOption = None,
) -> None:
    """Grid search: fit every grid point on train, pick the best on valid, report test at that point only."""
    from fusionrec.eval.report import _clean, metrics_table
    from fusionrec.experiments.runner import grid_search
    from fusionrec.ranking.keys import check_valid_metric

    try:
        check_valid_metric(metric, what="--metric")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if not grid.exists():
        raise DataError("grid file not found", file=str(grid))
    raw_grid = yaml.safe_load(grid.read_text()) or {}
    if not isinstance(raw_grid, dict) or not raw_grid:
        raise DataError("a grid must be a non-empty mapping of hyper-parameter: [values]", file=str(grid))
    base = model_config(model, config, None)
    fields = set(config_class(model).model_fields)
    unknown = sorted(set(raw_grid) - fields)
    if unknown:
        raise DataError(f"unknown hyper-parameters for {model}: {unknown}; known: {sorted(fields)}", file=str(grid))
    split = Split.load(split_dir)
    features = load_features(features_dir)
    search: Any = grid_search
    if ray_address is not None:
        from fusionrec.distributed.cluster import connect
        from fusionrec.distributed.tune import grid_search_ray

        search = grid_search_ray
    with connect(ray_address) if ray_address is not None else contextlib.nullcontext():
        result = search(
            model,
            split,
            raw_grid,
            metric=metric,
            k=parse_ks(k),
            base_config=base,
            console=None if as_json else console,
            features=features,
        )
    if out is not None:
        save_model_dir(result.best_run.model, out, split, features)
    if as_json:
        payload = {
            "metric": metric,
            "trials": [{"params": t.params, "valid": t.valid_value, "train_time_s": t.train_time_s} for t in result.trials],
            "best_params": result.best.params,
            "best_valid": result.best.valid_value,
            "test": result.test.mean(),
            "n_evaluated": result.test.n_evaluated,
        }
        typer.echo(json.dumps(_clean(payload), indent=2))
        return
    table = Table(title=f"{model}: grid on valid {metric}")
    for column in (*raw_grid, f"valid {metric}", "train s"):
        table.add_column(str(column), justify="right")
    for trial in result.trials:
        mark = " *" if trial is result.best else ""
        table.add_row(*[str(trial.params[p]) for p in raw_grid], f"{trial.valid_value:.4f}{mark}", f"{trial.train_time_s:.1f}")
    console.print(table)
    console.print(metrics_table({f"{model} {result.best.params}": result.test}, title="test at the chosen point"))
