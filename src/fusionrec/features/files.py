"""Decoding media files in DataLoader worker processes so decoding overlaps inference.

A decoder is a picklable callable ``bytes -> decoded`` that raises :class:`DecodeError` with a
short reason ("corrupt", "truncated", "too large", ...). Each worker reads a file, hashes its bytes
into the content key (so the key always matches what was decoded) and decodes it; failures come
back as ``(position, "reason<TAB>path: detail")`` instead of exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.features.store import content_key


class DecodeError(Exception):
    """A media file that cannot be used; ``reason`` is a short category, the message the detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class _DecodedFiles:
    """Map-style dataset: read, hash and decode one file per index (runs in a worker)."""

    def __init__(self, paths: Sequence[str], decode: Callable[[bytes], Any], fingerprint: str) -> None:
        self.paths = list(paths)
        self.decode = decode
        self.fingerprint = fingerprint

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, position: int) -> tuple[int, Any, bytes, str]:
        path = self.paths[position]
        try:
            data = Path(path).read_bytes()
            return position, self.decode(data), content_key(data, self.fingerprint), ""
        except FileNotFoundError:
            return position, None, b"", f"missing file\t{path}"
        except DecodeError as exc:
            return position, None, b"", f"{exc.reason}\t{path}: {exc}"
        except OSError as exc:
            return position, None, b"", f"unreadable file\t{path}: {exc}"


@dataclass
class DecodedBatch:
    positions: np.ndarray
    keys: list[bytes]
    decoded: list[Any]
    failed: list[tuple[int, str]]


def _collate(samples: list[tuple[int, Any, bytes, str]]) -> DecodedBatch:
    good = [s for s in samples if s[1] is not None]
    return DecodedBatch(
        positions=np.array([s[0] for s in good], dtype=np.int64),
        keys=[s[2] for s in good],
        decoded=[s[1] for s in good],
        failed=[(s[0], s[3]) for s in samples if s[1] is None],
    )


def stream_decoded(
    paths: Sequence[str],
    decode: Callable[[bytes], Any],
    fingerprint: str,
    batch_size: int,
    workers: int,
) -> Iterator[DecodedBatch]:
    """Batches of decoded files, decoded by ``workers`` processes (0 = in this process)."""
    from torch.utils.data import DataLoader

    loader: DataLoader[Any] = DataLoader(
        _DecodedFiles([str(p) for p in paths], decode, fingerprint),  # type: ignore[arg-type]
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        prefetch_factor=4 if workers else None,
    )
    yield from loader
