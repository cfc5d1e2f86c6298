"""Malformed source files: each class of bad input becomes a report (or a DataError) naming the
file and the line, as the policy in fusionrec.data.validate says; never a traceback or a silent
wrong value."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fusionrec.cli import app
from fusionrec.cli.app import err_console
from fusionrec.data.loaders import LoaderOptions, TabularMapping, load_source
from fusionrec.data.schema import Dataset, IdMap, Interactions
from fusionrec.data.stats import dataset_stats, stats_table
from fusionrec.data.validate import ValidationReport
from fusionrec.errors import DataError

from .helpers import only_issue, write

MAPPING = TabularMapping(rating="rating", timestamp="ts")


def _load(path: Path, content: str | bytes, mapping: TabularMapping = MAPPING, **options: object) -> tuple[Dataset, ValidationReport]:
    write(path, content)
    return load_source("tabular", path, LoaderOptions(tabular=mapping, **options))  # type: ignore[arg-type]


def _ingest(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    """Run ``fusionrec ingest`` with error messages on one line (a wide terminal)."""
    monkeypatch.setattr(err_console, "width", 250)
    result = CliRunner().invoke(app, ["ingest", *args])
    return result.exit_code, result.output


def _where(path: Path, line: int, column: str | None = None) -> str:
    return f"{path}, line {line}" + (f", column {column!r}" if column else "")


def _reviews(n: int) -> bytes:
    records = [{"reviewerID": f"u{i}", "asin": f"a{i % 3}", "overall": 5.0, "unixReviewTime": 1_000 + i}
               for i in range(n)]
    return ("\n".join(json.dumps(r) for r in records) + "\n").encode()


def test_timestamp_too_large_is_rejected_and_stats_never_crash(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    dataset, report = _load(path, "user_id,item_id,rating,ts\nu1,i1,5,1\nu2,i1,4,99999999999999\nu3,i1,3,-1e300\n")
    assert [str(i) for i in report.examples["time_out_of_range"]] == [
        f"{_where(path, 3, 'timestamp')}: time 99999999999999 is not epoch seconds within years 1..9999 (milliseconds?)",
        f"{_where(path, 4, 'timestamp')}: time -1e+300 is not epoch seconds within years 1..9999 (milliseconds?)",
    ]
    assert dataset_stats(dataset).time_range == ("1970-01-01 00:00:01", "1970-01-01 00:00:01")
    with pytest.raises(DataError, match=r"ratings\.csv, row 3, column 'timestamp': time 99999999999999"):
        _load(path, "user_id,item_id,rating,ts\nu1,i1,5,1\nu2,i1,4,99999999999999\n", strict=True)
    # A Dataset built by hand can still hold such a time: stats show it instead of raising.
    inter = Interactions(np.array([0, 0]), np.array([0, 0]), np.ones(2), timestamp=np.array([-(2**62), 2**62]),
                         n_users=1, n_items=1)
    by_hand = Dataset("t", pd.DataFrame({"item_id": ["i"]}), inter, IdMap(["u"]), IdMap(["i"]))
    stats = dataset_stats(by_hand)
    assert stats.time_range == (f"{-(2**62)} s (out of range)", f"{2**62} s (out of range)")
    assert stats_table(stats).row_count >= 8


def test_truncated_gzip_names_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = gzip.compress(_reviews(300))
    (tmp_path / "amazon").mkdir()
    path = tmp_path / "amazon" / "reviews_Toys.json.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"reviews_Toys\.json\.gz, row \d+: truncated gzip file, readable up to this line") as caught:
        load_source("amazon", path)
    assert caught.value.file == str(path) and caught.value.row is not None and 1 < caught.value.row < 300
    path.write_bytes(b"\x1f\x8b not gzip at all")
    with pytest.raises(DataError, match=r"reviews_Toys\.json\.gz, row 1: corrupt gzip file"):
        load_source("amazon", path)
    # From the CLI: one error line naming the file, exit code 2; no bare "Aborted."
    path.write_bytes(data[: len(data) // 2])
    code, output = _ingest(monkeypatch, "amazon", str(path), "--out", str(tmp_path / "ds"))
    assert code == 2 and output.strip() == (f"error: {path}, row {caught.value.row}: truncated gzip file, readable up "
                                            "to this line (Compressed file ended before the end-of-stream marker "
                                            "was reached)")
    assert not (tmp_path / "ds").exists()


def test_quoted_line_breaks_keep_physical_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    mapping = TabularMapping(rating="rating")
    rows = ('user_id,item_id,rating,note\n'
            'u1,i1,5,"two\nlines"\n'          # lines 2-3
            'u2,i2,x,"three\n   \nlines"\n'   # lines 4-6: rating 'x'; the blank line inside stays in the note
            'u3,i3,4,"a ""quoted"" word"\n'   # line 7
            'u4,i4,4,z,EXTRA\n'               # line 8: one field too many
            'u5,,4,ok\n')                     # line 9: no item
    dataset, report = _load(path, rows, mapping)
    assert str(only_issue(report, "unparsable_number")) == f"{_where(path, 4, 'rating')}: rating 'x' is not a number"
    assert str(only_issue(report, "malformed_row")) == f"{_where(path, 8)}: expected 4 fields, found 5: 'u4,i4,4,z,EXTRA'"
    assert str(only_issue(report, "missing_value")) == f"{_where(path, 9, 'item')}: no item id"
    assert dataset.user_map.ids.tolist() == ["u1", "u3"]
    # A quote inside an unquoted field is a plain character (it opens nothing): lines still right.
    stray = 'user_id,item_id,rating,note\nu1,i1,5,5" tall\nu2,i2,4,"x\ny"\nu3,i3,9,ok\n'
    _, report = _load(path, stray, mapping.model_copy(update={"rating_range": (1, 5)}))
    assert str(only_issue(report, "rating_out_of_range")) == f"{_where(path, 5, 'rating')}: rating 9 outside [1, 5]"


def test_non_finite_rating_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    rows = "user_id,item_id,rating\nu1,i1,5\nu2,i1,inf\nu3,i1,-inf\nu4,i1,nan\nu5,i1,Infinity\n"
    dataset, report = _load(path, rows, TabularMapping(rating="rating"))  # no rating range
    assert [str(i) for i in report.examples["unparsable_number"]] == [
        f"{_where(path, 3, 'rating')}: rating inf is not a finite number",
        f"{_where(path, 4, 'rating')}: rating -inf is not a finite number",
        f"{_where(path, 6, 'rating')}: rating inf is not a finite number",
    ]
    # "nan" is one of the missing-value markers (like "NA"): an error too, reported as missing.
    assert str(only_issue(report, "missing_value")) == f"{_where(path, 5, 'rating')}: no rating"
    assert dataset.interactions.weight.tolist() == [5.0]
    _, ranged = _load(path, rows, TabularMapping(rating="rating", rating_range=(1, 5)))
    assert ranged.counts["unparsable_number"] == 3 and ranged.counts["rating_out_of_range"] == 0


def test_whitespace_only_lines_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    mapping = TabularMapping(rating="rating", rating_range=(1, 5))
    dataset, report = _load(path, "user_id,item_id,rating\nu1,i1,5\n \t \nu2,i1,7\n\n   \n", mapping)
    assert str(only_issue(report, "rating_out_of_range")) == f"{_where(path, 4, 'rating')}: rating 7 outside [1, 5]"
    assert report.counts["malformed_row"] == 0 and len(dataset.interactions) == 1
    _, crlf = _load(path, "user_id,item_id,rating\r\nu1,i1,5\r\n  \r\nu2,i1,9\r\n   ", mapping)
    assert str(only_issue(crlf, "rating_out_of_range")) == f"{_where(path, 4, 'rating')}: rating 9 outside [1, 5]"
    assert crlf.counts["malformed_row"] == 0
    # In a TSV a line of tabs is a row of empty fields, not a blank line.
    tsv = tmp_path / "ratings.tsv"
    _, tabs = _load(tsv, "user_id\titem_id\trating\nu1\ti1\t5\n\t\t\n", mapping)
    assert str(tabs.examples["missing_value"][0]) == f"{_where(tsv, 3, 'user')}: no user id"


def test_header_without_rows_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ratings.csv"
    with pytest.raises(DataError, match=r"ratings\.csv: no interactions in the file \(no data rows\)$") as caught:
        _load(path, "user_id,item_id,rating,ts\n")
    assert caught.value.file == str(path)
    with pytest.raises(DataError, match=r"no interactions kept: all 2 rows were rejected; first: .*ratings\.csv, line 2"):
        _load(path, "user_id,item_id,rating,ts\nu1,i1,five,1\nu2,i1,4,soon\n")
    empty = write(tmp_path / "amazon" / "reviews_Toys.json.gz", b"")
    with pytest.raises(DataError, match=r"reviews_Toys\.json\.gz: no interactions in the file"):
        load_source("amazon", empty)
    write(path, "user_id,item_id,rating\n")
    code, output = _ingest(monkeypatch, "tabular", str(path), "--out", str(tmp_path / "ds"),
                           "--config", str(write(tmp_path / "m.yaml", "rating: rating\n")))
    assert code == 2 and output.strip() == f"error: {path}: no interactions in the file (no data rows)"
    assert not (tmp_path / "ds").exists()


def test_ml1m_ids_must_be_integers(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    write(folder / "ratings.dat", "1::1::5::978300760\nabc::1::4::978300761\n2::x1::3::978300762\n3::1::4::978300763\n")
    write(folder / "movies.dat", "1::Toy Story (1995)::Animation|Comedy\n")
    dataset, report = load_source("movielens", folder)
    ratings = folder / "ratings.dat"
    assert [str(i) for i in report.examples["unparsable_number"]] == [
        f"{_where(ratings, 2, 'user')}: user id 'abc' is not an integer",
        f"{_where(ratings, 3, 'item')}: item id 'x1' is not an integer",
    ]
    assert dataset.user_map.ids.tolist() == ["1", "3"] and report.counts["unknown_item"] == 0
    with pytest.raises(DataError, match=r"ratings\.dat, row 2, column 'user': user id 'abc' is not an integer"):
        load_source("movielens", folder, LoaderOptions(strict=True))


def test_mmrec_feature_rows_must_match_items(tmp_path: Path) -> None:
    folder = tmp_path / "baby"
    write(folder / "baby.inter", "userID\titemID\trating\ttimestamp\n0\t0\t5\t1\n0\t1\t4\t2\n1\t5\t3\t3\n")
    np.save(folder / "image_feat.npy", np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(DataError) as caught:
        load_source("mmrec", folder)
    assert str(caught.value) == (f"{folder / 'image_feat.npy'}: has 3 rows (row i = itemID i) but baby.inter has 6 "
                                 "items: itemID '5' at line 4 has no feature row")
    write(folder / "baby.inter", "userID\titemID\trating\ttimestamp\n0\t0\t5\t1\n0\t2\t4\t2\n")
    np.save(folder / "text_feat.npy", np.zeros((4, 2), dtype=np.float32))
    with pytest.raises(DataError) as caught:
        load_source("mmrec", folder)
    assert str(caught.value) == (f"{folder / 'image_feat.npy'}: feature matrices have different numbers of rows: "
                                 "image_feat.npy has 3, text_feat.npy has 4 (one row per item expected)")
    np.save(folder / "text_feat.npy", np.zeros((3, 2), dtype=np.float32))
    dataset, _ = load_source("mmrec", folder)  # fewer items used than feature rows is fine
    assert dataset.n_items == 3
