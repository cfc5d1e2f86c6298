"""Evaluation: vectorised metrics, the batched full-ranking evaluator, reports, baseline runs.

Exports resolve lazily so that importing ``fusionrec.eval.metrics`` (e.g. from the CLI) does not
load torch, which the evaluator needs only when it runs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EvalResult": "fusionrec.eval.evaluator",
    "Evaluator": "fusionrec.eval.evaluator",
    "top_k_items": "fusionrec.eval.evaluator",
    "RANKING_METRICS": "fusionrec.eval.metrics",
    "hit_matrix": "fusionrec.eval.metrics",
    "ranking_metrics": "fusionrec.eval.metrics",
    "ModelRun": "fusionrec.eval.runner",
    "run_baselines": "fusionrec.eval.runner",
    "train_and_evaluate": "fusionrec.eval.runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fusionrec.eval' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
