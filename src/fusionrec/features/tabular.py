"""Attribute encoders for items and user profiles: categorical, multi-valued and numeric columns.

- categorical: one-hot over a vocabulary (rare values share an ``<other>`` column), hashed into
  ``hash_dim`` buckets (no vocabulary: new values need no refit), or integer codes for a learned
  embedding (:class:`CategoricalEmbedding`, trained by a model);
- multi-valued (genres): multi-hot over a vocabulary; strings are split on ``|`` or ``,``;
- numeric: standardised with the mean/std of the present values, missing -> 0 plus a
  ``<col>:missing`` indicator column (missing-aware, never a fake value a model reads as data).

Encoders are fitted on the table they encode and are plain state (``to_dict`` / ``from_dict``),
so new (cold-start) items or users are transformed with the same columns.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from fusionrec.data.schema import Dataset
from fusionrec.features.base import FeatureSet, ModalityFeatures, Provenance, make_fingerprint, now_iso
from fusionrec.features.config import AttributesConfig

OTHER = "<other>"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() in ("", "N/A", "nan", "None")


def split_multi(value: Any) -> list[str]:
    """A multi-valued cell as a list of stripped strings (lists kept; strings split on | or ,)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v).strip() for v in value if not _missing(v)]
    if _missing(value):
        return []
    text = str(value)
    separator = "|" if "|" in text else ","
    return [part.strip() for part in text.split(separator) if part.strip()]


def _vocabulary(counts: Counter[str], min_count: int, max_categories: int) -> list[str]:
    frequent = [(v, c) for v, c in counts.items() if c >= min_count]
    frequent.sort(key=lambda vc: (-vc[1], vc[0]))
    return [v for v, _ in frequent[:max_categories]]


@dataclass
class CategoricalEncoder:
    """One categorical column -> one-hot (with ``<other>``), hashed buckets, or integer codes."""

    column: str
    mode: Literal["onehot", "hash", "index"] = "onehot"
    min_count: int = 1
    max_categories: int = 1000
    hash_dim: int = 64
    vocabulary: list[str] = field(default_factory=list)

    def fit(self, values: Sequence[Any]) -> CategoricalEncoder:
        counts = Counter(str(v).strip() for v in values if not _missing(v))
        self.vocabulary = _vocabulary(counts, self.min_count, self.max_categories)
        return self

    @property
    def dim(self) -> int:
        return self.hash_dim if self.mode == "hash" else len(self.vocabulary) + 1

    @property
    def feature_names(self) -> list[str]:
        if self.mode == "hash":
            return [f"{self.column}#h{i}" for i in range(self.hash_dim)]
        return [f"{self.column}={v}" for v in self.vocabulary] + [f"{self.column}={OTHER}"]

    def codes(self, values: Sequence[Any]) -> np.ndarray:
        """int64 codes: ``1..len(vocab)`` known values, ``len(vocab)+1`` others, ``0`` missing."""
        lookup = {v: i + 1 for i, v in enumerate(self.vocabulary)}
        other = len(self.vocabulary) + 1
        return np.array(
            [0 if _missing(v) else lookup.get(str(v).strip(), other) for v in values], dtype=np.int64
        )

    def transform(self, values: Sequence[Any]) -> np.ndarray:
        """``(n, dim)`` float32; all-zero rows for missing values."""
        out = np.zeros((len(values), self.dim), dtype=np.float32)
        if self.mode == "hash":
            for row, value in enumerate(values):
                if not _missing(value):
                    bucket = int.from_bytes(
                        hashlib.blake2b(str(value).strip().encode(), digest_size=8).digest(), "little"
                    )
                    out[row, bucket % self.hash_dim] = 1.0
            return out
        codes = self.codes(values)
        rows = np.nonzero(codes)[0]
        out[rows, codes[rows] - 1] = 1.0
        return out


