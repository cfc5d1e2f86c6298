"""The Recommender interface every model implements, and its capability protocols.

A model is built from explicit keyword arguments (mirrored by a typed pydantic config class so
YAML/CLI map onto them), learns from ``fit(train, features=None, valid=None)``, scores users in
batches with ``score(users) -> (len(users), n_items) float32``, and saves to a directory of a JSON
config plus a ``.npz`` of arrays that loads with ``allow_pickle=False``.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Annotated, Any, ClassVar, Protocol, TypeVar, cast, runtime_checkable

import numpy as np
import scipy.sparse as sp
from pydantic import AfterValidator, BaseModel, ConfigDict

from fusionrec.data.schema import Interactions
from fusionrec.errors import ModelError, NotFittedError
from fusionrec.ranking.keys import check_valid_metric

CONFIG_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"
FORMAT_VERSION = 2
HISTORY_PREFIX = "history"

RecommenderT = TypeVar("RecommenderT", bound="Recommender")


class FeatureSetLike(Protocol):
    """What a model reads from a FeatureSet (``fusionrec.features.base.FeatureSet``)."""

    ids: np.ndarray
    modalities: dict[str, Any]


class ModelConfig(BaseModel):
    """Base of every model's typed hyper-parameters; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")


#: A ``recall@20``-style early-stopping metric, rejected when the config is validated.
ValidMetric = Annotated[str, AfterValidator(check_valid_metric)]


