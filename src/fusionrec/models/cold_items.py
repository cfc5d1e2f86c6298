"""Cold-start items for ID-based models: a learned map from item content to the item embedding.

An ID-embedding model (BPR-MF, LightGCN, FREEDOM) has nothing useful in the row of an item that no
training user touched: it was initialised at random and only ever pushed down as a negative. Once
the model is trained, :class:`ContentToEmbedding` regresses the trained item vectors of the warm
items (those with at least ``min_count`` training interactions) on their content (the centred,
masked, per-modality concatenation of :func:`fusionrec.fusion.vectors.content_vectors`, the same
vectors the ``content`` model uses) with ridge regression, as DeepMusic (van den Oord et al. 2013)
regresses latent factors on audio. The model then serves the mapped vector for every item without
training interactions, and for items added later (``score_items``).

The ridge penalty is chosen on a held-out 10 % of the warm items by the error that matters for
ranking: the squared error of the scores users would get, ``mean_u (u . (v_hat - v))^2``
(``tr(dV G dV^T)`` with ``G`` the users' Gram matrix), over a log grid; one SVD makes the whole grid
cheap. The map has an intercept (the mean warm item vector), so an item with no content at all
gets the average item.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fusionrec.errors import ModelError
from fusionrec.fusion.vectors import centered_unit_rows, modality_centers, unit_rows

L2_GRID = tuple(float(x) for x in np.logspace(-3, 3, 13))
STATE_PREFIX = "coldmap_"


class ContentToEmbedding:
    """Ridge map ``content (n, D) -> item vector (n, d)`` fitted on warm items (module docstring).

    Parameters
    ----------
    min_count: items with at least this many training interactions are the regression's targets
        (rarely seen items have noisy embeddings).
    holdout: share of those items held out to choose the penalty.
    seed: of the held-out draw.
    """

    def __init__(self, min_count: int = 3, holdout: float = 0.1, seed: int = 0) -> None:
        self.min_count, self.holdout, self.seed = min_count, holdout, seed
        self.modalities: list[str] = []
        self.centers: dict[str, np.ndarray] = {}
        self.weight = np.zeros((0, 0), dtype=np.float32)  # (D, d)
        self.bias = np.zeros(0, dtype=np.float32)  # (d,)
        self.l2 = float("nan")
        self.holdout_error = float("nan")  # relative score error at the chosen l2 (1 = the mean vector's)

    @property
    def fitted(self) -> bool:
        return self.weight.size > 0

    def encode(self, features: Any) -> np.ndarray:
        """``(len(features.ids), D)`` float32 content vectors with the training centres; a trained
        modality the set lacks counts as missing for every item."""
        have = getattr(features, "modalities", None)
        if have is None:
            raise ModelError(f"expected a FeatureSet with {self.modalities}, got {type(features).__name__}")
        present = [m for m in self.modalities if m in have]
        if not present:
            raise ModelError(f"the content map was trained on {self.modalities}; these features have {sorted(have)}")
        blocks = [
            centered_unit_rows(have[name].matrix, have[name].present, self.centers[name]) if name in have
            else np.zeros((len(features.ids), len(self.centers[name])), dtype=np.float32)
            for name in self.modalities
        ]  # fmt: skip
        # the per-modality sqrt(1/M) shares and the final normalisation of content_vectors
        return unit_rows(np.concatenate(blocks, axis=1) * np.float32(np.sqrt(1.0 / len(self.modalities))))

    def fit(
        self,
        features: Any,
        item_vectors: np.ndarray,
        item_counts: np.ndarray,
        user_vectors: np.ndarray,
        modalities: Sequence[str] | None = None,
    ) -> ContentToEmbedding:
        """Fit on the items with ``item_counts >= min_count``; ``user_vectors`` ``(n_users, d)``
        weight the error the penalty is chosen by. Raises ModelError when fewer than 10 items qualify."""
        self.modalities = list(modalities) if modalities else list(features.modalities)
        self.centers = modality_centers(features, self.modalities)
        content = self.encode(features)
        warm = np.flatnonzero((np.asarray(item_counts) >= self.min_count) & content.any(axis=1))
        if len(warm) < 10:
            raise ModelError(f"only {len(warm)} items have content and >= {self.min_count} training interactions")
        x, y = content[warm].astype(np.float64), np.asarray(item_vectors, dtype=np.float64)[warm]
        gram = np.asarray(user_vectors, dtype=np.float64)
        gram = gram.T @ gram / max(len(gram), 1)  # (d, d): score error = dV G dV^T
        rng = np.random.default_rng(self.seed)
        held = rng.random(len(warm)) < self.holdout
        if held.sum() >= 5 and (~held).sum() >= 5:
            errors = _ridge_path_errors(x[~held], y[~held], x[held], y[held], gram)
            best = int(np.argmin(errors))
            self.l2 = L2_GRID[best]
            baseline = _score_error(y[held] - y[~held].mean(axis=0), gram)
            self.holdout_error = float(errors[best] / baseline) if baseline > 0 else float("nan")
        else:
            self.l2 = 1.0
        self.weight, self.bias = _ridge(x, y, self.l2)
        return self

    def predict(self, content: np.ndarray) -> np.ndarray:
        """``(n, d)`` float32 item vectors of ``(n, D)`` content vectors from :meth:`encode`."""
        if not self.fitted:
            raise ModelError("the content-to-embedding map is not fitted")
        return (np.asarray(content, dtype=np.float32) @ self.weight + self.bias).astype(np.float32)

    def predict_features(self, features: Any) -> np.ndarray:
        return self.predict(self.encode(features))

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, np.ndarray]:
        out = {
            f"{STATE_PREFIX}weight": self.weight,
            f"{STATE_PREFIX}bias": self.bias,
            f"{STATE_PREFIX}modalities": np.asarray(self.modalities, dtype=str),
            f"{STATE_PREFIX}l2": np.asarray([self.l2, self.holdout_error], dtype=np.float64),
        }
        return out | {f"{STATE_PREFIX}center_{m}": c for m, c in self.centers.items()}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> ContentToEmbedding | None:
        """The map saved in ``state`` (None when the model was fitted without one)."""
        if f"{STATE_PREFIX}weight" not in state:
            return None
        out = cls()
        out.weight = np.asarray(state[f"{STATE_PREFIX}weight"], dtype=np.float32)
        out.bias = np.asarray(state[f"{STATE_PREFIX}bias"], dtype=np.float32)
        out.modalities = [str(m) for m in state[f"{STATE_PREFIX}modalities"]]
        out.l2, out.holdout_error = (float(v) for v in state[f"{STATE_PREFIX}l2"])
        out.centers = {m: np.asarray(state[f"{STATE_PREFIX}center_{m}"]) for m in out.modalities}
        return out


def _ridge(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """``(W (D, d), b (d,))`` minimising ``||x W + b - y||^2 + l2 ||W||^2`` (intercept unpenalised)."""
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    weight = vt.T @ ((s / (s**2 + l2))[:, None] * (u.T @ yc))
    return weight.astype(np.float32), (y_mean - x_mean @ weight).astype(np.float32)


def _score_error(delta: np.ndarray, gram: np.ndarray) -> float:
    return float(np.einsum("nd,de,ne->", delta, gram, delta) / max(len(delta), 1))


def _ridge_path_errors(x: np.ndarray, y: np.ndarray, x_held: np.ndarray, y_held: np.ndarray, gram: np.ndarray) -> np.ndarray:
    """Held-out score error for every penalty of :data:`L2_GRID` from one SVD."""
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    u, s, vt = np.linalg.svd(x - x_mean, full_matrices=False)
    uty = u.T @ (y - y_mean)  # (r, d)
    projected = (x_held - x_mean) @ vt.T  # (n_held, r)
    errors = []
    for l2 in L2_GRID:
        predicted = projected @ ((s / (s**2 + l2))[:, None] * uty) + y_mean
        errors.append(_score_error(predicted - y_held, gram))
    return np.asarray(errors)
