"""plan -> encode -> commit by hand equals one-pass extraction; a cached run loads no model code."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.schema import Dataset, ItemColumns
from fusionrec.features.base import ExtractionReport, ModalityFeatures
from fusionrec.features.config import FeaturesConfig, ImageEncoderConfig
from fusionrec.features.extract import (
    EncodedResult,
    EncoderHandle,
    ExtractionPlan,
    commit,
    encode,
    encode_all,
    extract_features,
    plan,
)
from fusionrec.features.store import FeatureStore

from .conftest import gradient_image, make_dataset
from .test_extract import CountingEncoder


def _same(a: tuple[ModalityFeatures, ExtractionReport], b: tuple[ModalityFeatures, ExtractionReport]) -> None:
    (fa, ra), (fb, rb) = a, b
    np.testing.assert_allclose(fa.matrix, fb.matrix, atol=1e-5)
    assert fa.present.tolist() == fb.present.tolist()
    assert (ra.encoded, ra.cached, ra.truncated, ra.n_items) == (
        rb.encoded,
        rb.cached,
        rb.truncated,
        rb.n_items,
    )
    assert [(m.item_id, m.reason, m.detail) for m in ra.masked] == [
        (m.item_id, m.reason, m.detail) for m in rb.masked
    ]
    assert fa.provenance.fingerprint == fb.provenance.fingerprint
    assert fa.provenance.masked_reasons == fb.provenance.masked_reasons


def test_plan_encode_commit_by_hand_in_any_order_equals_one_pass(
    tmp_path: Path, text_dataset: Callable[..., Dataset]
) -> None:
    config = FeaturesConfig()
    config.text.batch_size = 2
    dataset = text_dataset()
    one_pass = extract_features(dataset, ["text"], cache_dir=tmp_path / "a", config=config, progress=False,
                                encoders={"text": CountingEncoder()})  # fmt: skip

    store = FeatureStore(tmp_path / "b")
    handle = EncoderHandle.from_encoder(CountingEncoder(), config)
    work = plan(dataset, "text", handle, store, config)
    assert work.n_pending == 4 and [len(b) for b in work.batches] == [2, 2] and work.n_cached == 0
    assert [(i, reason) for i, reason, _ in work.masked] == [(3, "empty text")]
    shipped = ExtractionPlan.from_json(work.to_json())  # what a driver would send to workers
    assert shipped == work
    worker_handle = pickle.loads(pickle.dumps(handle))
    results = [encode(worker_handle, batch) for batch in reversed(shipped.batches)]
    assert all(isinstance(r, EncodedResult) for r in results)
    by_hand = commit(shipped, results, store)
    _same(by_hand, (one_pass.features["text"], one_pass.reports["text"]))

    # a second plan finds everything cached; committing with no results reads the store
    again = plan(dataset, "text", handle, store, config)
    assert again.batches == [] and again.n_cached == 4
    features, report = commit(again, [], store)
    assert (report.encoded, report.cached) == (0, 4)
    np.testing.assert_allclose(features.matrix, by_hand[0].matrix)


def test_commit_reads_batches_committed_earlier_and_names_missing_ones(
    tmp_path: Path, text_dataset: Callable[..., Dataset]
) -> None:
    from fusionrec.errors import DataError

    config = FeaturesConfig()
    config.text.batch_size = 1
    store = FeatureStore(tmp_path / "c")
    handle = EncoderHandle.from_encoder(CountingEncoder(), config)
    work = plan(text_dataset(), "text", handle, store, config)
    first = encode(handle, work.batches[0])
    with pytest.raises(DataError, match="neither encoded nor cached"):
        commit(work, [first], store)  # three batches never encoded
    rest = [encode(handle, batch) for batch in work.batches[1:]]
    features, report = commit(work, rest, store)  # the first batch was put by the failed commit
    assert (report.encoded, report.cached) == (3, 1) and features.present.sum() == 4


def _tiny_torchscript(path: Path) -> None:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, stride=2)
    ).eval()
    torch.jit.script(model).save(str(path))


def test_images_plan_encode_commit_equals_one_pass_with_bad_files(tmp_path: Path) -> None:
    _tiny_torchscript(tmp_path / "cnn.pt")
    media = tmp_path / "img"
    media.mkdir()
    for i in range(5):
        gradient_image(i, hue=("red", "blue", "green")[i % 3]).save(media / f"p{i}.png")
    (media / "bad.png").write_bytes(b"not an image at all")
    posters = ["p0.png", "bad.png", None, "p1.png", "missing.png", "p2.png", "p3.png", "p4.png"]
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(len(posters))], "poster": posters})
    dataset = make_dataset(items, ItemColumns(image="poster"), media_root=media)
    config = FeaturesConfig(image=ImageEncoderConfig(encoder=str(tmp_path / "cnn.pt"), size=32, batch_size=2))
    config.runtime.workers, config.runtime.threads = 0, 1
    one_pass = extract_features(dataset, ["image"], cache_dir=tmp_path / "a", config=config, progress=False)
    report = one_pass.reports["image"]
    assert report.encoded == 5 and report.reason_counts() == {
        "not an image": 1,
        "no image": 1,
        "missing file": 1,
    }

    handle = EncoderHandle("image", config)
    assert not handle.knows_signature  # a model file: only loading it tells its output size
    store = FeatureStore(tmp_path / "b")
    work = plan(dataset, "image", handle, store, config)
    assert work.n_pending == 6 and len(work.batches) == 3  # bad.png is only found out when decoded
    streamed = commit(work, encode_all(handle, work.batches), store)
    _same(streamed, (one_pass.features["image"], report))

    store = FeatureStore(tmp_path / "c")
    work = plan(dataset, "image", handle, store, config)
    shuffled = [encode(handle, work.batches[i]) for i in (2, 0, 1)]
    _same(commit(work, shuffled, store), (one_pass.features["image"], report))


_CACHED_RUN = """
import sys
from fusionrec.data.schema import Dataset
from fusionrec.features.extract import extract_features
result = extract_features(Dataset.load({dataset!r}), ["text"], cache_dir={cache!r}, progress=False)
report = result.reports["text"]
assert (report.encoded, report.cached) == (0, 4), report
heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers", "onnxruntime") if m in sys.modules)
assert not heavy, heavy
print(report.cached)
"""


def test_a_fully_cached_run_imports_no_model_code(
    tmp_path: Path, text_dataset: Callable[..., Dataset]
) -> None:
    """Fill the cache under the default encoder's fingerprint (read from its files), then re-run."""
    dataset = text_dataset()
    dataset.save(tmp_path / "ds")
    store = FeatureStore(tmp_path / "cache")
    handle = EncoderHandle("text")
    assert handle.knows_signature and handle.signature.dim == 384
    work = plan(dataset, "text", handle, store)
    assert not handle.loaded
    fake = [
        EncodedResult(batch=b.index, items=b.items, keys=b.keys, vectors=np.ones((len(b), 384), np.float32))
        for b in work.batches
    ]
    commit(work, fake, store)
    script = _CACHED_RUN.format(dataset=str(tmp_path / "ds"), cache=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "4"


@pytest.mark.slow
def test_static_text_signature_matches_the_loaded_encoder(minilm: Any) -> None:
    from fusionrec.features.text import text_encoder_signature

    signature = text_encoder_signature()
    assert signature is not None
    assert (signature.fingerprint, signature.dim, signature.name) == (
        minilm.fingerprint,
        minilm.dim,
        minilm.name,
    )


@pytest.mark.slow
def test_static_image_signature_matches_the_loaded_encoder(effnet: Any) -> None:
    from fusionrec.features.image_pipeline import image_encoder_signature

    signature = image_encoder_signature()
    assert signature is not None
    assert (signature.fingerprint, signature.dim, signature.name) == (
        effnet.fingerprint,
        effnet.dim,
        effnet.name,
    )
