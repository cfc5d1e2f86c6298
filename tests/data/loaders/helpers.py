"""Helpers for the loader tests: write small source files and pick issues out of a report."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path

from fusionrec.data.validate import ValidationIssue, ValidationReport


def write(path: Path, content: str | bytes) -> Path:
    """Write text (UTF-8) or bytes; ``.gz`` paths are gzipped. Parent folders are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_jsonl(path: Path, records: Iterable[dict[str, object] | str]) -> Path:
    """One JSON object per line; a str record is written as it is (for bad lines / dict literals)."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    return write(path, "\n".join(lines) + "\n")


def only_issue(report: ValidationReport, kind: str) -> ValidationIssue:
    """The single example of ``kind`` (fails if there are none or several)."""
    assert report.counts[kind] == 1, f"expected one {kind}, got {dict(report.counts)}"
    return report.examples[kind][0]
