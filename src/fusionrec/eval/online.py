"""Online metrics and A/B analysis of logged feedback: CTR and conversion per variant, with intervals.

Input is an event log as a DataFrame with the columns of the event store (``user_id``, ``item_id``,
``type``, ``value``, ``variant``, ``ts``; extra columns ignored): what
``fusionrec.serve.events.EventStore.frame()`` returns, or a CSV/Parquet file read by
:func:`read_event_log`. Events without a variant count under ``"default"``.

Per variant: ``impressions`` (events of type impression), ``clicks``, ``CTR = clicks /
impressions``, ``conversions`` (purchases) and ``conversion rate = purchases / impressions``, each
rate with a Wilson score interval (it stays inside [0, 1] and is honest for small counts and rates
near 0, unlike the Wald interval), and ``users`` (distinct users with any event). Clicks are counted
as logged, not joined to an impression: a client that logs clicks without impressions gets a CTR
above 1, which is reported as a warning, not hidden.

With two or more variants each is compared with the control (the variant named ``"control"`` if
there is one, else the one with the most impressions): the difference in CTR and in conversion rate
with a Wald interval of the difference and the two-sided p-value of the pooled two-proportion
z-test (one test per variant and metric: with many variants, correct for multiple comparisons).

Also here, because both the event store and this module need them (eval may not import serve):
the event types, :data:`EVENT_TYPES`, and what counts as positive feedback, :func:`is_positive`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.errors import DataError

#: Every event type the store accepts.
EVENT_TYPES: tuple[str, ...] = ("view", "click", "like", "dislike", "purchase", "rating", "impression")
#: Types that are positive feedback whatever their value (a rating is positive from :data:`POSITIVE_RATING`).
POSITIVE_TYPES: tuple[str, ...] = ("click", "like", "purchase")
POSITIVE_RATING = 3.0
#: Types that need an item (a ``view`` may be of a page without one).
ITEM_TYPES: frozenset[str] = frozenset(EVENT_TYPES) - {"view"}
LOG_COLUMNS = ("user_id", "item_id", "type", "value", "variant", "ts")
REQUIRED_COLUMNS = ("user_id", "type")
DEFAULT_VARIANT = "default"


def is_positive(event_type: str, value: float | None = None) -> bool:
    """Whether an event is positive feedback for its item: click, like, purchase, or rating >= 3."""
    if event_type == "rating":
        return value is not None and not math.isnan(value) and value >= POSITIVE_RATING
    return event_type in POSITIVE_TYPES


# --------------------------------------------------------------------------- statistics
def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (NaNs when ``trials == 0``)."""
    if trials <= 0:
        return math.nan, math.nan
    x = min(max(successes, 0), trials)
    z = _z(level)
    p, z2 = x / trials, z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z / (1 + z2 / trials) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_test(x1: int, n1: int, x2: int, n2: int, level: float = 0.95) -> tuple[float, float, float, float]:
    """``(difference p2 - p1, low, high, p-value)``: Wald interval of the difference, two-sided pooled z-test."""
    if n1 <= 0 or n2 <= 0:
        return math.nan, math.nan, math.nan, math.nan
    p1, p2 = min(x1, n1) / n1, min(x2, n2) / n2
    diff = p2 - p1
    half = _z(level) * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    pooled = (min(x1, n1) + min(x2, n2)) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = 1.0 if se == 0 else math.erfc(abs(diff) / se / math.sqrt(2))
    return diff, diff - half, diff + half, p_value


# --------------------------------------------------------------------------- report
@dataclass(frozen=True)
class VariantStats:
    variant: str
    impressions: int
    clicks: int
    ctr: float
    ctr_low: float
    ctr_high: float
    conversions: int
    conversion_rate: float
    conversion_low: float
    conversion_high: float
    users: int
    events: int


@dataclass(frozen=True)
class Comparison:
    """``variant`` against ``control`` on one metric (``ctr`` or ``conversion_rate``)."""

    variant: str
    control: str
    metric: str
    difference: float
    low: float
    high: float
    p_value: float


