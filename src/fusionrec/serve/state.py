"""Everything one server process holds: the bundle's model with live state, indexes, the event store.

Built once at start (:meth:`ServingState.open`): the bundle, the item catalogue (titles, posters),
the FeatureSet when given (content models, explanations, similar items, search, new items), a
:class:`~fusionrec.online.LiveRecommender` over the model, one :class:`~fusionrec.serve.index.VectorIndex`
per item space, and the :class:`~fusionrec.serve.events.EventStore`, whose events are replayed into
the live state (a restarted server serves what the last one acknowledged).

One lock serialises the state: writes (events, items) mutate it, reads must not see half an update.
Requests are a millisecond or two each, so one lock costs little on two cores.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.errors import FusionRecError, ModelError
from fusionrec.models.base import SupportsColdStart, SupportsVectors
from fusionrec.models.bundle import ModelBundle
from fusionrec.online.live import LiveRecommender
from fusionrec.serve.catalog import Catalog, IdIndex
from fusionrec.serve.events import EventStore, is_positive
from fusionrec.serve.index import VectorIndex
from fusionrec.serve.recommend import Recommendations

log = logging.getLogger(__name__)


class NotFound(FusionRecError):
    """An id the server does not know (answered 404)."""


class Conflict(FusionRecError):
    """A request the loaded model cannot serve (answered 409/422)."""


@dataclass
class ServeSettings:
    model_dir: Path
    db_path: Path
    features_dir: Path | None = None
    dataset_dir: Path | None = None
    media_dir: Path | None = None
    rerank_method: str = "mmr"
    rerank_candidates: int = 100


class ServingState:
    """The live model, catalogue, indexes and event store of one server (module docstring)."""

    def __init__(self, settings: ServeSettings, bundle: ModelBundle, features: Any | None, dataset: Any | None,
                 media: Path | None, store: EventStore) -> None:
        self.settings, self.bundle, self.features, self.store = settings, bundle, features, store
        self.started = time.time()
        self.model = bundle.model
        self.media = media
        self.lock = threading.RLock()
        self.users = IdIndex.of(bundle.user_ids)
        items = None if dataset is None else dataset.items
        image_column = None if dataset is None else dataset.item_columns.image
        media_root = None if dataset is None or not dataset.media_root else Path(dataset.media_root)
        self.catalog = Catalog.build(bundle.item_ids, items, image_column, media_root, media)
        self.text_columns = [] if dataset is None else list(dataset.item_columns.text)
        self.users_table = None if dataset is None else dataset.users
        self.live = LiveRecommender(self.model, history=bundle.seen)
        self.dislikes: dict[int, set[int]] = {}
        self.recent: dict[int, dict[int, None]] = {}  # per user, items liked while serving, in arrival order
        self.indexes: dict[str, VectorIndex] = {}
        self.vectors: dict[str, np.ndarray] = {}  # (n_items, d) per space, what the index holds
        self.recommendations = Recommendations(self)
        self._build_indexes()
        self.replayed_items = self._replay_items()
        self.replayed = self._replay()
        # the first search / text query would otherwise wait seconds for the text encoder
        threading.Thread(target=self.recommendations.text_encoder, name="load-text-encoder", daemon=True).start()

    # ------------------------------------------------------------------ start-up
    @classmethod
    def open(cls, settings: ServeSettings) -> ServingState:
        from fusionrec.data.schema import Dataset
        from fusionrec.data.splits import Split
        from fusionrec.features.base import FeatureSet

        features = FeatureSet.load(settings.features_dir) if settings.features_dir else None
        bundle = ModelBundle.load(settings.model_dir, features=features)
        if features is not None and len(features.ids) != len(bundle.item_ids):
            raise ModelError(f"the feature set has {len(features.ids)} items, the model {len(bundle.item_ids)}")
        split_path = bundle.split.get("path")
        dataset_dir = settings.dataset_dir or (Split.dataset_dir_of(split_path) if split_path else None)
        dataset = Dataset.load(dataset_dir) if dataset_dir is not None and Path(dataset_dir).exists() else None
        media = settings.media_dir
        if media is None and dataset is not None and dataset.media_root:
            media = Path(dataset.media_root)
        if media is not None:
            media.mkdir(parents=True, exist_ok=True)
        return cls(settings, bundle, features, dataset, media, EventStore(settings.db_path))

    def _build_indexes(self) -> None:
        from fusionrec.fusion.vectors import modality_centers
        from fusionrec.rerank.space import item_space

        ids = np.arange(self.model.n_items, dtype=np.int64)
        if isinstance(self.model, SupportsVectors):
            self.vectors["model"] = item_space("model", model=self.model)
        self.centers = {} if self.features is None else modality_centers(self.features)
        if self.features is not None:
            for space in ("fused", *self.features.modalities):
                self.vectors[space] = item_space(space, self.features, centers=self.centers)
        for space, vectors in self.vectors.items():  # unit rows: inner product = cosine
            self.indexes[space] = self._index_for(space, vectors, ids)

    def _index_for(self, space: str, vectors: np.ndarray, ids: np.ndarray) -> VectorIndex:
        """The bundle's saved index of ``space`` (``MODEL_DIR/index/<space>``) when it was built from
        the same inputs, else a new one, saved there for the next start (skipped on a read-only bundle)."""
        import hashlib

        digest = hashlib.sha256(np.ascontiguousarray(vectors).tobytes()).hexdigest()
        folder = self.settings.model_dir / "index" / space
        if (folder / "index.json").exists():
            try:
                saved = VectorIndex.load(folder)
                if saved.meta.get("digest") == digest and len(saved) == len(ids):
                    return saved
            except FusionRecError as exc:
                log.warning("rebuilding the %s index: %s", space, exc)
        index = VectorIndex.build(vectors, ids, measure="inner_product", meta={"space": space, "digest": digest})
        try:
            index.save(folder)
        except OSError as exc:
            log.warning("could not save the %s index with the bundle: %s", space, exc)
        return index

    def _replay(self) -> int:
        """Apply every stored event to the live state, in order (one batch: fast at start)."""
        rows = [dataclasses.asdict(row) for row in self.store.read(since_id=0)]
        if rows:
            self._apply(rows)
        return len(rows)

    # ------------------------------------------------------------------ ids
    def user_index(self, user_id: str) -> int | None:
        return self.users.get(user_id)

    def item_index(self, item_id: str) -> int:
        index = self.catalog.items.get(item_id)
        if index is None:
            raise NotFound(f"unknown item {item_id!r}")
        return index

    def history(self, user: int | None) -> np.ndarray:
        """The user's items, oldest first: the training history (which has no order of its own, so in item
        order), then what arrived while serving in arrival order."""
        if user is None:
            return np.zeros(0, dtype=np.int64)
        everything = self.live.user_history(user)
        recent = np.fromiter(self.recent.get(user, {}), dtype=np.int64)
        if not len(recent):
            return everything
        return np.concatenate([everything[~np.isin(everything, recent)], recent])

    # ------------------------------------------------------------------ events
    def post_events(self, events: list[dict[str, Any]], idempotency_key: str | None) -> tuple[int, bool]:
        """Store durably (committed before this returns), then apply to the live state."""
        for position, event in enumerate(events):
            if event.get("item_id") is not None and self.catalog.items.get(str(event["item_id"])) is None:
                raise NotFound(f"event {position}: unknown item {event['item_id']!r}")
        rows = [{"user_id": e["user_id"], "item_id": e.get("item_id"), "type": e["type"], "value": e.get("value"),
                 "variant": e.get("variant"), "ts": e.get("timestamp")} for e in events]
        with self.lock:
            result = self.store.append(rows, idempotency_key)
            if not result.duplicate:
                self._apply(rows)
        return result.stored, result.duplicate

    def _apply(self, events: list[dict[str, Any]]) -> None:
        """Positive feedback into the live model (one ``add_interactions`` for the batch), dislikes noted."""
        users, items = [], []
        for event in events:
            get = event.get
            item_id, kind = get("item_id"), str(get("type"))
            if item_id is None:
                continue
            item = self.catalog.items.get(str(item_id))
            if item is None:
                continue  # an item of a replayed log that this catalogue no longer has
            user = self.users.add(str(get("user_id")))
            if is_positive(kind, get("value")):
                users.append(user)
                items.append(item)
                recent = self.recent.setdefault(user, {})
                recent.pop(item, None)  # a repeat moves it to the end
                recent[item] = None
            elif kind == "dislike":
                self.dislikes.setdefault(user, set()).add(item)
        if users:
            self.live.add_interactions(np.asarray(users), np.asarray(items))

    def dislike_rows(self, users: np.ndarray) -> sp.csr_matrix:
        rows, cols = [], []
        for j, user in enumerate(users):
            for item in self.dislikes.get(int(user), ()):
                rows.append(j)
                cols.append(item)
        data = np.ones(len(rows), dtype=np.float32)
        return sp.csr_matrix((data, (rows, cols)), shape=(len(users), self.live.n_items))

    # ------------------------------------------------------------------ items
    def add_item(self, item_id: str | None, title: str, description: str, genres: list[str],
                 image: bytes | None, suffix: str) -> dict[str, Any]:
        """Encode, add to the live model and the indexes, and record durably (acknowledged = kept)."""
        from fusionrec.serve.new_items import save_upload

        if self.features is None:
            raise Conflict("the server was started without --features: new items cannot be encoded")
        if not isinstance(self.model, SupportsColdStart):
            raise Conflict(f"{self.model.name} cannot score items from their content; serve a content-aware model")
        with self.lock:
            item_id = item_id or f"new-{len(self.catalog.items) + 1}"
            if self.catalog.items.get(item_id) is not None:
                raise Conflict(f"item {item_id!r} exists already")
            poster = None
            if image is not None:
                if self.media is None:
                    raise Conflict("the server was started without a media folder (--media DIR): images cannot be stored")
                poster = save_upload(self.media, item_id, image, suffix)
            index, encoded = self._add_item(item_id, title, description, genres, poster)
            self.store.add_item(item_id, title, description, genres, poster)
        return {"item_id": item_id, "index": int(index), "encoded": encoded}

    def _add_item(self, item_id: str, title: str, description: str, genres: list[str],
                  poster: str | None) -> tuple[int, list[str]]:
        from fusionrec.rerank.space import item_space
        from fusionrec.serve.new_items import NewItemEncoder

        assert self.features is not None
        # the one text encoder the search path loads (a second load in parallel would race on imports)
        encoder = getattr(self, "_new_items", None) or NewItemEncoder(
            self.features, self.text_columns, text_encoder=self.recommendations.text_encoder()
        )
        self._new_items = encoder
        image = None if poster is None or self.media is None else self.media / poster
        row, encoded = encoder.encode(item_id, title, description, genres, image)
        (index,) = self.live.add_items(row)
        self.catalog.add(item_id, title, poster, genres)
        for space, vector_index in self.indexes.items():
            if space != "model":
                vector = item_space(space, row, centers=self.centers)
                vector_index.add(vector, np.array([index], dtype=np.int64))
                self.vectors[space] = np.concatenate([self.vectors[space], vector])
        return int(index), encoded

    def _replay_items(self) -> int:
        """Re-encode the items posted to earlier runs (before the events, which may name them)."""
        posted = self.store.items()
        if posted and (self.features is None or not isinstance(self.model, SupportsColdStart)):
            log.warning("%d posted items are not served: this model/feature set cannot score new items", len(posted))
            return 0
        for item in posted:
            self._add_item(item["item_id"], item["title"], item["description"], item["genres"], item["poster"])
        return len(posted)

    # ------------------------------------------------------------------ stats
    def stats(self) -> dict[str, Any]:
        return {
            "model": self.model.name,
            "n_users": len(self.users),
            "n_items": len(self.catalog.items),
            "events": self.store.count(),
            "index": {name: len(index) for name, index in self.indexes.items()},
            "started": self.started,
        }
