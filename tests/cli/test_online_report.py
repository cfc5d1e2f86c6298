"""`fusionrec online-report` on a CSV log and on an event database."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from fusionrec.cli import app
from fusionrec.serve.events import EventStore
from tests.cli.cli_workspace import text

runner = CliRunner()


def _events() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for variant, impressions, clicks in (("control", 40, 4), ("treatment", 40, 12)):
        rows += [{"user_id": f"u{i % 7}", "item_id": f"i{i}", "type": "impression", "variant": variant} for i in range(impressions)]
        rows += [{"user_id": f"u{i % 7}", "item_id": f"i{i}", "type": "click", "variant": variant} for i in range(clicks)]
    rows.append({"user_id": "u1", "item_id": "i1", "type": "purchase", "variant": "treatment"})
    return rows


def test_report_from_a_csv_log_with_png(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    lines = ["user_id,item_id,type,value,variant,ts"] + [f"{e['user_id']},{e['item_id']},{e['type']},,{e['variant']},1" for e in _events()]
    path.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["online-report", "--log", str(path), "--png", str(tmp_path / "ab.png")])
    assert result.exit_code == 0, result.output
    out = text(result)
    assert "control (control)" in out and "10.00 %" in out and "30.00 %" in out  # 4/40 and 12/40
    assert "against 'control'" in out and "+20.000" in out
    assert (tmp_path / "ab.png").read_bytes()[:4] == b"\x89PNG"


def test_report_from_the_event_db_as_json(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    with EventStore(db) as store:
        store.append(_events())
    result = runner.invoke(app, ["online-report", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    by = {v["variant"]: v for v in report["variants"]}
    assert by["treatment"]["clicks"] == 12 and by["treatment"]["conversions"] == 1 and by["control"]["ctr"] == 0.1
    ctr = next(c for c in report["comparisons"] if c["metric"] == "ctr")
    assert ctr["difference"] == 0.2 or abs(ctr["difference"] - 0.2) < 1e-12
    assert ctr["p_value"] < 0.05


def test_clear_one_line_errors(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["online-report", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 2 and "no event database" in text(missing)
    assert not (tmp_path / "none.db").exists()  # a report never creates a database
    (tmp_path / "bad.csv").write_text("user_id,item_id,type\nu,i,hover\n")
    bad = runner.invoke(app, ["online-report", "--log", str(tmp_path / "bad.csv")])
    assert bad.exit_code == 2 and "row 2, column 'type'" in text(bad) and "Traceback" not in bad.output
    both = runner.invoke(app, ["online-report"])
    assert both.exit_code == 2 and "exactly one of --db" in text(both)
