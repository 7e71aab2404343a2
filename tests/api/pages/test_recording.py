"""The call page's recording player and download (docs/dashboard.md "The pages", Call), and
what the page says about the call's turns and actions, through Litestar's test client on both
backends."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from callagent.api.state import ApiState
from callagent.store.db import Database
from callagent.store.models import CallSession
from callagent.store.schemas import TranscriptTurn
from callagent.store.services import call_state
from callagent.store.services.call_state import CallUpdate

from helpers.api_fixtures import train_to
from helpers.dashboard_fixtures import Person, sign_in
from helpers.recordings import write_recording
from helpers.store_fixtures import FixedClock

Client = AsyncTestClient[Any]


async def _call(client: Client, who: Person, number: str = "+14155550123") -> uuid.UUID:
    await train_to(client, who.headers, 20)
    call = await client.post(
        "/api/agents/ai/start-call/",
        json={"phone_number": number, "ignore_working_hours": True},
        headers=who.headers,
    )
    assert call.status_code == 201, call.text
    return uuid.UUID(call.json()["call_id"])


async def _recorded(
    client: Client, who: Person, db: Database, folder: Path, clock: FixedClock
) -> tuple[uuid.UUID, Path]:
    call_id = await _call(client, who)
    path = write_recording(folder, call_id)
    await call_state.apply_call_update(
        db, who.client_id, call_id, CallUpdate(recording_ref=path.name), clock.now
    )
    return call_id, path


async def test_the_call_page_plays_and_downloads_its_recording(
    client: Client,
    person: Person,
    db: Database,
    api_state: ApiState,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    api_state.recordings = tmp_path
    call_id, path = await _recorded(client, person, db, tmp_path, clock)
    await sign_in(client, person)
    page = (await client.get(f"/dashboard/calls/{call_id}")).text
    player = f'<audio id="recording" controls preload="metadata" src="/dashboard/calls/{call_id}'
    assert f'{player}/recording"' in page
    assert f'href="/dashboard/calls/{call_id}/recording?download=true"' in page

    played = await client.get(f"/dashboard/calls/{call_id}/recording")
    assert played.status_code == 200
    assert played.headers["content-type"] == "audio/wav"
    assert played.headers["content-disposition"].startswith("inline")
    assert played.content == path.read_bytes()
    seek = await client.get(
        f"/dashboard/calls/{call_id}/recording", headers={"Range": "bytes=44-143"}
    )
    assert seek.status_code == 206
    assert seek.content == path.read_bytes()[44:144]
    saved = await client.get(f"/dashboard/calls/{call_id}/recording?download=true")
    assert saved.headers["content-disposition"].startswith("attachment")
    assert f"call-{call_id}.wav" in saved.headers["content-disposition"]


async def test_a_call_without_a_recording_says_so_and_its_route_is_a_404(
    client: Client,
    person: Person,
    db: Database,
    api_state: ApiState,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    api_state.recordings = tmp_path
    unrecorded = await _call(client, person)
    await sign_in(client, person)
    page = (await client.get(f"/dashboard/calls/{unrecorded}")).text
    assert "Not recorded." in page
    assert "<audio" not in page
    response = await client.get(f"/dashboard/calls/{unrecorded}/recording")
    assert response.status_code == 404
    assert "has no recording" in response.text

    # Named, but the file is gone (retention) or on another node's disk.
    await call_state.apply_call_update(
        db, person.client_id, unrecorded, CallUpdate(recording_ref="gone.wav"), clock.now
    )
    page = (await client.get(f"/dashboard/calls/{unrecorded}")).text
    assert "The recording is not on this server" in page
    assert "<audio" not in page
    assert (await client.get(f"/dashboard/calls/{unrecorded}/recording")).status_code == 404


async def test_another_clients_recording_is_a_404(
    client: Client,
    new_person: Callable[[str], Awaitable[Person]],
    db: Database,
    api_state: ApiState,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    api_state.recordings = tmp_path
    alice, bob = await new_person("Alpha Corp"), await new_person("Beta Corp")
    theirs, _ = await _recorded(client, bob, db, tmp_path, clock)
    await sign_in(client, alice)
    for path in (f"/dashboard/calls/{theirs}/recording", f"/dashboard/calls/{theirs}"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert b"RIFF" not in response.content, path
    # And without a session, the login form.
    client.cookies.clear()
    response = await client.get(f"/dashboard/calls/{theirs}/recording", follow_redirects=False)
    assert response.status_code == 303


async def test_the_call_page_shows_each_action_with_its_details_and_the_barge_ins(
    client: Client, person: Person, db: Database
) -> None:
    call_id = await _call(client, person)
    start = dt.datetime(2026, 3, 4, 9, 0, tzinfo=dt.UTC)
    turns = [
        TranscriptTurn(speaker="agent", text="Hello, this is Alex.", at=start),
        TranscriptTurn(speaker="caller", text="Call me tomorrow after three.", at=start),
    ]
    latency = {
        "turns": [dict.fromkeys(("end_of_turn", "stt", "llm_first_token", "voice_to_voice"))],
        "barge_in_stop_ms": [92.4, 131.0],
    }
    await call_state.append_turns(db, person.client_id, call_id, turns, latency, now=start)
    async with db.write() as session:
        row = await session.get(CallSession, call_id)
        assert row is not None
        # Entries as the store records them (store/services/call_state.py apply_call_action).
        row.actions_taken = [
            {
                "type": "schedule_callback",
                "source": "model",
                "when": "tomorrow after three",
                "reason": "busy now",
                "at": "2026-03-05T15:00:00+00:00",
                "taken_at": "2026-03-04T09:00:12+00:00",
                "result": "done",
                "callback_id": str(uuid.uuid4()),
            },
            {
                "type": "transfer",
                "source": "rule",
                "target": "sales",
                "taken_at": "2026-03-04T09:01:00+00:00",
                "result": "skipped: the call's purpose does not allow it",
            },
        ]
    await sign_in(client, person)
    page = (await client.get(f"/dashboard/calls/{call_id}")).text
    actions = page[page.index("Actions taken") : page.index("Analysis")]
    rows = [row for row in actions.split("<tr>") if "<td>" in row]
    assert len(rows) == 2
    callback, transfer = rows  # in the order taken
    for shown in (
        "Wed 04 Mar 2026, 09:00 UTC",  # when it was taken
        "Schedule callback",
        "for Thu 05 Mar 2026, 15:00 UTC",
        "When: tomorrow after three",
        "Reason: busy now",
        "done",
        "model",
    ):
        assert shown in callback, shown
    for shown in ("Transfer", "Target: sales", "skipped: the call&#39;s purpose", "rule"):
        assert shown in transfer, shown
    assert "it stopped speaking 92 ms, 131 ms after the caller began" in page
