"""One test per kind of the validation policy table (fusionrec.data.validate): each checks what
happens to the row and that the issue names the file, the line (or Parquet row) and the column."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusionrec.data.loaders import LoaderOptions, TabularMapping, load_source
from fusionrec.data.schema import Dataset
from fusionrec.data.validate import ACTIONS, ValidationReport
from fusionrec.errors import DataError

from .helpers import only_issue, write

MAPPING = TabularMapping(items="items.csv", rating="rating", timestamp="ts", rating_range=(1, 5),
                         text=["title"], image="poster", numeric=["price"])
ITEMS = "item_id,title,poster,price\ni1,One,,1\ni2,Two,,2\n"


def _load(folder: Path, ratings: str | bytes, items: str | bytes = ITEMS, **options: object) -> tuple[Dataset, ValidationReport]:
    write(folder / "ratings.csv", ratings)
    write(folder / "items.csv", items)
    return load_source("tabular", folder / "ratings.csv", LoaderOptions(tabular=MAPPING, **options))  # type: ignore[arg-type]


def _where(folder: Path, file: str, line: int, column: str | None) -> str:
    text = f"{folder / file}, line {line}"
    return f"{text}, column {column!r}" if column else text


def test_malformed_row(tmp_path: Path) -> None:
    dataset, report = _load(tmp_path, "user_id,item_id,rating,ts\nu1,i1,5,1\nu1,i2,4,2,EXTRA\nu2,i2,3,3\n")
    issue = only_issue(report, "malformed_row")
    # A row with the wrong number of fields has no single bad column: the message gives the field counts.
    assert str(issue) == f"{_where(tmp_path, 'ratings.csv', 3, None)}: expected 4 fields, found 5: 'u1,i2,4,2,EXTRA'"
    assert len(dataset.interactions) == 2 and issue.severity == "error"


def test_missing_value(tmp_path: Path) -> None:
    dataset, report = _load(tmp_path, "user_id,item_id,rating,ts\nu1,i1,5,1\n,i2,4,2\n")
    assert str(only_issue(report, "missing_value")) == f"{_where(tmp_path, 'ratings.csv', 3, 'user')}: no user id"
    assert len(dataset.interactions) == 1


def test_missing_item_id_in_the_catalog(tmp_path: Path) -> None:
    _, report = _load(tmp_path, "user_id,item_id,rating,ts\nu1,i1,5,1\n", items=ITEMS + ",Nameless,,3\n")
    assert str(only_issue(report, "missing_value")) == f"{_where(tmp_path, 'items.csv', 4, 'item_id')}: no item id"


def test_unparsable_number(tmp_path: Path) -> None:
    dataset, report = _load(tmp_path, "user_id,item_id,rating,ts\nu1,i1,five,1\nu1,i2,4,soon\nu2,i1,3,3\n")
    issues = report.examples["unparsable_number"]
    assert [str(i) for i in issues] == [
        f"{_where(tmp_path, 'ratings.csv', 2, 'rating')}: rating 'five' is not a number",
        f"{_where(tmp_path, 'ratings.csv', 3, 'timestamp')}: time 'soon' is not a number or date",
    ]
    assert len(dataset.interactions) == 1


def test_rating_out_of_range(tmp_path: Path) -> None:
    dataset, report = _load(tmp_path, "user_id,item_id,rating,ts\nu1,i1,5,1\nu1,i2,7,2\n")
    assert str(only_issue(report, "rating_out_of_range")) == (
        f"{_where(tmp_path, 'ratings.csv', 3, 'rating')}: rating 7 outside [1, 5]")
    assert dataset.interactions.weight.tolist() == [5.0]


def test_time_out_of_range(tmp_path: Path) -> None:
    dataset, report = _load(tmp_path, "user_id,item_id,rating,ts\nu1,i1,5,1\nu1,i2,4,1700000000000\n")
    assert str(only_issue(report, "time_out_of_range")) == (
        f"{_where(tmp_path, 'ratings.csv', 3, 'timestamp')}: time 1700000000000 is not epoch seconds "
        "within years 1..9999 (milliseconds?)")
    assert dataset.interactions.timestamp is not None and dataset.interactions.timestamp.tolist() == [1]


def test_duplicate_interaction(tmp_path: Path) -> None:
    dataset, report = _load(tmp_path, "user_id,item_id,rating,ts\nu1,i1,5,1\nu1,i1,2,1\nu1,i1,4,9\n")
    issue = only_issue(report, "duplicate_interaction")
    assert str(issue) == f"{_where(tmp_path, 'ratings.csv', 3, 'user,item,timestamp')}: repeats (user, item, time) ['u1', 'i1']"
    assert dataset.interactions.weight.tolist() == [5.0, 4.0]  # first copy kept; a later time is not a copy


def test_unknown_item(tmp_path: Path) -> None:
    dataset, report = _load(tmp_path, "user_id,item_id,rating,ts\nu1,i1,5,1\nu1,i9,4,2\nu2,i9,3,3\n")
    assert str(only_issue(report, "unknown_item")) == (
        f"{_where(tmp_path, 'ratings.csv', 3, 'item')}: item 'i9' is not in the catalog")
    assert dataset.item_map.ids.tolist() == ["i1", "i2", "i9"] and len(dataset.interactions) == 3
    assert dataset.items["title"].iloc[2] is None or dataset.items["title"].isna().iloc[2]


def test_duplicate_item(tmp_path: Path) -> None:
    dataset, report = _load(tmp_path, "user_id,item_id,rating,ts\nu1,i1,5,1\n", items=ITEMS + "i1,Again,,9\n")
    assert str(only_issue(report, "duplicate_item")) == (
        f"{_where(tmp_path, 'items.csv', 4, 'item_id')}: item id 'i1' already in the catalog")
    assert dataset.items["title"].tolist() == ["One", "Two"]


def test_missing_file(tmp_path: Path) -> None:
    write(tmp_path / "p1.jpg", b"jpeg")
    items = "item_id,title,poster,price\ni1,One,p1.jpg,1\ni2,Two,p2.jpg,2\n"
    dataset, report = _load(tmp_path, "user_id,item_id,rating,ts\nu1,i1,5,1\n", items=items)
    assert str(only_issue(report, "missing_file")) == (
        f"{_where(tmp_path, 'items.csv', 3, 'poster')}: file 'p2.jpg' does not exist; modality masked")
    assert dataset.items["poster"].iloc[0] == "p1.jpg" and dataset.items["poster"].isna().iloc[1]
    _, unchecked = _load(tmp_path, "user_id,item_id,rating,ts\nu1,i1,5,1\n", items=items, check_media=False)
    assert unchecked.counts["missing_file"] == 0


def test_empty_text(tmp_path: Path) -> None:
    dataset, report = _load(tmp_path, "user_id,item_id,rating,ts\nu1,i1,5,1\n",
                            items='item_id,title,poster,price\ni1,One,,1\ni2,"   ",,2\n')
    assert str(only_issue(report, "empty_text")) == (
        f"{_where(tmp_path, 'items.csv', 3, 'title')}: item 'i2' has no text; text modality masked")
    assert dataset.items["title"].tolist() == ["One", None]


def test_bad_encoding(tmp_path: Path) -> None:
    items = b"item_id,title,poster,price\ni1,One,,1\n" + "i2,Café,,2\n".encode("latin-1")
    dataset, report = _load(tmp_path, "user_id,item_id,rating,ts\nu1,i2,5,1\n", items=items)
    assert str(only_issue(report, "bad_encoding")) == (
        f"{_where(tmp_path, 'items.csv', 3, 'title')}: byte 6: not valid utf-8; decoded as latin-1")
    assert dataset.items["title"].tolist() == ["One", "Café"]


def test_unparsable_attribute(tmp_path: Path) -> None:
    dataset, report = _load(tmp_path, "user_id,item_id,rating,ts\nu1,i1,5,1\n",
                            items="item_id,title,poster,price\ni1,One,,cheap\ni2,Two,,2\n")
    assert str(only_issue(report, "unparsable_attribute")) == (
        f"{_where(tmp_path, 'items.csv', 2, 'price')}: value 'cheap' is not a number; attribute cleared")
    assert dataset.items["price"].isna().tolist() == [True, False] and report.n_errors == 0


def test_strict_mode_raises_with_where(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"ratings\.csv, row 3, column 'rating': rating 7 outside \[1, 5\] \(1 error"):
        _load(tmp_path, "user_id,item_id,rating,ts\nu1,i1,5,1\nu1,i2,7,2\n", strict=True)
    dataset, _ = _load(tmp_path, "user_id,item_id,rating,ts\nu1,i1,5,1\nu1,i1,5,1\n", strict=True)
    assert len(dataset.interactions) == 1  # warnings never fail strict mode


def test_every_policy_kind_has_a_test() -> None:
    """A new kind in the policy table needs its own ``test_<kind>`` here."""
    assert [kind for kind in ACTIONS if f"test_{kind}" not in globals()] == []
