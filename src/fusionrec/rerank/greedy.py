"""Greedy diversity re-ranking of a batch of candidate lists: MMR and fast greedy DPP MAP inference.

Both pick ``k`` of the ``N`` candidates of each list, one output position at a time (the loop over
positions is inherent to greedy selection); every step is vectorised over the users of the batch
and over the candidates. Inputs:

- ``relevance``: ``(b, N)`` float64 in ``[0, 1]`` (:func:`normalize_relevance`), ``-inf`` on empty slots;
- ``similarity``: a :class:`~fusionrec.rerank.space.CandidateRows`, the row of cosines of a chosen
  candidate to every candidate of its list;
- ``diversity`` ``λ`` in ``[0, 1]``: 0 = the relevance order, 1 = diversity only.

Output: ``(b, k)`` int64 positions into the candidate lists, ``-1`` where a list ran out of candidates.
Ties go to the lower position (the model's better rank).

**MMR** (Carbonell & Goldstein 1998): the first pick is the most relevant candidate; then each step
takes ``argmax_j (1 - λ) r_j - λ max_{i in Y} s_ij`` over the candidates ``j`` not chosen yet.

**DPP** (Chen, Zhang & Zhou, NeurIPS 2018, Algorithm 1): the greedy MAP of the kernel
``L = diag(exp(α r)) S diag(exp(α r))``, where ``S`` is the cosine Gram of the candidates' unit
vectors (PSD by construction) with diagonal ``1 + jitter`` (items without content: self-similarity
1, similarity 0 to the rest; the jitter keeps ``S`` positive definite when the space has fewer
dimensions than the list has items, or two items share a vector). The paper's relevance weight is
``θ = 1 - λ`` and ``α = θ / (2 (1 - θ))``. The incremental Cholesky update keeps, per candidate
``j``, the residual ``d_j^2 = S_jj - c_j·c_j`` (``c_j`` its Cholesky row against the chosen set) in
``O(N k)`` per step, ``O(N k^2)`` per list. Adding ``j`` multiplies ``det L_Y`` by
``exp(2 α r_j) d_j^2``, so each step takes ``argmax_j θ r_j + (1 - θ) log d_j^2`` (the same argmax,
in log space: no overflow of ``exp(α r)`` near λ = 0). Stopping: when the chosen candidate's
residual ``d_j^2`` falls below ``stop_eps`` (it lies, numerically, in the span of the chosen items:
its diversity gain has vanished), the user's list is completed in relevance order.
"""

from __future__ import annotations

import numpy as np

from fusionrec.errors import ModelError
from fusionrec.rerank.space import CandidateRows

DEFAULT_JITTER = 1e-6
DEFAULT_STOP_EPS = 1e-4


def normalize_relevance(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(b, N)`` float64: each list's scores min-max scaled over its valid candidates, so that the
    best candidate has 1 and the worst 0 for any model's score scale; a list whose valid scores are
    all equal gets 1 everywhere; empty slots (``valid`` False) get ``-inf``."""
    values = np.asarray(scores, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    low = np.where(valid, values, np.inf).min(axis=1, keepdims=True)
    high = np.where(valid, values, -np.inf).max(axis=1, keepdims=True)
    span = high - low
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(span > 0, (values - low) / np.where(span > 0, span, 1.0), 1.0)
    return np.where(valid, scaled, -np.inf)


def check_diversity(diversity: float) -> float:
    value = float(diversity)
    if not 0.0 <= value <= 1.0:
        raise ModelError(f"diversity must be in [0, 1], got {diversity}")
    return value


def _take(objective: np.ndarray, available: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best available position of each row ``(b,)`` and whether the row had one ``(b,)``."""
    best = np.where(available, objective, -np.inf).argmax(axis=1)
    return best, available[np.arange(len(best)), best]


def mmr_select(relevance: np.ndarray, similarity: CandidateRows, diversity: float, k: int) -> np.ndarray:
    """MMR positions ``(b, min(k, N))`` int64 (module docstring); λ = 0 gives the relevance order."""
    lam = check_diversity(diversity)
    n_rows, n_cand = relevance.shape
    k = min(int(k), n_cand)
    available = np.isfinite(relevance)
    finite = np.where(available, relevance, 0.0)  # empty slots are never available; no 0 * inf
    picks = np.full((n_rows, k), -1, dtype=np.int64)
    rows = np.arange(n_rows)
    max_sim = np.zeros((n_rows, n_cand), dtype=np.float64)
    for step in range(k):
        objective = finite if step == 0 else (1.0 - lam) * finite - lam * max_sim
        best, ok = _take(objective, available)
        picks[:, step] = np.where(ok, best, -1)
        available[rows[ok], best[ok]] = False
        if step + 1 < k:
            sim = similarity.row(best).astype(np.float64, copy=False)
            max_sim = sim if step == 0 else np.maximum(max_sim, sim)
    return picks


def dpp_select(
    relevance: np.ndarray,
    similarity: CandidateRows,
    diversity: float,
    k: int,
    jitter: float = DEFAULT_JITTER,
    stop_eps: float = DEFAULT_STOP_EPS,
) -> np.ndarray:
    """Fast greedy DPP positions ``(b, min(k, N))`` int64 (module docstring); λ = 0 gives the relevance order.

    ``jitter`` is added to the similarity's unit diagonal; a user whose next pick has a Cholesky
    residual below ``stop_eps`` is completed by relevance from then on.
    """
    lam = check_diversity(diversity)
    if not 0.0 < jitter < stop_eps:
        raise ModelError(f"need 0 < jitter < stop_eps, got jitter={jitter}, stop_eps={stop_eps}")
    theta = 1.0 - lam  # the paper's relevance weight
    n_rows, n_cand = relevance.shape
    k = min(int(k), n_cand)
    available = np.isfinite(relevance)
    finite = np.where(available, relevance, 0.0)
    picks = np.full((n_rows, k), -1, dtype=np.int64)
    rows = np.arange(n_rows)
    residual = np.full((n_rows, n_cand), 1.0 + jitter)  # d_j^2, starts at S_jj
    cholesky = np.zeros((n_rows, k, n_cand))  # c_j rows, one per chosen item
    stopped = np.zeros(n_rows, dtype=bool)
    for step in range(k):
        with np.errstate(divide="ignore"):
            gain = theta * finite + (1.0 - theta) * np.log(np.maximum(residual, 1e-300))
        best, ok = _take(gain, available)
        stopped |= ok & (residual[rows, best] < stop_eps)
        if stopped.any():
            by_relevance, _ = _take(finite, available)
            best = np.where(stopped, by_relevance, best)
        picks[:, step] = np.where(ok, best, -1)
        available[rows[ok], best[ok]] = False
        if step + 1 == k:
            break
        active = ok & ~stopped
        if not active.any():
            continue
        sim = similarity.row(best).astype(np.float64, copy=False)  # (b, N): S[best, :]
        chosen_c = cholesky[rows, :step, best]  # (b, step): c of the chosen item
        projected = np.einsum("bt,btn->bn", chosen_c, cholesky[:, :step, :])
        scale = np.sqrt(np.maximum(residual[rows, best], jitter))[:, None]
        update = np.where(active[:, None], (sim - projected) / scale, 0.0)
        cholesky[:, step, :] = update
        residual -= update * update
    return picks
