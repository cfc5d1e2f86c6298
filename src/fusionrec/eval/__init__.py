"""Evaluation: the batched full-ranking evaluator, beyond-accuracy metrics and reports.

Exports resolve lazily so that importing the package (e.g. from the CLI) does not load torch,
which the evaluator needs only when it runs. The per-user ranking metrics live one level down, in
:mod:`fusionrec.ranking.metrics`, because models and the trainer use them too.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EvalResult": "fusionrec.eval.evaluator",
    "EvalPlan": "fusionrec.eval.evaluator",
    "Evaluator": "fusionrec.eval.evaluator",
    "PartialResult": "fusionrec.eval.evaluator",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fusionrec.eval' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
