from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusionrec.data.loaders import load_source, mmrec_split
from fusionrec.data.schema import Dataset
from fusionrec.data.splits import Split
from fusionrec.errors import DataError

from .helpers import only_issue, write

INTER = (
    "userID\titemID\trating\ttimestamp\tx_label\n"
    "0\t0\t5\t100\t0\n"
    "0\t1\t4\t101\t0\n"
    "1\t1\t3\t102\t0\n"
    "1\t2\t5\t103\t1\n"
    "2\t0\t4\t104\t0\n"
    "2\t2\t2\t105\t2\n"
    "0\t2\t1\t106\t2\n"
    "2\t1\t1\t107\t7\n"  # not a split label: reported and left out
)


def _mmrec(folder: Path) -> Path:
    write(folder / "baby.inter", INTER)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    np.save(folder / "image_feat.npy", rng.random((4, 3), dtype=np.float32))
    np.save(folder / "text_feat.npy", rng.random((4, 5), dtype=np.float32))
    write(folder / "i_id_mapping.csv", "asin\titemID\nB0A\t0\nB0B\t1\nB0C\t2\nB0D\t3\n")
    write(folder / "u_id_mapping.csv", "user_id\tuserID\nAX\t0\nAY\t1\nAZ\t2\n")
    return folder


def _pairs(split: Split, part: str) -> list[tuple[int, int]]:
    inter = split.part(part)
    return sorted(zip(inter.user.tolist(), inter.item.tolist(), strict=True))


def test_load_mmrec_keeps_ids_aligned_with_features(tmp_path: Path) -> None:
    folder = _mmrec(tmp_path / "baby")
    dataset, report = load_source("mmrec", folder)
    issue = only_issue(report, "unparsable_number")
    assert str(issue) == f"{folder / 'baby.inter'}, line 9, column 'x_label': x_label 7 is not 0 (train), 1 (valid) or 2 (test)"
    assert dataset.name == "baby" and len(dataset.interactions) == 7
    assert dataset.item_map.ids.tolist() == ["0", "1", "2", "3"]  # item index == itemID == feature row
    assert dataset.items["source_id"].tolist() == ["B0A", "B0B", "B0C", "B0D"]
    assert dataset.user_map.ids.tolist() == ["0", "1", "2"]
    assert dataset.users is not None and dataset.users["source_id"].tolist() == ["AX", "AY", "AZ"]
    assert dataset.interactions.item.tolist() == [0, 1, 1, 2, 0, 2, 2]
    assert set(dataset.extras) == {"image_feat", "text_feat", "mmrec_inter"}
    assert np.load(dataset.extras["text_feat"]).shape == (4, 5)


def test_mmrec_split_follows_x_label(tmp_path: Path) -> None:
    folder = _mmrec(tmp_path / "baby")
    dataset, _ = load_source("mmrec", folder)
    split = mmrec_split(dataset)
    assert split.info["strategy"] == "mmrec"
    assert _pairs(split, "train") == [(0, 0), (0, 1), (1, 1), (2, 0)]
    assert _pairs(split, "valid") == [(1, 2)]
    assert _pairs(split, "test") == [(0, 2), (2, 2)]
    assert split.test.timestamp is not None and sorted(split.test.timestamp.tolist()) == [105, 106]
    assert split.item_map == dataset.item_map
    assert _pairs(mmrec_split(folder), "test") == [(0, 2), (2, 2)]  # a raw folder works too


def test_saved_dataset_carries_features_and_split(tmp_path: Path) -> None:
    folder = _mmrec(tmp_path / "baby")
    dataset, _ = load_source("mmrec", folder)
    out = dataset.save(tmp_path / "ds")
    for name in ("image_feat.npy", "text_feat.npy", "baby.inter"):
        assert (out / name).is_file()
    back = Dataset.load(out)
    assert back.extras["image_feat"] == str(out / "image_feat.npy")
    np.testing.assert_array_equal(np.load(back.extras["image_feat"]), np.load(folder / "image_feat.npy"))
    (folder / "baby.inter").unlink()  # the saved dataset no longer needs the source
    split = mmrec_split(out)
    assert split.info["dataset_dir"] == str(out.resolve())
    assert _pairs(split, "valid") == [(1, 2)] and len(split.train) == 4
    back.save(out)  # saving again into the same directory keeps the extras
    assert Dataset.load(out).extras == back.extras


def test_mmrec_errors(tmp_path: Path) -> None:
    folder = _mmrec(tmp_path / "baby")
    np.save(folder / "text_feat.npy", np.zeros((5, 2), dtype=np.float32))
    with pytest.raises(DataError, match="different numbers of rows"):
        load_source("mmrec", folder)
    write(folder / "clothing.inter", INTER)
    with pytest.raises(DataError, match=r"expected one \*\.inter file"):
        load_source("mmrec", folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="found \\[\\]"):
        load_source("mmrec", empty)


def test_split_needs_an_mmrec_dataset(tiny_dataset: Dataset) -> None:
    with pytest.raises(DataError, match="not loaded from an MMRec folder"):
        mmrec_split(tiny_dataset)
