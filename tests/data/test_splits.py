from __future__ import annotations

import numpy as np
import pytest

from fusionrec.config import SplitConfig
from fusionrec.data.schema import Dataset
from fusionrec.data.splits import Split, filter_interactions, split_dataset, split_from_files
from fusionrec.errors import DataError
from tests.conftest import random_dataset


def _pairs(part) -> set[tuple[int, int]]:
    return set(zip(part.user.tolist(), part.item.tolist(), strict=True))


def _assert_partition(ds: Dataset, split: Split) -> None:
    total = len(split.train) + len(split.valid) + len(split.test)
    assert total == len(ds.interactions)
    assert not (_pairs(split.train) & _pairs(split.test)) and not (_pairs(split.train) & _pairs(split.valid))


def test_random_split_per_user_ratios_are_exact_within_rounding() -> None:
    ds = random_dataset(n_users=100, n_items=300, n=6000)
    split = split_dataset(ds, SplitConfig(strategy="random", ratios=(0.8, 0.1, 0.1), seed=3))
    _assert_partition(ds, split)
    counts = np.bincount(ds.interactions.user, minlength=100)
    # cumulative rounding per user: train = round(0.8 n) (at least 1), valid up to round(0.9 n)
    np.testing.assert_array_equal(np.bincount(split.train.user, minlength=100), np.maximum(np.rint(counts * 0.8), 1))
    np.testing.assert_array_equal(np.bincount(split.test.user, minlength=100), counts - np.rint(counts * 0.9))
    assert abs(len(split.train) / len(ds.interactions) - 0.8) < 0.01


def test_same_seed_same_split_other_seed_differs() -> None:
    ds = random_dataset()
    a = split_dataset(ds, SplitConfig(seed=1))
    b = split_dataset(ds, SplitConfig(seed=1))
    c = split_dataset(ds, SplitConfig(seed=2))
    assert _pairs(a.test) == _pairs(b.test)
    assert _pairs(a.test) != _pairs(c.test)


def test_every_user_keeps_a_training_interaction_in_random_split() -> None:
    ds = random_dataset(n_users=300, n_items=50, n=600)
    split = split_dataset(ds, SplitConfig(ratios=(0.5, 0.25, 0.25)))
    active = np.unique(ds.interactions.user)
    assert np.isin(active, split.train.user).all()


def test_temporal_split_respects_global_time() -> None:
    ds = random_dataset()
    split = split_dataset(ds, SplitConfig(strategy="temporal", ratios=(0.7, 0.1, 0.2)))
    _assert_partition(ds, split)
    assert split.train.timestamp.max() <= split.valid.timestamp.min()
    assert split.valid.timestamp.max() <= split.test.timestamp.min()
    n = len(ds.interactions)
    assert len(split.train) == round(0.7 * n) and len(split.test) == n - round(0.8 * n)


def test_leave_last_n_holds_out_each_users_latest() -> None:
    ds = random_dataset(n_users=50, n_items=400, n=3000)
    split = split_dataset(ds, SplitConfig(strategy="leave_last", leave_last_n=2))
    _assert_partition(ds, split)
    for user in range(50):
        train_t = split.train.timestamp[split.train.user == user]
        valid_t = split.valid.timestamp[split.valid.user == user]
        test_t = split.test.timestamp[split.test.user == user]
        if len(test_t):
            assert len(test_t) == 2 and len(valid_t) == 2
            assert train_t.max() <= valid_t.min() and valid_t.max() <= test_t.min()


@pytest.mark.parametrize("strategy, field", [("cold_item", "item"), ("cold_user", "user")])
def test_cold_splits_have_no_leakage_and_exact_entity_shares(strategy: str, field: str) -> None:
    ds = random_dataset(n_users=200, n_items=200, n=8000)
    split = split_dataset(ds, SplitConfig(strategy=strategy, ratios=(0.8, 0.1, 0.1), seed=5))
    _assert_partition(ds, split)
    train_entities = set(getattr(split.train, field).tolist())
    valid_entities = set(getattr(split.valid, field).tolist())
    test_entities = set(getattr(split.test, field).tolist())
    assert not train_entities & test_entities and not train_entities & valid_entities
    assert not valid_entities & test_entities
    n_present = len(np.unique(getattr(ds.interactions, field)))
    assert len(test_entities) == round(0.1 * n_present) and len(valid_entities) == round(0.1 * n_present)


def test_temporal_split_without_time_is_a_clear_error() -> None:
    ds = random_dataset(with_time=False)
    with pytest.raises(DataError, match="needs timestamps"):
        split_dataset(ds, SplitConfig(strategy="temporal"))


def test_min_rating_and_k_core_filter() -> None:
    ds = random_dataset(n_users=100, n_items=100, n=1500)
    filtered = filter_interactions(ds.interactions, min_rating=3, k_core=5)
    assert (filtered.weight >= 3).all()
    assert np.bincount(filtered.user)[np.unique(filtered.user)].min() >= 5
    assert np.bincount(filtered.item)[np.unique(filtered.item)].min() >= 5


def test_split_save_load_exact(tmp_path) -> None:
    ds = random_dataset()
    split = split_dataset(ds, SplitConfig(seed=9, min_rating=2))
    split.save(tmp_path / "s")
    loaded = Split.load(tmp_path / "s")
    for name in ("train", "valid", "test"):
        for field in ("user", "item", "weight", "timestamp"):
            np.testing.assert_array_equal(getattr(loaded.part(name), field), getattr(split.part(name), field))
    assert loaded.user_map == split.user_map and loaded.item_map == split.item_map
    assert loaded.info["config"]["seed"] == 9


def test_split_from_files_maps_ids_and_names_unknown_rows(tiny_dataset: Dataset, tmp_path) -> None:
    (tmp_path / "train.tsv").write_text("user_id\titem_id\trating\nu0\ti0\t5\nu1\ti3\t4\n")
    (tmp_path / "valid.tsv").write_text("user_id\titem_id\trating\nu0\ti1\t4\n")
    (tmp_path / "test.tsv").write_text("user_id\titem_id\trating\nu0\ti2\t3\nu2\ti5\t3\n")
    split = split_from_files(tiny_dataset, tmp_path / "train.tsv", tmp_path / "valid.tsv", tmp_path / "test.tsv")
    assert split.train.user.tolist() == [0, 1] and split.train.item.tolist() == [0, 3]
    assert split.test.item.tolist() == [2, 5]
    (tmp_path / "bad.csv").write_text("u0,i0\nu1,i9\n")  # headless, unknown item on line 2
    with pytest.raises(DataError, match=r"bad\.csv, row 2, column 'item': item 'i9' is not in the dataset"):
        split_from_files(tiny_dataset, tmp_path / "train.tsv", tmp_path / "valid.tsv", tmp_path / "bad.csv")
