"""One sample workspace and one running server for the API tests (a server start takes a few seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve.server import ServerHandle, Workspace, build_workspace, start_server


@pytest.fixture(scope="session")
def serve_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return build_workspace(tmp_path_factory.mktemp("serve-workspace"))


@pytest.fixture(scope="module")
def server(serve_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    root: Path = tmp_path_factory.mktemp("server")
    handle = start_server(root, serve_workspace)
    yield handle
    handle.stop()
