"""The contracts of the features stage: the Encoder protocol, FeatureSet and the extraction report.

An :class:`Encoder` turns a batch of one modality's payloads (texts, image paths, audio paths)
into a float32 ``(n, dim)`` matrix. It never touches the cache (``features.store`` does). Its
``fingerprint`` names everything that changes its output: model identity and version,
preprocessing, pooling, precision. A :class:`FeatureSet` holds, per modality, a float32
``(n_items, d)`` matrix aligned to the item IdMap (row i = item index i), a boolean present-mask
(a missing modality is ``False``, never a silent zero) and its provenance.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from fusionrec.errors import DataError

FEATURESET_FORMAT_VERSION = 1


@runtime_checkable
class Encoder(Protocol):
    """Turns payloads of one modality into vectors; stateless with respect to the cache."""

    modality: str
    dim: int

    @property
    def fingerprint(self) -> str:
        """Canonical JSON naming model identity, version, preprocessing and pooling."""
        ...

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """``(len(batch), dim)`` float32 vectors for ``batch``."""
        ...


@dataclass(frozen=True)
class EncoderSignature:
    """What the cache needs to know of an encoder without running it: fingerprint, dim and name."""

    fingerprint: str
    dim: int
    name: str


@dataclass
class EncodedBatch:
    """What a streaming encoder yields: vectors for some positions, failures for others.

    ``positions`` index into the payload list given to ``encode_stream``; ``vectors`` is
    ``(len(positions), dim)`` float32; ``failed`` holds ``(position, reason)`` pairs;
    ``keys`` (optional) are the content keys of what was actually encoded (images re-read in a
    worker); ``truncated`` counts inputs cut to the model's maximum length.
    """

    positions: np.ndarray
    vectors: np.ndarray
    failed: list[tuple[int, str]] = field(default_factory=list)
    keys: list[bytes] | None = None
    truncated: int = 0


def make_fingerprint(parts: Mapping[str, Any]) -> str:
    """Canonical (sorted-key, compact) JSON of ``parts``: equal settings give equal strings."""
    return json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint_digest(fingerprint: str) -> str:
    """Short stable hex digest of a fingerprint, used for folder names."""
    return hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()[:20]


def iter_batches(n: int, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive index ranges ``[0, b), [b, 2b), ...`` as int64 arrays."""
    for start in range(0, n, max(1, batch_size)):
        yield np.arange(start, min(n, start + batch_size), dtype=np.int64)


def default_encode_stream(
    encoder: Encoder, payloads: Sequence[Any], batch_size: int
) -> Iterator[EncodedBatch]:
    """Stream for encoders without their own pipeline: ``encode`` in consecutive batches."""
    for positions in iter_batches(len(payloads), batch_size):
        vectors = encoder.encode([payloads[i] for i in positions])
        yield EncodedBatch(positions=positions, vectors=np.asarray(vectors, dtype=np.float32))


class Provenance(BaseModel):
    """Where one modality's matrix came from."""

    model_config = ConfigDict(extra="forbid")

    encoder: str
    fingerprint: str
    created_at: str
    n_present: int = 0
    masked_reasons: dict[str, int] = {}
    extra: dict[str, Any] = {}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class ModalityFeatures:
    """One modality: ``matrix`` (n, d) float32, ``present`` (n,) bool, ``provenance``.

    Rows that are not present hold zeros; the mask, not the values, says they are missing.
    ``inputs`` (optional, text): the exact string each row's encoder was given (``""`` where
    masked), so a model can re-encode or fine-tune on the same texts; ``None`` when not recorded.
    """

    matrix: np.ndarray
    present: np.ndarray
    provenance: Provenance
    inputs: list[str] | None = None

    def __post_init__(self) -> None:
        self.matrix = np.ascontiguousarray(self.matrix, dtype=np.float32)
        self.present = np.ascontiguousarray(self.present, dtype=bool)
        if self.matrix.ndim != 2 or self.present.shape != (self.matrix.shape[0],):
            raise DataError(
                f"feature matrix {self.matrix.shape} and present-mask {self.present.shape} do not align"
            )
        if self.inputs is not None:
            self.inputs = [str(text) for text in self.inputs]
            if len(self.inputs) != self.matrix.shape[0]:
                raise DataError(f"{len(self.inputs)} recorded inputs for {self.matrix.shape[0]} feature rows")

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])


class _ModalityEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dim: int
    matrix_file: str
    present_file: str
    provenance: Provenance
    inputs_file: str | None = None  # JSON list of the encoder's input texts (absent in older sets)


class FeatureSetManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = FEATURESET_FORMAT_VERSION
    entity: str
    n: int
    modalities: dict[str, _ModalityEntry]


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
    os.replace(tmp, path)


