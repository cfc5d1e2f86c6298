"""MMR and greedy DPP re-ranking on planted clusters, against slow references, with empty slots and spaces."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.errors import ModelError
from fusionrec.eval.beyond import intra_list_diversity
from fusionrec.features.base import FeatureSet, ModalityFeatures, Provenance
from fusionrec.fusion.vectors import unit_rows
from fusionrec.rerank import (
    DenseRows,
    ItemSimilarity,
    dpp_select,
    item_space,
    mmr_select,
    normalize_relevance,
    rerank,
)

N_CLUSTERS, PER_CLUSTER, DIM = 5, 12, 16


def clustered_vectors(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(60, 16)`` item vectors in 5 tight clusters and each item's cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(N_CLUSTERS, DIM))
    cluster = np.repeat(np.arange(N_CLUSTERS), PER_CLUSTER)
    return centres[cluster] + 0.15 * rng.normal(size=(len(cluster), DIM)), cluster


def candidates_favouring_one_cluster(n_users: int = 30, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Candidate lists (every item, best first) whose top is one cluster per user: the plain top-10 is redundant."""
    rng = np.random.default_rng(seed)
    _, cluster = clustered_vectors()
    favourite = rng.integers(0, N_CLUSTERS, n_users)
    scores = rng.random((n_users, len(cluster))) + 2.0 * (cluster[None, :] == favourite[:, None])
    items = np.argsort(-scores, axis=1, kind="stable")
    return items, np.take_along_axis(scores, items, axis=1).astype(np.float32)


@pytest.mark.parametrize("method", ["mmr", "dpp"])
def test_reranking_raises_intra_list_diversity_and_keeps_the_top_item(method: str) -> None:
    vectors, cluster = clustered_vectors()
    items, scores = candidates_favouring_one_cluster()
    plain = intra_list_diversity(items[:, :10], vectors).mean()
    previous = plain
    for diversity in (0.3, 0.7):
        out, out_scores = rerank(items, scores, vectors, method=method, diversity=diversity, k=10)
        assert out.shape == (len(items), 10)
        ild = intra_list_diversity(out, vectors).mean()
        assert ild > plain + 0.1, f"{method} at {diversity}: ILD {ild:.3f} vs plain {plain:.3f}"
        assert ild >= previous - 1e-9, "more diversity weight gave less diverse lists"
        previous = ild
        np.testing.assert_array_equal(out[:, 0], items[:, 0])
        assert all(
            len(set(row)) == 10 and set(row) <= set(cand) for row, cand in zip(out, items, strict=True)
        )
        # each returned score is the model's own score of that item
        lookup = {(u, i): s for u in range(len(items)) for i, s in zip(items[u], scores[u], strict=True)}
        assert all(out_scores[u, r] == lookup[(u, out[u, r])] for u in range(len(out)) for r in range(10))
    clusters_per_list = [len(set(cluster[row])) for row in out]
    assert min(clusters_per_list) >= 3  # the plain lists mostly hold one cluster


@pytest.mark.parametrize("method", ["mmr", "dpp"])
def test_trade_off_zero_returns_exactly_the_input_order(method: str) -> None:
    vectors, _ = clustered_vectors()
    items, scores = candidates_favouring_one_cluster()
    out, out_scores = rerank(items, scores, vectors, method=method, diversity=0.0, k=15)
    np.testing.assert_array_equal(out, items[:, :15])
    np.testing.assert_array_equal(out_scores, scores[:, :15])
    # the greedy steps themselves also reproduce the relevance order at λ = 0 (not only the shortcut)
    relevance = normalize_relevance(scores, items >= 0)
    rows = ItemSimilarity(vectors).for_candidates(items)
    select = mmr_select if method == "mmr" else dpp_select
    np.testing.assert_array_equal(
        select(relevance, rows, 0.0, 15), np.broadcast_to(np.arange(15), (len(items), 15))
    )


def naive_mmr(relevance: np.ndarray, sim: np.ndarray, lam: float, k: int) -> list[int]:
    chosen: list[int] = []
    for _ in range(min(k, int(np.isfinite(relevance).sum()))):
        best, best_value = -1, -np.inf
        for j in range(len(relevance)):
            if j in chosen or not np.isfinite(relevance[j]):
                continue
            value = (
                relevance[j]
                if not chosen
                else (1 - lam) * relevance[j] - lam * max(sim[i, j] for i in chosen)
            )
            if value > best_value:
                best, best_value = j, value
        chosen.append(best)
    return chosen


