"""VectorIndex: exact = numpy brute force, IVF recall, exclusion, add/remove without rebuild, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from fusionrec.errors import ModelError
from fusionrec.serve.index import OVERFETCH_LIMIT, VectorIndex


def brute_force(items: np.ndarray, queries: np.ndarray, k: int, exclude: list[list[int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    scores = queries.astype(np.float64) @ items.astype(np.float64).T
    if exclude is not None:
        for row, banned in enumerate(exclude):
            scores[row, banned] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def clustered(n: int, d: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(8, n // 500), d))
    items = centres[rng.integers(0, len(centres), n)] + 0.8 * rng.standard_normal((n, d))
    items *= rng.lognormal(0, 0.2, (n, 1))
    queries = centres[rng.integers(0, len(centres), n_queries)] + 0.8 * rng.standard_normal((n_queries, d))
    return items.astype(np.float32), queries.astype(np.float32)


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.standard_normal((2_000, 16)).astype(np.float32), rng.standard_normal((7, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def large() -> tuple[np.ndarray, np.ndarray, VectorIndex]:
    items, queries = clustered(60_000, 32, 200)
    return items, queries, VectorIndex.build(items, exact_threshold=10_000)


def test_exact_index_equals_numpy_brute_force(small: tuple[np.ndarray, np.ndarray]) -> None:
    items, queries = small
    index = VectorIndex.build(items)
    assert index.kind == "exact" and len(index) == 2_000
    ids, scores = index.search(queries, 10)
    want_ids, want_scores = brute_force(items, queries, 10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
    assert ids.dtype == np.int64 and scores.dtype == np.float32


@pytest.mark.parametrize("long_list", [False, True], ids=["overfetch", "selector"])
def test_exclusion_skips_items_and_matches_brute_force(small: tuple[np.ndarray, np.ndarray], long_list: bool) -> None:
    items, queries = small
    index = VectorIndex.build(items)
    top, _ = brute_force(items, queries, 5)
    exclude = [list(top[i, :2]) for i in range(len(queries))]
    if long_list:  # more than the over-fetch limit: the per-query FAISS IDSelector path
        exclude[0] = sorted(set(exclude[0]) | set(range(OVERFETCH_LIMIT + 1)))
    ids, scores = index.search(queries, 5, exclude=exclude)
    want_ids, want_scores = brute_force(items, queries, 5, exclude)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
    for row, banned in enumerate(exclude):
        assert not set(ids[row]) & set(banned)
    # the same exclusion as a CSR with one row per query
    csr = sp.csr_matrix((np.ones(sum(map(len, exclude))), (np.repeat(np.arange(7), [len(e) for e in exclude]),
                                                           np.concatenate(exclude))), shape=(7, 2_000))
    np.testing.assert_array_equal(index.search(queries, 5, exclude=csr)[0], want_ids)


def test_empty_slots_are_minus_one_and_minus_inf() -> None:
    items = np.eye(4, dtype=np.float32)
    index = VectorIndex.build(items)
    ids, scores = index.search(items[:1], 6, exclude=[[1]])
    assert ids[0, 0] == 0 and set(ids[0, 1:3]) == {2, 3}
    assert (ids[0, 3:] == -1).all() and np.isneginf(scores[0, 3:]).all()


def test_ivf_recall_at_20_against_exact(large: tuple[np.ndarray, np.ndarray, VectorIndex]) -> None:
    items, queries, index = large
    assert index.kind == "ivf" and index.nlist > 100 and len(index) == 60_000
    recall = index.recall_against_exact(queries, 20)
    truth, _ = brute_force(items, queries, 20)
    got, scores = index.search(queries, 20)
    manual = np.mean([len(set(g) & set(t)) / 20 for g, t in zip(got, truth, strict=True)])
    assert recall >= 0.95
    assert manual == pytest.approx(recall, abs=1e-3)  # the exact side really is brute force
    # IVF-Flat stores raw vectors: returned scores are exact inner products
    np.testing.assert_allclose(scores, np.einsum("bd,bkd->bk", queries, items[got]), rtol=1e-4, atol=1e-4)
    # scanning one list only must be worse: nprobe really matters
    coarse = VectorIndex(index.index, index.measure, index.kind, index.dim, nprobe=1)
    assert coarse.recall_against_exact(queries[:50], 20) < recall


def test_calibrate_raises_nprobe_to_the_target(large: tuple[np.ndarray, np.ndarray, VectorIndex]) -> None:
    _, queries, index = large
    probe = VectorIndex(index.index, index.measure, index.kind, index.dim, nprobe=1)
    recall = probe.calibrate(queries[:100], k=20, target=0.97)
    assert recall >= 0.97 and probe.nprobe > 1


@pytest.mark.parametrize("threshold", [10_000, 100], ids=["exact", "ivf"])
def test_add_then_found_remove_then_never_returned(threshold: int) -> None:
    items, queries = clustered(3_000, 16, 20, seed=3)
    index = VectorIndex.build(items, exact_threshold=threshold)
    new = queries[:1] * 50  # aligned with query 0 and much longer: must rank first
    index.add(new, np.array([10_000]))
    assert len(index) == 3_001 and 10_000 in index
    ids, _ = index.search(queries[:1], 5)
    assert ids[0, 0] == 10_000
    top = index.search(queries, 10)[0]
    gone = np.setdiff1d(top[:, :3], [10_000])
    assert index.remove(gone) == len(gone) and len(index) == 3_001 - len(gone)
    after = index.search(queries, 50)[0]
    assert not np.isin(after, gone).any()
    assert index.remove(gone) == 0  # removing again is a no-op
    # add of an existing id replaces its vector
    index.add(-new, np.array([10_000]))
    assert len(index) == 3_001 - len(gone)
    assert 10_000 not in index.search(queries[:1], 5)[0]


@pytest.mark.parametrize("threshold", [10_000, 100], ids=["exact", "ivf"])
def test_save_load_gives_identical_results(tmp_path: Path, threshold: int) -> None:
    items, queries = clustered(3_000, 16, 30, seed=4)
    index = VectorIndex.build(items, exact_threshold=threshold, measure="cosine", meta={"bundle": "abc"})
    index.remove([1, 2, 3])
    index.save(tmp_path / "index")
    loaded = VectorIndex.load(tmp_path / "index")
    assert (loaded.kind, loaded.measure, loaded.nprobe, len(loaded), loaded.meta) == (
        index.kind, "cosine", index.nprobe, 2_997, {"bundle": "abc"})
    for a, b in zip(index.search(queries, 20), loaded.search(queries, 20), strict=True):
        np.testing.assert_array_equal(a, b)
    assert 1 not in loaded and 4 in loaded
    loaded.add(items[:1], np.array([1]))  # the loaded index still updates
    assert 1 in loaded


def test_cosine_normalises_both_sides_inner_product_does_not() -> None:
    rng = np.random.default_rng(5)
    items = rng.standard_normal((300, 8)).astype(np.float32)
    items[7] *= 100  # a long vector wins inner product for most queries, not cosine
    queries = rng.standard_normal((20, 8)).astype(np.float32)
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    cos_ids, cos_scores = VectorIndex.build(items, measure="cosine").search(queries * 3, 5)
    want_ids, want_scores = brute_force(unit, queries / np.linalg.norm(queries, axis=1, keepdims=True), 5)
    np.testing.assert_array_equal(cos_ids, want_ids)
    np.testing.assert_allclose(cos_scores, want_scores, atol=1e-5)
    assert cos_scores.max() <= 1.0 + 1e-5
    ip_ids, _ = VectorIndex.build(items).search(queries, 5)
    np.testing.assert_array_equal(ip_ids, brute_force(items, queries, 5)[0])
    assert not np.array_equal(ip_ids, cos_ids)


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    index = VectorIndex.build(np.ones((3, 4), dtype=np.float32))
    with pytest.raises(ModelError, match=r"\(n, 4\)"):
        index.search(np.ones((1, 5), dtype=np.float32), 2)
    with pytest.raises(ModelError, match="unique"):
        VectorIndex.build(np.ones((2, 4)), ids=np.array([1, 1]))
    with pytest.raises(ModelError, match="measure"):
        VectorIndex.build(np.ones((2, 4)), measure="l2")
    with pytest.raises(ModelError, match="no vector index"):
        VectorIndex.load(tmp_path)
