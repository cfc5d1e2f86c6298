"""`fusionrec recommend --rerank mmr|dpp` on the small planted split: different, still valid lists, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fusionrec.cli import app
from fusionrec.data.splits import Split
from fusionrec.eval.beyond import intra_list_diversity
from fusionrec.features.base import FeatureSet, ModalityFeatures, Provenance
from tests.cli.cli_workspace import ITEM_CLUSTERS, saved_cluster_split, text

runner = CliRunner()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, np.ndarray]:
    """The 4-cluster split, an EASE bundle trained on it, a feature dir whose ``text`` is the clusters."""
    root = tmp_path_factory.mktemp("rerank_cli")
    split_dir = saved_cluster_split(root)
    result = runner.invoke(
        app, ["train", str(split_dir), "--model", "ease", "--set", "l2=5.0", "--out", str(root / "ease")]
    )
    assert result.exit_code == 0, result.output
    item_map = Split.load(split_dir).item_map
    rng = np.random.default_rng(3)
    vectors = np.eye(4)[ITEM_CLUSTERS] + 0.1 * rng.normal(size=(len(ITEM_CLUSTERS), 4))
    provenance = Provenance(
        encoder="planted", fingerprint="fp-planted", created_at="2026-01-01T00:00:00+00:00"
    )
    features = FeatureSet(
        ids=item_map.ids,
        modalities={"text": ModalityFeatures(vectors, np.ones(len(vectors), bool), provenance)},
    )
    return split_dir, root / "ease", features.save(root / "features"), vectors


def _lists(path: Path) -> dict[str, list[int]]:
    lists: dict[str, list[int]] = {}
    for line in path.read_text().splitlines()[1:]:
        user, item, rank = line.split("\t")
        lists.setdefault(user, []).append(int(item[4:]))
        assert int(rank) == len(lists[user])
    return lists


@pytest.mark.parametrize("method", ["mmr", "dpp"])
def test_rerank_gives_different_valid_more_diverse_lists(
    workspace: tuple[Path, Path, Path, np.ndarray], tmp_path: Path, method: str
) -> None:
    split_dir, model_dir, features_dir, vectors = workspace
    base = ["recommend", str(model_dir), "--split", str(split_dir), "--k", "5"]
    plain_out, rerank_out = tmp_path / "plain.tsv", tmp_path / "rerank.tsv"
    plain = runner.invoke(app, [*base, "--out", str(plain_out)])
    assert plain.exit_code == 0, plain.output
    args = [
        "--rerank",
        method,
        "--diversity",
        "0.5",
        "--features",
        str(features_dir),
        "--rerank-candidates",
        "20",
    ]
    result = runner.invoke(app, [*base, "--out", str(rerank_out), *args])
    assert result.exit_code == 0, result.output
    assert f"re-ranked by {method} (diversity 0.5, fused space, from the top 20)" in text(result)
    before, after = _lists(plain_out), _lists(rerank_out)
    assert before.keys() == after.keys()
    assert before != after
    split = Split.load(split_dir)
    seen = set(zip(split.train.user, split.train.item, strict=True)) | set(
        zip(split.valid.user, split.valid.item, strict=True)
    )
    for user, items in after.items():
        assert len(items) == 5 == len(set(items))
        assert items[0] == before[user][0]  # the model's top item stays first
        assert not {(int(user[4:]), i) for i in items} & seen
    ild_before = intra_list_diversity(np.array(list(before.values())), vectors).mean()
    ild_after = intra_list_diversity(np.array(list(after.values())), vectors).mean()
    assert ild_after > ild_before + 0.2
    # diversity 0 is exactly the plain order
    zero_out = tmp_path / "zero.tsv"
    zero = runner.invoke(
        app,
        [
            *base,
            "--out",
            str(zero_out),
            "--rerank",
            method,
            "--diversity",
            "0",
            "--features",
            str(features_dir),
        ],
    )
    assert zero.exit_code == 0, zero.output
    assert zero_out.read_text() == plain_out.read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rerank", "mmr"], "--rerank-space fused needs --features DIR"),
        (["--rerank", "mmr", "--rerank-space", "model"], "ease has no item vectors"),
        (
            ["--rerank", "mmr", "--features", "{features}", "--rerank-space", "audio"],
            "unknown re-ranking space 'audio'",
        ),
        (
            ["--rerank", "mmr", "--features", "{features}", "--diversity", "1.5"],
            "--diversity must be in [0, 1]",
        ),
        (["--rerank", "xquad", "--features", "{features}"], "--rerank must be one of mmr, dpp"),
        (
            ["--rerank", "dpp", "--features", "{features}", "--rerank-candidates", "3"],
            "must be at least --k (5)",
        ),
        (["--diversity", "0.3"], "need --rerank mmr|dpp"),
    ],
)
def test_rerank_option_errors(
    workspace: tuple[Path, Path, Path, np.ndarray], tmp_path: Path, extra: list[str], message: str
) -> None:
    split_dir, model_dir, features_dir, _ = workspace
    args = [a.replace("{features}", str(features_dir)) for a in extra]
    result = runner.invoke(
        app,
        [
            "recommend",
            str(model_dir),
            "--split",
            str(split_dir),
            "--k",
            "5",
            "--out",
            str(tmp_path / "r.tsv"),
            *args,
        ],
    )
    assert result.exit_code == 2, result.output
    assert message in " ".join(text(result).replace("│", " ").split())  # rich draws usage errors in a box
