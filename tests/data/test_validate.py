from __future__ import annotations

import numpy as np
import pytest

from fusionrec.data.validate import ValidationReport
from fusionrec.errors import DataError


def test_report_keeps_every_count_but_bounded_examples() -> None:
    report = ValidationReport("src", max_examples_per_kind=3)
    rows = np.arange(2, 1002)
    report.add_rows("unparsable_number", rows, rows.astype(str), "value {value!r} is bad", file="r.csv", column="rating")
    assert report.counts["unparsable_number"] == 1000
    examples = report.examples["unparsable_number"]
    assert len(examples) == 3
    assert str(examples[0]) == "r.csv, line 2, column 'rating': value '2' is bad"
    assert report.n_errors == 1000 and report.n_warnings == 0


def test_warnings_do_not_fail_strict_but_errors_do() -> None:
    report = ValidationReport()
    report.add("empty_text", "no text", file="items.csv", row=4, column="title")
    report.raise_if_errors()  # warnings only: fine
    report.add("rating_out_of_range", "rating 7 outside [1, 5]", file="r.csv", row=9, column="rating")
    with pytest.raises(DataError, match=r"r\.csv, row 9, column 'rating': rating 7 outside \[1, 5\]"):
        report.raise_if_errors()


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown validation kind"):
        ValidationReport().add("typo_kind", "x")


def test_merge_and_dict() -> None:
    a, b = ValidationReport("a"), ValidationReport("b")
    a.add("missing_file", "gone", file="i.csv", row=2, column="poster")
    b.add("missing_file", "gone too", file="i.csv", row=3, column="poster")
    b.rows_read, b.rows_kept = 10, 9
    a.merge(b)
    data = a.to_dict()
    assert data["counts"] == {"missing_file": 2} and data["rows_read"] == 10 and data["warnings"] == 2
    assert [e["row"] for e in data["examples"]] == [2, 3]
    assert data["examples"][0]["severity"] == "warning"
