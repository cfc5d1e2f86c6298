"""Modality and encoder ablation: one model trained on every subset of its item features.

Variants, for modalities ``M`` of a :class:`FeaturePool` (one or more FeatureSets over the same
items): ``all`` (every modality), ``all[m=ENCODER]`` for each alternative encoder of ``m`` (the same
modality name extracted by encoders with different fingerprints), ``only:m``, ``without:m`` and
``none`` (ID only: the model fitted with ``features=None``). Variants that select the same feature
subset (same modality -> fingerprint map) are trained once and list every label. A variant the
model cannot train (``none`` for a model that requires features, a missing required modality) is
kept as a row with status ``not_applicable`` and the reason.

Each variant is fitted on train (valid for early stopping and selection) and evaluated on test.
A variant's delta vs ``all`` is paired over the same test users: the mean of the per-user
differences, with a 95 % interval from the same routine as the metric intervals
(:func:`~fusionrec.eval.evaluator.mean_confidence_interval`) applied to those differences:
``t`` = Student-t interval of the per-user differences, ``bootstrap`` = paired percentile bootstrap
(users resampled with both values).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fusionrec.errors import DataError, ModelError
from fusionrec.eval.evaluator import EvalResult, mean_confidence_interval
from fusionrec.eval.report import _clean, default_keys
from fusionrec.experiments.runner import train_and_evaluate
from fusionrec.features.base import FeatureSet, ModalityFeatures, fingerprint_digest

if TYPE_CHECKING:
    from fusionrec.data.splits import Split

log = logging.getLogger(__name__)

REFERENCE = "all"
STATUS_OK, STATUS_NA, STATUS_FAILED = "ok", "not_applicable", "failed"


# --------------------------------------------------------------------------- features
@dataclass(frozen=True)
class ModalityOption:
    """One modality as one encoder extracted it (``features`` shared, never copied)."""

    modality: str
    encoder: str
    fingerprint: str
    source: str
    features: ModalityFeatures = field(repr=False, compare=False)


@dataclass
class FeaturePool:
    """Every modality of one or more feature sets over the same items; per modality the
    alternatives by fingerprint, the first one seen being the default."""

    ids: np.ndarray  # (n_items,) str, the item ids in index order
    options: dict[str, list[ModalityOption]]

    @classmethod
    def from_sets(cls, sets: Sequence[tuple[str, FeatureSet]], item_ids: Sequence[Any] | np.ndarray) -> FeaturePool:
        """Pool ``(source name, FeatureSet)`` pairs, each checked to be item rows aligned to ``item_ids``."""
        if not sets:
            raise DataError("no feature sets given (pass --features DIR at least once)")
        ids = np.asarray(item_ids).astype(str)
        options: dict[str, list[ModalityOption]] = {}
        for source, features in sets:
            if features.entity != "item":
                raise DataError(f"holds {features.entity} features, the ablation needs item features", file=source)
            if not features.modalities:
                raise DataError("the feature set holds no modalities (extract some with `fusionrec features`)", file=source)
            try:
                features.check_aligned(ids)
            except DataError as exc:
                raise DataError(f"{exc.reason} ({len(features)} rows, the split has {len(ids)} items)", file=source) from None
            for name, mod in features.modalities.items():
                known = options.setdefault(name, [])
                if any(o.fingerprint == mod.provenance.fingerprint for o in known):
                    continue  # the same encoder's output twice: keep the first
                known.append(ModalityOption(name, mod.provenance.encoder, mod.provenance.fingerprint, source, mod))
        return cls(ids=ids, options=options)

    @property
    def names(self) -> list[str]:
        return list(self.options)

    def check_names(self, names: Sequence[str]) -> list[str]:
        """``names`` (order kept, duplicates dropped) if every one is a pooled modality, else DataError."""
        unknown = [n for n in names if n not in self.options]
        if unknown:
            raise DataError(f"unknown modalit{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}; "
                            f"the feature sets have: {', '.join(self.names)}")
        if not names:
            raise DataError("no modalities to ablate")
        return list(dict.fromkeys(names))

    def encoder_label(self, option: ModalityOption) -> str:
        """The encoder's name, with a fingerprint digest where two alternatives share a name."""
        same = [o for o in self.options[option.modality] if o.encoder == option.encoder]
        return option.encoder if len(same) == 1 else f"{option.encoder}@{fingerprint_digest(option.fingerprint)[:8]}"


# --------------------------------------------------------------------------- variants
@dataclass
class Variant:
    """A feature subset to train on and every label that names it (``name`` = the first)."""

    labels: list[str]
    chosen: dict[str, ModalityOption]  # modality -> option, in modality order

    @property
    def name(self) -> str:
        return "none" if not self.chosen else self.labels[0]

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((m, o.fingerprint) for m, o in self.chosen.items()))

    def feature_set(self, ids: np.ndarray) -> FeatureSet | None:
        """The subset as a FeatureSet sharing the pool's matrices (``None`` for ID only)."""
        if not self.chosen:
            return None
        return FeatureSet(ids=ids, modalities={m: o.features for m, o in self.chosen.items()})


