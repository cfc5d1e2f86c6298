"""The FastAPI application: routes over a :class:`~fusionrec.serve.state.ServingState` (wiring only).

Reads are open; writes (``POST /events``, ``POST /items``) need the ``X-API-Key`` header. Every
error a client can cause is a 4xx with a JSON ``detail``: unknown ids 404, a request the loaded
model cannot serve 409/422, bad uploads 422, oversized bodies 413.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Header, HTTPException, Path, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, ORJSONResponse, Response

from fusionrec.errors import FusionRecError
from fusionrec.serve import schemas
from fusionrec.serve.catalog import ID_PATTERN, safe_media_path
from fusionrec.serve.metrics import ServerMetrics
from fusionrec.serve.security import MAX_BODY_BYTES, BadUpload, BodyLimit, key_matches, validate_image
from fusionrec.serve.state import Conflict, NotFound, ServingState

PathId = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]
K = Annotated[int, Query(ge=1, le=schemas.MAX_K)]
Diversity = Annotated[float, Query(ge=0.0, le=1.0)]
Variant = Annotated[str | None, Query(max_length=64)]
PAGE_FILES = {"app.js": "text/javascript", "style.css": "text/css"}


def create_app(state: ServingState, api_key: str, body_limit: int = MAX_BODY_BYTES) -> FastAPI:
    app = FastAPI(title="fusionrec", version="1", description="Multimodal recommendations, live feedback, new items.")
    metrics = ServerMetrics()

    def require_key(x_api_key: Annotated[str | None, Header()] = None) -> None:
        if not key_matches(x_api_key, api_key):
            raise HTTPException(status_code=401, detail="missing or wrong X-API-Key")

    for error, status in ((NotFound, 404), (Conflict, 409), (BadUpload, 422), (FusionRecError, 422)):
        app.add_exception_handler(error, _handler(status))

    # ------------------------------------------------------------------ reads
    @app.get("/healthz", response_model=schemas.Health)
    async def healthz() -> ORJSONResponse:
        return ORJSONResponse({"status": "ok"} | state.stats())

    @app.get("/metrics", response_class=Response)
    def prometheus() -> Response:
        return Response(metrics.render(state.stats()), media_type="text/plain; version=0.0.4")

    @app.get("/users", response_model=schemas.UsersOut)
    async def users(limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> ORJSONResponse:
        with state.lock:
            lengths = state.live.history.getnnz(axis=1)
            count = min(limit, len(state.users))
            return ORJSONResponse({"users": [{"user_id": state.users.ids[u], "n_history": int(lengths[u]) if u < len(lengths) else 0}
                                             for u in range(count)]})

    @app.get("/users/{user_id}/history", response_model=schemas.HistoryOut)
    async def history(user_id: PathId, limit: Annotated[int, Query(ge=1, le=1000)] = 30) -> ORJSONResponse:
        with state.lock:
            items = state.history(state.user_index(user_id))[-limit:]
            return ORJSONResponse({"user_id": user_id, "items": [state.catalog.card(int(i)) for i in items]})

    @app.get("/users/{user_id}/recommendations", response_model=schemas.RecommendationsOut)
    async def recommendations(user_id: PathId, k: K = 10, diversity: Diversity = 0.0, explain: bool = False,
                        variant: Variant = None) -> ORJSONResponse:
        with state.lock:
            answer = state.recommendations.for_user(user_id, k, diversity, explain)
        return ORJSONResponse(answer | {"variant": variant or None})

    @app.post("/recommendations", response_model=schemas.RecommendationsOut)
    def cold_recommendations(query: schemas.ColdQuery) -> ORJSONResponse:
        # sync: a text query runs the encoder (in the threadpool, not on the event loop)
        with state.lock:
            answer = state.recommendations.for_query(query.items, query.text, dict(query.profile), query.k, query.diversity)
        return ORJSONResponse(answer | {"variant": query.variant})

    @app.get("/items/{item_id}/similar", response_model=schemas.SimilarOut)
    async def similar(item_id: PathId, k: K = 10,
                      modality: Annotated[str, Query(pattern=r"^[a-z_]{1,32}$")] = "fused") -> ORJSONResponse:
        with state.lock:
            return ORJSONResponse(state.recommendations.similar(item_id, k, modality))

    @app.get("/search", response_model=schemas.SearchOut)
    def search(q: Annotated[str, Query(min_length=1, max_length=500, pattern=r"\S")], k: K = 10) -> ORJSONResponse:
        return ORJSONResponse(state.recommendations.search(q, k))  # encodes outside the state lock

    # ------------------------------------------------------------------ writes
    @app.post("/events", response_model=schemas.EventsOut, dependencies=[Depends(require_key)])
    def events(body: schemas.EventsIn) -> dict[str, Any]:
        stored, duplicate = state.post_events([e.model_dump() for e in body.events], body.idempotency_key)
        return {"stored": stored, "duplicate": duplicate}

    @app.post("/items", response_model=schemas.ItemOut, dependencies=[Depends(require_key)])
    def add_item(
        title: Annotated[str, Form(min_length=1, max_length=300)],
        description: Annotated[str, Form(max_length=5000)] = "",
        genres: Annotated[str, Form(max_length=500)] = "",
        item_id: Annotated[str | None, Form(pattern=ID_PATTERN, max_length=128)] = None,
        image: Annotated[UploadFile | None, File()] = None,
    ) -> dict[str, Any]:
        data, suffix = None, ""
        if image is not None and image.filename:
            data = image.file.read(body_limit + 1)
            suffix = validate_image(data)
        names = [g.strip() for g in genres.split(",") if g.strip()]
        return state.add_item(item_id, title.strip(), description.strip(), names, data, suffix)

    # ------------------------------------------------------------------ page and media
    # the page revalidates on every load, so an upgraded server never runs an old app.js
    no_cache = {"Cache-Control": "no-cache", "Content-Security-Policy": "default-src 'self'; img-src 'self' data:"}

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(_page_file("index.html"), headers=no_cache)

    @app.api_route("/static/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    def static(name: str) -> Response:
        if name not in PAGE_FILES:
            raise HTTPException(status_code=404, detail="no such file")
        return Response(_page_file(name), media_type=PAGE_FILES[name], headers=no_cache)

    @app.get("/media/{path:path}", include_in_schema=False)
    def media(path: str) -> FileResponse:
        target = None if state.media is None else safe_media_path(state.media, path)
        if target is None:
            raise HTTPException(status_code=404, detail="no such media file")
        return FileResponse(target, headers={"Cache-Control": "max-age=3600"})

    app.add_middleware(Measured, metrics=metrics)
    app.add_middleware(BodyLimit, limit=body_limit)
    return app


class Measured:
    """ASGI middleware: count and time every request by its route template (not the raw path, so
    ids do not explode the label space). Pure ASGI: Starlette's BaseHTTPMiddleware costs ~1 ms a request."""

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def recorded(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recorded)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(scope.get("method", ""), route, status[0], started)


def _page_file(name: str) -> str:
    return (resources.files("fusionrec.serve") / "page" / name).read_text(encoding="utf-8")


def _handler(status: int) -> Any:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handle
