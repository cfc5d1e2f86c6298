"""Orchestration: per modality, hash content, reuse cached vectors, encode the rest, build a FeatureSet.

For each item the content bytes (rendered text, image/audio file bytes) are hashed with the
encoder fingerprint; cached vectors are reused and only new or changed items are encoded, in
batches that are committed to the cache one by one (a killed run resumes after the last whole
batch). Items whose content is missing, empty or undecodable are masked and reported with why.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from fusionrec.config import StrictModel
from fusionrec.data.schema import Dataset
from fusionrec.errors import DataError
from fusionrec.features.audio import AudioEncoderConfig
from fusionrec.features.base import (
    EncodedBatch,
    Encoder,
    ExtractionReport,
    FeatureSet,
    MaskedItem,
    ModalityFeatures,
    Provenance,
    default_encode_stream,
    now_iso,
)
from fusionrec.features.image import ImageEncoderConfig
from fusionrec.features.runtime import plan_compute, torch_threads
from fusionrec.features.store import FeatureStore, content_key
from fusionrec.features.tabular import AttributesConfig
from fusionrec.features.text import TextEncoderConfig

log = logging.getLogger(__name__)

MODALITIES = ("text", "image", "audio", "attributes")
Modality = Literal["text", "image", "audio", "attributes"]


class RuntimeConfig(StrictModel):
    """Where and how wide to compute. ``None`` = resolved from the cores available."""

    device: str = "cpu"
    threads: int | None = Field(default=None, ge=1, description="torch/onnx threads in this process")
    workers: int | None = Field(default=None, ge=0, description="decoding worker processes (images, audio)")


class FeaturesConfig(StrictModel):
    """Everything ``extract_features`` needs besides the data (YAML section ``features``)."""

    text: TextEncoderConfig = TextEncoderConfig()
    image: ImageEncoderConfig = ImageEncoderConfig()
    audio: AudioEncoderConfig = AudioEncoderConfig()
    attributes: AttributesConfig = AttributesConfig()
    runtime: RuntimeConfig = RuntimeConfig()


@dataclass
class ExtractionResult:
    """The FeatureSet and, per modality, what extraction did."""

    features: FeatureSet
    reports: dict[str, ExtractionReport] = field(default_factory=dict)


@dataclass
class _Payloads:
    """Per item: the payload for the encoder, its content key, or why it is masked."""

    payloads: list[Any]
    keys: list[bytes | None]
    masked: dict[int, tuple[str, str]]


def _text_payloads(dataset: Dataset, config: TextEncoderConfig, fingerprint: str) -> _Payloads:
    from fusionrec.features.text import render_item_texts

    texts = render_item_texts(dataset, config.template)
    keys: list[bytes | None] = []
    masked: dict[int, tuple[str, str]] = {}
    for index, text in enumerate(texts):
        if not text.strip():
            masked[index] = ("empty text", "every template field is missing")
            keys.append(None)
        else:
            keys.append(content_key(text.encode("utf-8"), fingerprint))
    return _Payloads(payloads=list(texts), keys=keys, masked=masked)


def _file_payloads(dataset: Dataset, column: str | None, what: str, fingerprint: str) -> _Payloads:
    if column is None or column not in dataset.items.columns:
        raise DataError(f"the dataset declares no {what} column (item_columns.{what})")
    payloads: list[Any] = []
    keys: list[bytes | None] = []
    masked: dict[int, tuple[str, str]] = {}
    for index, value in enumerate(dataset.items[column].tolist()):
        if value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip():
            masked[index] = (f"no {what}", f"empty {column!r}")
            payloads.append("")
            keys.append(None)
            continue
        path = dataset.media_path(str(value))
        payloads.append(str(path))
        try:
            keys.append(content_key(path.read_bytes(), fingerprint))
        except FileNotFoundError:
            masked[index] = ("missing file", str(path))
            keys.append(None)
        except OSError as exc:
            masked[index] = ("unreadable file", f"{path}: {exc}")
            keys.append(None)
    return _Payloads(payloads=payloads, keys=keys, masked=masked)


def encode_with_cache(
    encoder: Encoder,
    item_ids: Sequence[str] | np.ndarray,
    prepared: _Payloads,
    store: FeatureStore,
    *,
    batch_size: int = 32,
    workers: int = 0,
    progress: bool = True,
) -> tuple[ModalityFeatures, ExtractionReport]:
    """Fill one modality's matrix from the cache and the encoder; commit each encoded batch."""
    started = time.perf_counter()
    n_items = len(item_ids)
    fingerprint = encoder.fingerprint
    name = getattr(encoder, "name", type(encoder).__name__)
    report = ExtractionReport(
        modality=encoder.modality, encoder=name, fingerprint=fingerprint, n_items=n_items
    )
    namespace = store.namespace(fingerprint, encoder.dim)
    matrix = np.zeros((n_items, encoder.dim), dtype=np.float32)
    present = np.zeros(n_items, dtype=bool)
    masked = dict(prepared.masked)

    valid = np.array([i for i in range(n_items) if prepared.keys[i] is not None], dtype=np.int64)
    rows = namespace.lookup([prepared.keys[i] for i in valid])  # type: ignore[misc]
    hit = rows >= 0
    matrix[valid[hit]] = namespace.vectors(rows[hit])
    present[valid[hit]] = True
    report.cached = int(hit.sum())
    pending = valid[~hit]
    sort_key: Callable[[Any], Any] | None = getattr(encoder, "sort_key", None)
    if sort_key is not None and len(pending):
        lengths = np.array([sort_key(prepared.payloads[i]) for i in pending])
        pending = pending[np.argsort(-lengths, kind="stable")]

    if len(pending):
        stream_fn = getattr(encoder, "encode_stream", None)
        payloads = [prepared.payloads[i] for i in pending]
        stream: Iterable[EncodedBatch] = (
            stream_fn(payloads, batch_size=batch_size, workers=workers)
            if stream_fn is not None
            else default_encode_stream(encoder, payloads, batch_size)
        )
        bar = _progress_bar(len(pending), encoder.modality, progress)
        encode_started = time.perf_counter()
        try:
            for batch in stream:
                items = pending[batch.positions]
                keys = batch.keys if batch.keys is not None else [prepared.keys[i] for i in items]
                namespace.put(keys, batch.vectors)  # type: ignore[arg-type]
                matrix[items] = batch.vectors
                present[items] = True
                report.encoded += len(items)
                report.truncated += batch.truncated
                for position, reason in batch.failed:
                    category, _, detail = reason.partition("\t")
                    masked[int(pending[position])] = (category, detail)
                bar.update(len(items) + len(batch.failed))
        finally:
            report.encode_seconds = time.perf_counter() - encode_started
            bar.close()
    if namespace.n_shards > 64:
        namespace.compact()

    report.masked = [
        MaskedItem(item_id=str(item_ids[i]), reason=reason, detail=detail)
        for i, (reason, detail) in sorted(masked.items())
    ]
    report.total_seconds = time.perf_counter() - started
    provenance = Provenance(
        encoder=name,
        fingerprint=fingerprint,
        created_at=now_iso(),
        n_present=int(present.sum()),
        masked_reasons=report.reason_counts(),
        extra={"truncated": report.truncated} if report.truncated else {},
    )
    return ModalityFeatures(matrix=matrix, present=present, provenance=provenance), report


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


