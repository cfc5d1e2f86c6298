"""Orchestration: per modality, plan -> encode -> commit, then a FeatureSet.

The three steps are separate so that encoding can run elsewhere (e.g. Ray workers):

- :func:`plan`: hash every item's content (rendered text, image/audio file bytes) with the
  encoder fingerprint, look the keys up in the content-addressed store, and return a
  serialisable :class:`ExtractionPlan`: batches of ``(item index, content key, content)`` to
  encode and the masked items (missing, empty or unreadable content) with why. Only the
  encoder's fingerprint is needed, read from its files where possible
  (:class:`EncoderHandle`), so a fully cached run loads no model and imports no torch.
- :func:`encode`: a pure function from one :class:`PlanBatch` to an :class:`EncodedResult`
  (vectors, plus the items that failed to decode); the encoder is loaded once per process by
  its :class:`EncoderHandle`. :func:`encode_all` streams many batches through one decoding
  pipeline (DataLoader workers for images and audio).
- :func:`commit`: write each result to the store as it arrives (a killed run resumes after the
  last whole batch), take the rest from the cache, and assemble the modality's features and
  :class:`~fusionrec.features.base.ExtractionReport`.

:func:`extract_features` runs the three locally.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fusionrec.data.schema import Dataset
from fusionrec.errors import DataError, ModelError
from fusionrec.features.base import (
    EncodedBatch,
    Encoder,
    EncoderSignature,
    ExtractionReport,
    FeatureSet,
    MaskedItem,
    ModalityFeatures,
    Provenance,
    default_encode_stream,
    now_iso,
)
from fusionrec.features.config import (
    AttributesConfig,
    AudioEncoderConfig,
    FeaturesConfig,
    ImageEncoderConfig,
    RuntimeConfig,
    TextEncoderConfig,
)
from fusionrec.features.runtime import plan_compute, torch_threads
from fusionrec.features.store import FeatureStore, content_key

log = logging.getLogger(__name__)

MODALITIES = ("text", "image", "audio", "attributes")
ENCODED_MODALITIES = ("text", "image", "audio")
Modality = Literal["text", "image", "audio", "attributes"]

__all__ = [
    "MODALITIES",
    "AttributesConfig",
    "AudioEncoderConfig",
    "EncodedResult",
    "EncoderHandle",
    "ExtractionPlan",
    "ExtractionResult",
    "FeaturesConfig",
    "ImageEncoderConfig",
    "PlanBatch",
    "RuntimeConfig",
    "TextEncoderConfig",
    "commit",
    "encode",
    "encode_all",
    "extract_features",
    "load_encoder",
    "plan",
]


@dataclass
class ExtractionResult:
    """The FeatureSet and, per modality, what extraction did."""

    features: FeatureSet
    reports: dict[str, ExtractionReport] = field(default_factory=dict)


def load_encoder(
    modality: str, config: FeaturesConfig, *, device: str, threads: int, model_dir: Path | None
) -> Encoder:
    """The configured encoder for one of text / image / audio (loads the model)."""
    if modality == "text":
        from fusionrec.features.text import load_text_encoder

        return load_text_encoder(config.text, device=device)
    if modality == "image":
        from fusionrec.features.image import load_image_encoder

        return load_image_encoder(config.image, device=device, threads=threads, model_dir=model_dir)
    if modality == "audio":
        from fusionrec.features.audio import load_audio_encoder

        return load_audio_encoder(config.audio, device=device, threads=threads)
    raise DataError(f"unknown modality {modality!r}; choose from {list(ENCODED_MODALITIES)}")


def _static_signature(modality: str, config: FeaturesConfig) -> EncoderSignature | None:
    """The encoder's signature from its files (no model load, no torch), where that is known."""
    if modality == "text":
        from fusionrec.features.text import text_encoder_signature

        return text_encoder_signature(config.text)
    if modality == "image":
        from fusionrec.features.image_pipeline import image_encoder_signature

        return image_encoder_signature(config.image)
    return None


