"""The read paths of the server: recommendations (known and cold users), similar items, text search.

Known users are scored by the live model (their history as it is now, dislikes excluded), the top
``rerank_candidates`` re-ranked for diversity when asked (:mod:`fusionrec.rerank`, in the fused
content space, else the model's vectors), then explained (:mod:`fusionrec.explain`). A user the
server has never seen, or one with no history yet, takes the cold-start path: popularity, or
:class:`~fusionrec.coldstart.ColdUserRecommender` with picked items / a text / a profile
(``POST /recommendations``). Items added while serving are ranked with the catalogue (content
scores) but are not re-ranked or explained (their similarity rows and evidence are not built).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from fusionrec.errors import ModelError

if TYPE_CHECKING:
    from fusionrec.serve.state import ServingState

log = logging.getLogger(__name__)


class Recommendations:
    """Recommendation, similar-item and search answers as JSON-ready dicts."""

    def __init__(self, state: ServingState) -> None:
        self.state = state
        self._similarity: Any | None = None
        self._explainer: Any | None = None
        self._cold: Any | None = None
        self._text: Any | None = None
        self._text_loaded = False
        self._text_lock = threading.Lock()

    # ------------------------------------------------------------------ lazily built helpers
    def similarity(self) -> Any | None:
        """Item similarity for re-ranking: the fused content space, else the model's vectors (the
        vectors the state's indexes were built from, not recomputed)."""
        from fusionrec.rerank.space import ItemSimilarity

        if self._similarity is None:
            n = self.state.model.n_items  # the catalogue; items added later are not re-ranked
            for space in ("fused", "model"):
                if space in self.state.vectors:
                    self._similarity = ItemSimilarity(self.state.vectors[space][:n])
                    break
        return self._similarity

    def explainer(self) -> Any | None:
        from fusionrec.explain import Explainer

        features = self.state.features
        if self._explainer is None and features is not None:
            state = self.state
            n = state.model.n_items
            self._explainer = Explainer(state.model, features, titles=state.catalog.titles[:n],
                                        genres=state.catalog.genres[:n], modalities=list(state.bundle.features) or None)
        return self._explainer

    def text_encoder(self) -> Any | None:
        """The encoder of the text features (loaded once; :class:`ServingState` warms it in the background)."""
        with self._text_lock:
            return self._load_text_encoder()

    def _load_text_encoder(self) -> Any | None:
        if not self._text_loaded:
            self._text_loaded = True
            features = self.state.features
            if features is not None and "text" in features.modalities:
                from fusionrec.coldstart import load_matching_text_encoder

                try:
                    self._text = load_matching_text_encoder(features)
                except ModelError as exc:
                    log.warning("free-text search is off: %s", exc)
        return self._text

    def cold(self) -> Any:
        from fusionrec.coldstart import ColdUserRecommender, ProfilePrior

        if self._cold is None:
            state = self.state
            prior = None
            users = getattr(state, "users_table", None)
            if users is not None:
                try:
                    prior = ProfilePrior().fit(users, state.bundle.seen)
                except Exception as exc:  # a users table without usable attributes: no profile prior
                    log.warning("no profile prior: %s", exc)
            encoder = self.text_encoder()
            self._cold = ColdUserRecommender(state.model, state.bundle.seen, features=state.features if encoder else None,
                                             text_encoder=encoder, profiles=prior)
        return self._cold

    # ------------------------------------------------------------------ answers
    def for_user(self, user_id: str, k: int, diversity: float, explain: bool) -> dict[str, Any]:
        state = self.state
        user = state.user_index(user_id)
        if user is None or len(state.history(user)) == 0:
            items, scores = self._cold_top([], None, {}, k)
            return {"user_id": user_id, "cold": True, "items": self._cards(items, scores)}
        wanted = max(k, state.settings.rerank_candidates) if diversity > 0 else k
        top, values = state.live.recommend(np.array([user]), k=wanted, exclude=state.dislike_rows(np.array([user])))
        items, scores = top[0], values[0]
        if diversity > 0:
            items, scores = self._diversify(items, scores, diversity, k)
        items, scores = items[:k], scores[:k]
        explanations = self._explain(user, items, scores) if explain else {}
        return {"user_id": user_id, "cold": False, "items": self._cards(items, scores, explanations)}

    def for_query(self, items: list[str], text: str | None, profile: dict[str, Any], k: int,
                  diversity: float) -> dict[str, Any]:
        picked = [self.state.item_index(item) for item in items]
        catalogue = self.state.model.n_items
        picked = [p for p in picked if p < catalogue]  # items added while serving are not seeds (yet)
        wanted = max(k, self.state.settings.rerank_candidates) if diversity > 0 else k
        top, scores = self._cold_top(picked, text, profile, wanted)
        if diversity > 0:
            top, scores = self._diversify(top, scores, diversity, k)
        return {"user_id": None, "cold": True, "items": self._cards(top[:k], scores[:k])}

    def _cold_top(self, picked: list[int], text: str | None, profile: dict[str, Any], k: int) -> tuple[np.ndarray, np.ndarray]:
        from fusionrec.coldstart import UserQuery

        cold = self.cold()
        if text is not None and cold.retriever is None:
            raise ModelError("free text needs the server started with --features (text) and its text encoder")
        if profile and cold.profiles is None:
            raise ModelError("profile attributes need a dataset with a users table")
        top, scores = cold.recommend([UserQuery(items=picked, text=text, profile=profile)], k=k)
        return top[0], scores[0]

    def _diversify(self, items: np.ndarray, scores: np.ndarray, diversity: float, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Re-rank the catalogue candidates; added items keep their relevance slots."""
        from fusionrec.rerank import rerank

        similarity = self.similarity()
        if similarity is None:
            raise ModelError("diversity needs item features (--features) or a model with item vectors")
        catalogue = items < similarity.n_items
        if not catalogue.any():
            return items[:k], scores[:k]
        reranked, rescored = rerank(items[catalogue][None, :], scores[catalogue][None, :], similarity,
                                    method=self.state.settings.rerank_method, diversity=diversity, k=k)
        added = np.flatnonzero(~catalogue[:k])
        out_items, out_scores = reranked[0].tolist(), rescored[0].tolist()
        for slot in added:  # an added item keeps the position its score gave it
            out_items.insert(int(slot), int(items[slot]))
            out_scores.insert(int(slot), float(scores[slot]))
        return np.asarray(out_items[:k], dtype=np.int64), np.asarray(out_scores[:k], dtype=np.float32)

    def _explain(self, user: int, items: np.ndarray, scores: np.ndarray) -> dict[int, dict[str, Any]]:
        explainer = self.explainer()
        if explainer is None:
            return {}
        keep = (items >= 0) & (items < explainer.model.n_items)
        if not keep.any():
            return {}
        history = self.state.history(user)
        explained = explainer.explain(user, items[keep], history=history[history < explainer.model.n_items],
                                      scores=scores[keep])
        ids, titles = self.state.catalog.items.ids, self.state.catalog.titles
        out = {}
        for explanation in explained:
            payload = explanation.to_dict(ids)
            headline = explanation.headline
            out[explanation.item] = {
                "driver": explanation.driver,
                "headline": None if headline is None else headline.phrase,
                "contributions": payload.get("contributions"),
                "weights": payload.get("fuser_weights"),
                "evidence": [
                    {"modality": e["modality"], "item_id": e.get("item_id"), "title": titles[e["item"]],
                     "phrase": e["phrase"], "similarity": e["similarity"]}
                    for e in payload.get("evidence", [])
                ],
            }
        return out

    def _cards(self, items: np.ndarray, scores: np.ndarray, explanations: dict[int, dict[str, Any]] | None = None,
               ) -> list[dict[str, Any]]:
        out = []
        for rank, (item, score) in enumerate(zip(items, scores, strict=True), start=1):
            if item < 0 or not np.isfinite(score):
                continue
            card = self.state.catalog.card(int(item)) | {"rank": rank, "score": round(float(score), 6)}
            if explanations is not None:
                card["explanation"] = explanations.get(int(item))
            out.append(card)
        return out

    def similar(self, item_id: str, k: int, modality: str) -> dict[str, Any]:
        state = self.state
        item = state.item_index(item_id)
        index = state.indexes.get(modality)
        if index is None:
            raise ModelError(f"unknown space {modality!r}; this server has {sorted(state.indexes)}")
        vectors = state.vectors[modality]
        vector = vectors[item] if item < len(vectors) else None
        if vector is None or not np.any(vector):
            raise ModelError(f"item {item_id!r} has no {modality} content")
        ids, scores = index.search(vector[None, :], k, exclude=[np.array([item])])
        return {"item_id": item_id, "modality": modality, "items": self._cards(ids[0], scores[0])}

    def search(self, query: str, k: int) -> dict[str, Any]:
        from fusionrec.fusion.vectors import centered_unit_rows

        state = self.state
        encoder = self.text_encoder()
        if encoder is None or "text" not in state.indexes:
            raise ModelError("search needs the server started with text features (--features) and their encoder")
        vector = np.asarray(encoder.encode([query]), dtype=np.float32)  # the slow part: outside the lock
        vector = centered_unit_rows(vector, None, state.centers["text"])
        with state.lock:
            ids, scores = state.indexes["text"].search(vector, k)
            return {"query": query, "items": self._cards(ids[0], scores[0])}
