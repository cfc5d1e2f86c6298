"""Imputation of a missing modality's vector from the ones an item has: a learned cross-modal ridge.

For each target modality ``m`` a closed-form ridge regression maps the item's *other* modalities
to ``m``: the input row is the concatenation of the other modalities' centred unit rows
(:func:`~fusionrec.fusion.vectors.centered_unit_rows`; a modality the item lacks is a zero block)
plus one presence-indicator column per other modality, the target the centred unit row of ``m``.
It is trained (float64, intercept unpenalised) on the items that have ``m`` and at least one
other modality. ``l2`` is chosen, when not given, on a seeded 10 % of those items by held-out
cosine over a log grid; one eigendecomposition of ``X^T X`` makes the whole grid one solve.

:meth:`ModalityImputer.impute` returns a new FeatureSet in which the rows that lack ``m`` but have
another modality hold the prediction mapped back to the feature space: for a predicted centred
direction ``u`` and the stored centre ``c`` the row is the unit vector ``r = c + t u`` (``t > 0``),
so ``unit(r) - c`` is exactly parallel to ``u``: centring by the same centre recovers the
predicted direction. Imputed rows are marked present and counted in the provenance
(``extra["imputed_rows"]``); present rows are never touched; an item with no modality at all stays
missing. Fitting on a new catalogue is not needed to impute it: the centres and weights are stored.

Not implemented: adversarial (GAN) imputation; only the ridge regressor exists.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fusionrec.errors import ModelError
from fusionrec.features.base import FeatureSet
from fusionrec.fusion.vectors import centered_unit_rows, modality_center, unit_rows

log = logging.getLogger(__name__)

#: ``l2`` grid searched when none is given (held-out cosine picks one)
L2_GRID = tuple(float(v) for v in np.logspace(-2, 4, 13))


@dataclass
class _Target:
    """One fitted target: ``weights`` (d_in, d_m), ``intercept`` (d_m,), the input modalities."""

    inputs: list[str]
    weights: np.ndarray
    intercept: np.ndarray
    l2: float
    held_out_cosine: float
    held_out_cosine_mean_only: float
    n_train: int
    n_imputed: int = 0


def _row_cosine(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean cosine of the rows of two ``(n, d)`` arrays (a zero row counts 0)."""
    num = (pred * truth).sum(axis=1)
    den = np.linalg.norm(pred, axis=1) * np.linalg.norm(truth, axis=1)
    return float(np.mean(np.where(den > 0, num / np.maximum(den, 1e-300), 0.0)))


