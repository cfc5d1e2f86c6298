"""ModelBundle: the one artifact a fitted model travels as (CLI now, the server later).

A bundle directory holds

- ``bundle.json``: format version, model name, the ids' and seen matrix's shapes, the provenance
  of the data split (path, a hash of the training interactions) and of every feature modality the
  model used (encoder, fingerprint, dimension);
- ``model/``: the Recommender's own ``model.json`` + ``weights.npz`` (a content-aware model
  stores there what it needs from the features, so no feature directory is needed to serve it);
- ``ids.npz``: user and item ids in index order;
- ``seen.npz``: the items never to recommend again to each user (the training matrix), stored
  once: a model that keeps its training matrix (``uses_history``) shares it instead.

Everything loads with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import scipy.sparse as sp

from fusionrec.data.schema import IdMap, Interactions
from fusionrec.errors import ModelError
from fusionrec.models.base import Recommender, as_csr, csr_from_state, csr_to_state, read_versioned_json

if TYPE_CHECKING:
    from fusionrec.data.splits import Split

BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT_VERSION = 1
MODEL_SUBDIR = "model"
IDS_FILE = "ids.npz"
SEEN_FILE = "seen.npz"
SEEN_IN_MODEL = "model-history"


def interactions_digest(train: Interactions | sp.csr_matrix) -> str:
    """sha256 of the training matrix's structure: two splits with the same digest trained the same data."""
    matrix = as_csr(train)
    digest = hashlib.sha256()
    digest.update(np.asarray(matrix.shape, dtype=np.int64).tobytes())
    digest.update(matrix.indptr.astype(np.int64).tobytes())
    digest.update(matrix.indices.astype(np.int64).tobytes())
    return digest.hexdigest()


def feature_provenance(features: Any | None) -> dict[str, dict[str, Any]]:
    """``modality -> {encoder, fingerprint, dim, n_present}`` of a FeatureSet (empty for None)."""
    if features is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, modality in features.modalities.items():
        out[name] = {
            "encoder": modality.provenance.encoder,
            "fingerprint": modality.provenance.fingerprint,
            "dim": int(modality.matrix.shape[1]),
            "n_present": int(np.asarray(modality.present).sum()),
        }
    return out