def _signature_of(encoder: Encoder) -> EncoderSignature:
    return EncoderSignature(
        fingerprint=encoder.fingerprint,
        dim=int(encoder.dim),
        name=getattr(encoder, "name", type(encoder).__name__),
    )


class EncoderHandle:
    """One modality's encoder, built from the config and loaded at most once, on first use.

    ``signature`` (fingerprint, dim, name) is read from the model files when possible, so
    :func:`plan` never loads the model; ``encoder`` loads it (once per process) for :func:`encode`.
    Picklable: a copy sent to a worker process carries the settings, not the loaded model, and
    loads it there once.
    """

    def __init__(
        self,
        modality: str,
        config: FeaturesConfig | None = None,
        *,
        device: str = "cpu",
        threads: int = 1,
        model_dir: str | Path | None = None,
    ) -> None:
        if modality not in ENCODED_MODALITIES:
            raise DataError(f"unknown modality {modality!r}; choose from {list(ENCODED_MODALITIES)}")
        self.modality = modality
        self.config = config or FeaturesConfig()
        self.device = device
        self.threads = threads
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self._encoder: Encoder | None = None
        self._given = False
        self._signature: EncoderSignature | None = None

    @classmethod
    def from_encoder(cls, encoder: Encoder, config: FeaturesConfig | None = None) -> EncoderHandle:
        """A handle around an already loaded encoder."""
        handle = cls(encoder.modality, config)
        handle._encoder, handle._given = encoder, True
        handle._signature = _signature_of(encoder)
        return handle

    @property
    def loaded(self) -> bool:
        return self._encoder is not None

    @property
    def knows_signature(self) -> bool:
        """Whether :attr:`signature` is known without loading the model."""
        if self._signature is None:
            self._signature = _static_signature(self.modality, self.config)
        return self._signature is not None

    @property
    def signature(self) -> EncoderSignature:
        """Fingerprint, dim and name; loads the model only when its files do not tell."""
        if self._signature is None:
            self._signature = _static_signature(self.modality, self.config) or _signature_of(self.encoder)
        return self._signature

    @property
    def encoder(self) -> Encoder:
        """The loaded encoder (loaded on first access, then reused)."""
        if self._encoder is None:
            encoder = load_encoder(
                self.modality, self.config, device=self.device, threads=self.threads, model_dir=self.model_dir
            )
            if self._signature is not None and encoder.fingerprint != self._signature.fingerprint:
                raise ModelError(
                    f"the {self.modality} encoder's fingerprint differs from the one read from its files "
                    "(cache keys would not match what is encoded); please report this"
                )
            self._encoder = encoder
        return self._encoder

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if not self._given:
            state["_encoder"] = None  # each process loads its own copy
        return state


@dataclass
class PlanBatch:
    """One unit of encoding work: parallel lists of item index, content key (hex) and content.

    ``contents`` are what the encoder reads: the rendered text, or the media file's path.
    """

    index: int
    items: list[int]
    keys: list[str]
    contents: list[str]

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class ExtractionPlan:
    """What one modality's extraction will do; plain data (``to_json`` / ``from_json``).

    ``keys[i]`` is item i's content key (hex), ``None`` where it is masked; ``masked`` holds
    ``(item index, reason, detail)``; ``n_cached`` items were found in the store; ``inputs``
    (text only) is every item's rendered text, ``""`` where masked, recorded in the FeatureSet.
    """

    modality: str
    encoder: str
    fingerprint: str
    dim: int
    item_ids: list[str]
    keys: list[str | None]
    batches: list[PlanBatch]
    masked: list[tuple[int, str, str]]
    n_cached: int
    seconds: float = 0.0
    inputs: list[str] | None = None

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_pending(self) -> int:
        return sum(len(batch) for batch in self.batches)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ExtractionPlan:
        data = json.loads(text)
        data["batches"] = [PlanBatch(**batch) for batch in data["batches"]]
        data["masked"] = [tuple(entry) for entry in data["masked"]]
        return cls(**data)


