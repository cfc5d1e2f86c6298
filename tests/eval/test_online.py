"""Online metrics: Wilson intervals and z-tests against hand-computed numbers, variants, the log loader."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.errors import DataError
from fusionrec.eval.online import (
    online_report,
    plot_online_report,
    read_event_log,
    two_proportion_test,
    wilson_interval,
)


def log(variant: str | None, impressions: int, clicks: int, purchases: int = 0, users: int = 10) -> pd.DataFrame:
    types = ["impression"] * impressions + ["click"] * clicks + ["purchase"] * purchases
    n = len(types)
    return pd.DataFrame({"user_id": [f"u{i % users}" for i in range(n)], "item_id": ["i"] * n, "type": types,
                         "value": [np.nan] * n, "variant": [variant] * n, "ts": np.arange(n, dtype=float)})


def test_wilson_interval_matches_hand_computation() -> None:
    # 10 / 100, z = 1.96: centre (0.1 + z²/200) / (1 + z²/100), half z/(1 + z²/100) sqrt(0.0009 + z²/40000)
    z = 1.959963984540054
    centre = (0.1 + z * z / 200) / (1 + z * z / 100)
    half = z / (1 + z * z / 100) * math.sqrt(0.1 * 0.9 / 100 + z * z / 40_000)
    low, high = wilson_interval(10, 100)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert (low, high) == pytest.approx((0.05523, 0.17437), abs=1e-5)  # the published 10/100 interval
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(0, 20)[1] == pytest.approx(0.16113, abs=1e-5)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_two_proportion_z_test() -> None:
    diff, low, high, p = two_proportion_test(100, 1000, 150, 1000)
    # pooled 0.125, se = sqrt(0.125 * 0.875 * 2 / 1000), z = 0.05 / se = 3.381
    assert diff == pytest.approx(0.05) and p == pytest.approx(math.erfc(0.05 / math.sqrt(0.125 * 0.875 * 0.002) / math.sqrt(2)))
    assert p == pytest.approx(0.000723, abs=2e-5)
    assert low < 0.05 < high and low > 0
    assert two_proportion_test(100, 1000, 100, 1000)[3] == pytest.approx(1.0)


def test_report_per_variant_with_control_and_p_values() -> None:
    events = pd.concat([log("control", 1000, 100, 10, users=50), log("B", 1000, 150, 30), log("C", 1000, 101, 10),
                        log(None, 200, 20)], ignore_index=True)
    report = online_report(events)
    assert [v.variant for v in report.variants] == ["B", "C", "control", "default"]
    assert report.control == "control"
    control = report.variant("control")
    assert (control.impressions, control.clicks, control.conversions, control.users) == (1000, 100, 10, 50)
    assert control.ctr == pytest.approx(0.1) and control.conversion_rate == pytest.approx(0.01)
    assert (control.ctr_low, control.ctr_high) == pytest.approx(wilson_interval(100, 1000))
    by = {(c.variant, c.metric): c for c in report.comparisons}
    assert len(by) == 6 and all(c.control == "control" for c in by.values())
    assert by["B", "ctr"].difference == pytest.approx(0.05) and by["B", "ctr"].p_value < 0.001
    assert by["C", "ctr"].p_value > 0.9  # 10.1 % vs 10 %: no evidence
    assert by["B", "conversion_rate"].p_value < 0.01
    assert report.to_dict()["variants"][0]["variant"] == "B"


def test_control_defaults_to_most_impressions_and_can_be_chosen() -> None:
    events = pd.concat([log("a", 100, 10), log("b", 300, 30)], ignore_index=True)
    assert online_report(events).control == "b"
    assert online_report(events, control="a").comparisons[0].variant == "b"
    with pytest.raises(DataError, match="no variant 'z'"):
        online_report(events, control="z")


def test_warnings_and_undefined_rates() -> None:
    report = online_report(log("x", 0, 5))
    v = report.variant("x")
    assert math.isnan(v.ctr) and math.isnan(v.ctr_low)
    assert any("5 clicks for 0 impressions" in w for w in report.warnings)
    assert report.to_dict()["variants"][0]["ctr"] is None
    empty = online_report(pd.DataFrame({"user_id": [], "type": []}))
    assert empty.variants == [] and empty.control is None


def test_read_event_log_csv_and_parquet(tmp_path: Path) -> None:
    events = pd.concat([log("A", 5, 2), log("B", 5, 1)], ignore_index=True)
    events.to_csv(tmp_path / "log.csv", index=False)
    events.to_parquet(tmp_path / "log.parquet")
    for name in ("log.csv", "log.parquet"):
        frame = read_event_log(tmp_path / name)
        assert list(frame.columns[:6]) == ["user_id", "item_id", "type", "value", "variant", "ts"]
        assert online_report(frame).variant("A").clicks == 2
    pd.DataFrame({"user_id": ["u"], "type": ["click"]}).to_csv(tmp_path / "no_item.csv", index=False)
    with pytest.raises(DataError, match=r"no_item.csv, row 2, column 'item_id'"):
        read_event_log(tmp_path / "no_item.csv")


def test_read_event_log_names_file_row_and_column(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("user_id,item_id,type\nu,i,click\nu,i,hover\n")
    with pytest.raises(DataError, match=r"bad.csv, row 3, column 'type': unknown event type 'hover'"):
        read_event_log(tmp_path / "bad.csv")
    (tmp_path / "nouser.csv").write_text("item_id,type\ni,click\n")
    with pytest.raises(DataError, match=r"column 'user_id': missing column"):
        read_event_log(tmp_path / "nouser.csv")
    with pytest.raises(DataError, match="file not found"):
        read_event_log(tmp_path / "absent.csv")
    (tmp_path / "log.json").write_text("{}")
    with pytest.raises(DataError, match=r"csv, \.tsv or \.parquet"):
        read_event_log(tmp_path / "log.json")


def test_plot_writes_a_png(tmp_path: Path) -> None:
    report = online_report(pd.concat([log("control", 100, 10), log("B", 100, 20)], ignore_index=True))
    out = plot_online_report(report, tmp_path / "plots" / "online.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
