"""`fusionrec explain MODEL --user ID --k 10 --features DIR`: a user's top-k with per-modality reasons.

Wiring only: the explanations are :mod:`fusionrec.explain`'s; the model directory, features and
titles are resolved as `recommend` does (the bundle's split names the dataset unless --dataset).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from fusionrec.cli.app import app, console, err_console, friendly_errors
from fusionrec.cli.models import FeaturesOption, load_features
from fusionrec.cli.recommend_cold import _titles, find_dataset
from fusionrec.data.schema import Dataset
from fusionrec.errors import DataError
from fusionrec.models.bundle import ModelBundle

GENRE_COLUMNS = ("genres", "genre")


def _catalogue(
    bundle: ModelBundle, dataset_dir: Path | None
) -> tuple[np.ndarray | None, list[tuple[str, ...]] | None]:
    """Titles and genres of the model's items from its dataset (``None`` for what is not known).

    Without --dataset, a bundle whose split no longer points at a dataset is explained with item ids."""
    from fusionrec.explain import parse_genres

    try:
        dataset: Dataset = find_dataset(bundle, dataset_dir)
    except DataError:
        if dataset_dir is not None:
            raise
        err_console.print(
            "[yellow]note:[/] the model's dataset was not found (pass --dataset DIR): showing item ids"
        )
        return None, None
    if not np.array_equal(dataset.item_map.ids.astype(str), bundle.item_ids):
        raise DataError(
            "the dataset's items are not the model's items: pass the --dataset the model was trained on"
        )
    column = next((c for c in GENRE_COLUMNS if c in dataset.items.columns), None)
    genres = parse_genres(dataset.items[column].tolist()) if column else None
    return _titles(dataset), genres


def _cell(value: float | None, weight: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" + (f" (w {weight:.2f})" if weight is not None else "")


@app.command()
@friendly_errors
def explain(
    model_dir: Annotated[Path, typer.Argument(help="A model directory written by `fusionrec train`.")],
    user: Annotated[str, typer.Option("--user", help="The user's original id.")],
    k: Annotated[int, typer.Option("--k", min=1, help="Items to recommend and explain.")] = 10,
    features_dir: FeaturesOption = None,
    dataset_dir: Annotated[
        Path | None, typer.Option("--dataset", help="Dataset for titles and genres (default: the split's).")
    ] = None,
    evidence: Annotated[
        int, typer.Option("--evidence", min=1, help="Past items cited per modality (JSON).")
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Recommend k items to a user (never one they saw in training) and say why, per modality:
    leave-one-modality-out contributions (models that read content at score time), the fuser's
    weights (gated / attention fusers) and the user's past item most like each one ("plot like X")."""
    from fusionrec.explain import Explainer

    features = load_features(features_dir)
    if features is None:
        raise DataError("explain needs the item features (--features DIR from `fusionrec features`)")
    bundle = ModelBundle.load(model_dir, features)
    features.check_aligned(bundle.item_ids)
    index = int(bundle.user_map.lookup([user])[0])
    if index < 0:
        raise DataError(
            f"user {user!r} is not known to the model ({len(bundle.user_ids)} users, e.g. {bundle.user_ids[0]!r})"
        )
    titles, genres = _catalogue(bundle, dataset_dir)
    explainer = Explainer(
        bundle.model,
        features,
        titles=titles,
        genres=genres,
        modalities=list(bundle.features) or None,
        per_modality=evidence,
    )
    start = time.perf_counter()
    top, scores = bundle.model.recommend(np.array([index]), k=k, exclude=bundle.seen)
    explained = explainer.explain(index, top[0], history=bundle.seen[index], scores=scores[0])
    elapsed = time.perf_counter() - start
    if as_json:
        payload: dict[str, Any] = {
            "model": bundle.name,
            "user_id": user,
            "items": [
                dict(rank=rank) | e.to_dict(bundle.item_ids) for rank, e in enumerate(explained, start=1)
            ],
        }
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    modalities = explainer.modalities if explained and explained[0].contributions is not None else []
    table = Table(title=f"{bundle.name}: top {k} for user {user}, explained per modality")
    for column in ("rank", "title", "score", *modalities, "driver", "evidence"):
        table.add_column(column, justify="right" if column in ("rank", "score", *modalities) else "left")
    for rank, e in enumerate(explained, start=1):
        weights = e.fuser_weights or {}
        cells = [_cell((e.contributions or {}).get(m), weights.get(m)) for m in modalities]
        headline = e.headline
        table.add_row(
            str(rank), e.title or str(bundle.item_ids[e.item]), f"{e.score:.4f}", *cells, e.driver or "-",
            headline.phrase if headline is not None else "-",
        )  # fmt: skip
    console.print(table)
    method = explained[0].method if explained else ""
    console.print(
        f"{len(bundle.seen[index].indices)} past items; contributions: {method}; recommended and explained in {elapsed * 1000:.0f} ms"
    )
