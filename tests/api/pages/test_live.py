"""The live calls page (docs/dashboard.md "Live calls") through Litestar's test client, on both
backends: a client's calls on the line with their transcript as the call journal writes it,
gone when they end, and never another client's."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from litestar.testing import AsyncTestClient

from callagent.store.db import Database
from callagent.store.models import CallSession
from callagent.store.schemas import TranscriptTurn
from callagent.store.services import call_state
from callagent.store.services.call_state import CallUpdate
from callagent.store.states import CallStatus

from helpers.api_fixtures import train_to
from helpers.dashboard_fixtures import Person, sign_in
from helpers.store_fixtures import FixedClock

Client = AsyncTestClient[Any]


async def _live_call(client: Client, who: Person, number: str, name: str) -> uuid.UUID:
    """A call of ``who``'s client placed through start-call: ``dialing`` until answered."""
    created = await client.post(
        "/api/customers/", json={"phone_number": number, "name": name}, headers=who.headers
    )
    assert created.status_code == 201, created.text
    call = await client.post(
        "/api/agents/ai/start-call/",
        json={"phone_number": number, "ignore_working_hours": True},
        headers=who.headers,
    )
    assert call.status_code == 201, call.text
    return uuid.UUID(call.json()["call_id"])


async def _say(db: Database, who: Person, call_id: uuid.UUID, *lines: tuple[str, str]) -> None:
    """What the call journal writes as each turn ends (store/services/call_state.py)."""
    at = dt.datetime(2026, 3, 4, 9, 59, tzinfo=dt.UTC)
    turns = [TranscriptTurn(speaker=speaker, text=text, at=at) for speaker, text in lines]
    await call_state.append_turns(db, who.client_id, call_id, turns, now=at)


async def test_live_calls_show_each_call_on_the_line_with_its_transcript_as_it_grows(
    client: Client, person: Person, db: Database, clock: FixedClock
) -> None:
    await train_to(client, person.headers, 20)
    talking = await _live_call(client, person, "+14155550123", "Dana Talking")
    ringing = await _live_call(client, person, "+14155550124", "Rory Ringing")
    answered = clock.now - dt.timedelta(seconds=75)
    await call_state.apply_call_update(
        db, person.client_id, talking, CallUpdate(status=CallStatus.IN_PROGRESS), answered
    )
    await call_state.apply_call_update(
        db, person.client_id, ringing, CallUpdate(status=CallStatus.RINGING), clock.now
    )
    await _say(db, person, talking, ("agent", "Hello, this is Alex."), ("caller", "Who is it?"))
    await sign_in(client, person)

    page = await client.get("/dashboard/live")
    assert page.status_code == 200
    assert "2 calls on the line." in page.text
    assert 'src="/dashboard/static/live.js"' in page.text
    dana = page.text[page.text.index("Dana Talking") : page.text.index("Rory Ringing")]
    for shown in ("Alex", "+14155550123", "Outbound", "In progress", "Talking for", "1:15"):
        assert shown in dana, shown
    assert dana.index("Hello, this is Alex.") < dana.index("Who is it?")
    rory = page.text[page.text.index("Rory Ringing") :]
    assert "Ringing" in rory
    assert "Nothing said yet." in rory

    assert "No sign of life" not in page.text

    # The next turn, as the journal writes it mid-call, is in the next fragment.
    await _say(db, person, talking, ("agent", "Alex from Sunny Roofs, about your roof."))
    fragment = await client.get("/dashboard/live/calls")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text  # the list alone, to put in place
    assert "Alex from Sunny Roofs, about your roof." in fragment.text

    # Its node went quiet (no write, no heartbeat): said, until crash recovery settles it.
    async with db.write() as session:
        row = await session.get(CallSession, talking)
        assert row is not None
        row.last_activity_at = clock.now - dt.timedelta(seconds=70)
    fragment = await client.get("/dashboard/live/calls")
    assert "No sign of life from this call for 70 s" in fragment.text

    # Over: no longer live, and the list says so.
    for call_id in (talking, ringing):
        await call_state.apply_call_update(
            db, person.client_id, call_id, CallUpdate(status=CallStatus.COMPLETED), clock.now
        )
    fragment = await client.get("/dashboard/live/calls")
    assert "No calls on the line right now." in fragment.text
    assert "Dana Talking" not in fragment.text


async def test_a_call_not_yet_placed_or_failed_is_not_live(
    client: Client, person: Person, api_state: Any
) -> None:
    await train_to(client, person.headers, 20)
    api_state.placer.placed = False
    api_state.placer.reason = "no telephony configured"
    await _live_call(client, person, "+14155550125", "Never Placed")
    await sign_in(client, person)
    page = await client.get("/dashboard/live")
    assert "No calls on the line right now." in page.text
    assert "Never Placed" not in page.text


async def test_another_clients_live_call_never_shows(
    client: Client,
    new_person: Callable[[str], Awaitable[Person]],
    db: Database,
    clock: FixedClock,
) -> None:
    alice, bob = await new_person("Alpha Corp"), await new_person("Beta Corp")
    for who in (alice, bob):
        await train_to(client, who.headers, 20)
    theirs = await _live_call(client, bob, "+14155550126", "Beta Customer")
    await call_state.apply_call_update(
        db, bob.client_id, theirs, CallUpdate(status=CallStatus.IN_PROGRESS), clock.now
    )
    await _say(db, bob, theirs, ("caller", "Beta secret words"))
    await _live_call(client, alice, "+14155550127", "Alpha Customer")
    await sign_in(client, alice)
    for path in ("/dashboard/live", "/dashboard/live/calls"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert "Alpha Customer" in response.text, path
        for theirs_text in ("Beta Customer", "Beta secret words", "+14155550126"):
            assert theirs_text not in response.text, (path, theirs_text)


async def test_the_live_list_needs_a_session(client: Client) -> None:
    for path in ("/dashboard/live", "/dashboard/live/calls"):
        response = await client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/dashboard/login"