class ModalityImputer:
    """Per-modality ridge regressors from the other modalities (see the module docstring).

    ``l2``: the ridge penalty (None: chosen from :data:`L2_GRID` by held-out cosine);
    ``min_train_items``: a target with fewer qualifying items is skipped (logged, not an error);
    ``seed``: the held-out draw.
    """

    def __init__(self, l2: float | None = None, min_train_items: int = 20, seed: int = 0) -> None:
        if l2 is not None and l2 <= 0:
            raise ModelError(f"l2 must be > 0, got {l2}")
        self.l2 = l2
        self.min_train_items = max(2, int(min_train_items))
        self.seed = seed
        self.centers_: dict[str, np.ndarray] = {}
        self.dims_: dict[str, int] = {}
        self.targets_: dict[str, _Target] = {}
        self.skipped_: dict[str, str] = {}

    # -- inputs -----------------------------------------------------------------------------
    @staticmethod
    def _names(features: FeatureSet, modalities: Sequence[str] | None) -> list[str]:
        names = list(modalities) if modalities else list(features.modalities)
        unknown = [m for m in names if m not in features.modalities]
        if unknown:
            raise ModelError(f"no {unknown} features (the feature set has {sorted(features.modalities)})")
        return names

    def _blocks(self, features: FeatureSet, names: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Per modality the ``(n, d_m)`` centred unit rows (stored centres) and the ``(n,)`` usable mask."""
        blocks, usable = {}, {}
        for name in names:
            modality = features.modalities[name]
            if modality.dim != self.dims_[name]:
                raise ModelError(f"modality {name!r} has {modality.dim} dims, the imputer was fitted on {self.dims_[name]}")
            usable[name] = np.asarray(unit_rows(modality.matrix, modality.present).any(axis=1), dtype=bool)
            blocks[name] = centered_unit_rows(modality.matrix, modality.present, self.centers_[name])
        return blocks, usable

    @staticmethod
    def _design(inputs: Sequence[str], blocks: dict[str, np.ndarray], usable: dict[str, np.ndarray]) -> np.ndarray:
        """``(n, sum d_o + len(inputs))`` float64: the other modalities' blocks and presence columns."""
        parts = [blocks[o].astype(np.float64) for o in inputs] + [usable[o][:, None].astype(np.float64) for o in inputs]
        return np.concatenate(parts, axis=1)

    # -- fitting ----------------------------------------------------------------------------
    def fit(
        self, features: FeatureSet, modalities: Sequence[str] | None = None, *, targets: Sequence[str] | None = None
    ) -> ModalityImputer:
        """Fit one regressor per target. ``modalities``: those taking part (inputs and targets; None:
        all); ``targets``: the ones to learn to impute (None: every one of ``modalities``)."""
        names = self._names(features, modalities)
        wanted = list(targets) if targets else names
        outside = [m for m in wanted if m not in names]
        if outside:
            raise ModelError(f"target modality {outside} is not among the modalities used ({names})")
        self.centers_ = {m: modality_center(features.modalities[m].matrix, features.modalities[m].present) for m in names}
        self.dims_ = {m: features.modalities[m].dim for m in names}
        self.targets_, self.skipped_ = {}, {}
        blocks, usable = self._blocks(features, names)
        for target in wanted:
            inputs = [m for m in names if m != target]
            if inputs:
                rows = usable[target] & np.any(np.stack([usable[o] for o in inputs]), axis=0)
            else:
                rows = np.zeros(len(features), dtype=bool)
            if int(rows.sum()) < self.min_train_items:
                reason = f"{int(rows.sum())} items have {target!r} and another modality (< {self.min_train_items})"
                log.info("imputer: skipping %s: %s", target, reason)
                self.skipped_[target] = reason
                continue
            self.targets_[target] = self._fit_target(inputs, self._design(inputs, blocks, usable)[rows],
                                                     blocks[target][rows].astype(np.float64))
            log.info("imputer: %s from %s: l2 %.3g, held-out cosine %.3f (n=%d)", target, inputs,
                     self.targets_[target].l2, self.targets_[target].held_out_cosine, int(rows.sum()))
        return self

    def _fit_target(self, inputs: list[str], x: np.ndarray, y: np.ndarray) -> _Target:
        """Ridge of ``y`` (n, d_m) on ``x`` (n, d_in): grid on a held-out 10 %, refit on all rows."""
        n = len(x)
        order = np.random.default_rng(self.seed).permutation(n)
        n_held = max(1, round(0.1 * n))
        held, rest = order[:n_held], order[n_held:]
        x_mean, y_mean = x[rest].mean(axis=0), y[rest].mean(axis=0)
        xc = x[rest] - x_mean
        eigvals, eigvecs = np.linalg.eigh(xc.T @ xc)
        eigvals = np.maximum(eigvals, 0.0)
        projected = eigvecs.T @ (xc.T @ (y[rest] - y_mean))  # (d_in, d_m)
        held_x = (x[held] - x_mean) @ eigvecs  # (n_held, d_in)
        grid = (self.l2,) if self.l2 is not None else L2_GRID
        scores = [_row_cosine(held_x @ (projected / (eigvals + l2)[:, None]) + y_mean, y[held]) for l2 in grid]
        best = int(np.argmax(scores))
        if self.l2 is None and best in (0, len(grid) - 1):
            log.info("imputer: chosen l2 %.3g is at the edge of the grid", grid[best])
        baseline = _row_cosine(np.broadcast_to(y_mean, y[held].shape), y[held])
        x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
        xc = x - x_mean
        gram = xc.T @ xc
        gram[np.diag_indices_from(gram)] += grid[best]
        weights = np.linalg.solve(gram, xc.T @ (y - y_mean))
        return _Target(inputs=inputs, weights=weights, intercept=y_mean - x_mean @ weights, l2=float(grid[best]),
                       held_out_cosine=float(scores[best]), held_out_cosine_mean_only=baseline, n_train=n)

    # -- imputing ---------------------------------------------------------------------------
    def predict(self, features: FeatureSet, target: str) -> np.ndarray:
        """``(n_items, d_target)`` float64 predicted centred directions (not unit) for every item."""
        if target not in self.targets_:
            raise ModelError(f"no fitted imputer for modality {target!r} (fitted: {sorted(self.targets_)})")
        fitted = self.targets_[target]
        self._names(features, fitted.inputs)
        blocks, usable = self._blocks(features, fitted.inputs)
        return self._design(fitted.inputs, blocks, usable) @ fitted.weights + fitted.intercept

    def confidence(self, features: FeatureSet, target: str) -> np.ndarray:
        """``(n_items,)`` float32 per-row weight for ``target``: 1 where present, the norm of the
        prediction (clipped to 1; ridge shrinks uncertain predictions toward 0) where it would be
        imputed, 0 where nothing can be. Imputed rows are unit vectors, so a model that wants to
        trust them less has to apply this itself (on ML-1M it is what makes imputation pay off)."""
        self._names(features, [target])
        present = np.asarray(unit_rows(features[target].matrix, features[target].present).any(axis=1), dtype=bool)
        fitted = self.targets_.get(target)
        if fitted is None:
            return present.astype(np.float32)
        _, usable = self._blocks(features, fitted.inputs)
        fillable = np.any(np.stack([usable[o] for o in fitted.inputs]), axis=0)
        norm = np.minimum(np.linalg.norm(self.predict(features, target), axis=1), 1.0)
        return np.where(present, 1.0, np.where(fillable, norm, 0.0)).astype(np.float32)

    def impute(self, features: FeatureSet) -> FeatureSet:
        """A new FeatureSet (arrays copied; the input is not modified) with each fitted modality's
        missing rows filled where the item has one of its input modalities."""
        if not self.dims_:
            raise ModelError("the imputer is not fitted (call fit first)")
        self._names(features, sorted({m for t in self.targets_.values() for m in t.inputs} | set(self.targets_)))
        copied = {name: replace(m, matrix=m.matrix.copy(), present=m.present.copy(),
                                inputs=None if m.inputs is None else list(m.inputs)) for name, m in features.modalities.items()}
        out = FeatureSet(ids=features.ids.copy(), modalities=copied, entity=features.entity)
        for target, fitted in self.targets_.items():
            modality = copied[target]
            blocks, usable = self._blocks(features, fitted.inputs)
            rows = np.flatnonzero(~modality.present & np.any(np.stack([usable[o] for o in fitted.inputs]), axis=0))
            pred = self._design(fitted.inputs, {o: b[rows] for o, b in blocks.items()},
                                {o: u[rows] for o, u in usable.items()}) @ fitted.weights + fitted.intercept
            norm = np.linalg.norm(pred, axis=1)
            ok = norm > 1e-12
            rows, direction = rows[ok], pred[ok] / norm[ok, None]
            center = self.centers_[target].astype(np.float64)
            # r = c + t u with |r| = 1 and t > 0: t^2 + 2 t (c.u) + |c|^2 - 1 = 0 (|c| < 1)
            cu = direction @ center
            t = -cu + np.sqrt(np.maximum(cu**2 + 1.0 - float(center @ center), 0.0))
            modality.matrix[rows] = unit_rows((center[None, :] + t[:, None] * direction).astype(np.float32))
            modality.present[rows] = True
            fitted.n_imputed = len(rows)
            mask = np.zeros(len(modality.present), dtype=bool)
            mask[rows] = True
            extra: dict[str, Any] = dict(modality.provenance.extra) | {
                "imputed_rows": len(rows), "imputer": "ridge", "imputer_l2": fitted.l2,
                "imputed_mask_sha": hashlib.sha256(np.packbits(mask).tobytes()).hexdigest()[:16],
            }
            modality.provenance = modality.provenance.model_copy(update={"extra": extra, "n_present": int(modality.present.sum())})
        return out

    def report(self) -> dict[str, dict[str, Any]]:
        """Per modality ``{l2, held_out_cosine, held_out_cosine_mean_only, n_train, n_imputed}`` (or ``skipped``)."""
        out: dict[str, dict[str, Any]] = {
            name: {"inputs": t.inputs, "l2": t.l2, "held_out_cosine": t.held_out_cosine,
                   "held_out_cosine_mean_only": t.held_out_cosine_mean_only, "n_train": t.n_train, "n_imputed": t.n_imputed}
            for name, t in self.targets_.items()
        }
        out |= {name: {"skipped": reason} for name, reason in self.skipped_.items()}
        return out


def impute_missing(features: FeatureSet, modalities: Sequence[str] | None = None, **kwargs: Any) -> tuple[FeatureSet, ModalityImputer]:
    """Fit a :class:`ModalityImputer` on ``features`` and impute them: ``(new FeatureSet, imputer)``."""
    imputer = ModalityImputer(**kwargs).fit(features, modalities)
    return imputer.impute(features), imputer


__all__ = ["L2_GRID", "ModalityImputer", "impute_missing"]
