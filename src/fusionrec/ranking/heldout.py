"""Ranking held-out items: the batch step shared by the evaluator and the trainer's validation.

Both must give the same numbers, so both go through :func:`rank_batch`: score a batch of users,
check the shape and NaNs, set excluded items to ``-inf``, take the deterministic top ``k``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.errors import ModelError
from fusionrec.ranking.keys import parse_metric_key
from fusionrec.ranking.metrics import hit_matrix, ranking_metrics
from fusionrec.ranking.topk import as_score_tensor, binary_csr, keep_candidates, mask_rows, top_k_items


class Scorer(Protocol):
    """Anything with ``score(users) -> (len(users), n_items)`` (every Recommender)."""

    def score(self, users: np.ndarray) -> np.ndarray | torch.Tensor: ...


@dataclass(frozen=True)
class HeldOut:
    """Held-out truth ready for ranking: binary, with excluded items dropped from the truth.

    ``users`` are the rows with at least one held-out item left (the ones evaluated). With
    ``candidates`` (item indices) only those items are ranked, and held-out items outside them
    are dropped from the truth.
    """

    truth: sp.csr_matrix  # (n_users, n_items) binary
    exclude: sp.csr_matrix  # (n_users, n_items) binary
    users: np.ndarray  # (n_evaluated,) int64
    candidates: np.ndarray | None = None  # (n_candidates,) int64 item indices, None = all items

    @property
    def shape(self) -> tuple[int, int]:
        n_users, n_items = self.truth.shape
        return int(n_users), int(n_items)

    @classmethod
    def build(
        cls,
        truth: sp.spmatrix | sp.sparray,
        exclude: sp.spmatrix | sp.sparray | None,
        candidates: np.ndarray | None = None,
    ) -> HeldOut:
        truth_b = binary_csr(truth)
        if candidates is not None:
            candidates = np.asarray(candidates, dtype=np.int64)
            keep = np.zeros(truth_b.shape[1], dtype=np.float32)
            keep[candidates] = 1.0
            truth_b = binary_csr(truth_b @ sp.diags(keep))
        if exclude is None:
            exclude_b = binary_csr(sp.csr_matrix(cast(Any, truth_b.shape), dtype=np.float32))
        else:
            exclude_b = binary_csr(exclude)
        if exclude_b.shape != truth_b.shape:
            raise ModelError(f"exclusion matrix has shape {exclude_b.shape}, held-out {truth_b.shape}")
        truth_b = binary_csr(truth_b - truth_b.multiply(exclude_b))
        users = np.flatnonzero(np.diff(truth_b.indptr) > 0).astype(np.int64)
        return cls(truth=truth_b, exclude=exclude_b, users=users, candidates=candidates)


@dataclass
class RankedBatch:
    users: np.ndarray  # (b,)
    scores: torch.Tensor  # (b, n_items), excluded items -inf
    items: np.ndarray  # (b, k) int64 top-k, -1 = empty slot
    truth_rows: sp.csr_matrix  # (b, n_items)
    excluded_rows: sp.csr_matrix  # (b, n_items)


def rank_batch(model: Scorer, heldout: HeldOut, users: np.ndarray, k: int) -> RankedBatch:
    """Score ``users`` with ``model``, mask their excluded items (and non-candidates), take the top ``k``."""
    n_items = heldout.shape[1]
    scores = as_score_tensor(model.score(users))
    if scores.shape != (len(users), n_items):
        raise ModelError(f"score() returned shape {tuple(scores.shape)}, expected {(len(users), n_items)}")
    if torch.isnan(scores).any():
        raise ModelError("score() returned NaN scores")
    excluded_rows = heldout.exclude[users]
    mask_rows(scores, excluded_rows)
    if heldout.candidates is not None:
        keep_candidates(scores, heldout.candidates)
    items, _ = top_k_items(scores, k)
    return RankedBatch(users, scores, items, heldout.truth[users], excluded_rows)


def mean_ranking_metric(model: Scorer, heldout: HeldOut, key: str, batch_size: int = 2048) -> float:
    """Mean over the evaluated users of one ranking metric (e.g. ``"recall@20"``), as the evaluator gives it."""
    name, k = parse_metric_key(key)
    if k is None:
        raise ValueError(f"{key!r} has no cut-off")
    k_eff = min(k, heldout.shape[1])
    parts: list[np.ndarray] = []
    for lo in range(0, len(heldout.users), batch_size):
        batch = rank_batch(model, heldout, heldout.users[lo : lo + batch_size], k_eff)
        hits = hit_matrix(batch.items, batch.truth_rows)
        parts.append(ranking_metrics(hits, np.diff(batch.truth_rows.indptr), (k_eff,), (name,))[f"{name}@{k_eff}"])
    return float(np.concatenate(parts).mean()) if parts else float("nan")