@dataclass
class EncodedResult:
    """The output of :func:`encode` for one batch: vectors for ``items``, failures for others.

    ``keys`` are the content keys (hex) of what was actually encoded (a media file re-read by a
    decoding worker is re-hashed); ``failed`` holds ``(item index, reason, detail)``.
    """

    batch: int
    items: list[int]
    keys: list[str]
    vectors: np.ndarray
    failed: list[tuple[int, str, str]] = field(default_factory=list)
    truncated: int = 0


def _text_contents(
    dataset: Dataset, config: TextEncoderConfig, fingerprint: str
) -> tuple[list[str], list[str | None], list[tuple[int, str, str]]]:
    from fusionrec.features.text import render_item_texts

    texts = render_item_texts(dataset, config.template)
    keys: list[str | None] = []
    masked: list[tuple[int, str, str]] = []
    for index, text in enumerate(texts):
        if not text.strip():
            masked.append((index, "empty text", "every template field is missing"))
            keys.append(None)
        else:
            keys.append(content_key(text.encode("utf-8"), fingerprint).hex())
    return list(texts), keys, masked


def _file_contents(
    dataset: Dataset, column: str | None, what: str, fingerprint: str
) -> tuple[list[str], list[str | None], list[tuple[int, str, str]]]:
    if column is None or column not in dataset.items.columns:
        raise DataError(f"the dataset declares no {what} column (item_columns.{what})")
    contents: list[str] = []
    keys: list[str | None] = []
    masked: list[tuple[int, str, str]] = []
    for index, value in enumerate(dataset.items[column].tolist()):
        if value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip():
            masked.append((index, f"no {what}", f"empty {column!r}"))
            contents.append("")
            keys.append(None)
            continue
        path = dataset.media_path(str(value))
        contents.append(str(path))
        try:
            keys.append(content_key(path.read_bytes(), fingerprint).hex())
        except FileNotFoundError:
            masked.append((index, "missing file", str(path)))
            keys.append(None)
        except OSError as exc:
            masked.append((index, "unreadable file", f"{path}: {exc}"))
            keys.append(None)
    return contents, keys, masked


def _batch_size(modality: str, config: FeaturesConfig) -> int:
    section: TextEncoderConfig | ImageEncoderConfig | AudioEncoderConfig = getattr(config, modality)
    return int(section.batch_size)


def plan(
    dataset: Dataset,
    modality: str,
    handle: EncoderHandle,
    store: FeatureStore,
    config: FeaturesConfig | None = None,
    *,
    batch_size: int | None = None,
) -> ExtractionPlan:
    """Which of ``dataset``'s items need encoding for ``modality``, by content key against ``store``.

    Returns the items to encode in batches of ``batch_size`` (default: the modality's configured
    batch size; texts longest first, so a batch pads to similar lengths), the masked items with
    why, and how many were cached. Loads no model where the encoder's files tell its fingerprint.
    """
    started = time.perf_counter()
    config = config or handle.config
    if modality not in ENCODED_MODALITIES:
        raise DataError(f"unknown modality {modality!r}; choose from {list(ENCODED_MODALITIES)}")
    signature = handle.signature
    if modality == "text":
        contents, keys, masked = _text_contents(dataset, config.text, signature.fingerprint)
    else:
        column = dataset.item_columns.image if modality == "image" else dataset.item_columns.audio
        contents, keys, masked = _file_contents(dataset, column, modality, signature.fingerprint)
    namespace = store.namespace(signature.fingerprint, signature.dim)
    valid = np.array([i for i, key in enumerate(keys) if key is not None], dtype=np.int64)
    rows = namespace.lookup([bytes.fromhex(keys[i]) for i in valid])  # type: ignore[arg-type]
    pending = valid[rows < 0]
    if len(pending):
        sort_key = getattr(handle.encoder, "sort_key", None) if handle.loaded else None
        if sort_key is None and modality == "text":
            sort_key = len
        if sort_key is not None:
            lengths = np.array([sort_key(contents[i]) for i in pending])
            pending = pending[np.argsort(-lengths, kind="stable")]
    size = max(1, batch_size or _batch_size(modality, config))
    batches = [
        PlanBatch(
            index=number,
            items=[int(i) for i in chunk],
            keys=[keys[i] for i in chunk],  # type: ignore[misc]
            contents=[contents[i] for i in chunk],
        )
        for number, chunk in enumerate(
            pending[start : start + size] for start in range(0, len(pending), size)
        )
    ]
    return ExtractionPlan(
        modality=modality,
        encoder=signature.name,
        fingerprint=signature.fingerprint,
        dim=signature.dim,
        item_ids=[str(i) for i in dataset.item_map.ids],
        keys=keys,
        batches=batches,
        masked=masked,
        n_cached=int((rows >= 0).sum()),
        seconds=time.perf_counter() - started,
        inputs=contents if modality == "text" else None,
    )


