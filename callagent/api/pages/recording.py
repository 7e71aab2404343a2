"""A call's recording for the signed-in person (docs/dashboard.md "The pages", Call): the
call page's ``<audio>`` player and its download link.

The same file and rules as the API's ``GET /api/calls/{id}/recording/``
(:mod:`callagent.api.recordings`), under ``/dashboard`` because the pages authenticate with the
session cookie, which the browser sends only there, and the API with keys only
(docs/dashboard.md "Why the pages never take an API key and the API never takes the cookie").
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery

from callagent.api.pages.auth import signed_in
from callagent.api.recordings import find_recording, recording_response
from callagent.api.state import ApiState


def recording_handlers(api: ApiState) -> list[Any]:
    """The recording route, for the dashboard's guarded router."""

    @get("/calls/{call_id:uuid}/recording", include_in_schema=False)
    async def call_recording(
        request: Request[Any, Any, Any],
        call_id: FromPath[uuid.UUID],
        download: FromQuery[bool] = False,
    ) -> Response[Any]:
        who = signed_in(request)
        found = await find_recording(api, who.client_id, call_id)
        return recording_response(request, found, "attachment" if download else "inline")

    return [call_recording]
