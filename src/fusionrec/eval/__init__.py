"""Evaluation: vectorised metrics, the batched full-ranking evaluator, reports, baseline runs."""

from fusionrec.eval.evaluator import EvalResult, Evaluator, top_k_items
from fusionrec.eval.metrics import RANKING_METRICS, hit_matrix, ranking_metrics
from fusionrec.eval.runner import ModelRun, run_baselines, train_and_evaluate

__all__ = [
    "RANKING_METRICS",
    "EvalResult",
    "Evaluator",
    "ModelRun",
    "hit_matrix",
    "ranking_metrics",
    "run_baselines",
    "top_k_items",
    "train_and_evaluate",
]
