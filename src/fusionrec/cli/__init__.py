"""`fusionrec <verb>`: one verb per stage plus `demo`. Thin wiring only; algorithms live in the stages.

Each module below registers its verbs on the shared Typer ``app``.
"""

from __future__ import annotations

from fusionrec.cli.app import app
from fusionrec.cli import data as _data  # noqa: F401,E402  (registers stats/split/demo)
from fusionrec.cli import ingest as _ingest  # noqa: F401,E402
from fusionrec.cli import models as _models  # noqa: F401,E402
from fusionrec.cli import features as _features  # noqa: F401,E402

__all__ = ["app"]
