"""The fast id path (integer codes of distinct ids, dictionary-encoded reading) gives exactly what the
row-by-row string path gives: same Dataset, same report (kinds, counts, messages, lines)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.loaders.common import (
    _as_id_strings,
    _duplicated,
    assemble_dataset,
    clean_interactions,
    id_codes,
    read_delimited,
)
from fusionrec.data.loaders.tabular import TabularMapping, load_tabular
from fusionrec.data.schema import Dataset, ItemColumns
from fusionrec.data.validate import ValidationReport

from .helpers import write

# Integer ids with: a malformed row (line 4), missing user / item, a bad and an out-of-range
# rating, an unparsable time, exact duplicates (lines 10, 13), same pair at another time (kept),
# a padded id (" 7") that is the same user as "7", ids first seen in a non-sorted order.
ROWS = """user_id,item_id,rating,timestamp
7,30,4,100
12,10,5,100
12,10
,10,3,100
3,,3,100
3,20,x,100
3,20,9,100
3,20,2,later
7,30,4,100
 7,20,1,200
12,10,5,300
12,10,5,100
5,40,3,50
"""


def _issues(report: ValidationReport) -> list[tuple[str, str, int | None, str | None]]:
    return [(i.kind, i.message, i.row, i.column) for i in report.issues()]


def _same(a: Dataset, b: Dataset) -> None:
    assert a.user_map == b.user_map and a.item_map == b.item_map
    assert list(a.user_map.ids) == list(b.user_map.ids) and list(a.item_map.ids) == list(b.item_map.ids)
    for name in ("user", "item", "weight", "timestamp"):
        np.testing.assert_array_equal(getattr(a.interactions, name), getattr(b.interactions, name))
        assert getattr(a.interactions, name).dtype == getattr(b.interactions, name).dtype
    pd.testing.assert_frame_equal(a.items, b.items)


def _slow_path(path: Path, *, string_ids: bool) -> tuple[Dataset, ValidationReport]:
    """Read ids as plain strings (or let pyarrow parse them as numbers), clean with object ids."""
    report = ValidationReport(source=str(path))
    frame, lines = read_delimited(path, report, string_columns=["user_id", "item_id"] if string_ids else None)
    raw = frame.rename(columns={"user_id": "user", "item_id": "item", "rating": "rating", "timestamp": "timestamp"})
    cleaned = clean_interactions(raw, lines, report, file=str(path), rating_range=(1, 5))
    assert cleaned["user"].dtype == object and cleaned["item"].dtype == object
    first = cleaned.drop_duplicates("item")
    items = pd.DataFrame({"item_id": first["item"].to_numpy()})
    dataset = assemble_dataset(path.name.split(".")[0], items, cleaned, report, item_columns=ItemColumns(),
                               items_file=str(path), interactions_file=str(path), rating_scale=(1, 5),
                               source=str(path.resolve()), item_lines=first["line"].to_numpy())
    return dataset, report


@pytest.mark.parametrize("string_ids", [True, False])
def test_categorical_fast_path_matches_string_path(tmp_path: Path, string_ids: bool) -> None:
    path = write(tmp_path / "ratings.csv", ROWS)
    mapping = TabularMapping(rating="rating", timestamp="timestamp", rating_range=(1, 5))
    fast, fast_report = load_tabular(path, mapping)
    slow, slow_report = _slow_path(path, string_ids=string_ids)
    _same(fast, slow)
    assert _issues(fast_report) == _issues(slow_report)
    assert dict(fast_report.counts) == dict(slow_report.counts)
    assert (fast_report.rows_read, fast_report.rows_kept) == (slow_report.rows_read, slow_report.rows_kept)
    # What the rows above must give, spelled out.
    assert list(fast.user_map.ids) == ["7", "12", "5"]
    assert list(fast.item_map.ids) == ["30", "10", "20", "40"]
    assert dict(fast_report.counts) == {"malformed_row": 1, "missing_value": 2, "unparsable_number": 2,
                                        "rating_out_of_range": 1, "duplicate_interaction": 2}
    dups = [i for i in fast_report.issues() if i.kind == "duplicate_interaction"]
    assert [(i.row, i.message) for i in dups] == [
        (10, "repeats (user, item, time) ['7', '30']"), (13, "repeats (user, item, time) ['12', '10']")]
    assert fast_report.rows_kept == 5 and fast_report.rows_read == 13


@pytest.mark.parametrize("column", [
    pd.Series([3, 1, 3, 20, 1]),
    pd.Series([3.0, np.nan, 1.0, 3.0]),
    pd.Series([1.5, np.nan, 2.0, 1.5]),
    pd.Series([" 7", "7", "", None, "b ", "b", "7"], dtype="string"),
    pd.Series(pd.Categorical([" 7", "7", None, "", "x", "x"])),
    pd.Series([1, "1", 1.0, None, " a", "a", ""], dtype=object),
    pd.Series([], dtype="string"),
])
def test_id_codes_equal_row_by_row_strings(column: pd.Series) -> None:
    codes, ids = id_codes(column)
    expected = _as_id_strings(column)
    assert len(set(ids.tolist())) == len(ids) and all(isinstance(i, str) for i in ids)
    got = [None if c < 0 else ids[c] for c in codes.tolist()]
    assert got == [None if pd.isna(v) else v for v in expected.tolist()]


@pytest.mark.parametrize("keys", [
    np.array([], dtype=np.int64),
    np.array([5], dtype=np.int64),
    np.array([3, 1, 3, 2, 1, 3, 9], dtype=np.int64),
    np.arange(100, dtype=np.int64),
    np.zeros(50, dtype=np.int64),
    np.random.default_rng(0).integers(0, 40, 200).astype(np.int64),
])
def test_duplicated_keys_like_pandas(keys: np.ndarray) -> None:
    expected = pd.Series(keys).duplicated(keep="first").to_numpy()
    np.testing.assert_array_equal(_duplicated(keys), expected)
