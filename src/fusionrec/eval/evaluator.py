"""Full-ranking evaluation: every user with held-out items, against every item, in batches.

For each batch of users the model's ``score`` gives a ``(batch, n_items)`` matrix; the user's
excluded items (training items, plus validation items when scoring test) are set to ``-inf``;
``torch.topk`` takes the top ``max(ks)`` without sorting whole rows; ties are broken towards the lower
item index (deterministic, and the same as a stable sort of the whole row); the metrics of
:mod:`fusionrec.ranking.metrics` are computed per user and kept, so that means, confidence intervals
and per-group breakdowns come from the same numbers.

Held-out items that are also excluded (a repeated interaction already in train) cannot be
recommended and are dropped from the truth; users left with no held-out item are not evaluated
and are counted in ``EvalResult.n_skipped``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from fusionrec.eval import beyond as beyond_metrics
from fusionrec.ranking.heldout import HeldOut, Scorer, rank_batch
from fusionrec.ranking.metrics import RANKING_METRICS, auc_per_user, hit_matrix, metric_key, ranking_metrics
from fusionrec.ranking.topk import binary_csr

if TYPE_CHECKING:
    from fusionrec.data.splits import Split

log = logging.getLogger(__name__)

N_ITEM_GROUPS = 3  # head / tail of training popularity, and cold (no training interaction)
ITEM_GROUP_NAMES = ("head", "tail", "cold")
COLD_GROUP = 2


def item_popularity_groups(item_popularity: np.ndarray, head_share: float = 0.2) -> np.ndarray:
    """``(n_items,)`` int: 0 for the ``head_share`` most popular items ("head"), 1 for the other
    items with training interactions ("tail"), 2 for those with none ("cold")."""
    n_items = len(item_popularity)
    n_head = round(n_items * head_share)
    order = np.argsort(-np.asarray(item_popularity), kind="stable")
    groups = np.ones(n_items, dtype=np.int64)
    groups[order[:n_head]] = 0
    groups[np.asarray(item_popularity) <= 0] = COLD_GROUP
    return groups


def cold_candidates(train: sp.csr_matrix, heldout: sp.csr_matrix) -> np.ndarray:
    """``(n,)`` int64 indices of the items with no training interaction that occur in ``heldout``:
    the candidate set of the cold-item protocol of DropoutNet / CLCRec (rank among the cold items)."""
    in_train = np.asarray(binary_csr(train).sum(axis=0)).ravel() > 0
    in_heldout = np.asarray(binary_csr(heldout).sum(axis=0)).ravel() > 0
    return np.flatnonzero(in_heldout & ~in_train).astype(np.int64)


@dataclass
class EvalResult:
    """Per-user metric values of one evaluation plus what is needed to summarise them."""

    part: str
    ks: tuple[int, ...]
    users: np.ndarray  # (n_evaluated,) user indices
    per_user: dict[str, np.ndarray]  # metric key -> (n_evaluated,) float64
    n_skipped: int  # users without held-out items
    n_items: int
    time_s: float
    user_activity: np.ndarray  # (n_evaluated,) number of training items of each user
    top_k: np.ndarray  # (n_evaluated, max(ks)) int64, -1 = empty slot
    beyond: dict[str, float] = field(default_factory=dict)
    item_group_names: tuple[str, ...] = ITEM_GROUP_NAMES
    item_group_hits: dict[int, np.ndarray] = field(default_factory=dict)  # k -> (n_eval, n_groups)
    item_group_truth: np.ndarray | None = None  # (n_eval, n_groups)

    @property
    def n_evaluated(self) -> int:
        return len(self.users)

    def metric_keys(self) -> list[str]:
        return list(self.per_user)

    def mean(self) -> dict[str, float]:
        """Mean over evaluated users of every metric (NaN entries, e.g. AUC without negatives, skipped)."""
        return {key: _nanmean(values) for key, values in self.per_user.items()}

    def confidence_intervals(
        self, level: float = 0.95, method: str = "t", n_boot: int = 1000, seed: int = 0
    ) -> dict[str, tuple[float, float]]:
        """``(low, high)`` of each metric's mean over users: Student-t or percentile bootstrap."""
        return {
            key: mean_confidence_interval(values, level=level, method=method, n_boot=n_boot, seed=seed)
            for key, values in self.per_user.items()
        }

    def by_user_activity(self, n_groups: int = 3) -> dict[str, dict[str, float]]:
        """Means per group of users cut at quantiles of their number of training items."""
        if self.n_evaluated == 0:
            return {}
        edges = np.unique(np.quantile(self.user_activity, np.linspace(0, 1, n_groups + 1)))
        group = np.clip(np.searchsorted(edges, self.user_activity, side="right") - 1, 0, len(edges) - 2)
        out: dict[str, dict[str, float]] = {}
        for g in range(max(len(edges) - 1, 1)):
            members = group == g
            if not members.any():
                continue
            low, high = int(self.user_activity[members].min()), int(self.user_activity[members].max())
            label = f"{low}-{high} train items"
            out[label] = {"n_users": float(members.sum())} | {
                key: _nanmean(values[members]) for key, values in self.per_user.items()
            }
        return out

    def by_item_popularity(self) -> dict[str, dict[str, float]]:
        """Recall@k restricted to each item group (head/tail of training popularity, cold: none).

        ``recall_g@k = hits among group-g held-out items / number of group-g held-out items``,
        averaged over users who have at least one held-out item in group g.
        """
        if self.item_group_truth is None:
            return {}
        out: dict[str, dict[str, float]] = {}
        for g, name in enumerate(self.item_group_names):
            truth = self.item_group_truth[:, g]
            has = truth > 0
            if g == COLD_GROUP and not has.any():
                continue  # no held-out cold item: nothing to report
            row: dict[str, float] = {"n_users": float(has.sum())}
            for k, hits in sorted(self.item_group_hits.items()):
                row[metric_key("recall", k)] = float(np.mean(hits[has, g] / truth[has])) if has.any() else float("nan")
            out[name] = row
        return out

    def summary(self, ci_method: str = "t", level: float = 0.95) -> dict[str, Any]:
        """JSON-able: means, confidence intervals, counts, timing, beyond-accuracy values, groups."""
        return {
            "part": self.part,
            "metrics": self.mean(),
            "ci": {k: list(v) for k, v in self.confidence_intervals(level=level, method=ci_method).items()},
            "ci_method": ci_method,
            "ci_level": level,
            "n_evaluated": self.n_evaluated,
            "n_skipped": self.n_skipped,
            "eval_time_s": self.time_s,
            "beyond": self.beyond,
            "by_user_activity": self.by_user_activity(),
            "by_item_popularity": self.by_item_popularity(),
        }


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def mean_confidence_interval(
    values: np.ndarray, level: float = 0.95, method: str = "t", n_boot: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Confidence interval of the mean of ``values`` (NaNs dropped)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return float("nan"), float("nan")
    mean = float(x.mean())
    if n == 1:
        return mean, mean
    if method == "t":
        from scipy import stats

        half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
        return mean - half, mean + half
    if method == "bootstrap":
        rng = np.random.default_rng(seed)
        chunk = max(1, 2_000_000 // n)
        means = np.concatenate(
            [x[rng.integers(0, n, size=(min(chunk, n_boot - s), n))].mean(axis=1) for s in range(0, n_boot, chunk)]
        )
        low, high = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
        return float(low), float(high)
    raise ValueError(f"unknown confidence interval method {method!r} (t or bootstrap)")


class Evaluator:
    """Batched full-ranking evaluator shared by every model, the trainer and the CLI.

    Parameters
    ----------
    ks:
        cut-offs, e.g. ``(10, 20)``.
    metrics:
        ranking metrics from :data:`fusionrec.ranking.metrics.RANKING_METRICS`.
    batch_size:
        users scored at once (memory ~ ``batch_size * n_items * 4`` bytes).
    auc:
        also compute full-ranking AUC (sorts every row; slower).
    beyond:
        also compute coverage, novelty, average popularity and Gini of the top ``max(ks)`` lists.
    item_features, item_present:
        optional ``(n_items, d)`` item vectors (one FeatureSet modality) and ``(n_items,)`` bool
        mask; when given, ``beyond`` also holds the intra-list diversity ``ild``.
    """

    def __init__(
        self,
        ks: Sequence[int] = (10, 20),
        metrics: Iterable[str] = RANKING_METRICS,
        batch_size: int = 1024,
        auc: bool = False,
        beyond: bool = True,
        item_features: np.ndarray | None = None,
        item_present: np.ndarray | None = None,
    ) -> None:
        self.ks = tuple(sorted({int(k) for k in ks}))
        if not self.ks or self.ks[0] < 1:
            raise ValueError(f"cut-offs must be >= 1, got {list(ks)}")
        self.metrics = tuple(metrics)
        self.batch_size = int(batch_size)
        self.auc = auc
        self.beyond = beyond
        self.item_features = item_features
        self.item_present = item_present

    def evaluate(
        self, model: Scorer, split: Split, on: str = "test", candidates: np.ndarray | str | None = None
    ) -> EvalResult:
        """Evaluate on ``valid`` (excluding train items) or ``test`` (excluding train and valid).

        ``candidates``: None ranks every item; ``"cold"`` only the items without training
        interactions that occur in ``on`` (:func:`cold_candidates`, the cold-item protocol); an
        array, those item indices."""
        start = time.perf_counter()
        result = self.evaluate_plan(model, self.prepare_split(split, on, candidates))
        result.time_s = time.perf_counter() - start  # prepare included, as evaluate_matrices reports it
        return result

    def prepare_split(self, split: Split, on: str = "test", candidates: np.ndarray | str | None = None) -> EvalPlan:
        """The :meth:`prepare` of ``split``'s ``on`` part (valid excludes train, test train + valid);
        what :meth:`evaluate` and a sharded run both start from."""
        if on not in ("valid", "test"):
            raise ValueError(f"on must be 'valid' or 'test', got {on!r}")
        train = split.csr("train")
        exclude = train if on == "valid" else (train + split.csr("valid")).tocsr()
        truth = split.csr(on)
        if isinstance(candidates, str):
            if candidates != "cold":
                raise ValueError(f"candidates must be 'cold', an array of item indices or None, got {candidates!r}")
            candidates = cold_candidates(train, truth)
        return self.prepare(truth, exclude, train=train, part=on, candidates=candidates)

    def evaluate_plan(self, model: Scorer, plan: EvalPlan) -> EvalResult:
        """Every batch of ``plan.users`` scored and merged (the local path; a sharded run splits this)."""
        start = time.perf_counter()
        partials = [
            self.evaluate_batch(model, plan, plan.users[lo : lo + self.batch_size])
            for lo in range(0, len(plan.users), self.batch_size)
        ]
        result = self.merge(plan, partials)
        result.time_s = time.perf_counter() - start
        return result

    def evaluate_matrices(
        self,
        model: Scorer,
        truth: sp.csr_matrix,
        exclude: sp.csr_matrix | None,
        train: sp.csr_matrix | None = None,
        part: str = "",
        candidates: np.ndarray | None = None,
    ) -> EvalResult:
        """Evaluate ``model`` against ``truth`` (held-out, ``(n_users, n_items)``), never ranking
        the items of ``exclude``. ``train`` (default ``exclude``) gives item popularity and user
        activity for the beyond-accuracy metrics and the group breakdowns. ``candidates`` (item
        indices) restricts the ranking to those items; held-out items outside it are dropped.

        The same as :meth:`prepare`, :meth:`evaluate_batch` over every batch of ``plan.users`` and
        :meth:`merge`, which is how a distributed run splits the work."""
        start = time.perf_counter()
        result = self.evaluate_plan(model, self.prepare(truth, exclude, train=train, part=part, candidates=candidates))
        result.time_s = time.perf_counter() - start
        log.debug("evaluated %d users (%d skipped) in %.3fs", result.n_evaluated, result.n_skipped, result.time_s)
        return result

    def prepare(
        self,
        truth: sp.csr_matrix,
        exclude: sp.csr_matrix | None,
        train: sp.csr_matrix | None = None,
        part: str = "",
        candidates: np.ndarray | None = None,
    ) -> EvalPlan:
        """What every batch needs: binary truth minus excluded items, users to evaluate, item groups."""
        heldout = HeldOut.build(truth, exclude, candidates)
        train_b = binary_csr(train) if train is not None else heldout.exclude
        item_popularity = np.asarray(train_b.sum(axis=0)).ravel()
        n_items = heldout.shape[1]
        max_k = min(self.ks[-1], n_items)
        ks = tuple(k for k in self.ks if k <= max_k) or (max_k,)
        return EvalPlan(
            part=part,
            heldout=heldout,
            ks=ks,
            max_k=max_k,
            item_popularity=item_popularity,
            item_groups=item_popularity_groups(item_popularity),
            user_activity=np.diff(train_b.indptr),
        )

    def evaluate_batch(self, model: Scorer, plan: EvalPlan, users: np.ndarray) -> PartialResult:
        """Per-user metrics of one batch of ``plan.users`` (a pure function of its inputs)."""
        ranked = rank_batch(model, plan.heldout, users, plan.max_k)
        truth_rows = ranked.truth_rows
        n_rel = np.diff(truth_rows.indptr)
        hits = hit_matrix(ranked.items, truth_rows)
        per_user = ranking_metrics(hits, n_rel, plan.ks, self.metrics)
        if self.auc:
            excluded = np.diff(ranked.excluded_rows.indptr)
            if plan.heldout.candidates is not None:  # non-candidates are -inf too
                excluded = np.isneginf(ranked.scores.numpy()).sum(axis=1)
            per_user["auc"] = auc_per_user(ranked.scores, excluded, truth_rows)
        group_hits = {
            k: _group_counts_dense(np.where(hits[:, :k], ranked.items[:, :k], -1), plan.item_groups) for k in plan.ks
        }
        return PartialResult(
            users=np.asarray(users, dtype=np.int64),
            per_user=per_user,
            top_k=ranked.items,
            group_hits=group_hits,
            group_truth=_group_counts(truth_rows.indices, n_rel, plan.item_groups),
        )

    def merge(self, plan: EvalPlan, partials: Sequence[PartialResult]) -> EvalResult:
        """One :class:`EvalResult` from the batches' partial results (in any order: sorted by user)."""
        parts = sorted(partials, key=lambda p: int(p.users[0]) if len(p.users) else -1)
        parts = [p for p in parts if len(p.users)]
        n_users, n_items = plan.heldout.shape
        users = np.concatenate([p.users for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        keys = list(parts[0].per_user) if parts else []
        top_k = np.concatenate([p.top_k for p in parts]) if parts else np.zeros((0, plan.max_k), dtype=np.int64)
        result = EvalResult(
            part=plan.part,
            ks=plan.ks,
            users=users,
            per_user={key: np.concatenate([p.per_user[key] for p in parts]) for key in keys},
            n_skipped=int(n_users - len(users)),
            n_items=n_items,
            time_s=0.0,
            user_activity=plan.user_activity[users],
            top_k=top_k,
            item_group_hits={
                k: np.concatenate([p.group_hits[k] for p in parts]) if parts else np.zeros((0, N_ITEM_GROUPS)) for k in plan.ks
            },
            item_group_truth=np.concatenate([p.group_truth for p in parts]) if parts else np.zeros((0, N_ITEM_GROUPS)),
        )
        if self.beyond and len(users):
            item_popularity = plan.item_popularity
            result.beyond = {
                "coverage": beyond_metrics.catalog_coverage(top_k, n_items),
                "novelty": _nanmean(beyond_metrics.novelty(top_k, item_popularity, n_users)),
                "avg_popularity": _nanmean(beyond_metrics.average_popularity(top_k, item_popularity)),
                "gini": beyond_metrics.gini_index(top_k, n_items),
            }
            cold = plan.item_groups == COLD_GROUP
            if cold.any():  # share of the filled top-k slots that hold items without training data
                filled = top_k >= 0
                result.beyond["cold_share"] = float(cold[top_k[filled]].mean()) if filled.any() else float("nan")
            if self.item_features is not None:
                result.beyond["ild"] = _nanmean(
                    beyond_metrics.intra_list_diversity(top_k, self.item_features, self.item_present)
                )
        return result


@dataclass
class EvalPlan:
    """Everything a batch step needs, computed once (picklable: a worker can receive it)."""

    part: str
    heldout: HeldOut
    ks: tuple[int, ...]
    max_k: int
    item_popularity: np.ndarray  # (n_items,) training popularity
    item_groups: np.ndarray  # (n_items,) 0 head, 1 tail, 2 cold
    user_activity: np.ndarray  # (n_users,) training items per user

    @property
    def users(self) -> np.ndarray:
        return self.heldout.users


@dataclass
class PartialResult:
    """Per-user results of one batch of users; :meth:`Evaluator.merge` joins them."""

    users: np.ndarray
    per_user: dict[str, np.ndarray]
    top_k: np.ndarray
    group_hits: dict[int, np.ndarray]
    group_truth: np.ndarray


def _group_counts(indices: np.ndarray, row_lengths: np.ndarray, item_groups: np.ndarray) -> np.ndarray:
    n_groups = N_ITEM_GROUPS
    rows = np.repeat(np.arange(len(row_lengths)), row_lengths)
    flat = rows * n_groups + item_groups[indices]
    return np.bincount(flat, minlength=len(row_lengths) * n_groups).reshape(len(row_lengths), n_groups)


def _group_counts_dense(items: np.ndarray, item_groups: np.ndarray) -> np.ndarray:
    n_groups = N_ITEM_GROUPS
    n_rows = items.shape[0]
    valid = items >= 0
    rows = np.broadcast_to(np.arange(n_rows)[:, None], items.shape)[valid]
    flat = rows * n_groups + item_groups[items[valid]]
    return np.bincount(flat, minlength=n_rows * n_groups).reshape(n_rows, n_groups)
