"""A call's recording over HTTP (docs/api.md "Recordings"): ``GET /api/calls/{id}/recording/``
for an API key, and the same file for the dashboard's player (``callagent/api/pages/
recording.py``).

The file is what ``telephony/recording.py`` wrote: a 16-bit PCM wav, caller left, agent right,
at the call's rate, named ``<call id>.wav`` in the node's ``recording.folder``; the call's
``recording_ref`` names it. It is served as ``audio/wav`` with single byte ranges (RFC 9110
section 14): a browser's ``<audio>`` asks for ``Range: bytes=0-`` and seeks with ranges, and
without them it cannot jump ahead in a long call. Scoped like every route: another client's
call is a 404, exactly like a missing one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.response import Stream

from callagent.api.errors import responses
from callagent.api.state import ApiState
from callagent.store.errors import NotFound
from callagent.store.services import calls

MEDIA_TYPE = "audio/wav"
"""What browsers play a PCM wav as (Chromium and Firefox also take ``audio/x-wav``)."""
CHUNK_BYTES = 64 * 1024
"""Read size while streaming a range (a few ms of disk time; bounded memory per listener)."""

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


@dataclass(frozen=True)
class Recording:
    """A call's recording file on this node."""

    call_id: uuid.UUID
    path: Path
    size: int

    @property
    def filename(self) -> str:
        """The name a download is saved under."""
        return f"call-{self.call_id}.wav"


def recording_path(folder: Path | None, reference: str) -> Path | None:
    """The file ``reference`` (a call's ``recording_ref``) names in ``folder``, if it is there.
    None when recording is off on this node, the call has none, the reference is not a plain
    ``.wav`` file name (it is never followed out of the folder), or the file is gone
    (retention deleted it, or it lies on another node's disk)."""
    if folder is None or not reference:
        return None
    if Path(reference).name != reference or not reference.endswith(".wav"):
        return None
    path = folder / reference
    return path if path.is_file() else None


async def find_recording(api: ApiState, client_id: uuid.UUID, call_id: uuid.UUID) -> Recording:
    """``client_id``'s call's recording. Raises NotFound: no such call for this client, or no
    recording of it here (the detail says which)."""
    call = await calls.get_call(api.db, client_id, call_id)
    if not call.recording_ref:
        raise NotFound(f"call {call_id} has no recording")
    path = recording_path(api.recordings, call.recording_ref)
    if path is None:
        raise NotFound(f"the recording of call {call_id} is not kept on this server")
    return Recording(call_id, path, path.stat().st_size)


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The one range ``header`` asks for, as (first, last) inclusive; None to send the whole
    file (no header, or several ranges: allowed by RFC 9110 section 14.2). Raises a 416 for a
    range that starts past the end or is malformed."""
    if not header:
        return None
    if "," in header:
        return None
    found = _RANGE.match(header)
    if found is None or (not found[1] and not found[2]):
        raise HTTPException(
            status_code=416,
            detail=f"Range: expected 'bytes=first-last', got '{header[:80]}'",
            headers={"Content-Range": f"bytes */{size}"},
        )
    if not found[1]:  # "bytes=-N": the last N bytes
        first, last = max(0, size - int(found[2])), size - 1
    else:
        first = int(found[1])
        last = min(int(found[2]), size - 1) if found[2] else size - 1
    if first >= size or last < first:
        raise HTTPException(
            status_code=416,
            detail=f"Range: the recording has {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return first, last


async def _read(path: Path, first: int, length: int) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as file:
        await file.seek(first)
        while length > 0:
            chunk = await file.read(min(CHUNK_BYTES, length))
            if not chunk:
                return  # the file shrank (retention deleted it meanwhile)
            length -= len(chunk)
            yield chunk


def recording_response(
    request: Request[Any, Any, Any],
    recording: Recording,
    disposition: Literal["attachment", "inline"],
) -> Response[Any]:
    """The recording as ``audio/wav``: the whole file (200), or the one byte range asked
    for (206). Exactly the bytes the file held when it was looked up are sent: the recording
    of a call still on the line grows meanwhile, and a body longer than its Content-Length
    is a broken response (Litestar's ``File`` reads to the end of the file)."""
    wanted = _byte_range(request.headers.get("range", ""), recording.size)
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-store",
        "Content-Disposition": f'{disposition}; filename="{recording.filename}"',
    }
    first, last = wanted if wanted is not None else (0, recording.size - 1)
    length = last - first + 1
    if wanted is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{recording.size}"
    return Stream(
        _read(recording.path, first, length),
        status_code=200 if wanted is None else 206,
        media_type=MEDIA_TYPE,
        headers={**headers, "Content-Length": str(length)},
    )


class RecordingController(Controller):
    """Call recordings."""

    path = "/api/calls"
    tags = ("calls",)

    @get(
        "/{call_id:uuid}/recording/",
        responses=responses(401, 404),
        media_type=MEDIA_TYPE,
    )
    async def recording(
        self,
        request: Request[Any, Any, Any],
        call_id: FromPath[uuid.UUID],
        client_id: NamedDependency[uuid.UUID],
        api: NamedDependency[ApiState],
    ) -> Response[Any]:
        """The call's recording: a 16-bit PCM wav, caller left, agent right (``audio/wav``,
        ``Range`` supported). 404 when the call is another client's or missing, or has no
        recording on this server."""
        found = await find_recording(api, client_id, call_id)
        return recording_response(request, found, "attachment")