def plan_variants(pool: FeaturePool, modalities: Sequence[str] | None = None) -> list[Variant]:
    """all, all[m=ENCODER] per alternative, only:m, without:m, none; identical subsets merged."""
    names = pool.check_names(list(modalities) if modalities is not None else pool.names)
    base = {m: pool.options[m][0] for m in names}
    wanted: list[tuple[str, dict[str, ModalityOption]]] = [(REFERENCE, base)]
    for m in names:
        if len(pool.options[m]) > 1:
            wanted += [(f"all[{m}={pool.encoder_label(o)}]", base | {m: o}) for o in pool.options[m]]
    wanted += [(f"only:{m}", {m: base[m]}) for m in names]
    wanted += [(f"without:{m}", {n: o for n, o in base.items() if n != m}) for m in names]
    wanted.append(("none", {}))
    variants: dict[tuple[tuple[str, str], ...], Variant] = {}
    for label, chosen in wanted:
        variant = Variant(labels=[label], chosen=chosen)
        if variant.key in variants:
            variants[variant.key].labels.append(label)
        else:
            variants[variant.key] = variant
    return list(variants.values())


def not_applicable_reason(model: str, variant: Variant) -> str | None:
    """Why ``model`` cannot be trained on ``variant`` (read from its class), or None."""
    from fusionrec.models.registry import get_model_class

    cls = get_model_class(model)
    if not variant.chosen and cls.requires_features:
        return f"{model} requires item features: it has no ID-only form"
    missing = [m for m in cls.required_modalities if m not in variant.chosen]
    if missing:
        return f"{model} requires the {', '.join(missing)} modality"
    return None


def variant_config(model: str, config: Mapping[str, Any] | None, variant: Variant) -> dict[str, Any]:
    """The model's config for one variant: a ``modalities`` field names the subset, and
    ``modality_weights`` keeps only its modalities (equal weights if none of them has weight)."""
    from fusionrec.models.registry import config_class

    fields = config_class(model).model_fields
    values = dict(config or {})
    if "modalities" in fields:
        values["modalities"] = list(variant.chosen) or None
    weights = values.get("modality_weights")
    if "modality_weights" in fields and weights:
        kept = {m: w for m, w in weights.items() if m in variant.chosen}
        values["modality_weights"] = kept if sum(kept.values()) > 0 else None
    return values


# --------------------------------------------------------------------------- running
@dataclass
class AblationRow:
    """One trained (or skipped) variant: what it used and its test result."""

    variant: str
    labels: list[str]
    modalities: list[str]
    encoders: dict[str, str]
    fingerprints: dict[str, str]
    status: str = STATUS_OK
    reason: str | None = None
    result: EvalResult | None = field(default=None, repr=False)
    train_time_s: float | None = None
    n_epochs: int | None = None
    best_epoch: int | None = None
    valid_best: dict[str, float] | None = None  # the early-stopping metric's best valid value


@dataclass
class AblationResult:
    """Every variant's row, with paired deltas vs the ``all`` row."""

    model: str
    config: dict[str, Any]
    metric: str
    ks: tuple[int, ...]
    rows: list[AblationRow]
    ci_method: str = "t"
    level: float = 0.95
    sources: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    @property
    def reference(self) -> AblationRow:
        return next(r for r in self.rows if REFERENCE in r.labels)

    def metric_keys(self) -> list[str]:
        first = next((r.result for r in self.rows if r.result is not None), None)
        if first is None:
            return []
        ordered = default_keys(first)
        return ordered + [k for k in first.per_user if k not in ordered]

    def delta(self, row: AblationRow, key: str) -> tuple[float, float, float]:
        """``(mean, low, high)`` of ``row - all`` for ``key`` over the shared test users (NaN if n/a)."""
        return paired_delta(row.result, self.reference.result, key, self.level, self.ci_method)

    def cells(self, row: AblationRow, key: str) -> dict[str, float]:
        """mean, CI, delta and delta CI of one metric of one row (NaN where not applicable)."""
        nan = float("nan")
        if row.result is None:
            return dict.fromkeys(("mean", "low", "high", "delta", "delta_low", "delta_high"), nan)
        low, high = mean_confidence_interval(row.result.per_user[key], level=self.level, method=self.ci_method)
        delta, d_low, d_high = self.delta(row, key)
        return {"mean": row.result.mean()[key], "low": low, "high": high,
                "delta": delta, "delta_low": d_low, "delta_high": d_high}

    def to_dict(self) -> dict[str, Any]:
        keys = self.metric_keys()
        rows = []
        for row in self.rows:
            metrics = {}
            for key in keys if row.result is not None else []:
                c = self.cells(row, key)
                metrics[key] = {"mean": c["mean"], "ci": [c["low"], c["high"]],
                                "delta": c["delta"], "delta_ci": [c["delta_low"], c["delta_high"]]}
            rows.append({
                "variant": row.variant, "labels": row.labels, "status": row.status, "reason": row.reason,
                "modalities": row.modalities, "encoders": row.encoders, "fingerprints": row.fingerprints,
                "n_users": row.result.n_evaluated if row.result is not None else None,
                "train_time_s": row.train_time_s, "n_epochs": row.n_epochs, "best_epoch": row.best_epoch,
                "valid_best": row.valid_best, "metrics": metrics,
            })
        return _clean({
            "model": self.model, "config": self.config, "metric": self.metric, "ks": list(self.ks),
            "evaluated_on": "test", "selected_on": "valid", "reference": REFERENCE,
            "ci": {"level": self.level, "method": self.ci_method, "delta": DELTA_METHODS[self.ci_method]},
            "sources": self.sources, "rows": rows,
        })