def _split_reason(reason: str) -> tuple[str, str]:
    category, _, detail = reason.partition("\t")
    return category, detail


def _result(batch: PlanBatch, encoded: Sequence[EncodedBatch], dim: int) -> EncodedResult:
    """Gather a stream's output (positions into ``batch``) into one :class:`EncodedResult`."""
    positions = [int(p) for part in encoded for p in part.positions]
    vectors = (
        np.concatenate([np.asarray(part.vectors, dtype=np.float32) for part in encoded])
        if encoded
        else np.zeros((0, dim), np.float32)
    )
    keys: list[str] = []
    for part in encoded:
        if part.keys is not None:
            keys.extend(k.hex() for k in part.keys)
        else:
            keys.extend(batch.keys[int(p)] for p in part.positions)
    failed = [(batch.items[p], *_split_reason(reason)) for part in encoded for p, reason in part.failed]
    return EncodedResult(
        batch=batch.index,
        items=[batch.items[p] for p in positions],
        keys=keys,
        vectors=vectors.reshape(len(positions), dim),
        failed=failed,
        truncated=sum(part.truncated for part in encoded),
    )


def _stream(
    encoder: Encoder, contents: Sequence[str], batch_size: int, workers: int
) -> Iterable[EncodedBatch]:
    stream_fn = getattr(encoder, "encode_stream", None)
    if stream_fn is not None:
        return stream_fn(contents, batch_size=batch_size, workers=workers)  # type: ignore[no-any-return]
    return default_encode_stream(encoder, contents, batch_size)


def encode(handle: EncoderHandle, batch: PlanBatch, *, workers: int = 0) -> EncodedResult:
    """Vectors for one planned batch (the encoder is loaded once per process by ``handle``)."""
    encoder = handle.encoder
    parts = list(_stream(encoder, batch.contents, max(1, len(batch)), workers))
    return _result(batch, parts, int(encoder.dim))


def encode_all(
    handle: EncoderHandle, batches: Sequence[PlanBatch], *, workers: int = 0
) -> Iterator[EncodedResult]:
    """:func:`encode` of each batch, in order; images and audio go through one decoding pipeline.

    Media files are decoded by ``workers`` DataLoader processes started once for all batches
    (overlapping decoding and inference); a result is yielded as soon as its batch is complete.
    """
    if not batches:
        return
    if handle.modality == "text" or len(batches) == 1:
        for batch in batches:
            yield encode(handle, batch, workers=workers)
        return
    encoder = handle.encoder
    contents = [content for batch in batches for content in batch.contents]
    owner = np.concatenate(
        [np.full(len(batch), number, dtype=np.int64) for number, batch in enumerate(batches)]
    )
    offsets = np.concatenate([[0], np.cumsum([len(batch) for batch in batches])])
    parts: dict[int, list[EncodedBatch]] = {number: [] for number in range(len(batches))}
    remaining = {number: len(batch) for number, batch in enumerate(batches)}
    size = max(len(batch) for batch in batches)
    next_out = 0
    for part in _stream(encoder, contents, size, workers):
        positions = np.asarray(part.positions, dtype=np.int64)
        failed_positions = np.array([p for p, _ in part.failed], dtype=np.int64)
        first = int(owner[positions[0]]) if len(positions) else -1
        for number in np.unique(np.concatenate([owner[positions], owner[failed_positions]])):
            mine = owner[positions] == number
            local = EncodedBatch(
                positions=positions[mine] - offsets[number],
                vectors=np.asarray(part.vectors)[mine],
                failed=[(p - int(offsets[number]), r) for p, r in part.failed if owner[p] == number],
                keys=[k for k, m in zip(part.keys, mine, strict=True) if m]
                if part.keys is not None
                else None,
                truncated=part.truncated if number == first else 0,  # text only: never split
            )
            parts[int(number)].append(local)
            remaining[int(number)] -= int(mine.sum()) + len(local.failed)
        while next_out < len(batches) and remaining[next_out] == 0:
            yield _result(batches[next_out], parts.pop(next_out), int(encoder.dim))
            next_out += 1
    while next_out < len(batches):  # a stream that dropped items: report what came back
        yield _result(batches[next_out], parts.pop(next_out), int(encoder.dim))
        next_out += 1


