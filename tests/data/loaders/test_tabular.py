from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fusionrec.data.loaders import LoaderOptions, TabularMapping, load_options, load_source
from fusionrec.data.schema import Dataset
from fusionrec.errors import DataError

from .helpers import only_issue, write, write_jsonl

MAPPING = TabularMapping(
    items="items.csv",
    users="users.csv",
    user="uid",
    item="iid",
    rating="stars",
    timestamp="ts",
    rating_range=(1, 5),
    item_id="id",
    text=["title", "blurb"],
    image="cover",
    categorical=["brand"],
    multi_valued=["genres"],
    numeric=["price"],
    user_categorical=["country"],
    user_numeric=["age"],
)


def _catalog(folder: Path) -> None:
    write(folder / "ratings.csv", "uid,iid,stars,ts\nu1,001,5,100\nu1,002,3,200\nu2,001,4,150\nu3,003,1,300\n")
    write(folder / "items.csv",
          'id,title,blurb,cover,brand,genres,price\n'
          '001,Alpha,"first, and best",img/1.jpg,acme,A|B,9.5\n'
          '002,Beta,,img/2.jpg,zeta,B,\n'
          '003,Gamma,third,,acme,,12\n')
    write(folder / "users.csv", "uid,country,age\nu1,NZ,31\nu2,FR,45\n")
    write(folder / "img" / "1.jpg", b"jpeg")
    write(folder / "img" / "2.jpg", b"jpeg")


def test_csv_with_items_and_users(tmp_path: Path) -> None:
    _catalog(tmp_path)
    dataset, report = load_source("tabular", tmp_path / "ratings.csv", LoaderOptions(tabular=MAPPING))

    assert dict(report.counts) == {}
    assert (report.rows_read, report.rows_kept) == (4, 4)
    assert dataset.item_map.ids.tolist() == ["001", "002", "003"]  # leading zeros kept: ids are strings
    assert dataset.user_map.ids.tolist() == ["u1", "u2", "u3"]  # u3 has no profile row: appended
    items = dataset.items.set_index("item_id")
    assert items.loc["001", "blurb"] == "first, and best"
    assert items.loc["002", "blurb"] is None
    assert items.loc["001", "genres"] == ["A", "B"] and items.loc["003", "genres"] == []
    assert items.loc["001", "price"] == 9.5 and np.isnan(items.loc["002", "price"])
    assert pd.isna(items.loc["003", "cover"])
    assert dataset.media_root == str(tmp_path)
    assert dataset.media_path(items.loc["001", "cover"]) == tmp_path / "img" / "1.jpg"
    inter = dataset.interactions
    assert inter.user.tolist() == [0, 0, 1, 2] and inter.item.tolist() == [0, 1, 0, 2]
    assert inter.weight.tolist() == [5, 3, 4, 1]
    assert inter.timestamp is not None and inter.timestamp.tolist() == [100, 200, 150, 300]
    assert dataset.users is not None
    assert dataset.users["age"].tolist()[:2] == [31.0, 45.0] and dataset.users["country"].tolist()[:2] == ["NZ", "FR"]
    assert dataset.user_columns.numeric == ["age"] and dataset.item_columns.image == "cover"
    assert dataset.rating_scale == (1, 5)


def test_folder_source_tsv_without_header_and_dates(tmp_path: Path) -> None:
    write(tmp_path / "events.tsv", "a\tx\t2024-01-02\nb\ty\t2024-01-03\n")
    mapping = TabularMapping(interactions="events.tsv", interactions_columns=["user_id", "item_id", "day"],
                             timestamp="day", time_format="%Y-%m-%d")
    dataset, report = load_source("tabular", tmp_path, LoaderOptions(tabular=mapping, name="events"))
    assert dataset.name == "events" and report.n_errors == 0
    assert dataset.interactions.timestamp is not None
    assert dataset.interactions.timestamp.tolist() == [1704153600, 1704240000]
    assert dataset.interactions.weight.tolist() == [1.0, 1.0]  # no rating column: implicit
    assert dataset.item_map.ids.tolist() == ["x", "y"]  # catalog taken from the interactions


def test_parquet_rows_are_reported_as_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user_id": [1, 2, 3], "item_id": [10, 11, 12], "rating": [4.0, 9.0, 2.0]})
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "inter.parquet")
    pq.write_table(pa.Table.from_pandas(pd.DataFrame({"item_id": [10, 11], "title": ["a", "b"]})),
                   tmp_path / "items.parquet")
    mapping = TabularMapping(items="items.parquet", rating="rating", rating_range=(1, 5), text=["title"])
    dataset, report = load_source("tabular", tmp_path / "inter.parquet", LoaderOptions(tabular=mapping))
    out_of_range = only_issue(report, "rating_out_of_range")
    assert str(out_of_range).startswith(f"{tmp_path / 'inter.parquet'}, row 2, column 'rating'")
    unknown = only_issue(report, "unknown_item")
    assert str(unknown).startswith(f"{tmp_path / 'inter.parquet'}, row 3, column 'item'")
    assert dataset.item_map.ids.tolist() == ["10", "11", "12"] and len(dataset.interactions) == 2


