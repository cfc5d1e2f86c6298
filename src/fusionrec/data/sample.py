"""A small multimodal sample catalog with real structure, for the demo and tests when no data is at hand.

Items belong to genres; each genre has its own vocabulary (text), colour/shape (poster image) and
sound (audio clip); users prefer one or two genres and rate items of their genres higher. So text,
images, audio and interactions all carry the same signal, and a model that uses any of them beats
popularity.

Audio (``audio/<item>.wav``, 16 kHz mono 16-bit PCM, about 1-1.5 s): ``"tones"`` (default, pure
numpy, seeded) is the item's primary-genre chord (:data:`GENRE_SOUNDS`: three notes,
a number of harmonics and a pulse rate), shifted up to a semitone, at a random tempo jitter,
loudness and noise level; ``"speech"`` is espeak-ng saying two of the genre's words with a random
voice pitch and speed (falls back to tones, with a warning, where espeak-ng is not installed; its
bytes depend on the espeak-ng version). About 5 % of the items have no clip (empty ``audio`` cell:
a missing modality). The clips are drawn from their own random stream, so adding or dropping audio
leaves every other column and the interactions unchanged.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from fusionrec.data.loaders.tabular import TabularMapping

log = logging.getLogger(__name__)

GENRES: dict[str, tuple[tuple[int, int, int], list[str]]] = {
    "space": ((30, 40, 120), ["galaxy", "starship", "orbit", "alien", "planet", "astronaut", "nebula"]),
    "romance": ((200, 60, 110), ["love", "wedding", "heart", "kiss", "letters", "summer", "couple"]),
    "western": ((170, 110, 40), ["sheriff", "desert", "horse", "saloon", "outlaw", "ranch", "gold"]),
    "horror": ((20, 20, 20), ["ghost", "blood", "night", "haunted", "scream", "curse", "cellar"]),
    "animation": ((250, 200, 40), ["toys", "talking", "animals", "friends", "magic", "colorful", "kids"]),
    "war": ((80, 100, 60), ["soldier", "battle", "army", "trench", "general", "siege", "medal"]),
}
# per genre: the chord's three fundamentals (Hz), harmonics per note, pulses per second
GENRE_SOUNDS: dict[str, tuple[tuple[float, float, float], int, float]] = {
    "space": ((220.0, 277.2, 329.6), 1, 1.5),
    "romance": ((261.6, 329.6, 392.0), 3, 3.0),
    "western": ((196.0, 246.9, 293.7), 2, 5.0),
    "horror": ((110.0, 130.8, 155.6), 4, 2.0),
    "animation": ((523.3, 659.3, 784.0), 1, 8.0),
    "war": ((146.8, 174.6, 220.0), 5, 4.0),
}
SAMPLE_RATE = 16_000
AUDIO_MISSING_SHARE = 0.05
AudioKind = Literal["tones", "speech"]

# How the tabular loader reads a written sample (``load_source("tabular", dir, LoaderOptions(tabular=...))``).
SAMPLE_MAPPING = TabularMapping(
    interactions="interactions.csv",
    items="items.csv",
    users="users.csv",
    user="user_id",
    item="item_id",
    rating="rating",
    timestamp="timestamp",
    item_id="item_id",
    text=["title", "description"],
    image="poster",
    audio="audio",
    multi_valued=["genres"],
    multi_valued_separator="|",
    numeric=["year"],
    user_id="user_id",
    user_categorical=["gender"],
    user_numeric=["age"],
    rating_range=(1.0, 5.0),
)
FILLER = ["story", "journey", "city", "family", "secret", "world", "life", "time", "man", "woman"]


def _poster(rng: np.random.Generator, colour: tuple[int, int, int], genre_index: int) -> np.ndarray:
    """A 96x64 RGB poster: genre colour with noise and a genre-specific bright shape."""
    height, width = 96, 64
    base = np.array(colour, dtype=np.float32)[None, None, :]
    image = base + rng.normal(0, 18, size=(height, width, 3))
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx = rng.integers(30, 66), rng.integers(20, 44)
    if genre_index % 3 == 0:
        shape = (yy - cy) ** 2 + (xx - cx) ** 2 < 14**2
    elif genre_index % 3 == 1:
        shape = (abs(yy - cy) < 12) & (abs(xx - cx) < 12)
    else:
        shape = abs(yy - cy) + abs(xx - cx) < 16
    image[shape] = 255 - base[0, 0] * 0.5
    return np.clip(image, 0, 255).astype(np.uint8)


def _tones(rng: np.random.Generator, genre: str) -> np.ndarray:
    """``(n,)`` float32 in [-1, 1], 1-1.5 s at 16 kHz: the genre's pulsing chord plus noise."""
    notes, harmonics, pulse = GENRE_SOUNDS[genre]
    t = np.arange(int(rng.uniform(1.0, 1.5) * SAMPLE_RATE)) / SAMPLE_RATE
    shift = 2.0 ** (rng.uniform(-1, 1) / 12)  # up to a semitone
    freqs = np.array(notes)[:, None] * shift * np.arange(1, harmonics + 1)[None, :]  # (3, harmonics)
    phases = rng.uniform(0, 2 * np.pi, size=freqs.shape)
    weights = 1.0 / np.arange(1, harmonics + 1)[None, :]
    chord = (weights[..., None] * np.sin(2 * np.pi * freqs[..., None] * t + phases[..., None])).sum(axis=(0, 1))
    gate = np.sin(2 * np.pi * pulse * rng.uniform(0.9, 1.1) * t + rng.uniform(0, 2 * np.pi)) > 0
    signal = chord * (0.2 + 0.8 * gate)
    signal = signal / np.abs(signal).max() * rng.uniform(0.3, 0.7)
    signal += rng.normal(0, rng.uniform(0.02, 0.1), size=len(t))
    return np.clip(signal, -1, 1).astype(np.float32)