@dataclass
class FeatureSet:
    """Per-modality feature matrices aligned to an IdMap (items by default).

    ``ids`` holds the external ids in index order (``IdMap.ids``), so row i of every matrix is
    index i. Saved as one ``.npy`` per matrix and mask plus ``manifest.json``; loads with
    ``allow_pickle=False``.
    """

    ids: np.ndarray
    modalities: dict[str, ModalityFeatures] = field(default_factory=dict)
    entity: str = "item"

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids).astype(str)
        for name, features in self.modalities.items():
            self._check(name, features)

    def _check(self, name: str, features: ModalityFeatures) -> None:
        if features.matrix.shape[0] != len(self.ids):
            raise DataError(
                f"modality {name!r} has {features.matrix.shape[0]} rows, expected {len(self.ids)}"
            )

    def __contains__(self, name: object) -> bool:
        return name in self.modalities

    def __getitem__(self, name: str) -> ModalityFeatures:
        if name not in self.modalities:
            raise KeyError(f"no {name!r} features (have {sorted(self.modalities)})")
        return self.modalities[name]

    @property
    def names(self) -> list[str]:
        return list(self.modalities)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, name: str, features: ModalityFeatures) -> None:
        """Add or replace one modality."""
        self._check(name, features)
        self.modalities[name] = features

    def matrices(self) -> dict[str, np.ndarray]:
        return {name: f.matrix for name, f in self.modalities.items()}

    def masks(self) -> dict[str, np.ndarray]:
        return {name: f.present for name, f in self.modalities.items()}

    def check_aligned(self, ids: Sequence[Any] | np.ndarray) -> None:
        """Raise DataError unless this set's rows are exactly ``ids`` in order (e.g. ``IdMap.ids``)."""
        expected = np.asarray(ids).astype(str)
        if len(expected) != len(self.ids) or not np.array_equal(expected, self.ids):
            raise DataError("feature set rows are not aligned to the given ids (re-extract features)")

    def save(self, directory: str | Path) -> Path:
        """Write ``ids.npy``, ``<name>.npy``, ``<name>.present.npy`` and ``manifest.json`` (last)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        _atomic_save_npy(out / "ids.npy", self.ids.astype(str))
        entries: dict[str, _ModalityEntry] = {}
        for name, features in self.modalities.items():
            safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
            _atomic_save_npy(out / f"{safe}.npy", features.matrix)
            _atomic_save_npy(out / f"{safe}.present.npy", features.present)
            inputs_file = None
            if features.inputs is not None:
                inputs_file = f"{safe}.inputs.json"
                tmp_inputs = out / f".{inputs_file}.{os.getpid()}.tmp"
                tmp_inputs.write_text(json.dumps(features.inputs, ensure_ascii=False), encoding="utf-8")
                os.replace(tmp_inputs, out / inputs_file)
            entries[name] = _ModalityEntry(
                dim=features.dim,
                matrix_file=f"{safe}.npy",
                present_file=f"{safe}.present.npy",
                provenance=features.provenance,
                inputs_file=inputs_file,
            )
        manifest = FeatureSetManifest(entity=self.entity, n=len(self.ids), modalities=entries)
        tmp = out / f".manifest.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(manifest.model_dump(mode="json"), indent=2))
        os.replace(tmp, out / "manifest.json")
        return out

    @classmethod
    def load(cls, directory: str | Path) -> FeatureSet:
        root = Path(directory)
        manifest_path = root / "manifest.json"
        if not manifest_path.exists():
            raise DataError("not a feature set directory (no manifest.json)", file=str(root))
        try:
            manifest = FeatureSetManifest.model_validate_json(manifest_path.read_text())
        except ValueError as exc:
            raise DataError(f"invalid feature set manifest: {exc}", file=str(manifest_path)) from exc
        if manifest.format_version != FEATURESET_FORMAT_VERSION:
            raise DataError(
                f"feature set format {manifest.format_version} is not supported", file=str(manifest_path)
            )
        ids = np.load(root / "ids.npy", allow_pickle=False)
        modalities = {
            name: ModalityFeatures(
                matrix=np.load(root / entry.matrix_file, allow_pickle=False),
                present=np.load(root / entry.present_file, allow_pickle=False),
                provenance=entry.provenance,
                inputs=_load_inputs(root / entry.inputs_file) if entry.inputs_file else None,
            )
            for name, entry in manifest.modalities.items()
        }
        return cls(ids=ids, modalities=modalities, entity=manifest.entity)


def _load_inputs(path: Path) -> list[str]:
    try:
        inputs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the recorded encoder inputs: {exc}", file=str(path)) from exc
    if not isinstance(inputs, list) or not all(isinstance(text, str) for text in inputs):
        raise DataError("recorded encoder inputs are not a JSON list of strings", file=str(path))
    return inputs


@dataclass
class MaskedItem:
    """An item whose modality could not be encoded, with the reason and detail (e.g. the path)."""

    item_id: str
    reason: str
    detail: str = ""


@dataclass
class ExtractionReport:
    """What one modality's extraction did: counts, masked items with reasons, timing."""

    modality: str
    encoder: str
    fingerprint: str
    n_items: int
    encoded: int = 0
    cached: int = 0
    masked: list[MaskedItem] = field(default_factory=list)
    truncated: int = 0
    encode_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def items_per_s(self) -> float:
        """Encoding throughput over the items actually encoded (not cache hits)."""
        return self.encoded / self.encode_seconds if self.encode_seconds > 0 else 0.0

    def reason_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.masked:
            counts[item.reason] = counts.get(item.reason, 0) + 1
        return counts