@dataclass
class MultiHotEncoder:
    """One multi-valued column (e.g. genres) -> multi-hot over its vocabulary."""

    column: str
    min_count: int = 1
    max_categories: int = 1000
    vocabulary: list[str] = field(default_factory=list)

    def fit(self, values: Sequence[Any]) -> MultiHotEncoder:
        counts: Counter[str] = Counter(v for cell in values for v in split_multi(cell))
        self.vocabulary = _vocabulary(counts, self.min_count, self.max_categories)
        return self

    @property
    def dim(self) -> int:
        return len(self.vocabulary)

    @property
    def feature_names(self) -> list[str]:
        return [f"{self.column}={v}" for v in self.vocabulary]

    def transform(self, values: Sequence[Any]) -> np.ndarray:
        lookup = {v: i for i, v in enumerate(self.vocabulary)}
        out = np.zeros((len(values), self.dim), dtype=np.float32)
        for row, cell in enumerate(values):
            for value in split_multi(cell):
                if value in lookup:
                    out[row, lookup[value]] = 1.0
        return out


@dataclass
class NumericEncoder:
    """One numeric column -> standardised value plus a missing indicator (2 columns)."""

    column: str
    mean: float = 0.0
    std: float = 1.0

    def _values(self, values: Sequence[Any]) -> np.ndarray:
        return pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(
            dtype=np.float64
        )

    def fit(self, values: Sequence[Any]) -> NumericEncoder:
        numbers = self._values(values)
        finite = numbers[np.isfinite(numbers)]
        self.mean = float(finite.mean()) if len(finite) else 0.0
        self.std = float(finite.std()) if len(finite) > 1 and finite.std() > 0 else 1.0
        return self

    @property
    def dim(self) -> int:
        return 2

    @property
    def feature_names(self) -> list[str]:
        return [self.column, f"{self.column}:missing"]

    def transform(self, values: Sequence[Any]) -> np.ndarray:
        numbers = self._values(values)
        missing = ~np.isfinite(numbers)
        scaled = np.where(missing, 0.0, (numbers - self.mean) / self.std)
        return np.stack([scaled, missing.astype(np.float64)], axis=1).astype(np.float32)


ColumnEncoder = CategoricalEncoder | MultiHotEncoder | NumericEncoder


@dataclass
class TableEncoder:
    """Several column encoders side by side; ``fit`` then ``transform`` a frame."""

    encoders: list[ColumnEncoder]

    def fit(self, frame: pd.DataFrame) -> TableEncoder:
        for encoder in self.encoders:
            encoder.fit(frame[encoder.column].tolist())
        return self

    @property
    def feature_names(self) -> list[str]:
        return [name for encoder in self.encoders for name in encoder.feature_names]

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(n, d)`` float32 matrix and ``(n,)`` bool: True where any column had a value."""
        n = len(frame)
        if not self.encoders:
            return np.zeros((n, 0), dtype=np.float32), np.zeros(n, dtype=bool)
        blocks = [encoder.transform(frame[encoder.column].tolist()) for encoder in self.encoders]
        present = np.zeros(n, dtype=bool)
        for encoder in self.encoders:
            present |= np.array([not _missing_cell(v) for v in frame[encoder.column].tolist()], dtype=bool)
        return np.concatenate(blocks, axis=1), present

    def to_dict(self) -> dict[str, Any]:
        return {
            "encoders": [
                {"type": type(e).__name__, **{k: v for k, v in e.__dict__.items()}} for e in self.encoders
            ]
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TableEncoder:
        kinds: dict[str, type[Any]] = {
            "CategoricalEncoder": CategoricalEncoder,
            "MultiHotEncoder": MultiHotEncoder,
            "NumericEncoder": NumericEncoder,
        }
        encoders = []
        for entry in state["encoders"]:
            entry = dict(entry)
            encoders.append(kinds[entry.pop("type")](**entry))
        return cls(encoders=encoders)

    @property
    def fingerprint(self) -> str:
        return make_fingerprint({"encoder": "tabular", **self.to_dict()})


def _missing_cell(value: Any) -> bool:
    if isinstance(value, (list, tuple, np.ndarray)):
        return len(value) == 0
    return _missing(value)


@dataclass
class EncodedTable:
    """An encoded table: matrix ``(n, d)`` float32, present ``(n,)`` bool, column names, state."""

    matrix: np.ndarray
    present: np.ndarray
    feature_names: list[str]
    encoder: TableEncoder

    @property
    def fingerprint(self) -> str:
        return self.encoder.fingerprint


def build_table_encoder(
    categorical: Sequence[str],
    multi_valued: Sequence[str],
    numeric: Sequence[str],
    config: AttributesConfig | None = None,
) -> TableEncoder:
    config = config or AttributesConfig()
    encoders: list[ColumnEncoder] = [
        CategoricalEncoder(
            column=c,
            mode=config.categorical,
            min_count=config.min_count,
            max_categories=config.max_categories,
            hash_dim=config.hash_dim,
        )
        for c in categorical
    ]
    encoders += [
        MultiHotEncoder(column=c, min_count=config.min_count, max_categories=config.max_categories)
        for c in multi_valued
    ]
    encoders += [NumericEncoder(column=c) for c in numeric]
    return TableEncoder(encoders=encoders)


def encode_item_attributes(dataset: Dataset, config: AttributesConfig | None = None) -> EncodedTable:
    """The dataset's declared categorical / multi-valued / numeric item columns, encoded."""
    columns = dataset.item_columns
    encoder = build_table_encoder(columns.categorical, columns.multi_valued, columns.numeric, config)
    encoder.fit(dataset.items)
    matrix, present = encoder.transform(dataset.items)
    return EncodedTable(matrix=matrix, present=present, feature_names=encoder.feature_names, encoder=encoder)


