"""`fusionrec explain`: a table with titles, per-modality contributions and evidence; JSON; one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fusionrec.cli import app
from tests.cli.cli_workspace import text

from . import catalogue as cat

runner = CliRunner()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("explain_cli")
    dataset_dir, split_dir, features_dir = cat.save_workspace(root)
    config = root / "content.yaml"
    config.write_text("modality_weights: {text: 0.6, image: 0.35, attributes: 0.05}\n")
    paths = {"dataset": dataset_dir, "split": split_dir, "features": features_dir}
    for name, args in (("content", ["--features", str(features_dir), "--config", str(config)]), ("ease", [])):
        result = runner.invoke(
            app, ["train", str(split_dir), "--model", name, "--out", str(root / name), *args]
        )
        assert result.exit_code == 0, result.output
        paths[name] = root / name
    return paths


def explain_args(workspace: dict[str, Path], model: str, user: str, k: int, *extra: str) -> list[str]:
    """``fusionrec explain`` arguments for a workspace model, with the workspace's features."""
    return ["explain", str(workspace[model]), "--user", user, "--k", str(k), "--features", str(workspace["features"]), *extra]


def test_table_shows_titles_contributions_and_evidence(workspace: dict[str, Path]) -> None:
    args = explain_args(workspace, "content", "u0", 3)
    result = runner.invoke(app, [*args, "--dataset", str(workspace["dataset"])])
    assert result.exit_code == 0, result.output
    out = text(result)
    for column in ("rank", "title", "score", "text", "image", "attributes", "driver", "evidence"):
        assert column in out
    for item in (1, 11, 21):  # the text twins of u0's items 0, 10, 20, with their twin cited
        assert f"Title {item}" in out
        assert f"plot like Title {item - 1}" in out
    assert "Title 0 " not in out.split("evidence", 1)[1].replace(
        "like Title 0", ""
    )  # seen items are not recommended
    assert "3 past items" in out


def test_json_has_ids_contributions_and_finds_the_dataset_through_the_split(
    workspace: dict[str, Path],
) -> None:
    args = explain_args(workspace, "content", "u0", 2, "--json")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    first = payload["items"][0]
    assert payload["user_id"] == "u0" and first["rank"] == 1
    assert first["item_id"] in ("i1", "i11", "i21") and first["title"].startswith("Title ")
    assert first["driver"] == "text"
    assert sum(first["contributions"].values()) == pytest.approx(first["score"], abs=1e-4)
    assert first["evidence"][0]["modality"] == "text" and first["evidence"][0]["phrase"].startswith(
        "plot like Title "
    )


def test_an_id_model_shows_evidence_without_contribution_columns(workspace: dict[str, Path]) -> None:
    args = explain_args(workspace, "ease", "u3", 3)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = text(result)
    assert "ID model" in out and re.search(r"(like|as) Title \d+", out)
    assert "attributes" not in out.split("evidence", 1)[0]  # no per-modality contribution columns


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--user", "nobody"], "user 'nobody' is not known to the model"),
        (["--user", "u0", "--no-features"], "explain needs the item features"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(
    workspace: dict[str, Path], extra: list[str], message: str
) -> None:
    features = [] if "--no-features" in extra else ["--features", str(workspace["features"])]
    args = ["explain", str(workspace["content"]), *[a for a in extra if a != "--no-features"], *features]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in text(result)
    assert "Traceback" not in result.output
