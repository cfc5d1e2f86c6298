"""FeatureSet save/load and the content-addressed store (atomic shards, resume, compaction)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusionrec.errors import DataError
from fusionrec.features.base import FeatureSet, ModalityFeatures, Provenance, make_fingerprint
from fusionrec.features.store import FeatureStore, content_key


def _features(n: int, d: int, present: list[bool]) -> ModalityFeatures:
    matrix = np.arange(n * d, dtype=np.float32).reshape(n, d)
    provenance = Provenance(encoder="test", fingerprint="fp", created_at="2026-01-01T00:00:00+00:00")
    return ModalityFeatures(matrix=matrix, present=np.array(present), provenance=provenance)


def test_featureset_roundtrip(tmp_path: Path) -> None:
    features = FeatureSet(ids=np.array(["a", "b", "c"]))
    features.add("text", _features(3, 4, [True, False, True]))
    features.add("image", _features(3, 2, [True, True, True]))
    features.save(tmp_path / "fs")
    loaded = FeatureSet.load(tmp_path / "fs")
    assert loaded.names == ["text", "image"]
    assert loaded["text"].matrix.dtype == np.float32 and loaded["text"].present.dtype == bool
    np.testing.assert_array_equal(loaded["text"].matrix, features["text"].matrix)
    np.testing.assert_array_equal(loaded["text"].present, [True, False, True])
    assert loaded["text"].provenance.encoder == "test"
    loaded.check_aligned(["a", "b", "c"])
    with pytest.raises(DataError, match="not aligned"):
        loaded.check_aligned(["a", "c", "b"])


def test_featureset_rejects_misaligned_rows() -> None:
    features = FeatureSet(ids=np.array(["a", "b"]))
    with pytest.raises(DataError, match="rows"):
        features.add("text", _features(3, 2, [True, True, True]))
    with pytest.raises(DataError, match="align"):
        ModalityFeatures(
            matrix=np.zeros((2, 2)), present=np.ones(3, bool), provenance=_features(1, 1, [True]).provenance
        )


def test_fingerprint_is_canonical() -> None:
    assert make_fingerprint({"b": 1, "a": [1, 2]}) == make_fingerprint({"a": [1, 2], "b": 1})
    assert content_key(b"x", "f1") != content_key(b"x", "f2")
    assert content_key(b"x", "f1") != content_key(b"y", "f1")
    assert len(content_key(b"x", "f1")) == 32


def test_store_persists_and_resumes(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    space = store.namespace("fp-1", dim=3)
    keys = [content_key(str(i).encode(), "fp-1") for i in range(5)]
    space.put(keys[:2], np.ones((2, 3), np.float32))
    space.put(keys[2:4], np.full((2, 3), 2.0, np.float32))
    # a run killed while writing leaves only a temporary file: ignored and removed on reopen
    (space.directory / ".shard-dead.npz.tmp").write_bytes(b"partial")
    reopened = FeatureStore(tmp_path).namespace("fp-1", dim=3)
    rows = reopened.lookup(keys)
    assert (rows[:4] >= 0).all() and rows[4] == -1
    np.testing.assert_array_equal(reopened.vectors(rows[2:4]), np.full((2, 3), 2.0))
    assert not list(space.directory.glob(".*.tmp"))
    # another fingerprint is another namespace: nothing shared
    assert (FeatureStore(tmp_path).namespace("fp-2", dim=3).lookup(keys) == -1).all()


def test_store_skips_damaged_shard_and_compacts(tmp_path: Path) -> None:
    space = FeatureStore(tmp_path).namespace("fp", dim=2)
    keys = [content_key(bytes([i]), "fp") for i in range(6)]
    for i in range(3):
        space.put(keys[2 * i : 2 * i + 2], np.full((2, 2), float(i), np.float32))
    (space.directory / "shard-broken.npz").write_bytes(b"not a zip")
    reopened = FeatureStore(tmp_path).namespace("fp", dim=2)
    assert len(reopened) == 6
    (space.directory / "shard-broken.npz").unlink()
    reopened.compact()
    assert reopened.n_shards == 1
    again = FeatureStore(tmp_path).namespace("fp", dim=2)
    np.testing.assert_array_equal(again.vectors(again.lookup(keys[4:])), np.full((2, 2), 2.0))


def test_store_keeps_keys_with_trailing_zero_bytes(tmp_path: Path) -> None:
    space = FeatureStore(tmp_path).namespace("fp", dim=1)
    keys = [bytes(31) + b"\x00", b"\x00" * 30 + b"\x01\x00", bytes(range(32))]
    space.put(keys, np.arange(3, dtype=np.float32)[:, None])
    space.compact()
    reopened = FeatureStore(tmp_path).namespace("fp", dim=1)
    np.testing.assert_array_equal(reopened.vectors(reopened.lookup(keys))[:, 0], [0, 1, 2])
