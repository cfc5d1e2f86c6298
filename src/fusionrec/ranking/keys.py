"""Metric names and ``recall@20``-style keys (pure Python: configs validate against it without torch)."""

from __future__ import annotations

RANKING_METRICS: tuple[str, ...] = ("precision", "recall", "f1", "ndcg", "hit_rate", "map", "mrr")


def metric_key(metric: str, k: int) -> str:
    """``recall@20``-style key."""
    return f"{metric}@{k}"


def parse_metric_key(key: str) -> tuple[str, int | None]:
    """``"recall@20" -> ("recall", 20)``; ``"auc" -> ("auc", None)``; ``ValueError`` on a bad cut-off."""
    if "@" in key:
        name, k = key.split("@", 1)
        try:
            return name, int(k)
        except ValueError:
            raise ValueError(f"bad cut-off in metric key {key!r}: expected an integer after '@'") from None
    return key, None


def check_valid_metric(key: str, what: str = "valid_metric") -> str:
    """``key`` if it names a ranking metric at a positive cut-off (what early stopping and model
    selection can track); else ``ValueError`` naming the setting ``what``."""
    try:
        name, k = parse_metric_key(key)
    except ValueError:
        name, k = key, None
    if name not in RANKING_METRICS or k is None or k < 1:
        raise ValueError(
            f"{what} must look like 'recall@20': one of {', '.join(RANKING_METRICS)} at a cut-off >= 1, got {key!r}"
        )
    return key
