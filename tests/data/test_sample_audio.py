"""The sample's audio clips: files the loader reads, a sound that depends on the genre, a few gaps."""

from __future__ import annotations

import logging
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data import sample as sample_module
from fusionrec.data.loaders import LoaderOptions, load_source
from fusionrec.data.sample import GENRE_SOUNDS, SAMPLE_MAPPING, SAMPLE_RATE, write_sample


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as handle:
        assert (handle.getnchannels(), handle.getsampwidth(), handle.getframerate()) == (1, 2, SAMPLE_RATE)
        return np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2") / 32768.0


def _items(directory: Path) -> pd.DataFrame:
    return pd.read_csv(directory / "items.csv", keep_default_na=False)


def test_clips_are_short_16k_mono_wavs_with_a_few_missing(tmp_path: Path) -> None:
    out = write_sample(tmp_path, n_users=50, n_items=120, seed=1, with_images=False)
    items = _items(out)
    has = items["audio"] != ""
    assert 0 < (~has).sum() < 0.15 * len(items)
    durations = [len(_read(out / cell)) / SAMPLE_RATE for cell in items.loc[has, "audio"]]
    assert min(durations) >= 1.0 and max(durations) <= 1.5
    dataset, _ = load_source("tabular", out, LoaderOptions(name="sample", tabular=SAMPLE_MAPPING))
    assert dataset.item_columns.audio == "audio"
    assert dataset.media_path(str(dataset.items["audio"].iloc[int(np.flatnonzero(has)[0])])).exists()


def test_the_sound_depends_on_the_primary_genre(tmp_path: Path) -> None:
    """Each clip's loudest frequency is (within a semitone) a note of its own genre's chord."""
    out = write_sample(tmp_path, n_users=50, n_items=90, seed=2, with_images=False)
    items = _items(out)
    items = items[items["audio"] != ""]
    peaks = []
    for cell in items["audio"]:
        samples = _read(out / cell)
        peaks.append(np.argmax(np.abs(np.fft.rfft(samples))) * SAMPLE_RATE / len(samples))
    # the primary genre is the one whose words fill the description (5 of its words vs 2 of another)
    def primary_genre(description: str) -> str:
        counts = {g: sum(description.count(w) for w in words) for g, (_, words) in sample_module.GENRES.items()}
        return max(counts, key=lambda g: counts[g])

    primary = [primary_genre(d) for d in items["description"].str.lower()]

    def hit_rate(genres: list[str]) -> float:
        semitones = [
            np.min(np.abs(12 * np.log2(peak / np.array(GENRE_SOUNDS[g][0])))) for peak, g in zip(peaks, genres, strict=True)
        ]
        return float(np.mean(np.array(semitones) <= 1.05))

    assert hit_rate(primary) > 0.9
    assert hit_rate(list(np.random.default_rng(0).permutation(primary))) < 0.6


def test_audio_is_reproducible_and_leaves_the_other_columns_alone(tmp_path: Path) -> None:
    a = write_sample(tmp_path / "a", n_users=30, n_items=20, seed=3, with_images=False)
    b = write_sample(tmp_path / "b", n_users=30, n_items=20, seed=3, with_images=False)
    silent = write_sample(tmp_path / "c", n_users=30, n_items=20, seed=3, with_images=False, audio=None)
    first = _items(a)["audio"].iloc[0] or _items(a)["audio"].iloc[1]
    assert (a / first).read_bytes() == (b / first).read_bytes()
    assert (a / "interactions.csv").read_text() == (silent / "interactions.csv").read_text()
    pd.testing.assert_frame_equal(_items(a).drop(columns="audio"), _items(silent).drop(columns="audio"))
    assert (_items(silent)["audio"] == "").all() and not (silent / "audio").exists()


def test_speech_falls_back_to_tones_without_espeak(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sample_module.shutil, "which", lambda name: None)
    with caplog.at_level(logging.WARNING, logger="fusionrec.data.sample"):
        speech = write_sample(tmp_path / "s", n_users=20, n_items=10, seed=4, with_images=False, audio="speech")
    tones = write_sample(tmp_path / "t", n_users=20, n_items=10, seed=4, with_images=False)
    assert "espeak-ng is not installed" in caplog.text
    cell = next(c for c in _items(speech)["audio"] if c)
    assert (speech / cell).read_bytes() == (tones / cell).read_bytes()
    with pytest.raises(ValueError, match="tones"):
        write_sample(tmp_path / "x", n_users=20, n_items=10, audio="music")  # type: ignore[arg-type]
