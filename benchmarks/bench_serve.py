"""Serving latency and throughput on loopback at ML-1M scale, and the ANN index at 1M items.

    OMP_NUM_THREADS=1 python benchmarks/bench_serve.py [--models runs/ease,runs/content]
        [--features runs/ml1m-features] [--requests 2000] [--seconds 10] [--clients 4] [--index-n 1000000]

For each model bundle a real ``fusionrec serve`` process is started on a free loopback port (its
own SQLite event store in a temporary folder) and measured from this process with a keep-alive
HTTP client:
- latency: ``--requests`` sequential ``GET /users/{id}/recommendations?k=20`` for random known
  users (p50 / p95 / p99 in ms, client-side, so HTTP and JSON are included), then the same for
  ``POST /events`` (one like each, committed to disk before the answer);
- throughput: ``wrk`` (``apt install wrk``; one thread, ``--clients`` connections, random users) for
  ``--seconds`` s, recommendations, then events; without wrk, ``--clients`` Python threads.
Client and server share the machine's two cores. The index part calls
``benchmarks/bench_index.py`` (exact vs IVF at ``--index-n`` synthetic items). Bounded in count and
time; nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
console = Console(width=200)


def percentiles(values: list[float]) -> dict[str, float]:
    return {f"p{q}": float(np.percentile(values, q)) for q in (50, 95, 99)}


def sequential(client: httpx.Client, requests: int, make: Any) -> list[float]:
    timings = []
    for _ in range(requests):
        method, path, body = make()
        start = time.perf_counter()
        response = client.request(method, path, json=body)
        timings.append((time.perf_counter() - start) * 1e3)
        if response.status_code != 200:
            raise SystemExit(f"{method} {path}: {response.status_code} {response.text[:300]}")
    return timings


def throughput(url: str, headers: dict[str, str], clients: int, seconds: float, make: Any) -> float:
    done = [0] * clients
    deadline = time.perf_counter() + seconds

    def worker(slot: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            while time.perf_counter() < deadline:
                method, path, body = make()
                if client.request(method, path, json=body).status_code == 200:
                    done[slot] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - start)


WRK_SCRIPT = """
local users = {%s}
local items = {%s}
local kind = "%s"
math.randomseed(0)
request = function()
  local user = users[math.random(#users)]
  if kind == "events" then
    local body = '{"events": [{"user_id": "' .. user .. '", "item_id": "' .. items[math.random(#items)] .. '", "type": "like"}]}'
    return wrk.format("POST", "/events", {["Content-Type"] = "application/json", ["X-API-Key"] = "%s"}, body)
  end
  return wrk.format("GET", "/users/" .. user .. "/recommendations?k=20")
end
"""


def wrk_throughput(url: str, key: str, users: list[str], items: list[str], kind: str, seconds: float,
                   connections: int) -> float | None:
    """Requests/s from wrk (C, one thread: the client costs little of the two cores), random users;
    None without wrk. Non-2xx answers make the run fail."""
    import re
    import shutil
    import subprocess

    if shutil.which("wrk") is None:
        return None
    quoted = lambda values: ",".join(f'"{v}"' for v in values)  # noqa: E731
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % (quoted(users), quoted(items), kind, key))
    result = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "-s", script.name, url],
                            capture_output=True, text=True, timeout=seconds + 60)
    if "Non-2xx" in result.stdout:
        raise SystemExit(f"wrk saw errors:\n{result.stdout}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    return float(found.group(1)) if found else None


def bench_model(model_dir: Path, features: Path | None, args: argparse.Namespace) -> list[dict[str, Any]]:
    from tests.serve.server import launch_server

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        handle = launch_server(model_dir, Path(tmp), ["--features", str(features)] if features else [], timeout=120)
        try:
            health = httpx.get(handle.url + "/healthz").json()
            users = [u["user_id"] for u in httpx.get(handle.url + "/users", params={"limit": 1000}).json()["users"]]
            items = [c["item_id"] for c in httpx.get(handle.url + f"/users/{users[0]}/recommendations",
                                                      params={"k": 200}).json()["items"]]
            rng = random.Random(0)

            def recommend() -> tuple[str, str, None]:
                return "GET", f"/users/{rng.choice(users)}/recommendations?k=20", None

            def event() -> tuple[str, str, dict[str, Any]]:
                return "POST", "/events", {"events": [{"user_id": rng.choice(users), "item_id": rng.choice(items), "type": "like"}]}

            with httpx.Client(base_url=handle.url, headers=handle.headers(), timeout=30) as client:
                sequential(client, 50, recommend)  # warm-up
                for label, make in (("recommendations k=20", recommend), ("POST /events (1 like)", event)):
                    timings = sequential(client, args.requests, make)
                    kind = "events" if "events" in label else "recommendations"
                    rate = wrk_throughput(handle.url, handle.api_key, users, items, kind, args.seconds, args.clients)
                    tool = "wrk"
                    if rate is None:  # no wrk: Python client threads (they eat much of the two cores)
                        rate, tool = throughput(handle.url, handle.headers(), args.clients, args.seconds, make), "httpx threads"
                    rows.append({"model": health["model"], "request": label, **percentiles(timings),
                                 "req/s": rate, "n": args.requests, "load": tool})
                    console.print(rows[-1])
        finally:
            handle.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="runs/ease,runs/content")
    parser.add_argument("--features", type=Path, default=ROOT / "runs" / "ml1m-features")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--index-n", type=int, default=1_000_000)
    parser.add_argument("--skip-index", action="store_true")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for name in args.models.split(","):
        model_dir = ROOT / name if not Path(name).is_absolute() else Path(name)
        if not (model_dir / "bundle.json").exists():
            console.print(f"[yellow]skip {model_dir}: no bundle (fusionrec train ... --out {name})[/]")
            continue
        from fusionrec.models.bundle import read_bundle_meta

        needs_features = bool(read_bundle_meta(model_dir).get("features"))
        rows += bench_model(model_dir, args.features if needs_features else None, args)
    table = Table(title=f"fusionrec serve on loopback: {args.requests} sequential requests, then {args.clients} clients x {args.seconds:.0f} s")
    for column in ("model", "request", "p50 ms", "p95 ms", "p99 ms", "req/s", "load from"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(row["model"], row["request"], f"{row['p50']:.2f}", f"{row['p95']:.2f}", f"{row['p99']:.2f}",
                      f"{row['req/s']:.0f}", row["load"])
    console.print(table)
    if not args.skip_index:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench_index import main as index_main

        sys.argv = [sys.argv[0], "--n", str(args.index_n)]
        index_main()


if __name__ == "__main__":
    main()