def naive_dpp(
    relevance: np.ndarray, sim: np.ndarray, lam: float, k: int, jitter: float, stop_eps: float
) -> list[int]:
    """Greedy MAP by recomputing ``log det`` of every candidate set: the slow reference of :func:`dpp_select`."""
    kernel = sim.astype(np.float64).copy()
    np.fill_diagonal(kernel, 1.0 + jitter)
    theta = 1.0 - lam
    chosen: list[int] = []
    stopped = False
    for _ in range(min(k, int(np.isfinite(relevance).sum()))):
        base = np.linalg.slogdet(kernel[np.ix_(chosen, chosen)])[1] if chosen else 0.0
        best, best_value, best_ratio = -1, -np.inf, 0.0
        for j in range(len(relevance)):
            if j in chosen or not np.isfinite(relevance[j]):
                continue
            subset = [*chosen, j]
            log_ratio = np.linalg.slogdet(kernel[np.ix_(subset, subset)])[1] - base
            value = relevance[j] if stopped else theta * relevance[j] + (1 - theta) * log_ratio
            if value > best_value:
                best, best_value, best_ratio = j, value, np.exp(log_ratio)
        if not stopped and best_ratio < stop_eps:
            stopped = True
            best = max((j for j in range(len(relevance)) if j not in chosen and np.isfinite(relevance[j])),
                       key=lambda j: (relevance[j], -j))  # fmt: skip
        chosen.append(best)
    return chosen


@pytest.mark.parametrize("dim", [3, 8])  # 3 < k: the space runs out and the DPP completes by relevance
@pytest.mark.parametrize("lam", [0.2, 0.5, 0.9, 1.0])
def test_fast_dpp_and_mmr_equal_the_naive_greedy(dim: int, lam: float) -> None:
    rng = np.random.default_rng(dim * 10 + int(lam * 10))
    n_users, n_cand, k = 4, 14, 7
    unit = unit_rows(rng.normal(size=(n_users, n_cand, dim)).reshape(-1, dim)).reshape(n_users, n_cand, dim)
    sim = np.einsum("bnd,bmd->bnm", unit, unit)
    relevance = np.sort(rng.random((n_users, n_cand)), axis=1)[:, ::-1].copy()
    relevance[1, -3:] = -np.inf  # empty slots
    jitter, stop_eps = 1e-6, 1e-4
    fast_dpp = dpp_select(relevance, DenseRows(sim), lam, k, jitter=jitter, stop_eps=stop_eps)
    fast_mmr = mmr_select(relevance, DenseRows(sim), lam, k)
    for user in range(n_users):
        assert fast_dpp[user].tolist() == naive_dpp(relevance[user], sim[user], lam, k, jitter, stop_eps)
        assert fast_mmr[user].tolist() == naive_mmr(relevance[user], sim[user], lam, k)


def test_empty_slots_stay_last_and_short_lists_end_in_minus_one() -> None:
    vectors, _ = clustered_vectors()
    items, scores = candidates_favouring_one_cluster(n_users=3)
    items, scores = items[:, :12].copy(), scores[:, :12].copy()
    items[0, 4:], scores[0, 4:] = -1, -np.inf  # 4 candidates only
    items[1, [2, 5]], scores[1, [2, 5]] = -1, -np.inf  # holes in the middle
    for method in ("mmr", "dpp"):
        for diversity in (0.0, 0.5):
            out, out_scores = rerank(items, scores, vectors, method=method, diversity=diversity, k=8)
            assert (out[0, 4:] == -1).all() and np.isneginf(out_scores[0, 4:]).all()
            assert sorted(out[0, :4]) == sorted(items[0, :4])
            assert (out[1] >= 0).all() and -1 not in set(out[1]) and set(out[1]) <= set(items[1])
            assert out[1, 0] == items[1, 0]
    out, _ = rerank(items, scores, vectors, method="mmr", diversity=0.0, k=8)
    np.testing.assert_array_equal(out[1], [i for i in items[1] if i >= 0][:8])


