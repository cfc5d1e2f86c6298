"""Extraction with the content-addressed cache: re-runs, edits, template/model changes, resume."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fusionrec.data.schema import Dataset
from fusionrec.features.base import FeatureSet, make_fingerprint
from fusionrec.features.extract import FeaturesConfig, extract_features
from fusionrec.features.text import TextTemplate


@pytest.mark.slow
def test_cache_reencodes_nothing_then_exactly_the_edited_items(
    tmp_path: Path, text_dataset: Callable[..., Dataset], movie_items: Any, minilm: Any
) -> None:
    cache = tmp_path / "cache"
    first = extract_features(
        text_dataset(), ["text"], cache_dir=cache, progress=False, encoders={"text": minilm}
    )
    report = first.reports["text"]
    assert (report.encoded, report.cached) == (4, 0)
    assert [(m.item_id, m.reason) for m in report.masked] == [("m4", "empty text")]
    text = first.features["text"]
    assert text.matrix.shape == (5, 384) and text.present.tolist() == [True, True, True, False, True]
    assert text.provenance.masked_reasons == {"empty text": 1}

    second = extract_features(
        text_dataset(), ["text"], cache_dir=cache, progress=False, encoders={"text": minilm}
    )
    assert (second.reports["text"].encoded, second.reports["text"].cached) == (0, 4)
    np.testing.assert_allclose(second.features["text"].matrix, text.matrix, atol=1e-6)

    edited = movie_items.copy()
    edited.loc[2, "plot"] = "A retired thief plans one last heist in Paris."
    third = extract_features(
        text_dataset(edited), ["text"], cache_dir=cache, progress=False, encoders={"text": minilm}
    )
    assert (third.reports["text"].encoded, third.reports["text"].cached) == (1, 3)
    changed = ~np.isclose(third.features["text"].matrix, text.matrix, atol=1e-6).all(axis=1)
    assert changed.tolist() == [False, False, True, False, False]

    # a template that renders the same text for some items invalidates only the others
    config = FeaturesConfig()
    config.text.template = TextTemplate(parts=["{plot}."])  # the same text as the default for every item
    same = extract_features(text_dataset(), ["text"], cache_dir=cache, config=config, progress=False,
                            encoders={"text": minilm})  # fmt: skip
    assert same.reports["text"].encoded == 0
    config.text.template = TextTemplate(parts=["{title}.", "{plot}"])
    retitled = extract_features(text_dataset(), ["text"], cache_dir=cache, config=config, progress=False,
                                encoders={"text": minilm})  # fmt: skip
    assert retitled.reports["text"].encoded == 5 and retitled.reports["text"].masked == []


class CountingEncoder:
    """A cheap deterministic encoder that can be told to die after some batches (a killed run)."""

    modality = "text"
    dim = 3
    name = "counting"

    def __init__(self, fail_after_batches: int | None = None, version: int = 1) -> None:
        self.calls: list[int] = []
        self.fail_after_batches = fail_after_batches
        self.version = version

    @property
    def fingerprint(self) -> str:
        return make_fingerprint({"encoder": "counting", "version": self.version})

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        if self.fail_after_batches is not None and len(self.calls) >= self.fail_after_batches:
            raise KeyboardInterrupt("killed")
        self.calls.append(len(batch))
        return np.array([[len(t), t.count(" "), self.version] for t in batch], dtype=np.float32)


def test_killed_run_resumes_without_reencoding_finished_batches(
    tmp_path: Path, text_dataset: Callable[..., Dataset]
) -> None:
    config = FeaturesConfig()
    config.text.batch_size = 1
    cache = tmp_path / "cache"
    dying = CountingEncoder(fail_after_batches=2)
    with pytest.raises(KeyboardInterrupt):
        extract_features(text_dataset(), ["text"], cache_dir=cache, config=config, progress=False,
                         encoders={"text": dying})  # fmt: skip
    resumed = CountingEncoder()
    result = extract_features(text_dataset(), ["text"], cache_dir=cache, config=config, progress=False,
                              encoders={"text": resumed})  # fmt: skip
    assert result.reports["text"].cached == 2 and result.reports["text"].encoded == 2
    assert sum(resumed.calls) == 2
    # a new model version (fingerprint) re-encodes everything
    bumped = CountingEncoder(version=2)
    result = extract_features(text_dataset(), ["text"], cache_dir=cache, config=config, progress=False,
                              encoders={"text": bumped})  # fmt: skip
    assert result.reports["text"].encoded == 4 and result.features["text"].matrix[0, 2] == 2


def test_featureset_saved_by_extraction_is_aligned_and_loadable(
    tmp_path: Path, text_dataset: Callable[..., Dataset]
) -> None:
    dataset = text_dataset()
    result = extract_features(dataset, ["text", "attributes"], cache_dir=tmp_path / "c", progress=False,
                              encoders={"text": CountingEncoder()})  # fmt: skip
    result.features.save(tmp_path / "fs")
    loaded = FeatureSet.load(tmp_path / "fs")
    loaded.check_aligned(dataset.item_map.ids)
    assert loaded.names == ["text", "attributes"]
    assert loaded["attributes"].present.tolist() == [True, True, True, False, True]  # m4 has no attributes


_KILLED_RUN = """
import sys, time
import numpy as np, pandas as pd
sys.path.insert(0, {tests!r})
from features.conftest import make_dataset
from features.test_extract import CountingEncoder
from fusionrec.data.schema import ItemColumns
from fusionrec.features.extract import FeaturesConfig, extract_features

class SlowEncoder(CountingEncoder):
    def encode(self, batch):
        time.sleep(0.3)
        return super().encode(batch)

items = pd.DataFrame({{"item_id": [f"i{{i}}" for i in range(20)], "plot": [f"text number {{i}}" for i in range(20)]}})
config = FeaturesConfig()
config.text.batch_size = 1
extract_features(make_dataset(items, ItemColumns(text=["plot"])), ["text"], cache_dir={cache!r}, config=config,
                 progress=False, encoders={{"text": SlowEncoder()}})
"""


def test_sigkilled_run_leaves_whole_shards_and_resumes(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import pandas as pd

    from fusionrec.data.schema import ItemColumns

    from .conftest import make_dataset

    cache = tmp_path / "cache"
    script = _KILLED_RUN.format(tests=str(Path(__file__).resolve().parents[1]), cache=str(cache))
    process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(cache.glob("*/shard-*.npz"))) < 3:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = len(list(cache.glob("*/shard-*.npz")))
    assert 3 <= done < 20, process.stderr.read().decode() if process.stderr else ""
    items = pd.DataFrame(
        {"item_id": [f"i{i}" for i in range(20)], "plot": [f"text number {i}" for i in range(20)]}
    )
    resumed = CountingEncoder()
    result = extract_features(make_dataset(items, ItemColumns(text=["plot"])), ["text"], cache_dir=cache,
                              progress=False, encoders={"text": resumed})  # fmt: skip
    report = result.reports["text"]
    assert (
        report.cached >= done
        and report.cached + report.encoded == 20
        and sum(resumed.calls) == report.encoded
    )
    assert result.features["text"].present.all()
