"""`fusionrec serve`: load a bundle and run the HTTP API + web page (FastAPI on uvicorn)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from fusionrec.cli.app import app, console, friendly_errors


@app.command()
@friendly_errors
def serve(
    model_dir: Annotated[Path, typer.Argument(help="Model bundle from `fusionrec train`.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    db: Annotated[Path, typer.Option("--db", help="SQLite event store (created if absent).")] = Path("runs/events.db"),
    media: Annotated[Path | None, typer.Option("--media", help="Folder posters are served from and uploads stored in (default: the dataset's media folder).")] = None,
    features_dir: Annotated[Path | None, typer.Option("--features", help="Feature directory: explanations, similar items, search, new items.")] = None,
    dataset_dir: Annotated[Path | None, typer.Option("--dataset", help="Dataset for titles and posters (default: the split's).")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="Key for POST /events and /items (default: $FUSIONREC_API_KEY, else a random one, printed).")] = None,
    rerank: Annotated[str, typer.Option("--rerank", help="Re-ranking method behind ?diversity=: mmr or dpp.")] = "mmr",
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve recommendations over HTTP: API at /docs, web page at /."""
    import logging

    import uvicorn

    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # which SIMD build loaded is not news

    from fusionrec.errors import DataError
    from fusionrec.serve.app import create_app
    from fusionrec.serve.state import ServeSettings, ServingState

    if rerank not in ("mmr", "dpp"):
        raise DataError(f"--rerank must be mmr or dpp, got {rerank!r}")
    key = api_key or os.environ.get("FUSIONREC_API_KEY")
    if not key:
        key = secrets.token_urlsafe(18)
        console.print(f"no --api-key or FUSIONREC_API_KEY: this run's write key is [bold]{key}[/]")
    db.parent.mkdir(parents=True, exist_ok=True)
    settings = ServeSettings(model_dir=model_dir, db_path=db, features_dir=features_dir, dataset_dir=dataset_dir,
                             media_dir=media, rerank_method=rerank)
    state = ServingState.open(settings)
    stats = state.stats()
    console.print(
        f"serving {stats['model']} ({stats['n_users']:,} users, {stats['n_items']:,} items, {state.replayed:,} stored "
        f"events replayed) on http://{host}:{port}  (page /, API docs /docs)", highlight=False
    )
    uvicorn.run(create_app(state, key), host=host, port=port, log_level=log_level, access_log=False)
