"""Row-level validation report and the dataset stats summary.

Policy (what happens to a bad row; `--strict` turns every *error* into a fatal DataError):

| kind                   | severity | action                                                   |
|------------------------|----------|----------------------------------------------------------|
| malformed_row          | error    | row skipped (wrong field count, unparsable JSON)          |
| missing_value          | error    | row skipped (no user or item id)                          |
| unparsable_number      | error    | row skipped (rating/time not a number, rating inf/-inf,   |
|                        |          | a non-integer id where ids are integers, e.g. MovieLens)  |
| rating_out_of_range    | error    | row skipped                                               |
| time_out_of_range      | error    | row skipped (epoch seconds outside years 1..9999)         |
| duplicate_interaction  | warning  | later copies of a (user, item, time) dropped, first kept  |
| unknown_item           | warning  | item added to the catalog with no content (masked)        |
| duplicate_item         | warning  | later catalog rows with the same id dropped               |
| missing_file           | warning  | image/audio path cleared: that modality is masked         |
| empty_text             | warning  | item kept, its text is masked                             |
| bad_encoding           | warning  | line decoded with the fallback encoding                   |
| unparsable_attribute   | warning  | numeric attribute value cleared (attribute masked)        |

Where: ``row`` is the 1-based line of a text file, or the 1-based row of a Parquet file. A row
whose quoted field spans lines is at the line where it starts; lines holding only whitespace are
ignored like empty ones. ``nan``/``NA`` values count as missing (``missing_value``).

Not row-level, so always a DataError naming the file (strict or not): a file with no interaction
left (``no interactions in the file (no data rows)``, or ``no interactions kept: all N rows were
rejected; first: ...``), a truncated or corrupt ``.gz`` (with the line its readable part reaches),
and an MMRec feature matrix whose row count does not match the items.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from rich.table import Table

from fusionrec.errors import DataError

ERROR_KINDS = {
    "malformed_row",
    "missing_value",
    "unparsable_number",
    "rating_out_of_range",
    "time_out_of_range",
}
ACTIONS = {
    "malformed_row": "skipped",
    "missing_value": "skipped",
    "unparsable_number": "skipped",
    "rating_out_of_range": "skipped",
    "time_out_of_range": "skipped",
    "duplicate_interaction": "dropped (first kept)",
    "unknown_item": "added to catalog, no content",
    "duplicate_item": "dropped (first kept)",
    "missing_file": "masked",
    "empty_text": "masked",
    "bad_encoding": "decoded with fallback",
    "unparsable_attribute": "value cleared (masked)",
}
_ROW_FILES = (".parquet", ".pq")  # files whose positions are row numbers, not text lines


@dataclass(frozen=True)
class ValidationIssue:
    """One problem, with where it is: file, 1-based line (or row) and column."""

    kind: str
    message: str
    file: str | None = None
    row: int | None = None
    column: str | None = None

    @property
    def severity(self) -> str:
        return "error" if self.kind in ERROR_KINDS else "warning"

    def where(self) -> str:
        unit = "row" if self.file and self.file.endswith(_ROW_FILES) else "line"
        parts = [p for p in (self.file, None if self.row is None else f"{unit} {self.row}") if p]
        if self.column:
            parts.append(f"column {self.column!r}")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.where()}: {self.message}" if self.where() else self.message


class ValidationReport:
    """Collects issues; keeps every count but only the first examples of each kind (bounded memory)."""

    def __init__(self, source: str = "", max_examples_per_kind: int = 20) -> None:
        self.source = source
        self.max_examples_per_kind = max_examples_per_kind
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[ValidationIssue]] = {}
        self.rows_read = 0
        self.rows_kept = 0

    def add(
        self,
        kind: str,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        if kind not in ACTIONS:
            raise ValueError(f"unknown validation kind {kind!r}")
        self.counts[kind] += 1
        examples = self.examples.setdefault(kind, [])
        if len(examples) < self.max_examples_per_kind:
            examples.append(ValidationIssue(kind, message, file, row, column))

    def add_rows(
        self,
        kind: str,
        rows: np.ndarray,
        values: np.ndarray | Sequence[Any] | None,
        message: str,
        *,
        file: str | None,
        column: str | None,
    ) -> None:
        """Record many bad rows at once; ``message`` may use ``{value}``. Only examples are formatted."""
        n = len(rows)
        if n == 0:
            return
        if kind not in ACTIONS:
            raise ValueError(f"unknown validation kind {kind!r}")
        self.counts[kind] += n
        examples = self.examples.setdefault(kind, [])
        room = self.max_examples_per_kind - len(examples)
        for i in range(min(room, n)):
            value = None if values is None else values[i]
            if isinstance(value, np.generic):
                value = value.item()
            examples.append(
                ValidationIssue(kind, message.format(value=value), file, int(rows[i]), column)
            )

    @property
    def n_errors(self) -> int:
        return sum(c for k, c in self.counts.items() if k in ERROR_KINDS)

    @property
    def n_warnings(self) -> int:
        return sum(c for k, c in self.counts.items() if k not in ERROR_KINDS)

    def issues(self) -> list[ValidationIssue]:
        return [issue for kind in sorted(self.examples) for issue in self.examples[kind]]

    def raise_if_errors(self) -> None:
        """The strict policy: any error-severity issue becomes a DataError naming the first one."""
        for kind in sorted(self.examples):
            if kind in ERROR_KINDS and self.examples[kind]:
                first = self.examples[kind][0]
                raise DataError(
                    f"{first.message} ({self.n_errors} error(s) in total; strict mode)",
                    file=first.file,
                    row=first.row,
                    column=first.column,
                )

    def merge(self, other: ValidationReport) -> None:
        for kind, examples in other.examples.items():
            mine = self.examples.setdefault(kind, [])
            mine.extend(examples[: max(0, self.max_examples_per_kind - len(mine))])
        self.counts.update(other.counts)
        self.rows_read += other.rows_read
        self.rows_kept += other.rows_kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "errors": self.n_errors,
            "warnings": self.n_warnings,
            "counts": dict(self.counts),
            "examples": [asdict(i) | {"severity": i.severity} for i in self.issues()],
        }

    def table(self, examples_per_kind: int = 3) -> Table:
        """A rich table: one line per kind with count, severity, action and the first examples."""
        table = Table(title=f"Validation: {self.source}" if self.source else "Validation")
        for name in ("kind", "severity", "count", "action", "first examples (where: what)"):
            table.add_column(name, overflow="fold")
        if not self.counts:
            table.add_row("-", "-", "0", "-", "no problems found")
        for kind in sorted(self.counts):
            shown = "\n".join(str(i) for i in self.examples.get(kind, [])[:examples_per_kind])
            severity = "error" if kind in ERROR_KINDS else "warning"
            table.add_row(kind, severity, f"{self.counts[kind]:,}", ACTIONS[kind], shown)
        table.caption = (
            f"{self.rows_read:,} rows read, {self.rows_kept:,} kept; "
            f"{self.n_errors:,} errors, {self.n_warnings:,} warnings"
        )
        return table
