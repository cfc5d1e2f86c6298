"""Profile prior: what users with given attributes (age, gender, occupation, ...) interact with.

A linear demographic model: each profile attribute value is a one-hot column ``P (n_users, f)``
(plus an intercept); ridge regression of the training matrix on it, ``W = (P^T P + l2 I)^-1 P^T X``,
gives ``(f, n_items)`` item scores per attribute value, so a new user with a profile ``p`` gets
``p W``: the popularity among similar users, with every attribute counted at once (not one
segment's counts). Columns with too many distinct values (zip codes) are left out; values unseen
in training add nothing (only the intercept and the other attributes count).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fusionrec.errors import DataError

MAX_VALUES = 100


class ProfilePrior:
    """Item scores from profile attributes (module docstring).

    Parameters
    ----------
    columns: users-table columns to use (None: every column but the id with 2..``max_values`` values).
    l2: ridge penalty.  max_values: a column with more distinct values is skipped.
    """

    def __init__(self, columns: Sequence[str] | None = None, l2: float = 10.0, max_values: int = MAX_VALUES) -> None:
        self.columns = list(columns) if columns is not None else None
        self.l2, self.max_values = l2, max_values
        self.vocab: dict[str, list[str]] = {}
        self.weight = np.zeros((0, 0), dtype=np.float32)  # (1 + f, n_items)

    def fit(self, users: pd.DataFrame, train: sp.csr_matrix) -> ProfilePrior:
        """``users``: one row per user index (the dataset's users table); ``train`` ``(n_users, n_items)``."""
        if len(users) != train.shape[0]:
            raise DataError(f"the users table has {len(users)} rows, the training matrix {train.shape[0]} users")
        candidates = self.columns or [c for c in users.columns if c != "user_id"]
        missing = [c for c in candidates if c not in users.columns]
        if missing:
            raise DataError(f"profile columns {missing} are not in the users table (it has {list(users.columns)})")
        self.vocab = {}
        for column in candidates:
            values = sorted({_text(v) for v in users[column] if not _missing(v)})
            if 2 <= len(values) <= self.max_values or (self.columns is not None and values):
                self.vocab[column] = values
        if not self.vocab:
            raise DataError(f"no usable profile column (each needs 2..{self.max_values} distinct values)")
        design = self._design(cast(list[dict[str, object]], users[list(self.vocab)].to_dict("records")))
        gram = (design.T @ design).toarray().astype(np.float64)
        penalty = np.full(gram.shape[0], self.l2)
        penalty[0] = 0.0  # intercept
        rhs = np.asarray((design.T @ sp.csr_matrix(train, dtype=np.float32)).todense(), dtype=np.float64)
        self.weight = np.linalg.solve(gram + np.diag(penalty), rhs).astype(np.float32)
        return self

    @property
    def n_features(self) -> int:
        return 1 + sum(len(v) for v in self.vocab.values())

    def _design(self, profiles: Sequence[Mapping[str, object]]) -> sp.csr_matrix:
        """``(n, 1 + f)`` one-hot rows (intercept first); unknown or missing values are all-zero blocks."""
        offsets, start = {}, 1
        for column, values in self.vocab.items():
            offsets[column] = (start, {v: i for i, v in enumerate(values)})
            start += len(values)
        rows, cols = [np.arange(len(profiles))], [np.zeros(len(profiles), dtype=np.int64)]
        for column, (offset, index) in offsets.items():
            positions = np.array(
                [index.get(_text(p.get(column)), -1) if not _missing(p.get(column)) else -1 for p in profiles], dtype=np.int64
            )
            hit = positions >= 0
            rows.append(np.flatnonzero(hit))
            cols.append(offset + positions[hit])
        r, c = np.concatenate(rows), np.concatenate(cols)
        return sp.csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(len(profiles), start))

    def check(self, profile: Mapping[str, object]) -> None:
        """A clear error for a key the prior does not know (values unseen in training are allowed)."""
        unknown = sorted(set(profile) - set(self.vocab))
        if unknown:
            raise DataError(f"unknown profile attribute(s) {unknown}; known: {sorted(self.vocab)}")

    def score(self, profiles: Sequence[Mapping[str, object]]) -> np.ndarray:
        """``(len(profiles), n_items)`` float32 item scores."""
        for profile in profiles:
            self.check(profile)
        return np.asarray(self._design(profiles) @ self.weight, dtype=np.float32)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or str(value).strip() == ""


def _text(value: object) -> str:
    """Values compared as text, with ``25.0`` and ``25`` the same."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
