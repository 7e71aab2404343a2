"""The dashboard's browser phone: "Talk to your agent" (docs/dashboard.md).

The page ``/dashboard/talk`` and its WebSocket ``/dashboard/talk/socket``. The socket is
authenticated like every page, by the session cookie (its path is under ``/dashboard``), and
it also checks the ``Origin`` header: browsers attach cookies to WebSocket handshakes whatever
page opens them and the same-origin policy does not apply to WebSockets, so without the check
any site the person visits could open a call as them and hear the agent talk about their
business (cross-site WebSocket hijacking). The hello must also carry the page's CSRF token.
The call itself is the transport in :mod:`callagent.telephony.browser.connection`, run by the
node's call runner like a phone call: routed to the client's own agent, stored as type
``test``, counted by admission control, analysed after it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, WebSocket, get, websocket
from litestar.exceptions import WebSocketDisconnect

from callagent.api.pages.auth import signed_in
from callagent.api.pages.render import render
from callagent.api.state import ApiState
from callagent.store.errors import NotFound
from callagent.store.services import agents, users
from callagent.telephony.browser.connection import (
    CLOSE_POLICY,
    BrowserConnection,
    WireError,
    parse_hello,
)
from callagent.telephony.connection import CallConnection
from callagent.voice_pipeline.clock import Clock

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0
"""How long an opened socket may wait before its hello (the page sends it at once)."""

CLOSE_REFUSED = 4403
"""Closed before the call: not allowed (no agent yet, wrong token)."""
CLOSE_UNAVAILABLE = 4503
"""Closed before the call: this node has no voice models."""


@dataclass(frozen=True)
class BrowserPhone:
    """What the browser phone needs from the node: the call handler (the
    :class:`~callagent.telephony.call_runner.CallRunner` that serves AudioSocket and SIP)
    and the clock of its voice pipeline, which stamps the caller's frames."""

    handler: Callable[[CallConnection], Awaitable[None]]
    clock: Clock


class _Socket:
    """Litestar's WebSocket as :class:`~callagent.telephony.browser.connection.MessageSocket`."""

    def __init__(self, socket: WebSocket[Any, Any, Any]) -> None:
        self._socket = socket

    async def receive(self) -> str | bytes | None:
        try:
            event = await self._socket.receive()
        except WebSocketDisconnect:
            return None
        if event["type"] != "websocket.receive":
            return None
        data = event.get("bytes")
        if data is not None:
            return bytes(data)
        return str(event.get("text") or "")

    async def send(self, message: str | bytes) -> None:
        try:
            mode = "binary" if isinstance(message, bytes) else "text"
            await self._socket.send_data(message, mode)
        except WebSocketDisconnect as error:
            raise OSError("the page closed the socket") from error

    async def close(self, code: int, reason: str) -> None:
        if self._socket.connection_state != "disconnect":
            try:
                await self._socket.close(code, reason)
            except WebSocketDisconnect as error:
                raise OSError("the page closed the socket") from error


def same_origin(socket: WebSocket[Any, Any, Any]) -> bool:
    """Whether the handshake's ``Origin`` is this app's own scheme, host and port."""
    origin = socket.headers.get("origin", "")
    host = socket.headers.get("host", "")
    if not origin or not host:
        return False
    scheme = "https" if socket.url.scheme in ("wss", "https") else "http"
    return origin.lower() == f"{scheme}://{host.lower()}"


def phone_handlers(api: ApiState, phone: BrowserPhone | None) -> list[Any]:
    """The talk page and its socket, for the dashboard's guarded router."""

    @get("/talk", include_in_schema=False)
    async def talk(request: Request[Any, Any, Any]) -> Response[str]:
        who = signed_in(request)
        try:
            agent = await agents.get_agent(api.db, who.client_id)
        except NotFound:
            agent = None
        return render(
            "talk.html",
            who=who,
            csrf=who.csrf_token,
            path=request.url.path,
            agent=agent,
            available=phone is not None,
        )

    @websocket("/talk/socket")
    async def talk_socket(socket: WebSocket[Any, Any, Any]) -> None:
        who = signed_in(socket)  # type: ignore[arg-type]  # the guard put it in the scope
        if not same_origin(socket):
            # Before accepting: the handshake is answered 403, nothing else is said.
            log.warning(
                "browser phone refused: Origin %r is not this site",
                socket.headers.get("origin"),
            )
            await socket.close(CLOSE_REFUSED, "cross-origin")
            return
        await socket.accept()
        wire = _Socket(socket)
        try:
            async with asyncio.timeout(HELLO_TIMEOUT_S):
                hello = parse_hello(await wire.receive())
        except (TimeoutError, WireError) as error:
            code = error.code if isinstance(error, WireError) else CLOSE_POLICY
            await wire.close(code, str(error)[:120] or "no hello")
            return
        if not users.same_secret(hello.csrf, who.csrf_token):
            await wire.close(CLOSE_REFUSED, "wrong CSRF token; reload the page")
            return
        if phone is None:
            await wire.close(CLOSE_UNAVAILABLE, "this node has no voice models")
            return
        try:
            await agents.get_agent(api.db, who.client_id)
        except NotFound:
            await wire.close(CLOSE_REFUSED, "set up your agent first")
            return
        client = socket.client
        connection = BrowserConnection(
            wire,
            client_id=who.client_id,
            wire_rate=hello.rate,
            clock=phone.clock,
            remote=f"browser {client.host if client else '?'} ({who.email})",
        )
        await connection.serve(phone.handler)

    return [talk, talk_socket]
