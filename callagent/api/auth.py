"""Bearer API keys (docs/api.md, Conventions): every ``/api`` route runs as one client."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from callagent.api.state import ApiState
from callagent.store.errors import Unauthorized
from callagent.store.services import clients


async def provide_client_id(
    request: Request[Any, Any, Any], api: NamedDependency[ApiState]
) -> uuid.UUID:
    """The client whose key is in ``Authorization: Bearer <api key>``; 401 otherwise."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send the API key as 'Authorization: Bearer <api key>'")
    return await clients.authenticate(api.db, key.strip())