DELTA_METHODS = {
    "t": "paired: Student-t interval of the per-user differences vs 'all' over the same test users",
    "bootstrap": "paired: percentile bootstrap of the per-user differences vs 'all' (users resampled)",
}


def paired_delta(
    result: EvalResult | None, reference: EvalResult | None, key: str, level: float = 0.95, method: str = "t"
) -> tuple[float, float, float]:
    """Mean and interval of the per-user differences ``result - reference`` on their common users."""
    nan = float("nan")
    if result is None or reference is None or key not in result.per_user or key not in reference.per_user:
        return nan, nan, nan
    if np.array_equal(result.users, reference.users):
        diff = result.per_user[key] - reference.per_user[key]
    else:
        _, a, b = np.intersect1d(result.users, reference.users, assume_unique=True, return_indices=True)
        diff = result.per_user[key][a] - reference.per_user[key][b]
    finite = diff[~np.isnan(diff)]
    if not len(finite):
        return nan, nan, nan
    low, high = mean_confidence_interval(finite, level=level, method=method)
    return float(finite.mean()), low, high


def run_ablation(
    model: str,
    split: Split,
    pool: FeaturePool,
    *,
    modalities: Sequence[str] | None = None,
    config: Mapping[str, Any] | None = None,
    ks: Sequence[int] = (10, 20),
    metric: str = "ndcg@20",
    ci_method: str = "t",
    level: float = 0.95,
    progress: Callable[[int, int, AblationRow, AblationResult], None] | None = None,
) -> AblationResult:
    """Train and test ``model`` on every variant of :func:`plan_variants` (``all`` first).

    ``modalities`` defaults to the config's ``modalities`` field when set, else every pooled one.
    ``progress(index, total, row, result)`` is called after each variant.
    """
    from fusionrec.models.registry import get_model_class
    from fusionrec.ranking.keys import parse_metric_key

    if ci_method not in DELTA_METHODS:
        raise ValueError(f"unknown confidence interval method {ci_method!r} (t or bootstrap)")
    cls = get_model_class(model)
    if not cls.uses_features:
        raise ModelError(f"{model} does not read item features: there is nothing to ablate (use a content model)")
    _, metric_k = parse_metric_key(metric)
    all_ks = tuple(sorted({*ks, *([metric_k] if metric_k else [])}))
    names = modalities if modalities is not None else (config or {}).get("modalities") or None
    variants = plan_variants(pool, names)
    reason = not_applicable_reason(model, variants[0])
    if reason is not None:
        raise ModelError(f"cannot ablate {model}: {reason}")
    sources: dict[str, dict[str, dict[str, str]]] = {}
    for options in pool.options.values():
        for o in options:
            sources.setdefault(o.source, {})[o.modality] = {"encoder": o.encoder, "fingerprint": o.fingerprint}
    result = AblationResult(model=model, config=dict(config or {}), metric=metric, ks=all_ks, rows=[],
                            ci_method=ci_method, level=level, sources=sources)
    for index, variant in enumerate(variants, start=1):
        row = _run_variant(model, split, pool, variant, config, all_ks, is_reference=index == 1)
        result.rows.append(row)
        if progress is not None:
            progress(index, len(variants), row, result)
    if metric not in result.metric_keys():
        raise ModelError(f"metric {metric!r} was not computed (have {', '.join(result.metric_keys())})")
    return result


def _run_variant(
    model: str, split: Split, pool: FeaturePool, variant: Variant, config: Mapping[str, Any] | None,
    ks: tuple[int, ...], is_reference: bool,
) -> AblationRow:
    row = AblationRow(
        variant=variant.name, labels=list(variant.labels), modalities=list(variant.chosen),
        encoders={m: pool.encoder_label(o) for m, o in variant.chosen.items()},
        fingerprints={m: o.fingerprint for m, o in variant.chosen.items()},
    )
    reason = not_applicable_reason(model, variant)
    if reason is not None:
        row.status, row.reason = STATUS_NA, reason
        return row
    try:
        run = train_and_evaluate(model, split, k=ks, config=variant_config(model, config, variant),
                                 on="test", features=variant.feature_set(pool.ids))
    except ModelError as exc:
        if is_reference:
            raise
        log.warning("ablation variant %s failed: %s", variant.name, exc)
        row.status, row.reason = STATUS_FAILED, str(exc)
        return row
    row.result, row.train_time_s = run.result, run.train_time_s
    row.n_epochs, row.best_epoch = run.n_epochs, run.best_epoch
    history = getattr(run.model, "history_", None)
    if history is not None and history.best_value is not None:
        row.valid_best = {history.metric: float(history.best_value)}
    return row
