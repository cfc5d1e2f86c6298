"""An A/B test replayed through the real API: impressions and clicks logged per variant, then the report.

    OMP_NUM_THREADS=1 python benchmarks/bench_ab.py [--model runs/ease] [--split runs/ml1m-split]
        [--features runs/ml1m-features] [--users 1000] [--k 10] [--diversity 0.5] [--out runs/bench-ab]

A ``fusionrec serve`` process runs the bundle. Test users are split at random between variant
``control`` (the model's lists) and ``diverse`` (the same lists re-ranked at ``--diversity``). Each
user's list is requested with its variant, the shown items are posted as ``impression`` events, and
a shown item the user really watched later (it is in their held-out test interactions) is posted
as a ``click``; a click on an item rated 5 is also a ``purchase`` (the "conversion"). Then
``fusionrec online-report --db`` gives CTR and conversion per variant with Wilson intervals and the
difference against the control (table + PNG). Offline replay, so a click means "this item was
in the user's future", not a live human: it measures the pipeline honestly, not a product effect.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from fusionrec.data.splits import Split
    from tests.serve.server import API_KEY, launch_server

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "runs" / "ease")
    parser.add_argument("--split", type=Path, default=ROOT / "runs" / "ml1m-split")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--diversity", type=float, default=0.5)
    parser.add_argument("--features", type=Path, default=ROOT / "runs" / "ml1m-features",
                        help="the space the diverse variant re-ranks in (fused content)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-ab")
    args = parser.parse_args()
    if not (args.model / "bundle.json").exists() or not args.split.exists():
        raise SystemExit(f"needs {args.model} (fusionrec train) and {args.split} (fusionrec split)")
    args.out.mkdir(parents=True, exist_ok=True)
    db = args.out / "events.db"
    db.unlink(missing_ok=True)
    split = Split.load(args.split)
    test = split.test
    future = {}
    for user, item, rating in zip(test.user, test.item, test.weight, strict=True):
        future.setdefault(int(user), {})[str(split.item_map.ids[item])] = float(rating)
    rng = random.Random(0)
    users = rng.sample(sorted(future), min(args.users, len(future)))
    handle = launch_server(args.model, args.out, ["--features", str(args.features)], db=db, timeout=120)
    url = handle.url
    try:
        start = time.perf_counter()
        with httpx.Client(base_url=url, headers={"X-API-Key": API_KEY}, timeout=30) as client:
            for user in users:
                user_id = str(split.user_map.ids[user])
                variant = rng.choice(["control", "diverse"])
                diversity = args.diversity if variant == "diverse" else 0.0
                shown = client.get(f"/users/{user_id}/recommendations",
                                   params={"k": args.k, "diversity": diversity, "variant": variant}).json()["items"]
                events = [{"user_id": user_id, "item_id": c["item_id"], "type": "impression", "variant": variant} for c in shown]
                for card in shown:
                    rating = future[user].get(card["item_id"])
                    if rating is not None:
                        events.append({"user_id": user_id, "item_id": card["item_id"], "type": "click", "variant": variant})
                        if rating >= 5:
                            events.append({"user_id": user_id, "item_id": card["item_id"], "type": "purchase", "variant": variant})
                response = client.post("/events", json={"events": events, "idempotency_key": f"ab-{user_id}"})
                response.raise_for_status()
        print(f"replayed {len(users)} users through the API in {time.perf_counter() - start:.1f} s")
    finally:
        handle.stop()
    subprocess.run([sys.executable, "-m", "fusionrec", "online-report", "--db", str(db), "--png", str(args.out / "ab.png")],
                   check=True)


if __name__ == "__main__":
    main()