@dataclass
class OnlineReport:
    variants: list[VariantStats]
    control: str | None
    comparisons: list[Comparison]
    level: float
    n_events: int
    warnings: list[str] = field(default_factory=list)

    def variant(self, name: str) -> VariantStats:
        for stats in self.variants:
            if stats.variant == name:
                return stats
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (NaN becomes None)."""
        return _clean({"level": self.level, "n_events": self.n_events, "control": self.control,
                       "variants": [asdict(v) for v in self.variants],
                       "comparisons": [asdict(c) for c in self.comparisons], "warnings": self.warnings})


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def online_report(events: pd.DataFrame, level: float = 0.95, control: str | None = None) -> OnlineReport:
    """CTR and conversion per variant with Wilson intervals, and each variant against the control.

    ``events``: one row per event with at least ``user_id`` and ``type`` (``variant`` optional).
    ``control``: the variant the others are compared with (default: ``"control"`` if present, else
    the most impressions; ties go to the first name in sorted order).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in events.columns]
    if missing:
        raise DataError(f"the event log lacks column(s) {', '.join(missing)}", column=missing[0])
    frame = pd.DataFrame({
        "user_id": events["user_id"].astype(str),
        "type": events["type"].astype(str),
        "variant": (events["variant"] if "variant" in events.columns else pd.Series(None, index=events.index)),
    })
    frame["variant"] = frame["variant"].where(frame["variant"].notna() & (frame["variant"].astype(str) != ""),
                                              DEFAULT_VARIANT).astype(str)
    counts = pd.crosstab(frame["variant"], frame["type"]) if len(frame) else pd.DataFrame()
    users = frame.groupby("variant")["user_id"].nunique() if len(frame) else pd.Series(dtype=np.int64)
    stats, warnings = [], []
    for name in sorted(counts.index):
        row = counts.loc[name]
        impressions, clicks, purchases = (int(row.get(t, 0)) for t in ("impression", "click", "purchase"))
        if clicks > impressions:
            warnings.append(f"variant {name!r} has {clicks} clicks for {impressions} impressions: "
                            "are impressions logged (type 'impression') for every list shown?")
        ctr = clicks / impressions if impressions else math.nan
        conv = purchases / impressions if impressions else math.nan
        stats.append(VariantStats(name, impressions, clicks, ctr, *wilson_interval(clicks, impressions, level),
                                  purchases, conv, *wilson_interval(purchases, impressions, level),
                                  int(users.get(name, 0)), int(row.sum())))
    chosen = _choose_control(stats, control)
    comparisons = []
    if chosen is not None and len(stats) > 1:
        base = next(s for s in stats if s.variant == chosen)
        for s in stats:
            if s.variant == chosen:
                continue
            for metric, x1, x2 in (("ctr", base.clicks, s.clicks), ("conversion_rate", base.conversions, s.conversions)):
                comparisons.append(Comparison(s.variant, chosen, metric,
                                              *two_proportion_test(x1, base.impressions, x2, s.impressions, level)))
    if stats and all(s.impressions == 0 for s in stats):
        warnings.append("no impression events: CTR and conversion rates are undefined")
    return OnlineReport(stats, chosen, comparisons, level, len(frame), warnings)


def _choose_control(stats: list[VariantStats], control: str | None) -> str | None:
    names = [s.variant for s in stats]
    if control is not None:
        if control not in names:
            raise DataError(f"no variant {control!r} in the log (variants: {', '.join(names) or 'none'})", column="variant")
        return control
    if not stats:
        return None
    if "control" in names:
        return "control"
    return max(stats, key=lambda s: s.impressions).variant  # stats are sorted by name: the first on a tie


# --------------------------------------------------------------------------- files
def read_event_log(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet event log with the columns of :data:`LOG_COLUMNS` (``user_id`` and ``type``
    required; ``item_id`` required for every type but view). Raises DataError naming the file, the
    row (CSV: the line number, header = line 1; Parquet: the 1-based row) and the column."""
    source = Path(path)
    if not source.exists():
        raise DataError("file not found", file=str(source))
    suffix = source.suffix.lower()
    try:
        if suffix == ".parquet":
            frame, first = pd.read_parquet(source), 1
        elif suffix in (".csv", ".tsv"):
            frame = pd.read_csv(source, sep="\t" if suffix == ".tsv" else ",", dtype={"user_id": str, "item_id": str, "variant": str})
            first = 2
        else:
            raise DataError("an event log must be .csv, .tsv or .parquet", file=str(source))
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read the event log: {exc}", file=str(source)) from None
    for column in REQUIRED_COLUMNS:
        if column not in frame.columns:
            raise DataError(f"missing column (have {', '.join(map(str, frame.columns))})", file=str(source), column=column)
    for column in LOG_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    types = frame["type"].astype(str).str.strip().str.lower()
    bad = np.flatnonzero(~types.isin(EVENT_TYPES).to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DataError(f"unknown event type {frame['type'].iloc[i]!r} (one of {', '.join(EVENT_TYPES)}; {len(bad)} rows)",
                        file=str(source), row=i + first, column="type")
    frame["type"] = types
    empty_user = frame["user_id"].isna().to_numpy() | (frame["user_id"].astype(str).str.strip() == "").to_numpy()
    no_item = types.isin(ITEM_TYPES).to_numpy() & frame["item_id"].isna().to_numpy()
    for column, mask in (("user_id", empty_user), ("item_id", no_item)):
        if mask.any():
            raise DataError("missing value", file=str(source), row=int(np.flatnonzero(mask)[0]) + first, column=column)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame[[*LOG_COLUMNS, *[c for c in frame.columns if c not in LOG_COLUMNS]]]


def plot_online_report(report: OnlineReport, path: str | Path) -> Path:
    """PNG of CTR and conversion rate per variant: bars with the Wilson intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [v.variant for v in report.variants]
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.6 * len(names) + 3), 3.6))
    for ax, (label, key) in zip(axes, (("CTR", "ctr"), ("conversion rate", "conversion")), strict=True):
        values = np.array([getattr(v, "ctr" if key == "ctr" else "conversion_rate") for v in report.variants], dtype=float)
        low = np.array([getattr(v, f"{key}_low") for v in report.variants], dtype=float)
        high = np.array([getattr(v, f"{key}_high") for v in report.variants], dtype=float)
        errors = np.clip(np.nan_to_num(np.vstack([values - low, high - values])), 0, None)  # rounding at 0
        colours = ["#888888" if n == report.control else "#3b75af" for n in names]
        ax.bar(names, np.nan_to_num(values), yerr=errors, capsize=4, color=colours)
        ax.set_title(f"{label} per variant ({round(report.level * 100)} % Wilson)")
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
