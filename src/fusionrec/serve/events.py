"""The durable event store: SQLite in WAL mode, every acknowledged batch fsynced, explicit migrations.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL`` means each commit fsyncs the WAL before
it returns, and :meth:`EventStore.append` returns only after its commit: an event the API
acknowledged survives a SIGKILL of the process and a power loss (the WAL is replayed on the next
open). ``NORMAL``, the usual WAL setting, would be faster but may lose the last commits on power loss.

One batch = one ``BEGIN IMMEDIATE`` transaction: it takes the write lock first, so the check of the
idempotency key and the inserts are atomic even across processes (a retried POST with the same
key stores nothing and reports the original batch); a batch with one invalid event stores nothing.

Threads: one connection (``check_same_thread=False``) guarded by a lock. SQLite serialises writers
anyway, so a connection per thread would only let reads overlap writes, at the cost of connections
that outlive the server's threadpool threads; a batch insert takes well under a millisecond plus
the fsync. Other processes may open the same file (``busy_timeout`` waits for their lock).

Schema versions are in ``PRAGMA user_version``; :data:`MIGRATIONS` are applied in order on open,
each in its own transaction together with the version bump. A database written by a newer
fusionrec (a version above ``len(MIGRATIONS)``) is refused rather than guessed at.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fusionrec.errors import DataError, FusionRecError
from fusionrec.eval.online import EVENT_TYPES, ITEM_TYPES, POSITIVE_TYPES, is_positive

__all__ = ["EVENT_TYPES", "MIGRATIONS", "POSITIVE_TYPES", "AppendResult", "Event", "EventStore",
           "EventStoreError", "InvalidEvent", "StoredEvent", "is_positive"]

#: Each entry upgrades the schema by one version (index i takes version i to i + 1). Append only:
#: never edit a released step, a database in the field has already run it.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: events and idempotency keys
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            batch TEXT NULL,
            user_id TEXT NOT NULL,
            item_id TEXT NULL,
            type TEXT NOT NULL,
            value REAL NULL,
            variant TEXT NULL,
            ts REAL NOT NULL,
            received REAL NOT NULL)""",
        "CREATE TABLE batches (key TEXT PRIMARY KEY, n INTEGER NOT NULL, received REAL NOT NULL)",
        "CREATE INDEX events_user ON events(user_id)",
    ),
    (  # 2: the online report groups by variant and type; a duplicate key looks up its batch's ids
        "CREATE INDEX events_variant_type ON events(variant, type)",
        "CREATE INDEX events_batch ON events(batch) WHERE batch IS NOT NULL",
    ),
    (  # 3: items posted while serving (re-encoded into the live state at start, like events are replayed)
        """CREATE TABLE items (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            item_id TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL,
            description TEXT NOT NULL,
            genres TEXT NOT NULL,
            poster TEXT NULL,
            received REAL NOT NULL)""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
COLUMNS = ("id", "batch", "user_id", "item_id", "type", "value", "variant", "ts", "received")


class EventStoreError(FusionRecError):
    """The database cannot be used (newer schema, not a SQLite file, ...)."""


class InvalidEvent(DataError):
    """An event of a batch failed validation; ``index`` is its 0-based position, nothing was stored."""

    def __init__(self, index: int, field: str, reason: str) -> None:
        self.index, self.field = index, field
        super().__init__(f"events[{index}].{field}: {reason}")


@dataclass(frozen=True)
class Event:
    """One feedback event as posted. ``ts`` defaults to the time it is received."""

    user_id: str
    type: str
    item_id: str | None = None
    value: float | None = None
    variant: str | None = None
    ts: float | None = None


@dataclass(frozen=True)
class StoredEvent(Event):
    id: int = 0
    batch: str | None = None
    received: float = 0.0


@dataclass(frozen=True)
class AppendResult:
    """``stored``: events in the batch (the original batch's count when ``duplicate``)."""

    stored: int
    duplicate: bool
    first_id: int | None
    last_id: int | None


def _text(value: Any, index: int, name: str, required: bool) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if required:
            raise InvalidEvent(index, name, "missing")
        return None
    text = str(value)
    if not text.strip():
        raise InvalidEvent(index, name, "empty")
    return text


def _number(value: Any, index: int, name: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidEvent(index, name, f"not a number: {value!r}") from None
    if not math.isfinite(number):
        raise InvalidEvent(index, name, f"must be finite, got {value!r}")
    return number


def validate_event(event: Event | Mapping[str, Any], index: int = 0) -> Event:
    """The event checked and normalised (type lower-cased); raises :class:`InvalidEvent`."""
    raw = event.__dict__ if isinstance(event, Event) else event
    if not isinstance(raw, Mapping):
        raise InvalidEvent(index, "*", f"an event is an object, got {type(event).__name__}")
    unknown = set(raw) - {"user_id", "type", "item_id", "value", "variant", "ts"}
    if unknown:
        raise InvalidEvent(index, sorted(unknown)[0], "unknown field")
    kind = str(raw.get("type") or "").strip().lower()
    if kind not in EVENT_TYPES:
        raise InvalidEvent(index, "type", f"unknown event type {raw.get('type')!r} (one of {', '.join(EVENT_TYPES)})")
    value = _number(raw.get("value"), index, "value")
    if kind == "rating" and value is None:
        raise InvalidEvent(index, "value", "a rating needs a value")
    return Event(
        user_id=_text(raw.get("user_id"), index, "user_id", True) or "",
        type=kind,
        item_id=_text(raw.get("item_id"), index, "item_id", kind in ITEM_TYPES),
        value=value,
        variant=_text(raw.get("variant"), index, "variant", False),
        ts=_number(raw.get("ts"), index, "ts"),
    )


class EventStore:
    """Append-only feedback log in one SQLite file (created on first open, migrated to :data:`SCHEMA_VERSION`)."""

    def __init__(self, path: str | Path, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                                         timeout=busy_timeout_s)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise EventStoreError(f"{self.path}: cannot open the event database ({exc})") from None

    # ------------------------------------------------------------------ schema
    @property
    def version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def pragma(self, name: str) -> Any:
        """The value of ``PRAGMA name`` on this store's connection (e.g. journal_mode, synchronous)."""
        with self._lock:
            return self._conn.execute(f"PRAGMA {name}").fetchone()[0]

    def _migrate(self) -> None:
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise EventStoreError(
                f"{self.path}: event database schema version {version} is newer than this fusionrec's "
                f"({SCHEMA_VERSION}); upgrade fusionrec to use it"
            )
        while version < SCHEMA_VERSION:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                current = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
                if current == version:  # another process may have migrated it meanwhile
                    for statement in MIGRATIONS[version]:
                        self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {version + 1}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    # ------------------------------------------------------------------ writing
    def append(self, events: Sequence[Event | Mapping[str, Any]], idempotency_key: str | None = None) -> AppendResult:
        """Store a batch atomically and return after its commit is on disk.

        Every event is validated first (:class:`InvalidEvent` names the first bad one; nothing is
        stored). With ``idempotency_key`` a batch already stored under that key stores nothing and
        returns ``duplicate=True`` with the original batch's count and ids.
        """
        checked = [validate_event(e, i) for i, e in enumerate(events)]
        if idempotency_key is not None and not str(idempotency_key).strip():
            raise DataError("the idempotency key is empty")
        now = time.time()
        rows = [(idempotency_key, e.user_id, e.item_id, e.type, e.value, e.variant,
                 now if e.ts is None else e.ts, now) for e in checked]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if idempotency_key is not None:
                    seen = self._conn.execute("SELECT n FROM batches WHERE key = ?", (idempotency_key,)).fetchone()
                    if seen is not None:
                        first, last = self._conn.execute(
                            "SELECT min(id), max(id) FROM events WHERE batch = ?", (idempotency_key,)).fetchone()
                        self._conn.execute("COMMIT")
                        return AppendResult(int(seen[0]), True, first, last)
                    self._conn.execute("INSERT INTO batches(key, n, received) VALUES (?, ?, ?)",
                                       (idempotency_key, len(rows), now))
                first_id = last_id = None
                if rows:
                    before = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
                    self._conn.executemany(
                        "INSERT INTO events(batch, user_id, item_id, type, value, variant, ts, received) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                    last_id = int(self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()[0])
                    first_id = (int(before[0]) if before else 0) + 1
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return AppendResult(len(rows), False, first_id, last_id)

    # ------------------------------------------------------------------ reading
    # ------------------------------------------------------------------ posted items
    def add_item(self, item_id: str, title: str, description: str, genres: Sequence[str], poster: str | None) -> None:
        """Record a posted item durably (committed before this returns); its id must be new."""
        with self._lock:
            try:  # one statement in autocommit mode: its own fsynced transaction
                self._conn.execute(
                    "INSERT INTO items (item_id, title, description, genres, poster, received) VALUES (?, ?, ?, ?, ?, ?)",
                    (item_id, title, description, "|".join(genres), poster, time.time()),
                )
            except sqlite3.IntegrityError:
                raise EventStoreError(f"item {item_id!r} was posted before") from None

    def items(self) -> list[dict[str, Any]]:
        """Posted items in the order they arrived: item_id, title, description, genres (list), poster."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT item_id, title, description, genres, poster FROM items ORDER BY seq"
            ).fetchall()
        return [{"item_id": r[0], "title": r[1], "description": r[2], "genres": [g for g in r[3].split("|") if g],
                 "poster": r[4]} for r in rows]

    def count(self, event_type: str | None = None) -> int:
        with self._lock:
            if event_type is None:
                return int(self._conn.execute("SELECT count(*) FROM events").fetchone()[0])
            return int(self._conn.execute("SELECT count(*) FROM events WHERE type = ?", (event_type,)).fetchone()[0])

    def last_id(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])

    def iter_events(self, since_id: int = 0, chunk: int = 10_000) -> Iterator[StoredEvent]:
        """Events with ``id > since_id`` in id order, fetched ``chunk`` at a time (for replaying
        the log into the server's live state at startup); the lock is not held between chunks."""
        last = int(since_id)
        while True:
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT {', '.join(COLUMNS)} FROM events WHERE id > ? ORDER BY id LIMIT ?", (last, chunk)).fetchall()
            for row in rows:
                record = dict(zip(COLUMNS, row, strict=True))
                yield StoredEvent(**record)
            if len(rows) < chunk:
                return
            last = int(rows[-1][0])

    def read(self, since_id: int = 0, limit: int | None = None) -> list[StoredEvent]:
        """Like :meth:`iter_events`, as a list (at most ``limit`` events)."""
        out: list[StoredEvent] = []
        for event in self.iter_events(since_id):
            if limit is not None and len(out) >= limit:
                break
            out.append(event)
        return out

    def frame(self) -> pd.DataFrame:
        """Every event as a DataFrame with the columns of the table, in id order."""
        with self._lock:
            cursor = self._conn.execute(f"SELECT {', '.join(COLUMNS)} FROM events ORDER BY id")
            rows = cursor.fetchall()
        return pd.DataFrame.from_records(rows, columns=list(COLUMNS))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
