"""Content-addressed feature cache: key = sha256(encoder fingerprint, content bytes).

One folder per encoder fingerprint (``<root>/<digest>/``) holds ``encoder.json`` (the full
fingerprint, for people) and shard files ``shard-*.npz`` with ``keys`` (``(n, 32)`` uint8 raw
sha256 digests) and ``vectors`` (``(n, dim)`` float32). Each shard is written to a temporary file and
renamed into place (``os.replace``), so a killed run leaves whole shards only and resumes from
them; stray temporary files are ignored and removed. Because the fingerprint is part of every
key, a changed model, template or preprocessing misses exactly the items whose encoding changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fusionrec.features.base import fingerprint_digest

log = logging.getLogger(__name__)

SHARD_GLOB = "shard-*.npz"


def content_key(content: bytes, fingerprint: str) -> bytes:
    """32-byte sha256 of the fingerprint and the item's content bytes."""
    digest = hashlib.sha256()
    digest.update(fingerprint.encode("utf-8"))
    digest.update(b"\x00")
    digest.update(content)
    return digest.digest()


def default_cache_dir() -> Path:
    """``$FUSIONREC_CACHE`` or ``~/.cache/fusionrec/features``."""
    env = os.environ.get("FUSIONREC_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fusionrec" / "features"


class CacheNamespace:
    """The cached vectors of one encoder fingerprint, loaded into memory on open."""

    def __init__(self, directory: Path, fingerprint: str, dim: int) -> None:
        self.directory = directory
        self.fingerprint = fingerprint
        self.dim = dim
        directory.mkdir(parents=True, exist_ok=True)
        info = directory / "encoder.json"
        if not info.exists():
            tmp = directory / f".encoder.json.{uuid.uuid4().hex}.tmp"
            tmp.write_text(json.dumps({"fingerprint": fingerprint, "dim": dim}, indent=2))
            os.replace(tmp, info)
        self._rows: dict[bytes, int] = {}
        self._blocks: list[np.ndarray] = []
        self._n = 0
        self._matrix: np.ndarray | None = None
        self._load()

    def _load(self) -> None:
        for stale in self.directory.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        for shard in sorted(self.directory.glob(SHARD_GLOB)):
            try:
                with np.load(shard, allow_pickle=False) as data:
                    keys, vectors = data["keys"], data["vectors"]
            except (OSError, ValueError, KeyError) as exc:  # a damaged shard is skipped, not fatal
                log.warning("skipping unreadable cache shard %s: %s", shard, exc)
                continue
            bad_keys = keys.dtype != np.uint8 or keys.shape != (len(vectors), 32)
            if bad_keys or vectors.ndim != 2 or vectors.shape[1] != self.dim:
                log.warning("skipping cache shard %s with unexpected shape %s", shard, vectors.shape)
                continue
            self._append(keys, vectors)

    def _append(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        # slice the raw buffer: numpy's "S" strings would drop trailing zero bytes of a digest
        raw = np.ascontiguousarray(keys, dtype=np.uint8).tobytes()
        for offset in range(len(vectors)):
            self._rows[raw[offset * 32 : (offset + 1) * 32]] = self._n + offset
        self._blocks.append(np.asarray(vectors, dtype=np.float32))
        self._n += len(vectors)
        self._matrix = None

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def n_shards(self) -> int:
        return len(list(self.directory.glob(SHARD_GLOB)))

    def lookup(self, keys: Sequence[bytes]) -> np.ndarray:
        """Row of each key in :meth:`vectors` (int64), ``-1`` where not cached."""
        return np.fromiter((self._rows.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """``(len(rows), dim)`` float32 cached vectors for rows returned by :meth:`lookup`."""
        if self._matrix is None:
            self._matrix = (
                np.concatenate(self._blocks) if self._blocks else np.zeros((0, self.dim), np.float32)
            )
            self._blocks = [self._matrix]
        return self._matrix[rows]

    def put(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Persist one batch atomically (a new shard), then make it visible in memory."""
        if not len(keys):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(keys), self.dim):
            raise ValueError(f"expected vectors of shape {(len(keys), self.dim)}, got {vectors.shape}")
        if any(len(k) != 32 for k in keys):
            raise ValueError("cache keys must be 32-byte sha256 digests")
        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 32)
        name = f"shard-{uuid.uuid4().hex}.npz"
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "wb") as handle:
            np.savez(handle, keys=key_array, vectors=vectors)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.directory / name)
        self._append(key_array, vectors)

    def compact(self) -> None:
        """Merge all shards into one (new shard written before the old ones are removed)."""
        shards = sorted(self.directory.glob(SHARD_GLOB))
        if len(shards) <= 1:
            return
        ordered = sorted(self._rows.items(), key=lambda kv: kv[1])
        keys = [k for k, _ in ordered]
        vectors = self.vectors(np.array([r for _, r in ordered], dtype=np.int64))
        self._rows, self._blocks, self._n, self._matrix = {}, [], 0, None
        self.put(keys, vectors)
        newest = set(self.directory.glob(SHARD_GLOB)) - set(shards)
        for shard in shards:
            if shard not in newest:
                shard.unlink(missing_ok=True)


class FeatureStore:
    """The cache root: one :class:`CacheNamespace` per encoder fingerprint."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self._open: dict[tuple[str, int], CacheNamespace] = {}

    def namespace(self, fingerprint: str, dim: int) -> CacheNamespace:
        """The namespace of ``fingerprint`` (opened, i.e. read from disk, once per store object)."""
        key = (fingerprint, dim)
        if key not in self._open:
            self._open[key] = CacheNamespace(self.root / fingerprint_digest(fingerprint), fingerprint, dim)
        return self._open[key]
