"""Explain recommendations per modality: contributions, fuser weights and evidence, for ``k`` items at once.

::

    explainer = Explainer(model, features, titles=titles, genres=parse_genres(items["genres"]))
    for e in explainer.explain(user, items, history=seen_items, scores=scores):
        print(e.title, e.driver, e.contributions, e.headline.phrase)   # "plot like Toy Story"

or, in one call that also recommends, :func:`explain_user`. The :class:`Explainer` prepares what
is per catalogue once (centred feature rows, the model's modalities), so a server builds it at
start-up and explains a request in one batched ``score_items`` call plus one small product per
modality. See :mod:`fusionrec.explain.contributions` for what "a modality removed" means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import scipy.sparse as sp

from fusionrec.errors import ModelError
from fusionrec.explain.contributions import fuser_weights, leave_one_out, scored_modalities
from fusionrec.explain.evidence import EvidenceIndex
from fusionrec.explain.types import ItemExplanation
from fusionrec.features.base import FeatureSet
from fusionrec.models.base import Recommender


def history_items(history: np.ndarray | Sequence[int] | sp.spmatrix | sp.sparray) -> np.ndarray:
    """``(h,)`` int64 item indices of a history: given as indices, or as a ``(1, n_items)`` sparse row."""
    if sp.issparse(history):
        row = sp.csr_matrix(cast(Any, history))
        if row.shape[0] != 1:
            raise ModelError(f"a history row must have one row, got shape {row.shape}")
        return np.asarray(row.indices[row.data != 0], dtype=np.int64)
    return np.asarray(history, dtype=np.int64).ravel()


def driving_modality(contributions: dict[str, float] | None) -> str | None:
    """The modality with the largest positive contribution (``None`` when none is positive)."""
    if not contributions:
        return None
    name, value = max(contributions.items(), key=lambda kv: kv[1])
    return name if value > 0 else None


class Explainer:
    """A fitted model with its catalogue's features, ready to explain recommendations.

    Parameters
    ----------
    model: a fitted Recommender (any: ID models get evidence without contributions).
    features: the FeatureSet of the model's items (rows aligned to its item index): the one it was
        trained with for content models (``ModelBundle.check_features`` checks the encoders).
    titles: ``(n_items,)`` display names (default: the item ids); genres: per item, the genre
        names to cite in the attributes phrase (:func:`~fusionrec.explain.evidence.parse_genres`).
    modalities: the modalities the model reads (e.g. a bundle's ``features`` keys); default: its
        ItemContent's, else its ``modalities`` setting, else every one in ``features``.
    per_modality: evidence items per modality.
    """

    def __init__(
        self,
        model: Recommender,
        features: FeatureSet,
        *,
        titles: Sequence[str] | np.ndarray | None = None,
        genres: Sequence[Sequence[str]] | None = None,
        modalities: Sequence[str] | None = None,
        per_modality: int = 1,
    ) -> None:
        if len(features.ids) != model.n_items:
            raise ModelError(f"the feature set has {len(features.ids)} items, the model {model.n_items}")
        self.model = model
        self.per_modality = int(per_modality)
        self.modalities = scored_modalities(model, features, modalities)
        unknown = sorted(set(modalities or ()) - set(features.modalities))
        if unknown:
            raise ModelError(
                f"the model read {unknown} features; the feature set has {sorted(features.modalities)}"
            )
        # what score_items is given: the modalities the model reads, nothing more (content needs exactly those)
        self.scoring_features = FeatureSet(
            ids=features.ids,
            modalities={m: features.modalities[m] for m in self.modalities},
            entity=features.entity,
        )
        self.index = EvidenceIndex(features, titles, genres)

    def explain(
        self,
        user: int,
        items: np.ndarray | Sequence[int],
        *,
        history: np.ndarray | Sequence[int] | sp.spmatrix | sp.sparray,
        scores: np.ndarray | Sequence[float] | None = None,
    ) -> list[ItemExplanation]:
        """One :class:`ItemExplanation` per item of ``items`` (``(k,)`` indices, ``-1`` slots skipped).

        ``user``: the model's user index; ``history``: that user's past items (indices or a
        ``(1, n_items)`` row), the pool of evidence; ``scores``: the ranking scores of ``items``
        (default: ``model.score`` of the user).
        """
        index = np.asarray(items, dtype=np.int64).ravel()
        keep = index >= 0
        index = index[keep]
        if len(index) and index.max() >= self.model.n_items:
            raise ModelError(f"item indices must be in [0, {self.model.n_items})")
        if scores is None:
            if user < 0 or user >= self.model.n_users:
                raise ModelError("pass the scores of a user the model was not trained with")
            ranking = np.asarray(self.model.score(np.array([user]))[0, index], dtype=np.float64)
        else:
            ranking = np.asarray(scores, dtype=np.float64).ravel()[keep]
        parts = leave_one_out(self.model, self.scoring_features, int(user), index, self.modalities)
        weights = fuser_weights(self.model, index)
        evidence = self.index.similar(index, history_items(history), self.per_modality)
        out = []
        for j, item in enumerate(index):  # the k items of one user
            contributions = (
                None if parts.values is None else {m: float(v[j]) for m, v in parts.values.items()}
            )
            out.append(
                ItemExplanation(
                    item=int(item),
                    score=float(ranking[j]),
                    title=str(self.index.titles[item]),
                    content_score=None if parts.content_score is None else float(parts.content_score[j]),
                    contributions=contributions,
                    fuser_weights=None
                    if weights is None
                    else dict(zip(weights[0], weights[1][j].tolist(), strict=True)),
                    evidence=tuple(evidence[j]),
                    driver=driving_modality(contributions),
                    method=parts.method,
                )
            )
        return out


def explain_user(
    model: Recommender,
    features: FeatureSet,
    user: int,
    history: np.ndarray | Sequence[int] | sp.spmatrix | sp.sparray,
    *,
    k: int = 10,
    items: np.ndarray | Sequence[int] | None = None,
    exclude: sp.csr_matrix | None = None,
    titles: Sequence[str] | np.ndarray | None = None,
    genres: Sequence[Sequence[str]] | None = None,
    modalities: Sequence[str] | None = None,
    per_modality: int = 1,
) -> list[ItemExplanation]:
    """Recommend ``k`` items to ``user`` (never one of ``exclude``'s row, an ``(n_users, n_items)``
    matrix such as a bundle's seen items; default: the ``history``) and explain them, best first.
    With ``items`` those are explained instead (scored by the model). Builds an :class:`Explainer`:
    to explain many users, build one and call :meth:`Explainer.explain`."""
    explainer = Explainer(
        model, features, titles=titles, genres=genres, modalities=modalities, per_modality=per_modality
    )
    past = history_items(history)
    if items is not None:
        return explainer.explain(user, items, history=past)
    if exclude is None:
        rows = np.full(len(past), user)
        exclude = sp.csr_matrix(
            (np.ones(len(past), dtype=np.float32), (rows, past)), shape=(model.n_users, model.n_items)
        )
    top, scores = model.recommend(np.array([user]), k=k, exclude=exclude)
    return explainer.explain(user, top[0], history=past, scores=scores[0])
