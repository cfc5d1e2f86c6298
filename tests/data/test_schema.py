from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.schema import Dataset, IdMap, Interactions
from fusionrec.errors import DataError


def test_idmap_round_trip_and_unknown_ids() -> None:
    id_map = IdMap([10, 20, 30])
    assert id_map.ids.tolist() == ["10", "20", "30"]
    assert id_map.to_index(["30", 10]).tolist() == [2, 0]
    assert id_map.lookup(["99", "20"]).tolist() == [-1, 1]
    assert id_map.to_ids([1, 2]).tolist() == ["20", "30"]
    with pytest.raises(DataError, match=r"1 unknown item\(s\), e.g. \['99'\]"):
        id_map.to_index(["99", "10"], what="item")


def test_idmap_rejects_duplicates_and_extends_in_order() -> None:
    with pytest.raises(DataError, match="not unique"):
        IdMap(["a", "b", "a"])
    extended = IdMap(["a", "b"]).extend(["c", "a", "d", "c"])
    assert extended.ids.tolist() == ["a", "b", "c", "d"]
    assert IdMap.from_values(["x", "y", "x", "z"]).ids.tolist() == ["x", "y", "z"]


def test_interactions_validate_ranges() -> None:
    with pytest.raises(DataError, match="item index out of range"):
        Interactions(np.array([0]), np.array([3]), np.array([1.0]), n_users=1, n_items=3)
    with pytest.raises(DataError, match="different lengths"):
        Interactions(np.array([0, 0]), np.array([1]), np.array([1.0]), n_users=1, n_items=3)


def test_to_csr_keeps_max_weight_of_repeated_pairs() -> None:
    inter = Interactions(
        np.array([0, 0, 1, 0]), np.array([1, 1, 2, 0]), np.array([2.0, 5.0, 3.0, 1.0]), n_users=2, n_items=3
    )
    dense = inter.to_csr().toarray()
    np.testing.assert_array_equal(dense, [[1.0, 5.0, 0.0], [0.0, 0.0, 3.0]])
    np.testing.assert_array_equal(inter.to_csr(binary=True).toarray(), [[1, 1, 0], [0, 0, 1]])
    assert inter.to_csr().dtype == np.float32


def test_dataset_parquet_round_trip(tiny_dataset: Dataset, tmp_path) -> None:
    tiny_dataset.items["genres"] = [["a", "b"], ["c"], [], ["a"], ["b"], ["c", "a"]]
    tiny_dataset.item_columns.multi_valued = ["genres"]
    tiny_dataset.save(tmp_path / "ds")
    loaded = Dataset.load(tmp_path / "ds")
    assert loaded.name == "tiny" and loaded.rating_scale == (1.0, 5.0)
    assert loaded.user_map == tiny_dataset.user_map and loaded.item_map == tiny_dataset.item_map
    for field in ("user", "item", "weight", "timestamp"):
        np.testing.assert_array_equal(getattr(loaded.interactions, field), getattr(tiny_dataset.interactions, field))
    assert loaded.interactions.weight.dtype == np.float32 and loaded.interactions.user.dtype == np.int32
    pd.testing.assert_series_equal(loaded.items["title"], tiny_dataset.items["title"], check_dtype=False)
    assert [list(g) for g in loaded.items["genres"]] == [["a", "b"], ["c"], [], ["a"], ["b"], ["c", "a"]]
    assert loaded.item_columns.multi_valued == ["genres"]
    assert loaded.users is None


def test_load_of_non_dataset_dir_names_it(tmp_path) -> None:
    with pytest.raises(DataError, match=r"no manifest\.json") as info:
        Dataset.load(tmp_path)
    assert str(tmp_path) in str(info.value)