def test_items_without_content_are_safe_for_both_methods() -> None:
    vectors, _ = clustered_vectors()
    vectors[::3] = 0.0  # a third of the items have no vector in this space
    vectors[1] = vectors[2]  # and two share one
    items, scores = candidates_favouring_one_cluster(n_users=6)
    for method in ("mmr", "dpp"):
        out, _ = rerank(items, scores, vectors, method=method, diversity=0.8, k=20)
        assert (out >= 0).all() and all(len(set(row)) == 20 for row in out)


def test_relevance_normalisation_is_per_list_min_max() -> None:
    scores = np.array([[10.0, 5.0, 0.0, -1.0], [3.0, 3.0, 3.0, 0.0]])
    valid = np.array([[True, True, True, False], [True, True, True, False]])
    relevance = normalize_relevance(scores, valid)
    np.testing.assert_allclose(relevance[0, :3], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(relevance[1, :3], [1.0, 1.0, 1.0])
    assert np.isneginf(relevance[:, 3]).all()
    # so a model's score scale does not change the result
    vectors, _ = clustered_vectors()
    items, raw = candidates_favouring_one_cluster(n_users=5)
    for method in ("mmr", "dpp"):
        first, _ = rerank(items, raw, vectors, method=method, diversity=0.4, k=10)
        second, _ = rerank(items, raw * 50.0 - 7.0, vectors, method=method, diversity=0.4, k=10)
        np.testing.assert_array_equal(first, second)


def test_catalogue_gram_and_per_batch_vectors_agree() -> None:
    vectors, _ = clustered_vectors()
    items, scores = candidates_favouring_one_cluster(n_users=7)
    for method in ("mmr", "dpp"):
        with_gram, _ = rerank(
            items, scores, ItemSimilarity(vectors), method=method, diversity=0.5, k=10, batch_size=3
        )
        gathered, _ = rerank(
            items, scores, ItemSimilarity(vectors, gram_item_limit=0), method=method, diversity=0.5, k=10
        )
        np.testing.assert_array_equal(with_gram, gathered)


def test_bad_arguments_are_model_errors() -> None:
    vectors, _ = clustered_vectors()
    items, scores = candidates_favouring_one_cluster(n_users=2)
    with pytest.raises(ModelError, match=r"\[0, 1\]"):
        rerank(items, scores, vectors, diversity=1.5)
    with pytest.raises(ModelError, match="unknown re-ranking method"):
        rerank(items, scores, vectors, method="xquad")
    with pytest.raises(ModelError, match="outside"):
        rerank(items + 100, scores, vectors)
    with pytest.raises(ModelError, match="same"):
        rerank(items[:, :5], scores, vectors)


def _features(n_items: int = 6) -> FeatureSet:
    rng = np.random.default_rng(0)
    provenance = Provenance(encoder="x", fingerprint="fp", created_at="2026-01-01T00:00:00+00:00")
    text_present = np.ones(n_items, bool)
    text_present[0] = False
    return FeatureSet(ids=[f"i{k}" for k in range(n_items)], modalities={
        "text": ModalityFeatures(rng.normal(size=(n_items, 4)) * text_present[:, None], text_present, provenance),
        "attributes": ModalityFeatures(rng.random((n_items, 3)), np.ones(n_items, bool), provenance),
    })  # fmt: skip


def test_item_spaces_fused_modality_and_model() -> None:
    features = _features()
    fused = item_space("fused", features)
    assert fused.shape == (6, 7) and np.allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-5)
    text = item_space("text", features)
    assert (
        text.shape == (6, 4)
        and not text[0].any()
        and np.allclose(np.linalg.norm(text[1:], axis=1), 1.0, atol=1e-5)
    )
    assert np.allclose(text[1:].mean(axis=0), 0.0, atol=0.35)  # centred
    assert np.allclose(
        fused[0, 4:], item_space("attributes", features)[0], atol=1e-5
    )  # no text: attributes only
    with pytest.raises(ModelError, match="unknown re-ranking space 'audio'"):
        item_space("audio", features)
    with pytest.raises(ModelError, match="needs item features"):
        item_space("fused", None)

    class Factors:
        vector_measure = "inner_product"

        def user_vectors(self) -> np.ndarray:
            return np.ones((2, 2), np.float32)

        def item_vectors(self) -> np.ndarray:
            return np.array([[3.0, 4.0], [0.0, 2.0]], np.float32)

    np.testing.assert_allclose(item_space("model", model=Factors()), [[0.6, 0.8], [0.0, 1.0]])
    with pytest.raises(ModelError, match="no item vectors"):
        item_space("model", model=object())
