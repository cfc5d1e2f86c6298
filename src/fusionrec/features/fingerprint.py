"""Identity of a model on disk, for encoder fingerprints (and so for cache keys).

A folder's identity hashes every small file (configs, tokenizers) in full and, for large weight
files, their name, size and first and last MiB: cheap on multi-GB checkpoints, and any re-saved
or fine-tuned checkpoint changes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

_SMALL_FILE_BYTES = 8 * 1024 * 1024
_SAMPLE_BYTES = 1024 * 1024


def file_digest(path: Path) -> str:
    """sha256 of a file (sampled head and tail when it is large), with its size."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        if size <= _SMALL_FILE_BYTES:
            digest.update(handle.read())
        else:
            digest.update(handle.read(_SAMPLE_BYTES))
            handle.seek(size - _SAMPLE_BYTES)
            digest.update(handle.read(_SAMPLE_BYTES))
    return digest.hexdigest()


def folder_identity(path: str | Path, extra_files: Sequence[str] | None = None) -> str:
    """``path:<name>:<digest>`` for a model folder (or a single model file).

    ``extra_files`` restricts large files to those named (e.g. one GGUF among several).
    """
    root = Path(path)
    if root.is_file():
        return f"file:{root.name}:{file_digest(root)[:20]}"
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = file.relative_to(root).as_posix()
        if relative.startswith(".") or "__pycache__" in relative or file.suffix in (".py", ".pyc"):
            continue
        large = file.stat().st_size > _SMALL_FILE_BYTES
        if large and extra_files and file.name not in extra_files and file.suffix == ".gguf":
            continue
        digest.update(relative.encode())
        digest.update(file_digest(file).encode())
    return f"path:{root.name}:{digest.hexdigest()[:20]}"
