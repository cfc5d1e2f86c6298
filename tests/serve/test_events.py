"""EventStore: durable (WAL + synchronous=FULL, survives SIGKILL), idempotent, all-or-nothing, migrated."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from fusionrec.errors import DataError
from fusionrec.serve.events import (
    EVENT_TYPES,
    MIGRATIONS,
    SCHEMA_VERSION,
    Event,
    EventStore,
    EventStoreError,
    InvalidEvent,
    is_positive,
)


def test_append_count_read_frame_round_trip(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.db") as store:
        result = store.append([
            {"user_id": "u1", "item_id": "i1", "type": "impression", "variant": "A", "ts": 10.0},
            Event(user_id="u1", item_id="i1", type="CLICK", variant="A"),
            {"user_id": "u2", "item_id": "i9", "type": "rating", "value": 4.5},
        ])
        assert (result.stored, result.duplicate, result.first_id, result.last_id) == (3, False, 1, 3)
        assert store.count() == 3 and store.count("click") == 1
        rows = store.read()
        assert [r.id for r in rows] == [1, 2, 3]
        assert (rows[0].ts, rows[1].type, rows[2].value, rows[2].variant) == (10.0, "click", 4.5, None)
        assert rows[1].ts == pytest.approx(rows[1].received)  # ts defaults to the time received
        assert [r.id for r in store.read(since_id=1)] == [2, 3]
        second = store.append([{"user_id": "u3", "type": "view"}])
        assert (second.first_id, second.last_id) == (4, 4)
        frame = store.frame()
        assert list(frame["user_id"]) == ["u1", "u1", "u2", "u3"] and pd.isna(frame["item_id"].iloc[3])
        assert list(frame.columns) == ["id", "batch", "user_id", "item_id", "type", "value", "variant", "ts", "received"]


def test_iter_events_pages_in_id_order(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.db") as store:
        for i in range(7):
            store.append([{"user_id": f"u{i}", "item_id": "x", "type": "view"}])
        assert [e.user_id for e in store.iter_events(since_id=2, chunk=2)] == [f"u{i}" for i in range(2, 7)]
        assert len(store.read(limit=3)) == 3


def test_wal_and_synchronous_full_are_set(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.db") as store:
        assert store.pragma("journal_mode") == "wal"
        assert store.pragma("synchronous") == 2  # FULL
        assert store.version == SCHEMA_VERSION == len(MIGRATIONS)
    raw = sqlite3.connect(tmp_path / "events.db")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # WAL is persistent in the file


def test_idempotency_key_stores_a_batch_once(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.db") as store:
        batch = [{"user_id": "u", "item_id": "i", "type": "click"}, {"user_id": "u", "item_id": "j", "type": "like"}]
        first = store.append(batch, idempotency_key="req-1")
        again = store.append(batch, idempotency_key="req-1")
        assert (first.stored, first.duplicate) == (2, False)
        assert (again.stored, again.duplicate, again.first_id, again.last_id) == (2, True, first.first_id, first.last_id)
        assert store.count() == 2
        assert store.append(batch, idempotency_key="req-2").stored == 2 and store.count() == 4
        with pytest.raises(DataError, match="idempotency key"):
            store.append(batch, idempotency_key=" ")


def test_concurrent_appends_from_threads_all_stored_exactly_once(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.db")
    results: list[bool] = []

    def post(worker: int) -> None:
        for j in range(20):
            key = f"k{j % 10}-{worker % 4}"  # workers w and w+4 race on the same keys
            r = store.append([{"user_id": f"w{worker}", "item_id": str(j), "type": "view"}] * 3, idempotency_key=key)
            results.append(r.duplicate)

    threads = [threading.Thread(target=post, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 40 distinct keys, each stored once with its 3 events; the other 120 posts were duplicates
    assert store.count() == 40 * 3 and results.count(False) == 40 and results.count(True) == 120
    ids = [e.id for e in store.read()]
    assert ids == sorted(set(ids))
    store.close()


def test_reopen_after_close_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.db"
    with EventStore(path) as store:
        store.append([{"user_id": "u", "item_id": "i", "type": "purchase"}], idempotency_key="a")
    with EventStore(path) as store:
        assert store.count() == 1 and store.read()[0].type == "purchase"
        assert store.append([{"user_id": "u", "item_id": "i", "type": "purchase"}], idempotency_key="a").duplicate
        assert store.append([{"user_id": "v", "item_id": "i", "type": "click"}]).first_id == 2


def test_invalid_batch_stores_nothing(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.db") as store:
        good = {"user_id": "u", "item_id": "i", "type": "click"}
        cases = [
            ({"user_id": "u", "item_id": "i", "type": "hover"}, "type"),
            ({"user_id": "", "item_id": "i", "type": "click"}, "user_id"),
            ({"user_id": "u", "type": "click"}, "item_id"),
            ({"user_id": "u", "item_id": "i", "type": "rating"}, "value"),
            ({"user_id": "u", "item_id": "i", "type": "rating", "value": float("nan")}, "value"),
            ({"user_id": "u", "item_id": "i", "type": "click", "ts": float("inf")}, "ts"),
            ({"user_id": "u", "item_id": "i", "type": "click", "colour": "red"}, "colour"),
        ]
        for bad, field in cases:
            with pytest.raises(InvalidEvent) as info:
                store.append([good, good, bad], idempotency_key="x")
            assert info.value.index == 2 and info.value.field == field
            assert f"events[2].{field}" in str(info.value)
        assert store.count() == 0
        # the key of a rejected batch was not consumed
        assert store.append([good], idempotency_key="x").duplicate is False


def test_acknowledged_events_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    code = (
        "import sys; from fusionrec.serve.events import EventStore\n"
        f"s = EventStore({str(path)!r})\n"
        "i = 0\n"
        "while True:\n"
        "    r = s.append([{'user_id': 'u', 'item_id': str(i), 'type': 'click'}] * 5, idempotency_key=str(i))\n"
        "    print(r.last_id, flush=True); i += 1\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    assert proc.stdout is not None
    acked = [int(proc.stdout.readline()) for _ in range(30)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with EventStore(path) as store:
        assert store.last_id() >= acked[-1] == 150
        ids = [e.id for e in store.read()]
        assert ids == list(range(1, len(ids) + 1)) and len(ids) % 5 == 0  # whole batches only


def test_migration_upgrades_a_v1_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        raw.execute(statement)
    raw.execute("INSERT INTO events(user_id, item_id, type, ts, received) VALUES ('u', 'i', 'click', 1, 1)")
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    with EventStore(path) as store:
        assert store.version == SCHEMA_VERSION == 3
        assert store.count() == 1 and store.read()[0].user_id == "u"
    indexes = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"events_user", "events_variant_type", "events_batch"} <= indexes


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(EventStoreError, match="newer than this fusionrec"):
        EventStore(path)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(EventStoreError, match="cannot open"):
        EventStore(path)


def test_event_types_and_positive_feedback() -> None:
    assert EVENT_TYPES == ("view", "click", "like", "dislike", "purchase", "rating", "impression")
    assert [t for t in EVENT_TYPES if is_positive(t)] == ["click", "like", "purchase"]
    assert is_positive("rating", 3.0) and not is_positive("rating", 2.5) and not is_positive("rating", None)
    assert not is_positive("dislike", 5.0)
