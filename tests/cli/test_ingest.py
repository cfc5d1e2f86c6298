from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fusionrec.cli import app
from fusionrec.cli.app import console, err_console
from fusionrec.data.schema import Dataset

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables and messages on one line each, as in a wide terminal (the test console is 80 columns)."""
    for shared in (console, err_console):
        monkeypatch.setattr(shared, "width", 250)

MAPPING_YAML = """\
items: items.csv
user: uid
item: iid
rating: stars
rating_range: [1, 5]
text: [title]
image: cover
"""


def _source(folder: Path, ratings: str = "uid,iid,stars\nu1,i1,5\nu1,i2,4\nu2,i1,3\nu3,i3,2\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text(ratings)
    (folder / "items.csv").write_text("iid,title,cover\ni1,One,1.jpg\ni2,Two,2.jpg\ni3,Three,\n")
    (folder / "1.jpg").write_bytes(b"jpeg")
    (folder / "2.jpg").write_bytes(b"jpeg")
    (folder / "mapping.yaml").write_text(MAPPING_YAML)
    return folder


def _ingest(src: Path, out: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["ingest", "tabular", str(src / "ratings.csv"), "--out", str(out),
                                 "--config", str(src / "mapping.yaml"), *extra])
    return result.exit_code, result.output


def test_ingest_saves_and_reports(tmp_path: Path) -> None:
    src = _source(tmp_path / "src")
    code, output = _ingest(src, tmp_path / "ds", "--json", "--name", "shop")
    assert code == 0, output
    assert "no problems found" in output
    assert "saved 3 users, 3 items, 4 interactions" in output
    assert "3 / 3" in output  # stats table: users with interactions / total
    dataset = Dataset.load(tmp_path / "ds")
    assert (dataset.name, dataset.n_users, dataset.n_items, len(dataset.interactions)) == ("shop", 3, 3, 4)
    report = json.loads((tmp_path / "ds" / "validation_report.json").read_text())
    assert (report["rows_read"], report["rows_kept"], report["errors"]) == (4, 4, 0)


def test_ingest_bad_rows_non_strict_and_strict(tmp_path: Path) -> None:
    src = _source(tmp_path / "src", "uid,iid,stars\nu1,i1,5\nu1,i2,9\nu2,i1,x\n")
    code, output = _ingest(src, tmp_path / "ds")
    assert code == 0, output
    assert "rating_out_of_range" in output and "unparsable_number" in output
    assert "saved 1 users, 3 items, 1 interactions" in output

    code, output = _ingest(src, tmp_path / "strict", "--strict")
    assert code == 2
    last = output.strip().splitlines()[-1]
    assert last.startswith("error:") and f"{src / 'ratings.csv'}, row 3, column 'rating': rating 9 outside" in last
    assert "Traceback" not in output
    assert not (tmp_path / "strict").exists()  # nothing saved on failure


def test_validate_dataset_dir_rechecks_media(tmp_path: Path) -> None:
    src = _source(tmp_path / "src")
    assert _ingest(src, tmp_path / "ds")[0] == 0
    (src / "2.jpg").unlink()
    result = runner.invoke(app, ["validate", str(tmp_path / "ds"), "--strict"])
    assert result.exit_code == 0, result.output  # a missing file is a warning
    assert "missing_file" in result.output and "items.parquet" in result.output
    assert "row 2" in result.output  # the item's row in items.parquet
    result = runner.invoke(app, ["validate", str(tmp_path / "ds"), "--json"])
    report = json.loads(result.output)
    assert report["counts"] == {"missing_file": 1} and report["examples"][0]["row"] == 2


def test_validate_raw_source(tmp_path: Path) -> None:
    src = _source(tmp_path / "src", "uid,iid,stars\nu1,i1,5\nu1,i2,9\n")
    base = ["validate", str(src / "ratings.csv"), "--config", str(src / "mapping.yaml")]
    result = runner.invoke(app, base)
    assert result.exit_code == 2 and "give the source's --format" in result.output
    result = runner.invoke(app, [*base, "--format", "tabular"])
    assert result.exit_code == 0 and "rating_out_of_range" in result.output
    assert "2 rows read, 1 kept" in result.output
    result = runner.invoke(app, [*base, "--format", "tabular", "--strict"])
    assert result.exit_code == 2 and "rating 9 outside [1, 5]" in result.output


def test_ingest_movielens_and_amazon(tmp_path: Path) -> None:
    ml = tmp_path / "ml-100k"
    ml.mkdir()
    (ml / "u.data").write_text("1\t1\t5\t10\n2\t1\t4\t11\n2\t2\t3\t12\n")
    flags = "|".join(["0"] * 19)
    (ml / "u.item").write_text(f"1|A (1990)|||x|{flags}\n2|B (1991)|||y|{flags}\n")
    result = runner.invoke(app, ["ingest", "movielens", str(ml), "--out", str(tmp_path / "ml")])
    assert result.exit_code == 0, result.output
    assert "saved 2 users, 2 items, 3 interactions" in result.output

    reviews = tmp_path / "reviews.json"
    reviews.write_text('{"reviewerID": "U1", "asin": "A1", "overall": 5, "unixReviewTime": 1}\n')
    meta = tmp_path / "meta.json"
    meta.write_text("{'asin': 'A1', 'title': 'Thing'}\n{'asin': 'A2', 'title': 'Other'}\n")
    result = runner.invoke(app, ["ingest", "amazon", str(reviews), "--meta", str(meta), "--out", str(tmp_path / "az")])
    assert result.exit_code == 0, result.output
    assert "saved 1 users, 2 items, 1 interactions" in result.output


def test_bad_input_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", "excel", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "unknown format 'excel'" in result.output
    result = runner.invoke(app, ["ingest", "movielens", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "source not found" in result.output
    (tmp_path / "bad.yaml").write_text("usr: x\n")
    result = runner.invoke(app, ["ingest", "tabular", str(tmp_path), "--out", str(tmp_path / "o"),
                                 "--config", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2 and "bad.yaml: invalid config" in result.output
    assert "Traceback" not in result.output


def test_every_option_has_help() -> None:
    for verb, options in (("ingest", ["--out", "--config", "--meta", "--strict", "--no-check-media", "--name", "--json"]),
                          ("validate", ["--format", "--config", "--meta", "--strict", "--no-check-media", "--json"])):
        result = runner.invoke(app, [verb, "--help"], terminal_width=250)
        assert result.exit_code == 0
        rows = [line.strip("│ ").split() for line in result.output.splitlines()]
        for option in options:
            tokens = next(row for row in rows if option in row[:4])
            help_words = tokens[next(i for i, t in enumerate(tokens) if t.startswith("<")) + 1:]
            assert len(help_words) >= 3, f"{verb} {option} has no help: {tokens}"
