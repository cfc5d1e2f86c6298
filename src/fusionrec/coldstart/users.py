"""Recommendations for users a model never saw: from a few items they pick, a free-text
description of what they like, and/or profile attributes.

How each part reaches the model (``ColdUserRecommender.score``):

- **seed items**: a history model (EASE, ItemKNN, ``content``, a two tower with a history user
  tower) scores the seed row exactly as it scores any history (``score(-1, user_items=row)``); a
  factor model (BPR-MF, LightGCN, VBPR, FREEDOM) folds the user in, the item vectors fixed
  (:meth:`~fusionrec.models.torch_base.FactorModel.fold_in_users`); MostPop ignores them.
- **text**: encoded by the encoder that made the item text features; the ``text_seeds`` items whose
  text is closest become extra seed items, so every model reads it the way it reads a history.
- **profile**: the :class:`~fusionrec.coldstart.profile.ProfilePrior` (popularity among users with
  those attributes). Alone it is the ranking; with seeds the two rankings are added after
  standardising each row (``profile_weight`` of the prior).
- nothing: training popularity (MostPop).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.coldstart.profile import ProfilePrior
from fusionrec.coldstart.text_query import TextEncoderLike, TextRetriever
from fusionrec.errors import ModelError
from fusionrec.models.base import Recommender, as_csr


@dataclass
class UserQuery:
    """One cold user: item indices they picked, a description, profile attribute values."""

    items: Sequence[int] = ()
    text: str | None = None
    profile: Mapping[str, object] = field(default_factory=dict)


class ColdUserRecommender:
    """Score users unknown to ``model`` (module docstring).

    Parameters
    ----------
    model: a fitted Recommender.  train: its ``(n_users, n_items)`` training matrix (popularity).
    features, text_encoder: for text queries (a FeatureSet with ``text``; the encoder that made it).
    profiles: a fitted ProfilePrior (None: profiles are refused).
    text_seeds: items a text query adds as seeds.  profile_weight: weight of the prior beside seeds
        (2.0: chosen on the valid users of the ML-1M cold-user split, K=3, EASE; 0.5 / 1 / 4 / 8 were worse).
    """

    def __init__(
        self,
        model: Recommender,
        train: sp.csr_matrix,
        *,
        features: Any | None = None,
        text_encoder: TextEncoderLike | None = None,
        profiles: ProfilePrior | None = None,
        text_seeds: int = 10,
        profile_weight: float = 2.0,
    ) -> None:
        self.model, self.train = model, as_csr(train)
        if self.train.shape[1] != model.n_items:
            raise ModelError(f"train has {self.train.shape[1]} items, the model {model.n_items}")
        self.popularity = np.asarray(self.train.sum(axis=0), dtype=np.float32).ravel()
        self.retriever = TextRetriever(features, text_encoder) if text_encoder is not None else None
        self.profiles, self.text_seeds, self.profile_weight = profiles, text_seeds, profile_weight

    @property
    def n_items(self) -> int:
        return self.model.n_items

    # ------------------------------------------------------------------ queries
    def seed_rows(self, queries: Sequence[UserQuery]) -> sp.csr_matrix:
        """``(len(queries), n_items)`` binary rows: the picked items plus the text's nearest items."""
        rows, cols = [], []
        texts = [(r, q.text) for r, q in enumerate(queries) if q.text is not None]
        if texts and self.retriever is None:
            raise ModelError("text queries need text features and their encoder (features=, text_encoder=)")
        for r, query in enumerate(queries):
            items = np.asarray(list(query.items), dtype=np.int64)
            if len(items) and (items.min() < 0 or items.max() >= self.n_items):
                raise ModelError(f"item indices must be in [0, {self.n_items})")
            rows.append(np.full(len(items), r))
            cols.append(items)
        if texts:
            assert self.retriever is not None
            top = self.retriever.top_items([t for _, t in texts], self.text_seeds)
            for (r, _), items in zip(texts, top, strict=True):
                rows.append(np.full(len(items), r))
                cols.append(items)
        r_all = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        c_all = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        matrix = sp.csr_matrix((np.ones(len(r_all), dtype=np.float32), (r_all, c_all)), shape=(len(queries), self.n_items))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    def score(self, queries: Sequence[UserQuery]) -> np.ndarray:
        """``(len(queries), n_items)`` float32 scores (seed items not masked: see :meth:`recommend`)."""
        profiles = [q.profile for q in queries]
        return self.score_rows(self.seed_rows(queries), profiles if any(profiles) else None)

    def score_rows(self, seeds: sp.csr_matrix, profiles: Sequence[Mapping[str, object]] | None = None) -> np.ndarray:
        """Scores from seed rows ``(n, n_items)`` and optional profiles (one per row, ``{}`` for none)."""
        seeds = as_csr(seeds)
        n = seeds.shape[0]
        has_seeds = np.diff(seeds.indptr) > 0
        out = np.broadcast_to(self.popularity, (n, self.n_items)).astype(np.float32)
        prior: np.ndarray | None = None
        with_profile = np.zeros(n, dtype=bool)
        if profiles is not None and any(profiles):
            if self.profiles is None:
                raise ModelError("profile queries need a ProfilePrior fitted on the users table (profiles=)")
            with_profile = np.array([bool(p) for p in profiles])
            prior = np.zeros((n, self.n_items), dtype=np.float32)
            prior[with_profile] = self.profiles.score([p for p in profiles if p])
            out[with_profile & ~has_seeds] = prior[with_profile & ~has_seeds]
        if has_seeds.any():
            index = np.flatnonzero(has_seeds)
            seeded = self._model_scores(seeds[index])
            both = with_profile[index]
            if prior is not None and both.any():
                seeded[both] = _standardise(seeded[both]) + self.profile_weight * _standardise(prior[index[both]])
            out[index] = seeded
        return out

    def _model_scores(self, rows: sp.csr_matrix) -> np.ndarray:
        model = self.model
        unknown = np.full(rows.shape[0], -1, dtype=np.int64)
        if model.uses_history or getattr(model, "scores_from_history", False):
            return np.asarray(model.score(unknown, user_items=rows), dtype=np.float32)
        fold_in = getattr(model, "fold_in_users", None)
        if fold_in is not None:
            vectors = fold_in(rows)
            return np.asarray(vectors @ model.item_vectors().T, dtype=np.float32)  # type: ignore[attr-defined]
        try:
            return np.asarray(model.score(unknown, user_items=rows), dtype=np.float32)  # e.g. MostPop
        except ModelError:
            raise ModelError(f"{model.name} cannot score users it did not see (no history scoring, no fold-in)") from None

    def recommend(self, queries: Sequence[UserQuery], k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` ``(items, scores)`` per query, best first; the picked items are left out (a
        text's nearest items are not: they are what the text asks for)."""
        from fusionrec.ranking.topk import as_score_tensor, mask_rows, top_k_items

        profiles = [q.profile for q in queries]
        scores = as_score_tensor(self.score_rows(self.seed_rows(queries), profiles if any(profiles) else None))
        mask_rows(scores, self.seed_rows([UserQuery(items=q.items) for q in queries]))
        return top_k_items(scores, k)


def _standardise(scores: np.ndarray) -> np.ndarray:
    """Each row minus its mean over items, divided by its standard deviation (1 when constant)."""
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    return ((scores - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)