def _speech(rng: np.random.Generator, genre: str) -> np.ndarray:
    """espeak-ng saying two of the genre's words (random pitch and speed), resampled to 16 kHz."""
    from scipy.signal import resample_poly

    words = " ".join(rng.choice(GENRES[genre][1], size=2, replace=False))
    pitch, speed = int(rng.integers(25, 75)), int(rng.integers(150, 200))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-p", str(pitch), "-s", str(speed), "-w", str(path), words],
            check=True,
            capture_output=True,
        )
        with wave.open(str(path), "rb") as handle:
            rate = handle.getframerate()
            raw = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
            samples = raw.reshape(-1, handle.getnchannels()).mean(axis=1) / 32768.0
    divisor = np.gcd(rate, SAMPLE_RATE)
    return np.clip(resample_poly(samples, SAMPLE_RATE // divisor, rate // divisor), -1, 1).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Mono 16-bit PCM WAV of float samples in [-1, 1], with the standard library."""
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def _write_clips(out: Path, primary: list[str], kind: AudioKind, seed: int) -> list[str]:
    """Write ``audio/<i+1>.wav`` per item (a few left out); the items' ``audio`` cells."""
    if kind == "speech" and shutil.which("espeak-ng") is None:
        log.warning("espeak-ng is not installed: the sample's audio clips are tones instead of speech")
        kind = "tones"
    if kind not in ("tones", "speech"):
        raise ValueError(f"audio must be 'tones', 'speech' or None, got {kind!r}")
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1])  # its own stream: the other columns do not depend on it
    missing = rng.random(len(primary)) < AUDIO_MISSING_SHARE
    cells = []
    for i, genre in enumerate(primary):  # catalog generation, not a hot path
        if missing[i]:
            cells.append("")
            continue
        cell = f"audio/{i + 1}.wav"
        write_wav(out / cell, _speech(rng, genre) if kind == "speech" else _tones(rng, genre))
        cells.append(cell)
    return cells


