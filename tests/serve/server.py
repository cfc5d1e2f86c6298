"""A real `fusionrec serve` process on loopback, over a small workspace built from the built-in sample.

``build_workspace(root)`` writes the sample catalogue (posters included), a split, text + attribute
features (MiniLM, the shipped encoder) and a ``content`` model bundle (it explains, scores new items
from content and takes live feedback exactly). ``start_server(tmp_path)`` runs the server in a
subprocess on a free port and waits for ``/healthz``; ``handle.kill()`` sends SIGKILL (durability tests).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

API_KEY = "test-key-123"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Workspace:
    root: Path
    dataset: Path
    split: Path
    features: Path
    model: Path
    media: Path


def build_workspace(root: Path, n_users: int = 120, n_items: int = 60) -> Workspace:
    from fusionrec.config import SplitConfig
    from fusionrec.data.loaders import LoaderOptions, load_source
    from fusionrec.data.sample import SAMPLE_MAPPING, write_sample
    from fusionrec.data.splits import split_dataset
    from fusionrec.features.extract import extract_features
    from fusionrec.models.bundle import ModelBundle
    from fusionrec.models.content import ContentRecommender

    source = write_sample(root / "source", n_users=n_users, n_items=n_items, audio=None)
    dataset, _ = load_source("tabular", source, LoaderOptions(name="sample", tabular=SAMPLE_MAPPING))
    dataset.save(root / "dataset")
    split = split_dataset(dataset, SplitConfig(strategy="random", ratios=(0.8, 0.1, 0.1), min_rating=3.0),
                          dataset_dir=root / "dataset")
    split.save(root / "split")
    features = extract_features(dataset, ("text", "attributes"), cache_dir=root / "cache", progress=False).features
    features.save(root / "features")
    model = ContentRecommender().fit(split.train, features, item_ids=split.item_map.ids)
    ModelBundle.from_split(model, split, features).save(root / "model")
    return Workspace(root, root / "dataset", root / "split", root / "features", root / "model", source)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerHandle:
    url: str
    api_key: str
    process: subprocess.Popen[bytes]
    db: Path
    log: Path
    args: list[str] = field(default_factory=list)

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing; what was acknowledged must already be on disk."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(tmp_path: Path, workspace: Workspace | None = None, db: Path | None = None,
                 port: int | None = None, timeout: float = 90.0) -> ServerHandle:
    """`fusionrec serve` on the workspace (built under ``tmp_path`` when not given), ready to answer."""
    workspace = workspace or build_workspace(tmp_path / "workspace")
    extra = ["--features", str(workspace.features), "--media", str(workspace.media), "--dataset", str(workspace.dataset)]
    return launch_server(workspace.model, tmp_path, extra, db=db, port=port, timeout=timeout)


def launch_server(model_dir: Path, tmp_path: Path, extra: list[str] | None = None, db: Path | None = None,
                  port: int | None = None, timeout: float = 90.0) -> ServerHandle:
    """`fusionrec serve MODEL_DIR --port P --db DB [extra]` in a subprocess (log under ``tmp_path``),
    returned once ``/healthz`` answers; a server that exits or stays silent is an error with its log."""
    port = port or free_port()
    db = db or tmp_path / "events.db"
    log = tmp_path / f"server-{port}.log"
    args = [sys.executable, "-m", "fusionrec", "serve", str(model_dir), "--port", str(port), "--db", str(db), *(extra or [])]
    env = os.environ | {"FUSIONREC_API_KEY": API_KEY, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                        "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    handle = ServerHandle(f"http://127.0.0.1:{port}", API_KEY, process, db, log, args)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{handle.url}/healthz", timeout=1.0).status_code == 200:
                return handle
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    handle.stop()
    raise RuntimeError(f"the server did not answer within {timeout} s:\n{log.read_text()[-3000:]}")