def commit(
    extraction_plan: ExtractionPlan,
    results: Iterable[EncodedResult],
    store: FeatureStore,
    *,
    progress: bool = False,
) -> tuple[ModalityFeatures, ExtractionReport]:
    """Write each result to the store as it arrives, take the rest from the cache, assemble the features.

    ``results`` may come in any order (and lazily: encoding time is counted while iterating).
    Planned items with no result are looked up in the store (e.g. committed by an earlier run);
    a DataError names them when they are not there either.
    """
    started = time.perf_counter()
    p = extraction_plan
    report = ExtractionReport(
        modality=p.modality, encoder=p.encoder, fingerprint=p.fingerprint, n_items=p.n_items
    )
    namespace = store.namespace(p.fingerprint, p.dim)
    matrix = np.zeros((p.n_items, p.dim), dtype=np.float32)
    present = np.zeros(p.n_items, dtype=bool)
    masked = {index: (reason, detail) for index, reason, detail in p.masked}
    done: set[int] = set()
    if p.n_pending:
        bar = _progress_bar(p.n_pending, p.modality, progress)
        encode_started = time.perf_counter()
        try:
            for result in results:
                if len(result.items):
                    namespace.put([bytes.fromhex(k) for k in result.keys], result.vectors)
                    matrix[result.items] = result.vectors
                    present[result.items] = True
                report.encoded += len(result.items)
                report.truncated += result.truncated
                for item, reason, detail in result.failed:
                    masked[int(item)] = (reason, detail)
                done.update(result.items)
                done.update(int(item) for item, _, _ in result.failed)
                bar.update(len(result.items) + len(result.failed))
        finally:
            report.encode_seconds = time.perf_counter() - encode_started
            bar.close()
    rest = np.array(
        [i for i, key in enumerate(p.keys) if key is not None and i not in done and i not in masked],
        dtype=np.int64,
    )
    rows = namespace.lookup([bytes.fromhex(p.keys[i]) for i in rest])  # type: ignore[arg-type]
    if (rows < 0).any():
        missing = [p.item_ids[i] for i in rest[rows < 0][:5]]
        raise DataError(
            f"{int((rows < 0).sum())} planned {p.modality} item(s) were neither encoded nor cached "
            f"(e.g. {missing}); encode every planned batch before committing"
        )
    matrix[rest] = namespace.vectors(rows)
    present[rest] = True
    report.cached = len(rest)  # found at planning, or committed since (e.g. by an earlier run)
    if namespace.n_shards > 64:
        namespace.compact()
    report.masked = [
        MaskedItem(item_id=p.item_ids[i], reason=reason, detail=detail)
        for i, (reason, detail) in sorted(masked.items())
    ]
    report.total_seconds = p.seconds + time.perf_counter() - started
    provenance = Provenance(
        encoder=p.encoder,
        fingerprint=p.fingerprint,
        created_at=now_iso(),
        n_present=int(present.sum()),
        masked_reasons=report.reason_counts(),
        extra={"truncated": report.truncated} if report.truncated else {},
    )
    features = ModalityFeatures(matrix=matrix, present=present, provenance=provenance, inputs=p.inputs)
    return features, report


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, modality: str, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"encoding {modality}", unit="item", smoothing=0.1)


