"""Item-item graphs: the block builder equals a dense reference; masks, combination, cache by provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from fusionrec.errors import ModelError
from fusionrec.features.base import FeatureSet, ModalityFeatures, Provenance
from fusionrec.fusion.graph import ItemGraphConfig, build_item_graph, combine_graphs, knn_graph


def dense_knn(x: np.ndarray, present: np.ndarray, k: int, weighting: str) -> np.ndarray:
    """Obvious reference: full cosine matrix, per row the k best other present items (lower index on ties)."""
    n = len(x)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    out = np.zeros((n, n), dtype=np.float64)
    for i in np.flatnonzero(present):
        candidates = [j for j in np.flatnonzero(present) if j != i]
        ranked = sorted(candidates, key=lambda j: (-float(unit[i] @ unit[j]), j))[:k]
        for j in ranked:
            value = float(unit[i] @ unit[j])
            if weighting == "binary":
                out[i, j] = 1.0
            elif value > 0:
                out[i, j] = value
    return out


@pytest.mark.parametrize("weighting", ["binary", "cosine"])
@pytest.mark.parametrize("block_mb", [1, 64])
def test_block_builder_equals_dense_reference(weighting: str, block_mb: int) -> None:
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(size=(300, 6)), 1).astype(np.float32)  # rounded: ties happen
    present = rng.random(300) > 0.2
    # block_mb=1 with 300 items -> ~870 rows per block; force several blocks by making it tiny
    graph = knn_graph(x, present, k=5, weighting=weighting, block_mb=block_mb)
    expected = dense_knn(x.astype(np.float64), present, 5, weighting)
    got = graph.toarray()
    # The same neighbour sets (ties resolved the same way) and values.
    np.testing.assert_array_equal(got > 0, expected > 0)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert not got[~present].any() and not got[:, ~present].any(), "absent items must have no edges"
    assert np.diag(got).sum() == 0


def test_many_blocks_equal_one_block() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 8)).astype(np.float32)
    one = knn_graph(x, None, k=7, block_mb=64)
    # 1 MB blocks over 2000 items -> 131 rows per block: 16 blocks
    many = knn_graph(x, None, k=7, block_mb=1)
    assert (one != many).nnz == 0


def _features(n: int = 60, seed: int = 0) -> FeatureSet:
    rng = np.random.default_rng(seed)
    modalities = {}
    for name, dim in (("text", 5), ("image", 7)):
        provenance = Provenance(encoder=name, fingerprint=f"fp-{name}", created_at="2026-01-01T00:00:00+00:00")
        present = rng.random(n) > 0.1
        matrix = np.where(present[:, None], rng.normal(size=(n, dim)), 0).astype(np.float32)
        modalities[name] = ModalityFeatures(matrix, present, provenance)
    return FeatureSet(ids=[f"i{i}" for i in range(n)], modalities=modalities)


def test_combination_is_the_weighted_sum_of_normalised_graphs() -> None:
    a = sp.csr_matrix(np.array([[0, 1, 1], [1, 0, 0], [0, 1, 0]], dtype=np.float32))
    b = sp.csr_matrix(np.array([[0, 0, 1], [1, 0, 1], [1, 0, 0]], dtype=np.float32))

    def norm(m: np.ndarray) -> np.ndarray:
        d = m.sum(axis=1)
        inv = np.where(d > 0, d**-0.5, 0)
        return inv[:, None] * m * inv[None, :]

    combined = combine_graphs({"a": a, "b": b}, {"a": 3.0, "b": 1.0}).toarray()
    np.testing.assert_allclose(combined, 0.75 * norm(a.toarray()) + 0.25 * norm(b.toarray()), rtol=1e-6)
    with pytest.raises(ModelError):
        combine_graphs({"a": a}, {"a": -1.0})


def test_cache_is_reused_only_while_the_features_are_the_same(tmp_path: Path) -> None:
    features = _features()
    first = build_item_graph(features, cache_dir=tmp_path)
    again = build_item_graph(features, cache_dir=tmp_path)
    assert not first.from_cache and again.from_cache
    assert (first.matrix != again.matrix).nnz == 0
    # The features change (same encoder fingerprint): the graph must be rebuilt, not reused.
    features.modalities["text"].matrix[3] += 1.0
    changed = build_item_graph(features, cache_dir=tmp_path)
    assert not changed.from_cache and changed.key != first.key
    # Another k is another graph too.
    assert not build_item_graph(features, config=ItemGraphConfig(k=3), cache_dir=tmp_path).from_cache


def test_bad_requests_are_clear_errors() -> None:
    features = _features()
    with pytest.raises(ModelError, match="no \\['audio'\\] features"):
        build_item_graph(features, modalities=["audio"])
    with pytest.raises(ModelError, match="modality_weights"):
        build_item_graph(features, config=ItemGraphConfig(modality_weights={"audio": 1.0}))
