"""`fusionrec features`: summary table, cached second run, masked items, bad arguments."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from fusionrec.cli import app
from fusionrec.data.schema import Dataset, IdMap, Interactions, ItemColumns
from fusionrec.features.base import FeatureSet

os.environ.setdefault("HF_HUB_OFFLINE", "1")
runner = CliRunner(env={"COLUMNS": "200"})


def _dataset_dir(root: Path) -> Path:
    (root / "media").mkdir(parents=True)
    Image.new("RGB", (64, 80), (200, 30, 30)).save(root / "media" / "a.jpg")
    (root / "media" / "b.jpg").write_bytes(b"broken")
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "plot": ["A toy cowboy is jealous of a space ranger.", "", "Bank robbers and a detective."],
            "genres": [["Animation"], ["Drama"], ["Crime", "Thriller"]],
            "poster": ["a.jpg", "b.jpg", None],
        }
    )
    dataset = Dataset(
        name="cli-features",
        items=items,
        interactions=Interactions(np.array([0, 0]), np.array([0, 2]), np.ones(2), n_users=1, n_items=3),
        user_map=IdMap(["u"]),
        item_map=IdMap(items["item_id"].to_numpy()),
        item_columns=ItemColumns(text=["plot"], image="poster", multi_valued=["genres"]),
        media_root=str(root / "media"),
    )
    return dataset.save(root / "dataset")


def test_attributes_without_models(tmp_path: Path) -> None:
    dataset_dir = _dataset_dir(tmp_path)
    result = runner.invoke(
        app,
        [
            "features",
            str(dataset_dir),
            "--modality",
            "attributes",
            "--cache-dir",
            str(tmp_path / "c"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "attributes" in result.output and "tabular" in result.output
    features = FeatureSet.load(dataset_dir / "features")
    assert features["attributes"].matrix.shape == (3, 4)


def test_unknown_modality_and_missing_dataset(tmp_path: Path) -> None:
    dataset_dir = _dataset_dir(tmp_path)
    result = runner.invoke(app, ["features", str(dataset_dir), "--modality", "smell"])
    assert result.exit_code != 0 and "unknown modality" in result.output
    result = runner.invoke(
        app, ["features", str(tmp_path / "nope"), "--modality", "text", "--source", "tabular"]
    )
    assert result.exit_code == 2 and "error" in result.output


@pytest.mark.slow
def test_text_and_image_then_cached(tmp_path: Path) -> None:
    dataset_dir = _dataset_dir(tmp_path)
    cache = tmp_path / "cache"
    args = ["--cache-dir", str(cache), "--no-progress", "--threads", "1"]
    first = runner.invoke(
        app, ["features", str(dataset_dir), "-m", "text", "-m", "image", "--workers", "0", *args]
    )
    assert first.exit_code == 0, first.output
    assert "empty text" in first.output and "no image" in first.output
    assert "b.jpg" in first.output and "not an image" in first.output  # the corrupt file is named
    features = FeatureSet.load(dataset_dir / "features")
    assert features["text"].present.tolist() == [True, False, True]
    assert features["image"].present.tolist() == [True, False, False]
    second = runner.invoke(app, ["features", str(dataset_dir), "-m", "text", *args])
    assert second.exit_code == 0, second.output
    row = next(
        line for line in second.output.splitlines() if line.strip().startswith("│ text") or " text " in line
    )
    assert "all-MiniLM-L6-v2" in row
    assert set(FeatureSet.load(dataset_dir / "features").names) == {"text", "image"}  # image kept
