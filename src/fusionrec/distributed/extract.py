"""Feature extraction on Ray: plan on the driver, encode with Ray Data, commit on the driver.

The plan (:func:`fusionrec.features.extract.plan`) decides by content key which items the store
lacks; its pending :class:`~fusionrec.features.extract.PlanBatch` es become the rows of a Ray
Dataset (``ray.data.from_items``), one row per planned batch; ``map_batches`` runs
:class:`_EncodeBatches`, a callable class whose constructor receives the picklable
:class:`~fusionrec.features.extract.EncoderHandle` (settings, not a model), so each of the
``n_workers`` actors of the pool loads the encoder once and reuses it for every batch it gets.
The encoded results stream back to the driver and go through the same
:func:`~fusionrec.features.extract.commit` into the same content-addressed store, so a second
run (local or Ray) finds everything cached and the FeatureSet is the local path's.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.data.schema import Dataset
from fusionrec.errors import DataError
from fusionrec.features.base import FeatureSet
from fusionrec.features.config import FeaturesConfig
from fusionrec.features.extract import (
    MODALITIES,
    EncodedResult,
    EncoderHandle,
    ExtractionResult,
    PlanBatch,
    commit,
    encode,
    extract_features,
    plan,
)
from fusionrec.features.runtime import torch_threads
from fusionrec.features.store import FeatureStore

__all__ = ["extract_features_ray"]


class _EncodeBatches:
    """The Ray Data UDF: one encoder per actor, loaded at construction, used for every batch."""

    def __init__(self, handle: EncoderHandle) -> None:
        self.handle = handle
        with torch_threads(handle.threads):
            self.handle.encoder  # noqa: B018  (load once per worker)

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: list[bytes] = []
        for text in rows["plan_batch"]:
            batch = PlanBatch(**json.loads(str(text)))
            with torch_threads(self.handle.threads):
                result = encode(self.handle, batch)
            out.append(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        return {"result": np.array(out, dtype=object)}


def _ray_results(batches: list[PlanBatch], handle: EncoderHandle, n_workers: int) -> Iterator[EncodedResult]:
    """Encode ``batches`` on ``n_workers`` Ray actors; yield results as they arrive."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    rows = [{"plan_batch": json.dumps(asdict(batch))} for batch in batches]
    dataset = ray.data.from_items(rows, override_num_blocks=min(len(rows), max(1, 4 * n_workers)))
    encoded = dataset.map_batches(
        _EncodeBatches,
        fn_constructor_args=(handle,),
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(min_size=n_workers, max_size=n_workers),
        num_cpus=1,
        batch_format="numpy",
    )
    for row in encoded.iter_rows():
        yield pickle.loads(row["result"])  # our own workers' output


def extract_features_ray(
    dataset: Dataset,
    modalities: Iterable[str] = ("text", "image"),
    cache_dir: str | Path | None = None,
    config: FeaturesConfig | None = None,
    *,
    n_workers: int | None = None,
    progress: bool = False,
) -> ExtractionResult:
    """:func:`~fusionrec.features.extract.extract_features` with the encode step on Ray workers.

    Needs a Ray connection (:func:`fusionrec.distributed.cluster.connect`). ``n_workers``
    (default: the cluster's CPUs) actors each load the encoder once; each uses
    ``config.runtime.threads`` compute threads (default 1). Attributes (a table-wide fit, no
    model) are computed on the driver. The store must be reachable by the driver only: workers
    return vectors, the driver writes them.
    """
    from fusionrec.distributed.cluster import n_workers as cluster_workers
    from fusionrec.distributed.cluster import require_ray

    require_ray()
    config = config or FeaturesConfig()
    workers = n_workers or cluster_workers()
    store = FeatureStore(cache_dir)
    result = ExtractionResult(features=FeatureSet(ids=dataset.item_map.ids))
    for modality in modalities:
        if modality not in MODALITIES:
            raise DataError(f"unknown modality {modality!r}; choose from {list(MODALITIES)}")
        if modality == "attributes":
            local = extract_features(dataset, ["attributes"], cache_dir=cache_dir, config=config, progress=False)
            result.features.add(modality, local.features[modality])
            result.reports[modality] = local.reports[modality]
            continue
        handle = EncoderHandle(
            modality,
            config,
            device=config.runtime.device,
            threads=max(1, int(config.runtime.threads or 1)),
            model_dir=store.root / "models",
        )
        work = plan(dataset, modality, handle, store, config)
        results: Iterable[EncodedResult] = _ray_results(work.batches, _fresh(handle), workers) if work.batches else []
        features, report = commit(work, results, store, progress=progress)
        result.features.add(modality, features)
        result.reports[modality] = report
    return result


def _fresh(handle: EncoderHandle) -> EncoderHandle:
    """A copy of ``handle`` without any model loaded on the driver (what the workers receive)."""
    state: dict[str, Any] = handle.__getstate__()
    copy = EncoderHandle.__new__(EncoderHandle)
    copy.__dict__.update(state)
    return copy
