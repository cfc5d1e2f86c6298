"""The ranking leaf: top-k selection, row masking, score tensors and the per-user ranking metrics.

Models, the trainer, the evaluator and the server all rank items the same way, so the mechanics
live here once, below every stage (this package imports nothing else from fusionrec but
``errors``). Submodules: :mod:`~fusionrec.ranking.keys` (metric names, no heavy imports),
:mod:`~fusionrec.ranking.topk`, :mod:`~fusionrec.ranking.metrics`,
:mod:`~fusionrec.ranking.heldout` (one batch of held-out ranking, shared by the evaluator and the
trainer's validation).
"""
