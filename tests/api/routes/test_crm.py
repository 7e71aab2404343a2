"""CRM resources: customers (CRUD, filters, pagination, CSV import, do-not-call), notes, calls,
callbacks and opportunities (docs/api.md)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from callagent.api.state import ApiState
from callagent.store.db import Database
from callagent.store.schemas import TranscriptTurn
from callagent.store.services import call_state, telephony
from callagent.store.services.call_state import CallUpdate
from callagent.store.states import CallStatus

from helpers.api_fixtures import Headers, train_to
from helpers.store_data import number
from helpers.store_fixtures import FixedClock

Client = AsyncTestClient[Any]


async def _customer(client: Client, headers: Headers, phone: str, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/customers/", json={"phone_number": phone, **fields}, headers=headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_customer_crud(client: Client, tenant: Headers) -> None:
    created = await _customer(
        client,
        tenant,
        "+1 (415) 555-0123",
        name="Dana",
        email="dana@example.com",
        company="Example Inc",
        timezone="America/Los_Angeles",
        interest_level="warm",
        preferences={"contact": "afternoons"},
    )
    assert created["phone_number"] == "+14155550123"
    path = f"/api/customers/{created['id']}/"
    assert (await client.get(path, headers=tenant)).json()["name"] == "Dana"
    duplicate = await client.post(
        "/api/customers/", json={"phone_number": "+14155550123"}, headers=tenant
    )
    assert duplicate.status_code == 409
    updated = await client.patch(
        path, json={"interest_level": "hot", "name": "Dana S."}, headers=tenant
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["interest_level"], updated.json()["name"]) == ("hot", "Dana S.")
    converted = await client.patch(path, json={"interest_level": "converted"}, headers=tenant)
    assert converted.json()["converted"] is True
    back = await client.patch(path, json={"interest_level": "cold"}, headers=tenant)
    assert back.status_code == 409
    assert back.json()["error"] == "illegal_transition"
    assert (await client.delete(path, headers=tenant)).status_code == 204
    assert (await client.get(path, headers=tenant)).status_code == 404
    assert (await client.delete(path, headers=tenant)).status_code == 404


async def test_customer_validation(client: Client, tenant: Headers) -> None:
    cases = [
        ({"phone_number": "555-0123"}, "phone_number"),
        ({"phone_number": "not a number"}, "phone_number"),
        ({"phone_number": "+14155550123", "interest_level": "lukewarm"}, "interest_level"),
        ({"phone_number": "+14155550123", "timezone": "Nowhere/Land"}, "timezone"),
        ({"phone_number": "+14155550123", "name": "x" * 201}, "name"),
        ({"name": "no phone"}, "phone_number"),
    ]
    for body, field in cases:
        response = await client.post("/api/customers/", json=body, headers=tenant)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["field"] == field, response.json()
    listing = (await client.get("/api/customers/", headers=tenant)).json()
    assert listing["items"] == []


async def test_customer_list_filters_and_pages(client: Client, tenant: Headers) -> None:
    levels = ["cold", "warm", "hot", "hot", "converted"]
    for index, level in enumerate(levels * 3):
        await _customer(client, tenant, f"+1415555{index:04d}", interest_level=level)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/customers/", params=params, headers=tenant)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 15
    assert len(set(seen)) == 15
    assert seen == sorted(seen, reverse=True)  # newest first
    hot = (
        await client.get(
            "/api/customers/",
            params={"interest_level": "hot", "converted": "false"},
            headers=tenant,
        )
    ).json()
    assert len(hot["items"]) == 6
    by_phone = (
        await client.get("/api/customers/", params={"phone_number": "+14155550002"}, headers=tenant)
    ).json()
    assert [item["phone_number"] for item in by_phone["items"]] == ["+14155550002"]
    for params, field in [
        ({"limit": 0}, "limit"),
        ({"limit": 1000}, "limit"),
        ({"interest_level": "tepid"}, "interest_level"),
        ({"cursor": "%%%"}, "cursor"),
    ]:
        response = await client.get("/api/customers/", params=params, headers=tenant)
        assert response.status_code == 400, params
        assert response.json()["field"] == field


async def test_csv_import_reports_row_errors(client: Client, tenant: Headers) -> None:
    await _customer(client, tenant, "+14155550100", interest_level="converted")
    csv_text = (
        "phone_number,name,interest_level,do_not_call\n"
        "+14155550101,Ann,warm,no\n"
        "12345,Bad Number,,\n"
        "+14155550102,Bob,scorching,\n"
        "+14155550101,Ann again,,\n"
        "+14155550100,Converted,cold,\n"
        "+14155550103,Cy,,yes\n"
        "+14155550100,,,\n"
    )
    headers = {**tenant, "Content-Type": "text/csv"}
    dry = await client.post(
        "/api/customers/import/", content=csv_text, params={"dry_run": "true"}, headers=headers
    )
    assert dry.status_code == 200, dry.text
    assert (dry.json()["created"], dry.json()["dry_run"]) == (2, True)
    assert len((await client.get("/api/customers/", headers=tenant)).json()["items"]) == 1
    response = await client.post("/api/customers/import/", content=csv_text, headers=headers)
    result = response.json()
    assert (result["created"], result["updated"]) == (2, 0), result
    errors = [(error["row"], error["field"]) for error in result["errors"]]
    assert errors == [
        (2, "phone_number"),
        (3, "interest_level"),
        (4, "phone_number"),
        (5, "interest_level"),
        (7, "phone_number"),
    ]
    dnc = (
        await client.get("/api/customers/", params={"do_not_call": "true"}, headers=tenant)
    ).json()
    assert [item["name"] for item in dnc["items"]] == ["Cy"]
    # Updating an existing customer through the import.
    again = await client.post(
        "/api/customers/import/",
        content="phone_number,company\n+14155550101,Ann's Bakery\n",
        headers=headers,
    )
    assert (again.json()["created"], again.json()["updated"]) == (0, 1)
    bad_header = await client.post(
        "/api/customers/import/", content="phone,name\n+14155550101,x\n", headers=headers
    )
    assert bad_header.status_code == 400
    assert bad_header.json()["field"] == "file"


async def test_csv_import_reports_a_nul_character_as_a_row_error(
    client: Client, tenant: Headers
) -> None:
    # PostgreSQL refuses U+0000 in text: one such cell once failed the whole import there.
    csv_text = (
        "phone_number,name,company\n"
        "+14155550101,Ann,\n"
        "+14155550102,Bo\x00b,\n"
        "+14155550103,Cy,Acme\x00\n"
        "+14155550104,Di,\n"
    )
    response = await client.post(
        "/api/customers/import/", content=csv_text, headers={**tenant, "Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["created"], result["updated"]) == (2, 0), result
    assert [(e["row"], e["field"]) for e in result["errors"]] == [(2, "name"), (3, "company")]
    assert all("NUL" in e["reason"] for e in result["errors"])
    listed = (await client.get("/api/customers/", headers=tenant)).json()["items"]
    assert sorted(item["name"] for item in listed) == ["Ann", "Di"]


async def test_do_not_call_flag(client: Client, tenant: Headers, clock: FixedClock) -> None:
    customer = await _customer(client, tenant, "+14155550123")
    callback = (
        await client.post(
            "/api/callbacks/",
            json={
                "customer_id": customer["id"],
                "scheduled_at": (clock.now + dt.timedelta(hours=1)).isoformat(),
            },
            headers=tenant,
        )
    ).json()
    path = f"/api/customers/{customer['id']}/do-not-call/"
    assert (await client.put(path, json={"do_not_call": True}, headers=tenant)).json()[
        "do_not_call"
    ]
    assert not (await client.put(path, json={"do_not_call": False}, headers=tenant)).json()[
        "do_not_call"
    ]
    # Setting it cancelled the callback; new ones are refused while it is set.
    state = (await client.get(f"/api/callbacks/{callback['id']}/", headers=tenant)).json()
    assert state["status"] == "cancelled"
    await client.put(path, json={"do_not_call": True}, headers=tenant)
    refused = await client.post(
        "/api/callbacks/",
        json={
            "customer_id": customer["id"],
            "scheduled_at": (clock.now + dt.timedelta(hours=1)).isoformat(),
        },
        headers=tenant,
    )
    assert refused.status_code == 409


async def test_notes(client: Client, tenant: Headers) -> None:
    customer = await _customer(client, tenant, "+14155550123")
    path = f"/api/customers/{customer['id']}/notes/"
    note = await client.post(path, json={"body": "Prefers email"}, headers=tenant)
    assert note.status_code == 201
    assert note.json()["kind"] == "manual"
    assert (await client.post(path, json={"body": ""}, headers=tenant)).status_code == 400
    bad_call = await client.post(
        path, json={"body": "x", "call_id": str(uuid.uuid4())}, headers=tenant
    )
    assert bad_call.status_code == 404
    listing = (await client.get(path, headers=tenant)).json()
    assert [item["body"] for item in listing["items"]] == ["Prefers email"]
    note_path = f"/api/notes/{note.json()['id']}/"
    assert (await client.get(note_path, headers=tenant)).json()["body"] == "Prefers email"
    assert (await client.delete(note_path, headers=tenant)).status_code == 204
    assert (await client.get(note_path, headers=tenant)).status_code == 404


async def test_calls_list_and_detail_with_transcript(
    client: Client, tenant: Headers, db: Database, clock: FixedClock
) -> None:
    await train_to(client, tenant, 20)
    ids = []
    for index in range(3):
        response = await client.post(
            "/api/agents/ai/start-call/",
            json={"phone_number": f"+1415555010{index}"},
            headers=tenant,
        )
        ids.append(response.json()["call_id"])
    await client.post(
        "/api/agents/ai/call-outcome/", json={"call_id": ids[0], "outcome": "busy"}, headers=tenant
    )
    page = (await client.get("/api/calls/", headers=tenant)).json()
    assert [item["id"] for item in page["items"]] == ids[::-1]
    busy = (await client.get("/api/calls/", params={"outcome": "busy"}, headers=tenant)).json()
    assert [item["id"] for item in busy["items"]] == [ids[0]]
    dialing = (await client.get("/api/calls/", params={"status": "dialing"}, headers=tenant)).json()
    assert len(dialing["items"]) == 2
    # The telephony layer's side: the call is answered, talked through, and hung up.
    detail = (await client.get(f"/api/calls/{ids[1]}/", headers=tenant)).json()
    client_id = await _client_id(db, tenant)
    call_id = uuid.UUID(ids[1])
    answered = CallUpdate(status=CallStatus.IN_PROGRESS)
    await call_state.apply_call_update(db, client_id, call_id, answered, clock.now)
    turns = [
        TranscriptTurn(speaker="agent", text="Hello, this is Alex.", at=clock.now),
        TranscriptTurn(speaker="caller", text="Hi!", at=clock.now + dt.timedelta(seconds=2)),
    ]
    assert await call_state.append_turns(db, client_id, call_id, turns) == 2
    hung_up = CallUpdate(status=CallStatus.COMPLETED)
    await call_state.apply_call_update(
        db, client_id, call_id, hung_up, clock.now + dt.timedelta(seconds=30)
    )
    detail = (await client.get(f"/api/calls/{ids[1]}/", headers=tenant)).json()
    assert [turn["text"] for turn in detail["transcript"]] == ["Hello, this is Alex.", "Hi!"]
    assert detail["status"] == "completed"
    assert detail["duration_s"] == 30.0
    assert (await client.get(f"/api/calls/{uuid.uuid4()}/", headers=tenant)).status_code == 404


async def _client_id(db: Database, headers: Headers) -> uuid.UUID:
    from callagent.store.services import clients

    return await clients.authenticate(db, headers["Authorization"].removeprefix("Bearer "))


async def test_callbacks(client: Client, tenant: Headers, clock: FixedClock) -> None:
    customer = await _customer(client, tenant, "+14155550123", name="Dana")
    soon = await client.post(
        "/api/callbacks/",
        json={
            "customer_id": customer["id"],
            "scheduled_at": (clock.now + dt.timedelta(hours=1)).isoformat(),
            "reason": "quote",
            "priority": 1,
        },
        headers=tenant,
    )
    assert soon.status_code == 201, soon.text
    assert soon.json()["customer_name"] == "Dana"
    later = (
        await client.post(
            "/api/callbacks/",
            json={
                "customer_id": customer["id"],
                "scheduled_at": (clock.now + dt.timedelta(days=1)).isoformat(),
            },
            headers=tenant,
        )
    ).json()
    for body, field in [
        ({"customer_id": customer["id"], "scheduled_at": clock.now.isoformat()}, "scheduled_at"),
        (
            {
                "customer_id": customer["id"],
                "scheduled_at": (clock.now + dt.timedelta(hours=1)).isoformat(),
                "priority": 9,
            },
            "priority",
        ),
    ]:
        response = await client.post("/api/callbacks/", json=body, headers=tenant)
        assert response.status_code == 400
        assert response.json()["field"] == field
    listing = (await client.get("/api/callbacks/", headers=tenant)).json()
    assert [item["id"] for item in listing["items"]] == [soon.json()["id"], later["id"]]
    clock.advance(hours=2)
    overdue = (
        await client.get(
            "/api/callbacks/", params={"status": "scheduled", "overdue": "true"}, headers=tenant
        )
    ).json()
    assert [item["id"] for item in overdue["items"]] == [soon.json()["id"]]
    assert overdue["items"][0]["overdue"] is True
    moved = await client.post(
        f"/api/callbacks/{soon.json()['id']}/reschedule/",
        json={"scheduled_at": (clock.now + dt.timedelta(days=3)).isoformat(), "priority": 2},
        headers=tenant,
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["priority"], moved.json()["overdue"]) == (2, False)
    cancelled = await client.post(f"/api/callbacks/{later['id']}/cancel/", headers=tenant)
    assert cancelled.json()["status"] == "cancelled"
    again = await client.post(f"/api/callbacks/{later['id']}/cancel/", headers=tenant)
    assert again.status_code == 409
    move_cancelled = await client.post(
        f"/api/callbacks/{later['id']}/reschedule/",
        json={"scheduled_at": (clock.now + dt.timedelta(days=3)).isoformat()},
        headers=tenant,
    )
    assert move_cancelled.status_code == 409
    # Pages of callbacks (keyset on scheduled_at, id).
    for hours in range(5):
        await client.post(
            "/api/callbacks/",
            json={
                "customer_id": customer["id"],
                "scheduled_at": (clock.now + dt.timedelta(hours=10 + hours)).isoformat(),
            },
            headers=tenant,
        )
    first = (
        await client.get(
            "/api/callbacks/", params={"limit": 3, "status": "scheduled"}, headers=tenant
        )
    ).json()
    second = (
        await client.get(
            "/api/callbacks/",
            params={"limit": 3, "status": "scheduled", "cursor": first["next_cursor"]},
            headers=tenant,
        )
    ).json()
    times = [item["scheduled_at"] for item in first["items"] + second["items"]]
    assert len(times) == 6
    assert times == sorted(times)


async def test_opportunities(client: Client, tenant: Headers) -> None:
    customer = await _customer(client, tenant, "+14155550123")
    created = await client.post(
        "/api/opportunities/",
        json={
            "customer_id": customer["id"],
            "title": "20 panels",
            "estimated_value": "12500.50",
            "currency": "EUR",
            "probability": 40,
        },
        headers=tenant,
    )
    assert created.status_code == 201, created.text
    opportunity = created.json()
    assert opportunity["stage"] == "prospecting"
    assert str(opportunity["estimated_value"]) in ("12500.50", "12500.5")
    path = f"/api/opportunities/{opportunity['id']}/"
    for body, field in [
        ({"estimated_value": "1.001"}, "estimated_value"),
        ({"estimated_value": -5}, "estimated_value"),
        ({"currency": "euro"}, "currency"),
        ({"probability": 101}, "probability"),
        ({"stage": "won"}, "stage"),
    ]:
        response = await client.patch(path, json=body, headers=tenant)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["field"] == field
    won = await client.patch(path, json={"stage": "closed_won", "probability": 100}, headers=tenant)
    assert won.json()["stage"] == "closed_won"
    reopen = await client.patch(path, json={"stage": "proposal"}, headers=tenant)
    assert reopen.status_code == 409
    listing = (
        await client.get("/api/opportunities/", params={"stage": "closed_won"}, headers=tenant)
    ).json()
    assert [item["id"] for item in listing["items"]] == [opportunity["id"]]
    unknown = await client.post(
        "/api/opportunities/",
        json={"customer_id": str(uuid.uuid4()), "title": "x"},
        headers=tenant,
    )
    assert unknown.status_code == 404


async def test_a_calls_detail_shows_what_the_phone_system_reported(
    client: Client, tenant: Headers, db: Database
) -> None:
    did = number()
    await client.post(
        "/api/agents/ai/setup/", json={"agent_name": "Alex", "phone_numbers": [did]}, headers=tenant
    )
    now = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)
    routed = await telephony.open_inbound_call(
        db, call_id=uuid.uuid4(), did=did, caller="+4917012345678", channel="PJSIP/t-1", now=now
    )
    assert routed is not None
    assert routed.call_id is not None
    await call_state.apply_call_update(
        db,
        routed.client_id,
        routed.call_id,
        CallUpdate(
            status=CallStatus.COMPLETED,
            dtmf="1#",
            hangup_cause=16,
            hangup_cause_text="Normal Clearing",
            recording_ref=f"{routed.call_id}.wav",
        ),
        now + dt.timedelta(seconds=12),
    )
    detail = (await client.get(f"/api/calls/{routed.call_id}/", headers=tenant)).json()
    assert detail["call_type"] == "inbound"
    assert detail["status"] == "completed"
    assert detail["did"] == did
    assert detail["phone_number"] == "+4917012345678"
    assert (detail["dtmf"], detail["hangup_cause"], detail["hangup_cause_text"]) == (
        "1#",
        16,
        "Normal Clearing",
    )
    assert (detail["amd_status"], detail["transferred_to"]) == ("", "")
    assert detail["recording_ref"] == f"{routed.call_id}.wav"
    assert detail["duration_s"] == 12.0
    listed = (await client.get("/api/calls/?call_type=inbound", headers=tenant)).json()
    assert [item["id"] for item in listed["items"]] == [str(routed.call_id)]


async def test_deleting_a_customer_deletes_the_recordings_of_their_calls(
    client: Client, tenant: Headers, db: Database, api_state: ApiState, tmp_path: Path
) -> None:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    api_state.recordings = recordings
    did = number()
    await client.post(
        "/api/agents/ai/setup/", json={"agent_name": "Alex", "phone_numbers": [did]}, headers=tenant
    )
    now = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)

    async def recorded_call(caller: str, reference: str | None = None) -> tuple[str, Path]:
        call_id = uuid.uuid4()
        routed = await telephony.open_inbound_call(
            db, call_id=call_id, did=did, caller=caller, channel="PJSIP/t-1", now=now
        )
        assert routed is not None
        assert routed.customer_id is not None
        reference = reference or f"{call_id}.wav"
        update = CallUpdate(status=CallStatus.COMPLETED, recording_ref=reference)
        await call_state.apply_call_update(db, routed.client_id, call_id, update, now)
        path = recordings / reference
        path.write_bytes(b"RIFF")
        return str(routed.customer_id), path

    customer_id, first = await recorded_call("+4917012345678")
    _, second = await recorded_call("+4917012345678")
    # A reference is only ever a file name in the folder: anything else is not followed.
    outside = tmp_path / "outside.wav"
    _, escaped = await recorded_call("+4917012345678", "../outside.wav")
    assert escaped == recordings / "../outside.wav"
    assert outside.exists()
    _, someone_else = await recorded_call("+4917099999999")
    response = await client.delete(f"/api/customers/{customer_id}/", headers=tenant)
    assert response.status_code == 204
    assert not first.exists()
    assert not second.exists()
    assert outside.exists()
    assert someone_else.exists()
