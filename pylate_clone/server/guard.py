"""ASGI middleware that checks the API key and the body size before any parsing.

It wraps the FastAPI application, so a request without the right key, or with
a body over the limit, is answered (401, 413) before a byte of JSON is parsed
and before the route runs. The body is read here, counted while it arrives
(a client may omit ``Content-Length`` or send it chunked) and replayed to the
application; the limit bounds the memory this costs.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Routes answered without an API key.
OPEN_PATHS = frozenset({"/health"})


async def _send_json(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps({"detail": detail}).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None


class RequestGuard:
    """Refuse unauthenticated (401) and oversized (413) HTTP requests.

    Parameters
    ----------
    app
        The ASGI application to protect.
    max_body_bytes
        Largest accepted request body.
    api_key
        When set, every path except ``/health`` needs the header
        ``Authorization: Bearer <api_key>``; keys are compared in constant time.
    """

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, api_key: str | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = int(max_body_bytes)
        self._key = api_key.encode("utf-8") if api_key else None

    def _authorized(self, scope: Scope) -> bool:
        if self._key is None or scope.get("path") in OPEN_PATHS:
            return True
        value = _header(scope, b"authorization") or b""
        scheme, _, token = value.partition(b" ")
        # compare_digest runs in time independent of where the keys differ.
        return scheme.lower() == b"bearer" and hmac.compare_digest(
            token.strip(), self._key
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._authorized(scope):
            await _send_json(
                send,
                401,
                "missing or wrong API key: send 'Authorization: Bearer <key>'",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        too_large = (
            f"request body over the limit of {self.max_body_bytes} bytes "
            "(--max-body-mb)"
        )
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _send_json(send, 400, "Content-Length is not an integer")
                return
            if length > self.max_body_bytes:
                await _send_json(send, 413, too_large)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _send_json(send, 413, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)
