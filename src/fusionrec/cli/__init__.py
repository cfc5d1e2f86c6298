"""`fusionrec <verb>`: one verb per stage plus `demo`. Thin wiring only; algorithms live in the stages.

Each module below registers its verbs on the shared Typer ``app``.
"""

from __future__ import annotations

from fusionrec.cli import ablate as _ablate  # noqa: F401
from fusionrec.cli import data as _data  # noqa: F401  (registers stats/split/demo)
from fusionrec.cli import demo as _demo  # noqa: F401
from fusionrec.cli import explain as _explain  # noqa: F401
from fusionrec.cli import features as _features  # noqa: F401
from fusionrec.cli import ingest as _ingest  # noqa: F401
from fusionrec.cli import models as _models  # noqa: F401
from fusionrec.cli import online_report as _online_report  # noqa: F401
from fusionrec.cli import report as _report  # noqa: F401
from fusionrec.cli import run as _run  # noqa: F401
from fusionrec.cli import serve as _serve  # noqa: F401
from fusionrec.cli.app import app

__all__ = ["app"]
