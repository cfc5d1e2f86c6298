"""A synthetic catalogue where each modality points at one known past item.

40 items. Text: items ``2j`` and ``2j + 1`` share a direction (text twins). Image: items
``2j + 1`` and ``2j + 2`` (mod 40) do (image twins: item 0's is item 39). Attributes: a one-hot
genre, ``GENRES[i % 4]``. Item 30 has no image. User 0 has seen items 0, 10 and 20, so with the
content model weighting text 0.6, image 0.35, attributes 0.05, the text twins 1, 11, 21 lead,
driven by text, and without text the image twins 39, 9, 19 take over, driven by image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data.schema import Dataset, IdMap, Interactions
from fusionrec.data.splits import Split
from fusionrec.features.base import FeatureSet, ModalityFeatures, Provenance

N_USERS, N_ITEMS = 30, 40
GENRES = ("Comedy", "Drama", "Horror", "Action")
HISTORY = np.array([0, 10, 20])
WEIGHTS = {"text": 0.6, "image": 0.35, "attributes": 0.05}
NO_IMAGE = 30


def titles() -> list[str]:
    return [f"Title {i}" for i in range(N_ITEMS)]


def genres() -> list[tuple[str, ...]]:
    return [(GENRES[i % 4],) for i in range(N_ITEMS)]


def _modality(matrix: np.ndarray, present: np.ndarray, name: str) -> ModalityFeatures:
    provenance = Provenance(encoder=name, fingerprint=f"fp-{name}", created_at="2026-01-01T00:00:00+00:00")
    return ModalityFeatures(np.where(present[:, None], matrix, 0.0).astype(np.float32), present, provenance)


def features(seed: int = 0) -> FeatureSet:
    rng = np.random.default_rng(seed)
    items = np.arange(N_ITEMS)
    text_basis, image_basis = rng.normal(size=(N_ITEMS // 2, 64)), rng.normal(size=(N_ITEMS // 2, 48))
    text = text_basis[items // 2] + 0.05 * rng.normal(size=(N_ITEMS, 64))
    image = image_basis[((items + N_ITEMS - 1) % N_ITEMS) // 2] + 0.05 * rng.normal(size=(N_ITEMS, 48))
    attributes = np.eye(len(GENRES))[items % 4]
    everything = np.ones(N_ITEMS, dtype=bool)
    return FeatureSet(
        ids=[f"i{i}" for i in items],
        modalities={
            "text": _modality(text, everything, "text"),
            "image": _modality(image, items != NO_IMAGE, "image"),
            "attributes": _modality(attributes, everything, "attributes"),
        },
    )


def without(features: FeatureSet, name: str) -> FeatureSet:
    """A copy where no item has ``name`` (mask all False, zero rows), the other modalities as they are."""
    out = dict(features.modalities)
    old = out[name]
    out[name] = ModalityFeatures(np.zeros_like(old.matrix), np.zeros_like(old.present), old.provenance)
    return FeatureSet(ids=features.ids, modalities=out)


def interactions() -> Interactions:
    """User 0 saw :data:`HISTORY`; the others 6 random items each."""
    rng = np.random.default_rng(1)
    users = [np.zeros(len(HISTORY), dtype=np.int64)]
    items = [HISTORY]
    for user in range(1, N_USERS):
        users.append(np.full(6, user))
        items.append(rng.choice(N_ITEMS, 6, replace=False))
    u, i = np.concatenate(users), np.concatenate(items)
    return Interactions(u, i, np.ones(len(u)), n_users=N_USERS, n_items=N_ITEMS)


def save_workspace(root: Path) -> tuple[Path, Path, Path]:
    """The dataset (titles, genres), a split (everything in train but a few valid/test pairs of
    other users) and the features, saved under ``root``: ``(dataset_dir, split_dir, features_dir)``."""
    inter = interactions()
    item_map, user_map = IdMap([f"i{i}" for i in range(N_ITEMS)]), IdMap([f"u{u}" for u in range(N_USERS)])
    items = pd.DataFrame(
        {"item_id": item_map.ids, "title": titles(), "genres": ["|".join(g) for g in genres()]}
    )
    dataset = Dataset(name="explain", items=items, interactions=inter, user_map=user_map, item_map=item_map)
    dataset_dir = dataset.save(root / "dataset")
    held = (inter.user > 0) & (np.arange(len(inter.user)) % 6 == 0)
    part = np.where(held, 1 + (inter.user % 2), 0)

    def select(p: int) -> Interactions:
        mask = part == p
        return Interactions(
            inter.user[mask], inter.item[mask], inter.weight[mask], n_users=N_USERS, n_items=N_ITEMS
        )

    split = Split(
        select(0), select(1), select(2), user_map, item_map, info={"dataset_dir": str(dataset_dir.resolve())}
    )
    split_dir = split.save(root / "split")
    features_dir = features().save(root / "features")
    return dataset_dir, split_dir, features_dir
