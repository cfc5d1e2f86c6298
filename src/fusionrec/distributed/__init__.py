"""Ray implementations of the three scale-out steps (optional extra ``fusionrec[ray]``).

- :func:`fusionrec.distributed.extract.extract_features_ray`: plan locally, encode the pending
  batches with Ray Data ``map_batches`` (the encoder loaded once per worker), commit into the same
  content-addressed store; the same FeatureSet as :func:`fusionrec.features.extract.extract_features`.
- :func:`fusionrec.distributed.evaluate.evaluate_ray`: the model put once in the object store,
  users sharded over remote tasks running ``Evaluator.evaluate_batch``, ``Evaluator.merge`` on the
  driver; the same EvalResult as ``Evaluator.evaluate``.
- :func:`fusionrec.distributed.tune.grid_search_ray`: Ray Tune over the grid, selection on valid,
  test only at the chosen point; the same TuneResult as ``experiments.runner.grid_search``.

:func:`fusionrec.distributed.cluster.connect` starts a local cluster (``"local"``) or joins one.
Nothing here imports ray at package import; ray is imported only when a function is called.
"""

from __future__ import annotations

__all__ = ["connect", "evaluate_ray", "extract_features_ray", "grid_search_ray"]

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "connect":
        from fusionrec.distributed.cluster import connect

        return connect
    if name == "evaluate_ray":
        from fusionrec.distributed.evaluate import evaluate_ray

        return evaluate_ray
    if name == "extract_features_ray":
        from fusionrec.distributed.extract import extract_features_ray

        return extract_features_ray
    if name == "grid_search_ray":
        from fusionrec.distributed.tune import grid_search_ray

        return grid_search_ray
    raise AttributeError(name)
