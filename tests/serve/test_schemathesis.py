"""Property-based requests from the OpenAPI schema (schemathesis' CLI): no input makes the server answer 5xx."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve.server import ServerHandle


def test_no_request_gets_a_server_error(server: ServerHandle, tmp_path: Path) -> None:
    executable = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    if not Path(executable).exists():
        pytest.skip("schemathesis is not installed (pip install -e .[dev])")
    report = tmp_path / "schemathesis.txt"
    result = subprocess.run(
        [executable, "run", f"{server.url}/openapi.json", "--checks", "not_a_server_error", "--max-examples", "40",
         "--header", f"X-API-Key: {server.api_key}", "--request-timeout", "30", "--generation-deterministic",
         "--phases", "examples,coverage,fuzzing"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,  # its .schemathesis cache stays out of the repo
    )
    report.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"schemathesis found server errors:\n{result.stdout[-6000:]}"
    assert "No issues found" in result.stdout
    tested = re.search(r"Tested: (\d+)", result.stdout)
    generated = re.search(r"(\d+) generated", result.stdout)
    assert tested and int(tested.group(1)) >= 10, "schemathesis did not reach every operation"
    assert generated and int(generated.group(1)) >= 200, "too few generated requests to mean anything"
