"""Limits at the edge: API keys (constant-time), request body size, image uploads validated by decoding."""

from __future__ import annotations

import hmac
import io
import warnings
from typing import Any

from fusionrec.errors import FusionRecError

MAX_BODY_BYTES = 8 << 20  # 8 MiB: a poster fits, a flood does not
MAX_IMAGE_PIXELS = 40_000_000
IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif"}


class BadUpload(FusionRecError):
    """An upload that is not a usable image (answered 4xx)."""


def key_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison (no timing side channel on the key)."""
    return given is not None and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def validate_image(data: bytes) -> str:
    """The file suffix of a decodable JPEG/PNG/WebP/GIF of at most MAX_IMAGE_PIXELS; BadUpload otherwise."""
    from PIL import Image

    if not data:
        raise BadUpload("the image file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise BadUpload(f"image of {width}x{height} pixels exceeds {MAX_IMAGE_PIXELS} pixels")
                kind = image.format or ""
                image.load()  # decode it all: a truncated or corrupt file fails here, not later
    except BadUpload:
        raise
    except Exception as exc:  # Pillow raises many types for bad files
        raise BadUpload(f"not a readable image ({type(exc).__name__}: {exc})") from None
    if kind not in IMAGE_FORMATS:
        raise BadUpload(f"image format {kind or 'unknown'} is not accepted (JPEG, PNG, WebP, GIF)")
    return IMAGE_FORMATS[kind]


class BodyLimit:
    """ASGI middleware: a request whose body exceeds ``limit`` bytes gets 413 (Content-Length checked
    up front, chunked bodies counted as they arrive)."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    await _reply_413(send, self.limit)
                    return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _reply_413(send, self.limit)


class _TooLarge(Exception):
    pass


async def _reply_413(send: Any, limit: int) -> None:
    body = b'{"detail": "request body exceeds ' + str(limit).encode() + b' bytes"}'
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