@dataclass
class ModelBundle:
    """A fitted model with the id maps, the seen-items matrix and where its inputs came from."""

    model: Recommender
    user_ids: np.ndarray  # (n_users,) str, index order
    item_ids: np.ndarray  # (n_items,) str, index order
    seen: sp.csr_matrix  # (n_users, n_items) binary: never recommend these again
    split: dict[str, Any] = field(default_factory=dict)
    features: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.user_ids = np.asarray(self.user_ids).astype(str)
        self.item_ids = np.asarray(self.item_ids).astype(str)
        if not (isinstance(self.seen, sp.csr_matrix) and self.seen.dtype == np.float32):
            self.seen = as_csr(self.seen)  # one copy in memory when the model already holds it
        shape = (len(self.user_ids), len(self.item_ids))
        if (self.model.n_users, self.model.n_items) != shape or self.seen.shape != shape:
            raise ModelError(
                f"bundle parts disagree: model {self.model.n_users} x {self.model.n_items}, "
                f"ids {shape[0]} x {shape[1]}, seen {self.seen.shape[0]} x {self.seen.shape[1]}"
            )

    # ------------------------------------------------------------------ building
    @classmethod
    def from_split(cls, model: Recommender, split: Split, features: Any | None = None) -> ModelBundle:
        """Bundle a model fitted on ``split.train`` (with ``features`` if it used any)."""
        train = split.csr("train")
        return cls(
            model=model,
            user_ids=split.user_map.ids,
            item_ids=split.item_map.ids,
            seen=train,
            split={
                "path": str(split.info.get("path", "")),
                "train_digest": interactions_digest(train),
                "n_train": int(train.nnz),
                "strategy": str(split.info.get("strategy", "")),
            },
            features=feature_provenance(features) if model.uses_features or model.maps_cold_items else {},
        )

    @property
    def user_map(self) -> IdMap:
        return IdMap(self.user_ids)

    @property
    def item_map(self) -> IdMap:
        return IdMap(self.item_ids)

    @property
    def name(self) -> str:
        return self.model.name

    # ------------------------------------------------------------------ checks
    def check_split(self, split: Split) -> None:
        """Raise unless ``split`` has this bundle's users and items in the same index order."""
        if (split.n_users, split.n_items) != (len(self.user_ids), len(self.item_ids)):
            raise ModelError(
                f"the model was trained on {len(self.user_ids)} users x {len(self.item_ids)} items, "
                f"the split has {split.n_users} x {split.n_items}"
            )
        if not np.array_equal(split.user_map.ids.astype(str), self.user_ids) or not np.array_equal(
            split.item_map.ids.astype(str), self.item_ids
        ):
            raise ModelError("the model was trained with different user/item ids than this split")

    def check_features(self, features: Any) -> None:
        """Raise unless ``features`` offer every modality the model used, with the same encoder fingerprint."""
        offered = feature_provenance(features)
        for name, used in self.features.items():
            if name not in offered:
                raise ModelError(f"the model used {name!r} features; the feature set offered has {sorted(offered)}")
            if offered[name]["fingerprint"] != used["fingerprint"]:
                raise ModelError(
                    f"{name!r} features were made by a different encoder than the model was trained with: "
                    f"fingerprint {offered[name]['fingerprint'][:12]}… ({offered[name]['encoder']}) vs "
                    f"{used['fingerprint'][:12]}… ({used['encoder']}); re-extract with the model's encoder or retrain"
                )
        if features is not None and len(features.ids) == len(self.item_ids):
            ids = np.asarray(features.ids).astype(str)
            if not np.array_equal(ids, self.item_ids):
                raise ModelError("the feature set's rows are not in the model's item order")

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save(out / MODEL_SUBDIR)
        save_arrays = cast(Any, np.savez)
        save_arrays(out / IDS_FILE, user_ids=self.user_ids, item_ids=self.item_ids)
        shared = self.model.uses_history and _same_matrix(self.model.train_matrix, self.seen)
        if shared:
            (out / SEEN_FILE).unlink(missing_ok=True)
        else:
            save_arrays(out / SEEN_FILE, **csr_to_state("seen", self.seen))
        meta = {
            "format_version": BUNDLE_FORMAT_VERSION,
            "model": self.model.name,
            "n_users": len(self.user_ids),
            "n_items": len(self.item_ids),
            "seen": SEEN_IN_MODEL if shared else SEEN_FILE,
            "split": self.split,
            "features": self.features,
        }
        tmp = out / f".{BUNDLE_FILE}.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.replace(out / BUNDLE_FILE)  # written last: a bundle.json means a complete bundle
        return out

    @classmethod
    def load(cls, directory: str | Path, features: Any | None = None) -> ModelBundle:
        """Load a bundle; with ``features``, check they match what the model was trained with."""
        from fusionrec.models.registry import get_model_class

        root = Path(directory)
        meta = read_bundle_meta(root)
        model = get_model_class(str(meta["model"])).load(root / MODEL_SUBDIR)
        with np.load(root / IDS_FILE, allow_pickle=False) as ids:
            user_ids, item_ids = ids["user_ids"], ids["item_ids"]
        if meta.get("seen") == SEEN_IN_MODEL:
            seen = model.train_matrix
        else:
            with np.load(root / SEEN_FILE, allow_pickle=False) as arrays:
                seen = csr_from_state("seen", {k: arrays[k] for k in arrays.files})
        bundle = cls(model, user_ids, item_ids, seen, split=meta.get("split", {}), features=meta.get("features", {}))
        if features is not None:
            bundle.check_features(features)
        return bundle


def read_bundle_meta(directory: str | Path) -> dict[str, Any]:
    missing = f"{directory} is not a fusionrec model bundle (no {BUNDLE_FILE}); write one with `fusionrec train`"
    return read_versioned_json(Path(directory) / BUNDLE_FILE, BUNDLE_FORMAT_VERSION, missing)


def _same_matrix(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    return bool(
        a.shape == b.shape
        and a.nnz == b.nnz
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
    )