def load_encoder(
    modality: str, config: FeaturesConfig, *, device: str, threads: int, model_dir: Path | None
) -> Encoder:
    """The configured encoder for one of text / image / audio."""
    if modality == "text":
        from fusionrec.features.text import load_text_encoder

        return load_text_encoder(config.text, device=device)
    if modality == "image":
        from fusionrec.features.image import load_image_encoder

        return load_image_encoder(config.image, device=device, threads=threads, model_dir=model_dir)
    if modality == "audio":
        from fusionrec.features.audio import load_audio_encoder

        return load_audio_encoder(config.audio, device=device, threads=threads)
    raise DataError(f"unknown modality {modality!r}; choose from {list(MODALITIES)}")


def extract_features(
    dataset: Dataset,
    modalities: Iterable[str] = ("text", "image"),
    cache_dir: str | Path | None = None,
    config: FeaturesConfig | None = None,
    progress: bool = True,
    encoders: Mapping[str, Encoder] | None = None,
) -> ExtractionResult:
    """Extract (or reuse from the cache) the features of ``dataset``'s items.

    Parameters
    ----------
    dataset : the catalog; rows of every matrix follow ``dataset.item_map``.
    modalities : any of ``text``, ``image``, ``audio``, ``attributes``.
    cache_dir : the content-addressed cache root (default ``$FUSIONREC_CACHE`` or
        ``~/.cache/fusionrec/features``); exported runtime models go to ``<cache_dir>/models``.
    config : encoders, templates, batch sizes, device, threads and workers.
    encoders : ready encoders by modality (skips loading; e.g. one reused across calls).

    Returns an :class:`ExtractionResult`: the FeatureSet and one ExtractionReport per modality.
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
        plan = plan_compute(
            runtime.device, runtime.threads, runtime.workers, uses_workers=modality in ("image", "audio")
        )
        log.info("%s: device=%s threads=%d workers=%d", modality, plan.device, plan.threads, plan.workers)
        with torch_threads(plan.threads):
            encoder = (encoders or {}).get(modality) or load_encoder(
                modality, config, device=plan.device, threads=plan.threads, model_dir=store.root / "models"
            )
            fingerprint = encoder.fingerprint
            if modality == "text":
                prepared = _text_payloads(dataset, config.text, fingerprint)
                batch_size = config.text.batch_size
            elif modality == "image":
                prepared = _file_payloads(dataset, dataset.item_columns.image, "image", fingerprint)
                batch_size = config.image.batch_size
            else:
                prepared = _file_payloads(dataset, dataset.item_columns.audio, "audio", fingerprint)
                batch_size = config.audio.batch_size
            features, report = encode_with_cache(
                encoder,
                dataset.item_map.ids,
                prepared,
                store,
                batch_size=batch_size,
                workers=plan.workers,
                progress=progress,
            )
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
