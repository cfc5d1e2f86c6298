"""Errors raised at the edges of fusionrec, each saying where and why."""

from __future__ import annotations


class FusionRecError(Exception):
    """Base class for every error fusionrec raises on purpose."""


class DataError(FusionRecError):
    """Bad input data: names the file, the row (1-based line or row number), the column and why."""

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.row = row
        self.column = column
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


class ModelError(FusionRecError):
    """A model was configured or used in a way it cannot honour."""


class NotFittedError(ModelError):
    """A model was asked to score or save before `fit`."""
