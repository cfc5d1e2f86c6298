"""`fusionrec recommend MODEL --items ID,ID --text "..." --profile key=value`: a user the model never
saw, described by items, text and/or profile, gets a table of recommendations with titles.

Wiring only: the algorithm is :class:`fusionrec.coldstart.ColdUserRecommender`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from fusionrec.cli.app import console
from fusionrec.data.schema import Dataset
from fusionrec.data.splits import Split
from fusionrec.errors import DataError
from fusionrec.models.bundle import ModelBundle

TITLE_COLUMNS = ("title", "name")


def parse_profile(values: list[str] | None) -> dict[str, object]:
    """``["age=25", "gender=F"]`` -> ``{"age": "25", "gender": "F"}`` (a clear error otherwise)."""
    out: dict[str, object] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise DataError(f"--profile takes key=value, not {item!r}")
        out[key.strip()] = value.strip()
    return out


def find_dataset(bundle: ModelBundle, dataset_dir: Path | None) -> Dataset:
    """The dataset given, else the one the bundle's split was cut from."""
    if dataset_dir is not None:
        return Dataset.load(dataset_dir)
    split_path = bundle.split.get("path")
    directory = Split.dataset_dir_of(split_path) if split_path else None
    if directory is None or not (directory / "manifest.json").exists():
        raise DataError("cannot find the dataset the model was trained on: pass --dataset DIR")
    return Dataset.load(directory)


def recommend_cold(
    model_dir: Path,
    *,
    items: str | None,
    text: str | None,
    profile: list[str] | None,
    k: int,
    features_dir: Path | None,
    dataset_dir: Path | None,
    text_encoder: str,
) -> None:
    from fusionrec.coldstart import ColdUserRecommender, ProfilePrior, UserQuery, load_matching_text_encoder

    bundle = ModelBundle.load(model_dir)
    dataset = find_dataset(bundle, dataset_dir)
    if len(dataset.item_map) != len(bundle.item_ids) or not np.array_equal(dataset.item_map.ids.astype(str), bundle.item_ids):
        raise DataError("the dataset's items are not the model's items: pass the --dataset the model was trained on")
    picked: list[int] = []
    if items:
        external = [p.strip() for p in items.split(",") if p.strip()]
        index = bundle.item_map.lookup(external)
        if (index < 0).any():
            unknown = [external[i] for i in np.flatnonzero(index < 0)]
            raise DataError(f"unknown item id(s) {unknown[:5]} ({len(unknown)} unknown)")
        picked = [int(i) for i in index]
    features: Any | None = None
    encoder = None
    if text is not None:
        if features_dir is None:
            raise DataError("--text needs --features DIR (the item text features, to encode the text alike)")
        from fusionrec.features.base import FeatureSet

        features = FeatureSet.load(features_dir)
        features.check_aligned(bundle.item_ids)
        encoder = load_matching_text_encoder(features, text_encoder)
    attributes = parse_profile(profile)
    prior = None
    if attributes:
        if dataset.users is None:
            raise DataError("--profile needs a dataset with a users table")
        prior = ProfilePrior(columns=list(attributes)).fit(dataset.users, bundle.seen)
    recommender = ColdUserRecommender(bundle.model, bundle.seen, features=features, text_encoder=encoder, profiles=prior)
    top, scores = recommender.recommend([UserQuery(items=picked, text=text, profile=attributes)], k=k)
    titles = _titles(dataset)
    described = ", ".join(
        part for part in (
            f"{len(picked)} picked item(s)" if picked else "",
            f"text {text!r}" if text else "",
            " ".join(f"{key}={value}" for key, value in attributes.items()),
        ) if part
    )  # fmt: skip
    table = Table(title=f"{bundle.name}: top {k} for a new user ({described or 'nothing: popularity'})")
    for column in ("rank", "item_id", "title", "score"):
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    for rank, (item, score) in enumerate(zip(top[0], scores[0], strict=True), start=1):
        if item < 0:
            continue
        table.add_row(str(rank), str(bundle.item_ids[item]), titles[item] if titles is not None else "", f"{score:.4f}")
    console.print(table)


def _titles(dataset: Dataset) -> np.ndarray | None:
    for column in TITLE_COLUMNS:
        if column in dataset.items.columns:
            return np.asarray(dataset.items[column].fillna("").astype(str))
    return None