def extract_features(
    dataset: Dataset,
    modalities: Iterable[str] = ("text", "image"),
    cache_dir: str | Path | None = None,
    config: FeaturesConfig | None = None,
    progress: bool = True,
    encoders: Mapping[str, Encoder] | None = None,
) -> ExtractionResult:
    """Extract (or reuse from the cache) the features of ``dataset``'s items: plan -> encode -> commit.

    Parameters
    ----------
    dataset : the catalog; rows of every matrix follow ``dataset.item_map``.
    modalities : any of ``text``, ``image``, ``audio``, ``attributes``.
    cache_dir : the content-addressed cache root (default ``$FUSIONREC_CACHE`` or
        ``~/.cache/fusionrec/features``); exported runtime models go to ``<cache_dir>/models``.
    config : encoders, templates, batch sizes, device, threads and workers.
    encoders : ready encoders by modality (skips loading; e.g. one reused across calls).

    Returns an :class:`ExtractionResult`: the FeatureSet and one ExtractionReport per modality.
    A modality whose items are all cached loads no model (where the encoder's files tell its
    fingerprint: the default text and image encoders and Hugging Face text folders).
    """
    config = config or FeaturesConfig()
    store = FeatureStore(cache_dir)
    result = ExtractionResult(features=FeatureSet(ids=dataset.item_map.ids))
    for modality in modalities:
        if modality not in MODALITIES:
            raise DataError(f"unknown modality {modality!r}; choose from {list(MODALITIES)}")
        if modality == "attributes":
            features, report = _extract_attributes(dataset, config.attributes)
            result.features.add(modality, features)
            result.reports[modality] = report
            continue
        runtime = config.runtime
        compute = plan_compute(
            runtime.device, runtime.threads, runtime.workers, uses_workers=modality in ("image", "audio")
        )
        log.info(
            "%s: device=%s threads=%d workers=%d", modality, compute.device, compute.threads, compute.workers
        )
        given = (encoders or {}).get(modality)
        handle = (
            EncoderHandle.from_encoder(given, config)
            if given is not None
            else EncoderHandle(
                modality,
                config,
                device=compute.device,
                threads=compute.threads,
                model_dir=store.root / "models",
            )
        )
        if handle.knows_signature:
            work = plan(dataset, modality, handle, store, config)
        else:
            with torch_threads(compute.threads):  # loading the model tells its fingerprint
                work = plan(dataset, modality, handle, store, config)
        if work.batches:
            with torch_threads(compute.threads):
                handle.encoder  # noqa: B018  (load before encoding: items/s counts encoding only)
                results = encode_all(handle, work.batches, workers=compute.workers)
                features, report = commit(work, results, store, progress=progress)
        else:
            features, report = commit(work, [], store, progress=progress)
        result.features.add(modality, features)
        result.reports[modality] = report
    return result


def _extract_attributes(
    dataset: Dataset, config: AttributesConfig
) -> tuple[ModalityFeatures, ExtractionReport]:
    from fusionrec.features.tabular import encode_item_attributes

    started = time.perf_counter()
    encoded = encode_item_attributes(dataset, config)
    present = encoded.present
    report = ExtractionReport(
        modality="attributes",
        encoder="tabular",
        fingerprint=encoded.fingerprint,
        n_items=dataset.n_items,
        encoded=int(present.sum()),
        masked=[
            MaskedItem(item_id=str(item), reason="no attributes") for item in dataset.item_map.ids[~present]
        ],
    )
    report.encode_seconds = report.total_seconds = time.perf_counter() - started
    provenance = Provenance(
        encoder="tabular",
        fingerprint=encoded.fingerprint,
        created_at=now_iso(),
        n_present=int(present.sum()),
        masked_reasons=report.reason_counts(),
        extra={"columns": encoded.feature_names[:2000]},
    )
    return ModalityFeatures(matrix=encoded.matrix, present=present, provenance=provenance), report