def test_jsonl_interactions(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "log.jsonl", [{"user_id": "a", "item_id": "x", "r": 2}, "{oops", {"user_id": "b", "item_id": "x", "r": 4}])
    dataset, report = load_source("tabular", tmp_path / "log.jsonl",
                                  LoaderOptions(tabular=TabularMapping(rating="r")))
    assert str(only_issue(report, "malformed_row")).startswith(f"{tmp_path / 'log.jsonl'}, line 2")
    assert dataset.interactions.weight.tolist() == [2.0, 4.0]


def _values(frame: pd.DataFrame) -> pd.DataFrame:
    """Same values, dtype aside: object columns with None for missing, lists as lists."""
    out = frame.astype(object)
    out = out.where(out.notna(), None)
    for column in out:
        out[column] = [list(v) if isinstance(v, list | np.ndarray) else v for v in out[column]]
    return out


def test_round_trip_through_parquet(tmp_path: Path) -> None:
    _catalog(tmp_path / "src")
    dataset, _ = load_source("tabular", tmp_path / "src" / "ratings.csv", LoaderOptions(tabular=MAPPING))
    dataset.save(tmp_path / "ds")
    back = Dataset.load(tmp_path / "ds")

    pd.testing.assert_frame_equal(_values(back.items), _values(dataset.items))
    assert [list(v) for v in back.items["genres"]] == [["A", "B"], ["B"], []]
    assert dataset.users is not None and back.users is not None
    pd.testing.assert_frame_equal(_values(back.users), _values(dataset.users))
    for name in ("user", "item", "weight", "timestamp"):
        np.testing.assert_array_equal(getattr(back.interactions, name), getattr(dataset.interactions, name))
        assert getattr(back.interactions, name).dtype == getattr(dataset.interactions, name).dtype
    assert back.user_map == dataset.user_map and back.item_map == dataset.item_map
    assert back.item_columns == dataset.item_columns and back.user_columns == dataset.user_columns
    assert (back.rating_scale, back.media_root, back.name) == (dataset.rating_scale, dataset.media_root, dataset.name)


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    write(tmp_path / "r.csv", "user_id,item\n1,2\n")
    with pytest.raises(DataError, match=r"r\.csv, column 'item_id': column not found; the file has \['user_id', 'item'\]"):
        load_source("tabular", tmp_path / "r.csv", LoaderOptions(tabular=TabularMapping()))


def test_tabular_needs_a_mapping_for_item_columns(tmp_path: Path) -> None:
    write(tmp_path / "r.csv", "user_id,item_id\n1,2\n")
    with pytest.raises(DataError, match="no items file"):
        load_source("tabular", tmp_path / "r.csv", LoaderOptions(tabular=TabularMapping(text=["title"])))
    with pytest.raises(DataError, match="needs a column mapping"):
        load_source("tabular", tmp_path / "r.csv")


def test_options_from_yaml_both_shapes(tmp_path: Path) -> None:
    bare = write(tmp_path / "mapping.yaml", "user: uid\nitem: iid\nrating_range: [1, 5]\ntext: [title]\n")
    options = load_options(bare)
    assert options.tabular is not None and options.tabular.user == "uid" and options.tabular.rating_range == (1, 5)
    full = write(tmp_path / "options.yaml", "strict: true\nname: shop\ntabular:\n  user: uid\n")
    options = load_options(full)
    assert options.strict and options.name == "shop" and options.tabular is not None
    typo = write(tmp_path / "typo.yaml", "usr: uid\n")
    with pytest.raises(DataError, match=r"typo\.yaml: invalid config"):
        load_options(typo)


def test_unknown_format_and_missing_source(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown format 'excel'"):
        load_source("excel", tmp_path)
    with pytest.raises(DataError, match="source not found"):
        load_source("movielens", tmp_path / "nope")


def test_multi_valued_separator(tmp_path: Path) -> None:
    write(tmp_path / "r.csv", "user_id,item_id\nu,a\n")
    write(tmp_path / "items.csv", "item_id,tags\na, x ;y;\n")
    mapping = TabularMapping(items="items.csv", multi_valued=["tags"], multi_valued_separator=";")
    dataset, _ = load_source("tabular", tmp_path / "r.csv", LoaderOptions(tabular=mapping))
    assert dataset.items["tags"].tolist() == [["x", "y"]]
