"""An acknowledged event is never lost and never stored twice, with the server SIGKILLed mid-stream.

A client thread posts small batches, each with its own idempotency key, as fast as it can; the
server is killed with SIGKILL 20 times at random moments and restarted on the same database. A
batch whose answer did not arrive is retried after the restart with the same key (a real client
would), so it is stored at most once. At the end every acknowledged event is in the store exactly once.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

import httpx

from tests.serve.server import ServerHandle, Workspace, free_port, start_server

KILLS = 20
BATCH = 3


def test_sigkill_loses_no_acknowledged_event(serve_workspace: Workspace, tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    port = free_port()
    rng = random.Random(0)
    acknowledged: dict[str, list[float]] = {}
    pending: list[tuple[str, list[float]]] = []
    counter = 0
    user_items = [str(i) for i in range(1, 41)]

    def client(handle: ServerHandle, stop: threading.Event) -> None:
        nonlocal counter
        while not stop.is_set():
            if pending:
                key, values = pending[0]
            else:
                values = [float(counter + j) for j in range(BATCH)]
                counter += BATCH
                key = f"batch-{int(values[0])}"
                pending.append((key, values))
            events = [{"user_id": f"stress-{int(v) % 7}", "item_id": rng.choice(user_items), "type": "rating", "value": v}
                      for v in values]
            try:
                response = httpx.post(handle.url + "/events", json={"events": events, "idempotency_key": key},
                                      headers=handle.headers(), timeout=5)
            except httpx.HTTPError:
                return  # the server died under us: this batch is retried after the restart
            assert response.status_code == 200, response.text
            acknowledged[key] = values
            pending.pop(0)

    for _ in range(KILLS):
        handle = start_server(tmp_path, serve_workspace, db=db, port=port)
        stop = threading.Event()
        thread = threading.Thread(target=client, args=(handle, stop))
        thread.start()
        time.sleep(rng.uniform(0.2, 0.8))
        handle.kill()
        stop.set()
        thread.join(timeout=10)
    handle = start_server(tmp_path, serve_workspace, db=db, port=port)  # the last retry, then a clean stop
    stop = threading.Event()
    thread = threading.Thread(target=client, args=(handle, stop))
    thread.start()
    time.sleep(0.5)
    stop.set()
    thread.join(timeout=10)
    handle.stop()

    with sqlite3.connect(db) as connection:
        stored = [row[0] for row in connection.execute("SELECT value FROM events WHERE user_id LIKE 'stress-%'")]
    assert len(acknowledged) > 5 * KILLS, f"only {len(acknowledged)} batches acknowledged: the test stressed nothing"
    expected = sorted(v for values in acknowledged.values() for v in values)
    assert len(stored) == len(set(stored)), "an event was stored twice"
    missing = sorted(set(expected) - set(stored))
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
    print(f"durability: {KILLS} SIGKILLs, {len(acknowledged)} acknowledged batches ({len(expected)} events), "
          f"{len(stored)} stored, 0 lost, 0 twice")