def encode_user_profiles(dataset: Dataset, config: AttributesConfig | None = None) -> EncodedTable:
    """The users table's declared profile columns (e.g. MovieLens age, gender, occupation)."""
    from fusionrec.errors import DataError

    if dataset.users is None:
        raise DataError("the dataset has no users table")
    columns = dataset.user_columns
    encoder = build_table_encoder(columns.categorical, [], columns.numeric, config)
    encoder.fit(dataset.users)
    matrix, present = encoder.transform(dataset.users)
    return EncodedTable(matrix=matrix, present=present, feature_names=encoder.feature_names, encoder=encoder)


def user_feature_set(dataset: Dataset, config: AttributesConfig | None = None) -> FeatureSet:
    """User profiles as a FeatureSet (``entity='user'``, modality ``profile``) aligned to the user IdMap."""
    encoded = encode_user_profiles(dataset, config)
    provenance = Provenance(
        encoder="tabular",
        fingerprint=encoded.fingerprint,
        created_at=now_iso(),
        n_present=int(encoded.present.sum()),
        extra={"columns": encoded.feature_names},
    )
    features = ModalityFeatures(matrix=encoded.matrix, present=encoded.present, provenance=provenance)
    return FeatureSet(ids=dataset.user_map.ids, modalities={"profile": features}, entity="user")


def categorical_codes(
    frame: pd.DataFrame, columns: Sequence[str], min_count: int = 1
) -> tuple[np.ndarray, list[int]]:
    """``(n, len(columns))`` int64 codes (0 = missing) and each column's cardinality (incl. 0 and other)."""
    encoders = [
        CategoricalEncoder(column=c, mode="index", min_count=min_count).fit(frame[c].tolist())
        for c in columns
    ]
    codes = (
        np.stack([e.codes(frame[e.column].tolist()) for e in encoders], axis=1)
        if encoders
        else np.zeros((len(frame), 0), dtype=np.int64)
    )
    return codes, [len(e.vocabulary) + 2 for e in encoders]


class CategoricalEmbedding(torch.nn.Module):
    """Learned embeddings for categorical codes: one table per column, concatenated.

    Input ``(b, n_columns)`` int64 codes from :func:`categorical_codes`; output ``(b, n_columns * dim)``.
    Code 0 (missing) maps to a zero vector (``padding_idx``).
    """

    def __init__(self, cardinalities: Sequence[int], dim: int = 16) -> None:
        super().__init__()
        self.tables = torch.nn.ModuleList(torch.nn.Embedding(c, dim, padding_idx=0) for c in cardinalities)
        self.out_dim = dim * len(cardinalities)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.cat([table(codes[:, i]) for i, table in enumerate(self.tables)], dim=-1)
