"""``GET /api/calls/{id}/recording/`` (docs/api.md "Recordings") on both backends: the file the
call recorder wrote, as audio/wav with byte ranges, to the call's own client only."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import soundfile
from litestar import Litestar, Request, Response, get
from litestar.testing import AsyncTestClient

from callagent.api.recordings import Recording, recording_response
from callagent.api.state import ApiState
from callagent.store.db import Database
from callagent.store.services import call_state, telephony
from callagent.store.services.call_state import CallUpdate

from helpers.api_fixtures import Headers, train_to
from helpers.recordings import RATE, write_recording
from helpers.store_fixtures import FixedClock

Client = AsyncTestClient[Any]


async def _owner(db: Database, call_id: uuid.UUID) -> uuid.UUID:
    owner = await telephony.call_owner(db, call_id)
    assert owner is not None
    return owner


async def placed_call(client: Client, headers: Headers, number: str = "+14155550123") -> uuid.UUID:
    """A call placed through start-call, with an agent trained enough to call."""
    await train_to(client, headers, 20)
    call = await client.post(
        "/api/agents/ai/start-call/",
        json={"phone_number": number, "ignore_working_hours": True},
        headers=headers,
    )
    assert call.status_code == 201, call.text
    return uuid.UUID(call.json()["call_id"])


async def recorded_call(
    client: Client,
    headers: Headers,
    db: Database,
    api_state: ApiState,
    clock: FixedClock,
    folder: Path,
    number: str = "+14155550123",
) -> tuple[uuid.UUID, Path]:
    """A placed call with a recording in ``folder``, named by its ``recording_ref`` as the
    call journal stores it."""
    api_state.recordings = folder  # the recorder makes it
    call_id = await placed_call(client, headers, number)
    path = write_recording(folder, call_id)
    owner = await _owner(db, call_id)
    await call_state.apply_call_update(
        db, owner, call_id, CallUpdate(recording_ref=path.name), clock.now
    )
    return call_id, path


async def test_the_recording_is_served_as_wav_to_its_client(
    client: Client,
    tenant: Headers,
    db: Database,
    api_state: ApiState,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    call_id, path = await recorded_call(client, tenant, db, api_state, clock, tmp_path / "rec")
    for url in (f"/api/calls/{call_id}/recording/", f"/api/calls/{call_id}/recording"):
        response = await client.get(url, headers=tenant)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "audio/wav"
        assert response.headers["accept-ranges"] == "bytes"
        assert response.headers["content-disposition"].startswith("attachment")
        assert f"call-{call_id}.wav" in response.headers["content-disposition"]
        assert response.content == path.read_bytes()
    audio, rate = soundfile.read(io.BytesIO(response.content), dtype="int16")
    assert rate == RATE
    assert audio.shape == (RATE, 2)  # one second, caller left and agent right


async def test_a_byte_range_is_served_for_seeking(
    client: Client,
    tenant: Headers,
    db: Database,
    api_state: ApiState,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    call_id, path = await recorded_call(client, tenant, db, api_state, clock, tmp_path / "rec")
    data, size = path.read_bytes(), path.stat().st_size
    url = f"/api/calls/{call_id}/recording/"
    for asked, first, last in [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, size - 1),
        ("bytes=-10", size - 10, size - 1),
        ("bytes=100-999999999", 100, size - 1),
    ]:
        response = await client.get(url, headers={**tenant, "Range": asked})
        assert response.status_code == 206, asked
        assert response.headers["content-range"] == f"bytes {first}-{last}/{size}", asked
        assert response.headers["content-type"] == "audio/wav"
        assert response.content == data[first : last + 1], asked
    for asked in (f"bytes={size}-", "bytes=abc", "bytes=-"):
        response = await client.get(url, headers={**tenant, "Range": asked})
        assert response.status_code == 416, asked
        assert response.headers["content-range"] == f"bytes */{size}", asked


async def test_another_clients_call_or_a_call_without_a_recording_is_a_404(
    client: Client,
    tenant: Headers,
    new_tenant: Any,
    db: Database,
    api_state: ApiState,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "rec"
    call_id, _ = await recorded_call(client, tenant, db, api_state, clock, folder)
    other = await new_tenant("Beta Corp")
    theirs = await client.get(f"/api/calls/{call_id}/recording/", headers=other)
    assert theirs.status_code == 404
    assert theirs.json()["error"] == "not_found"
    assert b"RIFF" not in theirs.content

    unrecorded = await placed_call(client, other, "+14155550999")
    response = await client.get(f"/api/calls/{unrecorded}/recording/", headers=other)
    assert response.status_code == 404
    assert response.json()["detail"] == f"call {unrecorded} has no recording"

    missing = await client.get(f"/api/calls/{uuid.uuid4()}/recording/", headers=tenant)
    assert missing.status_code == 404
    assert (await client.get(f"/api/calls/{call_id}/recording/")).status_code == 401


async def test_a_recording_not_in_the_folder_is_a_404(
    client: Client,
    tenant: Headers,
    db: Database,
    api_state: ApiState,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "rec"
    call_id, _ = await recorded_call(client, tenant, db, api_state, clock, folder)
    (tmp_path / "outside.wav").write_bytes(b"RIFF secret")
    (folder / "notes.txt").write_bytes(b"secret")
    owner = await _owner(db, call_id)
    # Deleted by retention; a name that would leave the folder; a file that is no recording.
    for reference in ("gone.wav", "../outside.wav", "notes.txt"):
        await call_state.apply_call_update(
            db, owner, call_id, CallUpdate(recording_ref=reference), clock.now
        )
        response = await client.get(f"/api/calls/{call_id}/recording/", headers=tenant)
        assert response.status_code == 404, reference
        assert "not kept on this server" in response.json()["detail"], reference
        assert b"secret" not in response.content, reference


async def test_no_recording_folder_on_this_node_is_a_404(
    client: Client,
    tenant: Headers,
    db: Database,
    api_state: ApiState,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    call_id, _ = await recorded_call(client, tenant, db, api_state, clock, tmp_path / "rec")
    api_state.recordings = None  # recording.enabled = false
    response = await client.get(f"/api/calls/{call_id}/recording/", headers=tenant)
    assert response.status_code == 404


async def test_a_recording_still_being_written_is_sent_as_it_was_when_asked_for(
    tmp_path: Path,
) -> None:
    """A call on the line keeps writing its file while it is sent: the body is the bytes the
    Content-Length announced, not a longer one (a broken response)."""
    call_id = uuid.uuid4()
    path = write_recording(tmp_path, call_id, seconds=1.0)
    found = Recording(call_id, path, path.stat().st_size)
    with path.open("ab") as file:  # the call went on (past one read chunk, too)
        file.write(bytes(2 * 1024 * 1024))

    @get("/recording")
    async def serve(request: Request[Any, Any, Any]) -> Response[Any]:
        return recording_response(request, found, "inline")

    async with AsyncTestClient(app=Litestar([serve])) as client:
        whole = await client.get("/recording")
        tail = await client.get("/recording", headers={"Range": "bytes=100-"})
    assert whole.status_code == 200
    assert whole.headers["content-length"] == str(found.size)
    assert whole.content == path.read_bytes()[: found.size]
    assert tail.status_code == 206
    assert tail.headers["content-range"] == f"bytes 100-{found.size - 1}/{found.size}"
    assert tail.content == path.read_bytes()[100 : found.size]
