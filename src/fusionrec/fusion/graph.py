"""Item-item kNN graphs from content features, combined across modalities, cached by provenance.

For each modality ``m`` with feature rows ``x_i`` (present items only), the cosine kNN graph keeps
for every item its ``k`` most similar other present items: ``S_m[i, j] = 1`` (``binary``, as
FREEDOM / LATTICE) or ``cos(x_i, x_j)`` (``cosine``, negatives dropped). Each graph is
degree-normalised, ``D^-1/2 S_m D^-1/2`` (``D`` the row sums), and the modalities are combined as
``S = sum_m a_m S_m`` with weights ``a_m`` summing to 1. The result is not symmetric in general
(kNN is not), which :class:`fusionrec.training.graph.SparseOperator` handles.

Similarities are computed in row blocks (``block_mb`` of dense floats at a time) and only the top
``k`` of each row is kept, so 100k+ items fit in memory: peak ``O(block * n_items + n_items * k)``.
Graphs are cached under a key that hashes the config and, per modality, the encoder fingerprint,
the feature matrix bytes, the present-mask and the item ids: changed features never reuse a stale
graph (the failure a peer library has).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.errors import ModelError
from fusionrec.fusion.config import ItemGraphConfig as ItemGraphConfig  # torch-free home
from fusionrec.fusion.vectors import modality_weights, unit_rows
from fusionrec.ranking.topk import top_k_items
from fusionrec.training.graph import symmetric_normalize

GRAPH_FORMAT_VERSION = 1


@dataclass
class ItemGraph:
    """The combined ``(n_items, n_items)`` normalised graph and what it was built from."""

    matrix: sp.csr_matrix
    modalities: tuple[str, ...]
    key: str
    from_cache: bool = False


def knn_graph(
    matrix: np.ndarray, present: np.ndarray | None, k: int, weighting: str = "binary", block_mb: int = 64
) -> sp.csr_matrix:
    """``(n, n)`` float32 CSR: row ``i`` holds the ``k`` most cosine-similar other present items.

    Items that are not present have no edges (neither row nor column); rows of zero vectors too.
    Ties at the k-th place go to the lower item index (the shared top-k rule).
    """
    if weighting not in ("binary", "cosine"):
        raise ModelError(f"unknown graph weighting {weighting!r} (binary or cosine)")
    unit = unit_rows(matrix, present)
    n_items = unit.shape[0]
    mask = unit.any(axis=1)  # present and not a zero row
    unit_t = torch.from_numpy(np.ascontiguousarray(unit))
    absent = torch.from_numpy(~mask)
    k_eff = min(k, max(int(mask.sum()) - 1, 0))
    rows_out, cols_out, vals_out = [], [], []
    if k_eff > 0:
        block = max(1, (block_mb << 20) // (4 * max(n_items, 1)))
        present_rows = np.flatnonzero(mask)
        for start in range(0, len(present_rows), block):
            rows = present_rows[start : start + block]
            sim = unit_t[torch.from_numpy(rows)] @ unit_t.T  # (b, n_items)
            sim[:, absent] = float("-inf")
            sim[torch.arange(len(rows)), torch.from_numpy(rows)] = float("-inf")  # no self loops
            items, values = top_k_items(sim, k_eff)
            keep = items >= 0
            if weighting == "cosine":
                keep &= values > 0
            rows_out.append(np.broadcast_to(rows[:, None], items.shape)[keep])
            cols_out.append(items[keep])
            vals_out.append(values[keep] if weighting == "cosine" else np.ones(int(keep.sum()), dtype=np.float32))
    if not rows_out:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    graph = sp.csr_matrix(
        (np.concatenate(vals_out), (np.concatenate(rows_out), np.concatenate(cols_out))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )
    graph.sort_indices()
    return graph


def combine_graphs(graphs: Mapping[str, sp.csr_matrix], weights: Mapping[str, float] | None = None) -> sp.csr_matrix:
    """``sum_m a_m D_m^-1/2 S_m D_m^-1/2`` with ``a`` normalised to sum 1 (equal when ``weights`` is None)."""
    if not graphs:
        raise ModelError("no modality graph to combine")
    shares = modality_weights(list(graphs), weights)
    combined: sp.csr_matrix | None = None
    for name, share in shares.items():
        if share == 0:
            continue
        part = symmetric_normalize(graphs[name]) * share
        combined = part if combined is None else combined + part
    assert combined is not None
    result = sp.csr_matrix(combined, dtype=np.float32)
    result.sort_indices()
    return result


def graph_key(features: Any, modalities: Sequence[str], config: ItemGraphConfig) -> str:
    """sha256 over the config and each modality's fingerprint, matrix bytes, mask and the item ids."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"v": GRAPH_FORMAT_VERSION, **config.model_dump(mode="json")}, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(np.asarray(features.ids).astype(str)).tobytes())
    for name in modalities:
        modality = features.modalities[name]
        digest.update(name.encode() + b"\0" + str(modality.provenance.fingerprint).encode() + b"\0")
        digest.update(np.ascontiguousarray(modality.matrix, dtype=np.float32).tobytes())
        digest.update(np.ascontiguousarray(modality.present, dtype=bool).tobytes())
    return digest.hexdigest()


def build_item_graph(
    features: Any,
    modalities: Sequence[str] | None = None,
    config: ItemGraphConfig | None = None,
    cache_dir: str | Path | None = None,
) -> ItemGraph:
    """The combined item-item graph of ``modalities`` (default: all) of a FeatureSet, cached by provenance."""
    config = config or ItemGraphConfig()
    names = tuple(modalities) if modalities is not None else tuple(features.modalities)
    missing = [m for m in names if m not in features.modalities]
    if missing:
        raise ModelError(f"no {missing} features to build an item graph from (have {sorted(features.modalities)})")
    if config.modality_weights is not None:
        unknown = sorted(set(config.modality_weights) - set(names))
        if unknown:
            raise ModelError(f"modality_weights name {unknown}, which are not among the graph's modalities {list(names)}")
    key = graph_key(features, names, config)
    path = Path(cache_dir) / f"item_graph-{key[:24]}.npz" if cache_dir is not None else None
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as arrays:
            if str(arrays["key"]) == key:
                n_items = len(features.ids)
                matrix = sp.csr_matrix(
                    (arrays["data"], arrays["indices"], arrays["indptr"]), shape=(n_items, n_items)
                )
                return ItemGraph(matrix, names, key, from_cache=True)
    graphs = {
        name: knn_graph(
            features.modalities[name].matrix, features.modalities[name].present, config.k, config.weighting, config.block_mb
        )
        for name in names
    }
    matrix = combine_graphs(graphs, config.modality_weights)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        save = cast(Any, np.savez)
        save(tmp, key=np.asarray(key), data=matrix.data, indices=matrix.indices, indptr=matrix.indptr)
        os.replace(tmp, path)
    return ItemGraph(matrix, names, key)
