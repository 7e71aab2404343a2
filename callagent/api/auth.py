"""Bearer API keys (docs/api.md, Conventions): every ``/api`` route runs as one client.

The key is checked by a guard, which Litestar runs before it reads or parses the body: a caller
without a valid key gets a 401 whatever it sends, and never makes the server read, decode or
size-check a body on its behalf. The guard leaves the client's id in the connection's state,
where the ``client_id`` dependency picks it up.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from callagent.api.state import ApiState
from callagent.store.errors import Unauthorized
from callagent.store.services import clients

_STATE_KEY = "callagent_client_id"

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


async def authenticate(api: ApiState, connection: ASGIConnection[Any, Any, Any, Any]) -> uuid.UUID:
    """The client whose key is in ``Authorization: Bearer <api key>``; 401 otherwise."""
    scheme, _, key = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send the API key as 'Authorization: Bearer <api key>'")
    return await clients.authenticate(api.db, key.strip())


def api_key_guard(api: ApiState) -> Guard:
    """A guard that lets a request through only with a valid key of some client."""

    async def guard(
        connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
    ) -> None:
        connection.scope["state"][_STATE_KEY] = await authenticate(api, connection)

    return guard


async def provide_client_id(request: Request[Any, Any, Any]) -> uuid.UUID:
    """The client the guard authenticated (:func:`api_key_guard`)."""
    client_id = request.scope["state"].get(_STATE_KEY)
    if not isinstance(client_id, uuid.UUID):  # a route outside the guarded router: a bug
        raise RuntimeError("provide_client_id needs api_key_guard on the route")
    return client_id