def write_sample(
    directory: str | Path,
    *,
    n_users: int = 400,
    n_items: int = 240,
    seed: int = 0,
    with_images: bool = True,
    audio: AudioKind | None = "tones",
) -> Path:
    """Write ``items.csv``, ``users.csv``, ``interactions.csv``, ``posters/*.png`` and ``audio/*.wav``.

    Columns: items ``item_id,title,description,genres,year,poster,audio`` (``poster`` / ``audio``
    empty where the item has none); interactions ``user_id,item_id,rating,timestamp``; users
    ``user_id,age,gender``. ``audio``: ``"tones"``, ``"speech"`` (espeak-ng) or ``None`` (no clips).
    Read it back with :data:`SAMPLE_MAPPING`.
    """
    from PIL import Image

    out = Path(directory)
    (out / "posters").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(GENRES)
    n_genres = len(names)

    primary = rng.integers(0, n_genres, size=n_items)
    secondary = np.where(rng.random(n_items) < 0.3, rng.integers(0, n_genres, size=n_items), primary)
    quality = rng.normal(0, 1, size=n_items)  # popularity beyond genre
    rows = []
    for i in range(n_items):  # catalog generation, not a hot path
        genre = names[primary[i]]
        words = list(rng.choice(GENRES[genre][1], size=5)) + list(rng.choice(FILLER, size=4))
        if secondary[i] != primary[i]:
            words += list(rng.choice(GENRES[names[secondary[i]]][1], size=2))
        rng.shuffle(words)
        genres = sorted({genre, names[secondary[i]]})
        poster = f"posters/{i + 1}.png"
        if with_images:
            Image.fromarray(_poster(rng, GENRES[genre][0], int(primary[i]))).save(out / poster)
        rows.append(
            {
                "item_id": i + 1,
                "title": f"The {words[0].title()} {words[1].title()} {i + 1}",
                "description": "A " + " ".join(words) + ".",
                "genres": "|".join(genres),
                "year": int(rng.integers(1960, 2020)),
                "poster": poster if with_images else "",
            }
        )
    catalog = pd.DataFrame(rows)
    catalog["audio"] = _write_clips(out, [names[g] for g in primary], audio, seed) if audio else ""
    catalog.to_csv(out / "items.csv", index=False)

    liked = np.stack([rng.integers(0, n_genres, size=n_users), rng.integers(0, n_genres, size=n_users)], axis=1)
    affinity = np.full((n_users, n_genres), -2.0)
    affinity[np.arange(n_users), liked[:, 0]] = 2.5
    affinity[np.arange(n_users), liked[:, 1]] = 1.5
    item_affinity = affinity[:, primary] + 0.5 * affinity[:, secondary]  # (n_users, n_items)
    logits = item_affinity + 0.6 * quality[None, :]
    n_per_user = np.minimum(rng.integers(12, 40, size=n_users), max(n_items // 2, 1))
    gumbel = logits - np.log(-np.log(rng.random(logits.shape)))
    ranks = np.argsort(-gumbel, axis=1)
    take = np.arange(n_items)[None, :] < n_per_user[:, None]
    users = np.repeat(np.arange(n_users), n_per_user)
    items = ranks[take]
    signal = item_affinity[users, items]
    rating = np.clip(np.rint(3 + signal / 2 + rng.normal(0, 0.7, size=len(users))), 1, 5).astype(int)
    timestamp = 1_500_000_000 + np.sort(rng.integers(0, 86400 * 365, size=len(users)))
    frame = pd.DataFrame(
        {"user_id": users + 1, "item_id": items + 1, "rating": rating, "timestamp": timestamp[rng.permutation(len(users))]}
    )
    frame.to_csv(out / "interactions.csv", index=False)
    pd.DataFrame(
        {
            "user_id": np.arange(1, n_users + 1),
            "age": rng.integers(16, 70, size=n_users),
            "gender": rng.choice(["F", "M"], size=n_users),
        }
    ).to_csv(out / "users.csv", index=False)
    return out