def as_csr(data: Interactions | sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """Binary ``(n_users, n_items)`` float32 CSR of training interactions."""
    if isinstance(data, Interactions):
        matrix = data.to_csr(binary=True)
    else:
        matrix = sp.csr_matrix(cast(Any, data), dtype=np.float32)
        matrix.eliminate_zeros()
        matrix.data[:] = 1.0
        matrix.sort_indices()
    return matrix


class Recommender(ABC):
    """Base class: ``fit`` / ``score`` / ``recommend`` / ``save`` / ``load``.

    Subclasses set ``name`` and ``config_class`` and implement ``_fit``, ``score``,
    ``_get_state`` and ``_set_state``. Their ``__init__`` takes exactly the fields of
    ``config_class`` as keyword arguments (the contract tests check this).

    Class-level declarations the callers read:

    - ``required_modalities``: feature modalities the model cannot work without (``fit`` raises
      a clear error when they are missing); ``requires_features``: it needs a FeatureSet, of any
      modalities; ``uses_features``: it reads one when given; ``maps_cold_items``: an ID model
      that, given a FeatureSet, learns a content-to-embedding map after training, so items
      without training interactions (and new ones, ``score_items``) get a content-based vector.
    - ``uses_history``: scores are a function of the user's history row (EASE, ItemKNN): the
      base keeps the training matrix once as ``train_matrix`` (saved with the model) and
      ``score(users, user_items=X)`` scores from ``X`` instead: exactly what the model gives any
      user with that history (the learnt item model itself is not refitted).
    """

    name: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]]
    required_modalities: ClassVar[tuple[str, ...]] = ()
    requires_features: ClassVar[bool] = False
    uses_features: ClassVar[bool] = False
    maps_cold_items: ClassVar[bool] = False
    uses_history: ClassVar[bool] = False

    n_users: int = 0
    n_items: int = 0
    _fitted: bool = False
    train_matrix: sp.csr_matrix

    # ----------------------------------------------------------------------- configuration
    def get_config(self) -> ModelConfig:
        """The hyper-parameters this model was built with."""
        fields = self.config_class.model_fields
        return self.config_class(**{key: getattr(self, key) for key in fields})

    @classmethod
    def from_config(cls: type[RecommenderT], config: ModelConfig | dict[str, Any] | None = None) -> RecommenderT:
        """Build from a config object or a dict validated against ``config_class``.

        Nested configs (e.g. a fuser config inside a model config) reach the constructor as the
        typed objects pydantic built, not as dicts.
        """
        if config is None:
            config = cls.config_class()
        elif isinstance(config, dict):
            config = cls.config_class.model_validate(config)
        return cls(**{key: getattr(config, key) for key in type(config).model_fields})

    @classmethod
    def constructor_parameters(cls) -> dict[str, Any]:
        """Keyword arguments of ``__init__`` with their defaults."""
        params = inspect.signature(cls.__init__).parameters
        return {n: p.default for n, p in params.items() if n != "self"}

    # ----------------------------------------------------------------------- learning
    def fit(
        self: RecommenderT,
        train: Interactions | sp.spmatrix | sp.sparray,
        features: FeatureSetLike | None = None,
        valid: Interactions | sp.spmatrix | sp.sparray | None = None,
        *,
        item_ids: np.ndarray | None = None,
    ) -> RecommenderT:
        """Learn from ``train`` (Interactions or a ``(n_users, n_items)`` sparse matrix).

        ``features`` (a FeatureSet, rows aligned to the item index) is checked against
        ``item_ids`` (the item IdMap's ids in index order) when given, else by row count, and
        against ``required_modalities``; pure CF models ignore it. ``valid`` (same shape as
        train) is used by iterative models for early stopping. The model counts as fitted only
        once ``_fit`` has returned.
        """
        train_matrix = as_csr(train)
        valid_matrix = as_csr(valid) if valid is not None else None
        if valid_matrix is not None and valid_matrix.shape != train_matrix.shape:
            raise ModelError(f"valid has shape {valid_matrix.shape}, train {train_matrix.shape}")
        self._check_features(features, train_matrix.shape[1], item_ids)
        self._fitted = False
        self.n_users, self.n_items = train_matrix.shape
        self._fit(train_matrix, features, valid_matrix)
        if self.uses_history:
            self.train_matrix = train_matrix
        self._fitted = True
        return self

    def _check_features(self, features: FeatureSetLike | None, n_items: int, item_ids: np.ndarray | None) -> None:
        if self.requires_features and features is None:
            raise ModelError(
                f"{self.name} needs item features but got none; extract them with `fusionrec features` "
                "and pass --features DIR"
            )
        missing = [m for m in self.required_modalities if features is None or m not in features.modalities]
        if missing:
            have = "no features" if features is None else f"features with {sorted(features.modalities)}"
            raise ModelError(
                f"{self.name} needs the {', '.join(missing)} modalit{'y' if len(missing) == 1 else 'ies'} "
                f"but got {have}; extract them with `fusionrec features` and pass --features DIR"
            )
        if features is None or not (self.uses_features or self.maps_cold_items):
            return
        if not self.uses_features and not getattr(features, "modalities", None):
            return  # an ID model with a cold-item map ignores what is not a FeatureSet
        ids = np.asarray(features.ids).astype(str)
        if len(ids) != n_items:
            raise ModelError(f"the feature set has {len(ids)} items, the interactions {n_items}: re-extract features")
        if item_ids is not None:
            expected = np.asarray(item_ids).astype(str)
            differ = np.flatnonzero(expected != ids)
            if len(differ):
                row = int(differ[0])
                raise ModelError(
                    f"feature rows are not aligned with the item ids: row {row} holds {ids[row]!r}, "
                    f"item index {row} is {expected[row]!r} ({len(differ)} rows differ)"
                )

    @abstractmethod
    def _fit(self, train: sp.csr_matrix, features: Any | None, valid: sp.csr_matrix | None) -> None:
        """Learn from the binary train matrix (and valid, for early stopping)."""

    @abstractmethod
    def score(self, users: np.ndarray, user_items: sp.csr_matrix | None = None) -> np.ndarray:
        """``(len(users), n_items)`` float32 scores, higher = better (training items not masked).

        ``user_items``: optional ``(len(users), n_items)`` CSR of the users' current histories,
        rows aligned with ``users``; models that score from a history use it instead of the
        training snapshot (new feedback counts without a retrain), others raise ModelError.
        """

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() or load() first")

    def _check_users(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        index = np.asarray(users, dtype=np.int64).ravel()
        if len(index) and (index.min() < 0 or index.max() >= self.n_users):
            raise ModelError(f"user indices must be in [0, {self.n_users})")
        return index

    def _history_rows(self, users: np.ndarray, user_items: sp.csr_matrix | None) -> sp.csr_matrix:
        """The history rows to score from: ``user_items`` (checked, binarised) or the training rows.

        With ``user_items`` the user indices are not looked up (an unknown user, e.g. ``-1``, is fine).
        """
        self._check_fitted()
        if user_items is None:
            return self.train_matrix[self._check_users(users)]
        rows = as_csr(user_items)
        n_users = len(np.asarray(users).ravel())
        if rows.shape != (n_users, self.n_items):
            raise ModelError(f"user_items has shape {rows.shape}, expected {(n_users, self.n_items)} (users x items)")
        return rows

    def _replace_history(self, users: np.ndarray, interactions: sp.csr_matrix | sp.spmatrix | sp.sparray) -> tuple[np.ndarray, sp.csr_matrix]:
        """``partial_fit_users`` of a history model: the users' training rows become ``interactions``
        (binarised; an index ``>= n_users`` adds a user); returns the checked ``(users, rows)``."""
        from fusionrec.models.history import check_update, replace_rows

        self._check_fitted()
        index, rows = check_update(users, interactions, self.n_items)
        self.train_matrix = replace_rows(self.train_matrix, index, as_csr(rows))
        self.n_users = self.train_matrix.shape[0]
        return index, rows

    def recommend(
        self,
        users: np.ndarray,
        k: int = 10,
        exclude: sp.csr_matrix | None = None,
        candidates: np.ndarray | None = None,
        user_items: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` items per user, best first: ``(items int64, scores float32)``, each ``(len(users), k)``.

        ``exclude`` is a ``(n_users, n_items)`` matrix (e.g. the training matrix) whose items are
        never recommended to that user; with ``user_items`` it is instead aligned with ``users``
        (the same rows), and defaults to ``user_items`` itself. ``candidates`` (item indices)
        restricts the ranking to those items. Slots left empty hold item ``-1``.
        """
        from fusionrec.ranking.topk import as_score_tensor, keep_candidates, mask_rows, top_k_items

        if user_items is None:
            index = self._check_users(users)
            scores = as_score_tensor(self.score(index))
            if exclude is not None:  # only the batch's rows are sliced: no copy of the whole matrix
                mask_rows(scores, _csr(exclude)[index])
        else:
            index = np.asarray(users, dtype=np.int64).ravel()
            scores = as_score_tensor(self.score(index, user_items=user_items))
            mask_rows(scores, _csr(exclude if exclude is not None else user_items))
        if candidates is not None:
            keep_candidates(scores, candidates)
        return top_k_items(scores, k)

    # ----------------------------------------------------------------------- persistence
    @abstractmethod
    def _get_state(self) -> dict[str, np.ndarray]:
        """Learned arrays to save (numeric numpy arrays only)."""

    @abstractmethod
    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`_get_state` returned."""

    def save(self, directory: str | Path) -> Path:
        """Write ``model.json`` (name, hyper-parameters, shapes) and ``weights.npz``."""
        self._check_fitted()
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": FORMAT_VERSION,
            "model": self.name,
            "config": self.get_config().model_dump(mode="json"),
            "n_users": self.n_users,
            "n_items": self.n_items,
        }
        (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        save_arrays = cast(Any, np.savez)
        state = self._get_state()
        if self.uses_history:
            state |= csr_to_state(HISTORY_PREFIX, self.train_matrix)
        save_arrays(out / WEIGHTS_FILE, **state)
        return out

    @classmethod
    def load(cls: type[RecommenderT], directory: str | Path) -> RecommenderT:
        """Load a directory written by :meth:`save` (no pickle involved)."""
        root = Path(directory)
        meta = read_model_meta(root)
        if meta["model"] != cls.name:
            raise ModelError(f"{root} holds a {meta['model']!r} model, not {cls.name!r}")
        model = cls.from_config(meta["config"])
        model.n_users, model.n_items = int(meta["n_users"]), int(meta["n_items"])
        with np.load(root / WEIGHTS_FILE, allow_pickle=False) as weights:
            state = {key: weights[key] for key in weights.files}
        if cls.uses_history:
            model.train_matrix = csr_from_state(HISTORY_PREFIX, state)
            state = {k: v for k, v in state.items() if not k.startswith(HISTORY_PREFIX + "_")}
        model._set_state(state)
        model._fitted = True
        return model


def read_versioned_json(path: Path, version: int, missing: str) -> dict[str, Any]:
    """A JSON artifact header: ``missing`` when absent, a clear error on another format version."""
    if not path.exists():
        raise ModelError(missing)
    try:
        meta: dict[str, Any] = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from None
    if meta.get("format_version") != version:
        raise ModelError(f"{path}: unsupported format version {meta.get('format_version')} (this fusionrec reads {version})")
    return meta


def read_model_meta(directory: str | Path) -> dict[str, Any]:
    """The ``model.json`` of a model directory, with a clear error when it is not one."""
    missing = f"{directory} is not a fusionrec model directory (no {CONFIG_FILE})"
    return read_versioned_json(Path(directory) / CONFIG_FILE, FORMAT_VERSION, missing)


def _csr(matrix: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """``matrix`` itself when it is CSR already, else converted (masking reads only its structure)."""
    return matrix if isinstance(matrix, sp.csr_matrix) else sp.csr_matrix(cast(Any, matrix))


def empty_csr() -> sp.csr_matrix:
    """A ``(0, 0)`` float32 CSR placeholder for models not fitted yet."""
    return sp.csr_matrix(np.zeros((0, 0), dtype=np.float32))


def csr_to_state(prefix: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """Arrays of a CSR matrix for ``.npz`` storage."""
    return {
        f"{prefix}_data": matrix.data,
        f"{prefix}_indices": matrix.indices,
        f"{prefix}_indptr": matrix.indptr,
        f"{prefix}_shape": np.asarray(matrix.shape, dtype=np.int64),
    }


def csr_from_state(prefix: str, state: dict[str, np.ndarray]) -> sp.csr_matrix:
    n_rows, n_cols = (int(s) for s in state[f"{prefix}_shape"])
    return sp.csr_matrix(
        (state[f"{prefix}_data"], state[f"{prefix}_indices"], state[f"{prefix}_indptr"]), shape=(n_rows, n_cols)
    )


@runtime_checkable
class SupportsVectors(Protocol):
    """A factorised model whose ``score`` is exactly ``measure(user_vectors(), item_vectors())``,
    so an ANN index serves what ``score`` ranks.

    ``vector_measure`` is ``"inner_product"`` or ``"cosine"``; a model with item biases folds
    them into the vectors (a constant 1 in the user vector, the bias in the item vector).
    """

    vector_measure: str

    def user_vectors(self) -> np.ndarray:
        """``(n_users, d)`` float32."""
        ...

    def item_vectors(self) -> np.ndarray:
        """``(n_items, d)`` float32."""
        ...


@runtime_checkable
class SupportsFeatures(Protocol):
    """A model that uses item content (a FeatureSet) when fitting and scoring."""

    uses_features: bool


@runtime_checkable
class SupportsColdStart(Protocol):
    """A model that can score items unseen in training from their features."""

    def score_items(self, users: np.ndarray, item_features: Any) -> np.ndarray: ...


@runtime_checkable
class SupportsPartialFit(Protocol):
    """A model that takes new feedback without a full retrain (``fusionrec.online`` drives it).

    ``partial_fit_users(users, interactions)`` sets each user's history to its row of
    ``interactions`` (``(len(users), n_items)``, the whole current history, not a delta) and updates
    what ``score(users)`` reads at once; an index ``>= n_users`` adds a user. History models (EASE,
    ItemKNN, content, a history two-tower) replace the row (exact); ALS re-solves the user's ridge
    system (exact: its own user step); the BPR-trained factor models fold the vector in (the BPR
    objective, item vectors fixed). The item side is never retrained."""

    def partial_fit_users(self, users: np.ndarray, interactions: sp.csr_matrix) -> None: ...
