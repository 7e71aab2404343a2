"""Autonomous calls and the web-form trigger through the real app, on SQLite and PostgreSQL
(docs/api.md "Autonomous calls", "Web-form trigger"): the docs' example bodies replayed as
written, due rows the scheduler will dial, the refusals, and the web form's signature checks."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from callagent.api.app import create_app
from callagent.api.state import ApiState, start_call_rule
from callagent.scheduler.rules import DialPolicy
from callagent.store.db import Database
from callagent.store.models import ScheduledCallback

from helpers.api_fixtures import Headers, train_to
from helpers.store_data import number
from helpers.store_fixtures import FixedClock, RecordingPlacer

Client = AsyncTestClient[Any]
DOCS = Path(__file__).parents[3] / "docs" / "api.md"
EXAMPLE = re.compile(r"Example(?: \(|: )`(GET|POST) ([^`]+)`\)?(?::\n\n```json\n(.*?)\n```)?", re.S)


def doc_examples(prefix: str) -> list[tuple[str, str, str | None]]:
    """(method, path, body) of each example in docs/api.md whose path starts with ``prefix``."""
    found = [m.groups() for m in EXAMPLE.finditer(DOCS.read_text()) if m[2].startswith(prefix)]
    assert found, f"no example of {prefix} in docs/api.md"
    return found


async def customer(client: Client, headers: Headers, phone: str | None = None) -> str:
    response = await client.post(
        "/api/customers/",
        json={"phone_number": phone or number(), "name": "Kim"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def due_rows(db: Database, customer_id: str) -> list[ScheduledCallback]:
    async with db.read() as session:
        return list(
            await session.scalars(
                select(ScheduledCallback)
                .where(ScheduledCallback.customer_id == uuid.UUID(customer_id))
                .order_by(ScheduledCallback.scheduled_at)
            )
        )


def fill(body: str, customer_id: str) -> Any:
    return json.loads(body.replace("CUSTOMER_ID", customer_id))


# Autonomous calls ----------------------------------------------------------------------------


async def test_the_docs_trigger_examples_place_a_call_now_and_schedule_one(
    client: Client, tenant: Headers, placer: RecordingPlacer, db: Database, clock: FixedClock
) -> None:
    await train_to(client, tenant, 20)
    contact = await customer(client, tenant)
    (now_body, later_body) = [b for _, _, b in doc_examples("/calls/api/calls/trigger_autonomous")]
    assert now_body is not None
    assert later_body is not None
    key = {"Idempotency-Key": "crm-42", **tenant}

    placed = await client.post(
        "/calls/api/calls/trigger_autonomous_call/", json=fill(now_body, contact), headers=key
    )
    assert placed.status_code == 201, placed.text
    assert placed.json()["status"] == "dialing"
    (request,) = placer.requests
    assert str(request.customer_id) == contact
    assert request.purpose == "follow_up"
    assert request.context == {"note": "Asked about the 10 kW inverter last week"}
    again = await client.post(
        "/calls/api/calls/trigger_autonomous_call/", json=fill(now_body, contact), headers=key
    )
    assert again.json()["call_id"] == placed.json()["call_id"]
    assert len(placer.requests) == 1  # the same key dials nothing again

    later_key = {"Idempotency-Key": "crm-43", **tenant}
    scheduled = await client.post(
        "/calls/api/calls/trigger_autonomous_call/",
        json=fill(later_body, contact),
        headers=later_key,
    )
    assert scheduled.status_code == 201, scheduled.text
    answer = scheduled.json()
    assert answer["status"] == "scheduled"
    assert answer["scheduled_at"].startswith("2026-03-05T10:00:00")
    repeated = await client.post(
        "/calls/api/calls/trigger_autonomous_call/",
        json=fill(later_body, contact),
        headers=later_key,
    )
    assert repeated.json()["scheduled_callback_id"] == answer["scheduled_callback_id"]
    (row,) = await due_rows(db, contact)
    assert (row.kind, row.reason, row.context) == (
        "scheduled",
        "renewal_reminder",
        {"contract_ends": "2026-04-01"},
    )
    assert len(placer.requests) == 1  # a call for later is the scheduler's to dial
    callback = await client.get(f"/api/callbacks/{row.id}/", headers=tenant)
    assert callback.json()["status"] == "scheduled"


async def test_a_trigger_is_refused_naming_why(
    client: Client, tenant: Headers, new_tenant: Any, placer: RecordingPlacer
) -> None:
    await train_to(client, tenant, 20)
    contact = await customer(client, tenant)
    route = "/calls/api/calls/trigger_autonomous_call/"
    typo = await client.post(
        route, json={"contact_id": contact, "call_purpose": "folow_up"}, headers=tenant
    )
    assert typo.status_code == 400
    assert "call_purpose" in typo.json()["detail"]
    past = await client.post(
        route,
        json={
            "contact_id": contact,
            "call_purpose": "follow_up",
            "scheduled_time": "2026-03-01T10:00:00+00:00",
        },
        headers=tenant,
    )
    assert past.status_code == 400
    assert "scheduled_time" in past.json()["detail"]
    unknown = await client.post(
        route, json={"contact_id": str(uuid.uuid4()), "call_purpose": "follow_up"}, headers=tenant
    )
    assert unknown.status_code == 404
    await client.put(
        f"/api/customers/{contact}/do-not-call/", json={"do_not_call": True}, headers=tenant
    )
    for extra in ({}, {"scheduled_time": "2026-03-05T10:00:00+00:00"}):
        refused = await client.post(
            route,
            json={"contact_id": contact, "call_purpose": "follow_up", **extra},
            headers=tenant,
        )
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"] == "do_not_call"
    assert placer.requests == []
    # An agent not trained yet calls nobody, now or later.
    other = await new_tenant("untrained")
    await client.post("/api/agents/ai/setup/", json={"agent_name": "New"}, headers=other)
    theirs = await customer(client, other)
    later = await client.post(
        route,
        json={
            "contact_id": theirs,
            "call_purpose": "follow_up",
            "scheduled_time": "2026-03-05T10:00:00+00:00",
        },
        headers=other,
    )
    assert later.status_code == 409
    assert later.json()["error"] == "agent_not_ready"


async def test_a_bulk_trigger_schedules_each_good_item_and_names_each_bad_one(
    client: Client, tenant: Headers, db: Database, clock: FixedClock
) -> None:
    await train_to(client, tenant, 20)
    contact = await customer(client, tenant)
    ((_, _, body),) = doc_examples("/calls/api/calls/bulk_autonomous_calls/")
    assert body is not None
    sent = fill(body, contact)
    first = await client.post("/calls/api/calls/bulk_autonomous_calls/", json=sent, headers=tenant)
    assert first.status_code == 200, first.text
    assert (first.json()["scheduled"], first.json()["refused"]) == (2, 0)
    rows = await due_rows(db, contact)
    assert [r.scheduled_at for r in rows] == [clock.now, clock.now + dt.timedelta(minutes=90)]
    assert [r.reason for r in rows] == ["sales_outreach", "appointment_booking"]

    stranger = await customer(client, tenant)
    await client.put(
        f"/api/customers/{stranger}/do-not-call/", json={"do_not_call": True}, headers=tenant
    )
    mixed = {
        "calls": [
            {"contact_id": contact, "call_purpose": "follow_up", "delay_minutes": 5},
            {"contact_id": str(uuid.uuid4()), "call_purpose": "follow_up", "delay_minutes": 5},
            {"contact_id": contact, "call_purpose": "renewl_reminder", "delay_minutes": 5},
            {"contact_id": stranger, "call_purpose": "follow_up", "delay_minutes": 5},
        ]
    }
    key = {"Idempotency-Key": "batch-7", **tenant}
    answer = (
        await client.post("/calls/api/calls/bulk_autonomous_calls/", json=mixed, headers=key)
    ).json()
    assert (answer["scheduled"], answer["refused"]) == (1, 3)
    results = answer["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert results[0]["status"] == "scheduled"
    assert (results[1]["field"], results[1]["status"]) == ("contact_id", "refused")
    assert "not found" in results[1]["reason"]
    assert results[2]["field"] == "call_purpose"
    assert "do-not-call" in results[3]["reason"]
    assert len(await due_rows(db, contact)) == 3
    assert await due_rows(db, stranger) == []
    # The same batch again with the same key: nothing scheduled twice.
    again = (
        await client.post("/calls/api/calls/bulk_autonomous_calls/", json=mixed, headers=key)
    ).json()
    assert again["results"][0]["scheduled_callback_id"] == results[0]["scheduled_callback_id"]
    assert len(await due_rows(db, contact)) == 3
    # A body of the wrong shape is refused whole, naming the item, and writes nothing.
    bad = await client.post(
        "/calls/api/calls/bulk_autonomous_calls/",
        json={"calls": [{"contact_id": contact, "call_purpose": "x", "delay_minutes": -1}]},
        headers=tenant,
    )
    assert bad.status_code == 400
    assert "calls[0].delay_minutes" in bad.text
    assert len(await due_rows(db, contact)) == 3


async def test_the_status_route_shows_the_contacts_calls_and_what_is_due(
    client: Client, tenant: Headers, clock: FixedClock
) -> None:
    await train_to(client, tenant, 20)
    contact = await customer(client, tenant)
    call = (
        await client.post(
            "/api/agents/ai/start-call/",
            json={"customer_id": contact, "purpose": "follow_up"},
            headers=tenant,
        )
    ).json()
    clock.advance(minutes=3)
    outcome = await client.post(
        "/api/agents/ai/call-outcome/",
        json={"call_id": call["call_id"], "outcome": "interested", "duration_s": 95},
        headers=tenant,
    )
    assert outcome.status_code == 200, outcome.text
    await client.post(
        "/calls/api/calls/trigger_autonomous_call/",
        json={
            "contact_id": contact,
            "call_purpose": "appointment_booking",
            "scheduled_time": "2026-03-05T09:00:00+00:00",
        },
        headers=tenant,
    )
    ((_, path, _),) = doc_examples("/calls/api/calls/autonomous_call_status/")
    status = await client.get(path.replace("CUSTOMER_ID", contact), headers=tenant)
    assert status.status_code == 200, status.text
    body = status.json()
    assert body["contact"]["id"] == contact
    (recent,) = body["recent_calls"]
    assert (recent["status"], recent["outcome"], recent["duration"]) == (
        "completed",
        "interested",
        95.0,
    )
    assert recent["actions_taken"] == []
    (upcoming,) = body["upcoming_calls"]
    assert upcoming["call_purpose"] == "appointment_booking"
    missing = await client.get(
        f"/calls/api/calls/autonomous_call_status/?contact_id={uuid.uuid4()}", headers=tenant
    )
    assert missing.status_code == 404
    no_id = await client.get("/calls/api/calls/autonomous_call_status/", headers=tenant)
    assert no_id.status_code == 400


async def test_start_call_takes_a_customer_id_text_context_and_a_scheduled_time(
    client: Client, tenant: Headers, placer: RecordingPlacer, db: Database
) -> None:
    await train_to(client, tenant, 20)
    phone = number()
    contact = await customer(client, tenant, phone)
    placed = await client.post(
        "/api/agents/ai/start-call/",
        json={"customer_id": contact, "context": "met at the fair"},
        headers=tenant,
    )
    assert placed.status_code == 201, placed.text
    assert placed.json()["phone_number"] == phone
    assert placer.requests[0].context == {"note": "met at the fair"}
    mismatch = await client.post(
        "/api/agents/ai/start-call/",
        json={"customer_id": contact, "phone_number": number()},
        headers=tenant,
    )
    assert mismatch.status_code == 400
    assert "customer_id" in mismatch.json()["detail"]
    neither = await client.post("/api/agents/ai/start-call/", json={}, headers=tenant)
    assert neither.status_code == 400
    assert neither.json()["field"] == "phone_number"
    later = await client.post(
        "/api/agents/ai/start-call/",
        json={"phone_number": phone, "scheduled_time": "2026-03-05T11:00:00+01:00"},
        headers=tenant,
    )
    assert later.status_code == 201, later.text
    assert later.json()["status"] == "scheduled"
    (row,) = await due_rows(db, contact)
    assert row.scheduled_at == dt.datetime(2026, 3, 5, 10, 0, tzinfo=dt.UTC)
    assert row.reason == "sales_outreach"
    assert len(placer.requests) == 1


async def test_training_accepts_the_synonyms_of_an_area(client: Client, tenant: Headers) -> None:
    await client.post("/api/agents/ai/setup/", json={"agent_name": "Alex"}, headers=tenant)
    trained = await client.post(
        "/api/agents/ai/training/",
        json={"training_type": "objection_handling", "objection_responses": {"price": "worth it"}},
        headers=tenant,
    )
    assert trained.status_code == 201, trained.text
    assert trained.json()["training"]["training_type"] == "objections"
    assert trained.json()["training_level"] == 4  # counted in the objections area
    for written, stored in (("Product Knowledge", "product"), ("sales-script", "script")):
        response = await client.post(
            "/api/agents/ai/training/",
            json={"training_type": written, "training_content": "a few words"},
            headers=tenant,
        )
        assert response.json()["training"]["training_type"] == stored
    unknown = await client.post(
        "/api/agents/ai/training/", json={"training_type": "haggling"}, headers=tenant
    )
    assert unknown.status_code == 400
    assert unknown.json()["field"] == "training_type"
    assert "objection_handling" in unknown.json()["detail"]


async def test_an_agents_dial_policy_is_set_checked_and_applied(
    client: Client, tenant: Headers
) -> None:
    setup = await client.post(
        "/api/agents/ai/setup/",
        json={"agent_name": "Alex", "dial_policy": {"allowed_countries": ["de", "AT"]}},
        headers=tenant,
    )
    assert setup.status_code == 201, setup.text
    assert setup.json()["dial_policy"] == {"allowed_countries": ["AT", "DE"]}
    await train_to_existing(client, tenant)
    refused = await client.post(
        "/api/agents/ai/start-call/", json={"phone_number": "+14155550123"}, headers=tenant
    )
    assert refused.status_code == 409
    assert refused.json()["error"] == "country_not_allowed"
    bad = await client.patch(
        "/api/agents/ai/", json={"dial_policy": {"allowed_countries": ["DE", "XX"]}}, headers=tenant
    )
    assert bad.status_code == 400
    assert "dial_policy.allowed_countries[1]" in bad.json()["detail"]
    zero = await client.patch(
        "/api/agents/ai/", json={"dial_policy": {"max_concurrent_calls": 0}}, headers=tenant
    )
    assert zero.status_code == 400
    changed = await client.patch(
        "/api/agents/ai/", json={"dial_policy": {"max_concurrent_calls": 2}}, headers=tenant
    )
    assert changed.json()["dial_policy"] == {"max_concurrent_calls": 2}
    allowed = await client.post(
        "/api/agents/ai/start-call/", json={"phone_number": "+14155550123"}, headers=tenant
    )
    assert allowed.status_code == 201, allowed.text


async def train_to_existing(client: Client, headers: Headers) -> None:
    response = await client.post(
        "/api/agents/ai/training/",
        json={"training_type": "script", "training_content": " ".join(["word"] * 200)},
        headers=headers,
    )
    assert response.status_code == 201, response.text


@pytest.fixture
async def windowed(
    database_url: str, placer: RecordingPlacer, clock: FixedClock
) -> AsyncIterator[Client]:
    """The app as ``callagent serve`` builds it: start-call with the installation's rules."""
    state = ApiState(
        db=Database(database_url),
        placer=placer,
        clock=clock,
        dial_rule=start_call_rule(DialPolicy()),
    )
    async with AsyncTestClient(app=create_app(lambda: {}, state)) as test_client:
        yield test_client


async def test_a_serving_start_call_keeps_to_the_customers_calling_window(
    windowed: Client, tenant: Headers, clock: FixedClock
) -> None:
    await train_to(windowed, tenant, 20)
    # Wednesday 10:00 UTC: in the agent's hours (UTC 09-17), 02:00 in San Francisco.
    night = await windowed.post(
        "/api/agents/ai/start-call/", json={"phone_number": "+14155550123"}, headers=tenant
    )
    assert night.status_code == 409
    assert night.json()["error"] == "outside_calling_window"
    assert "America/Los_Angeles" in night.json()["detail"]
    overridden = await windowed.post(
        "/api/agents/ai/start-call/",
        json={"phone_number": "+14155550123", "ignore_working_hours": True},
        headers=tenant,
    )
    assert overridden.status_code == 201, overridden.text
    berlin = await windowed.post(
        "/api/agents/ai/start-call/", json={"phone_number": number()}, headers=tenant
    )
    assert berlin.status_code == 201, berlin.text  # 11:00 in Berlin


# Web-form trigger ----------------------------------------------------------------------------


def signed(secret: str, body: bytes, at: dt.datetime) -> dict[str, str]:
    timestamp = str(int(at.timestamp()))
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return {
        "Content-Type": "application/json",
        "X-Callagent-Timestamp": timestamp,
        "X-Callagent-Signature": f"v1={digest.hexdigest()}",
    }


async def web_form(client: Client, headers: Headers) -> dict[str, Any]:
    made = await client.post(
        "/api/agents/ai/web-form-trigger/", json={"call_purpose": "sales_outreach"}, headers=headers
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


async def test_a_signed_web_form_creates_the_contact_and_a_call_due_now(
    client: Client, tenant: Headers, db: Database, clock: FixedClock
) -> None:
    await train_to(client, tenant, 20)
    trigger = await web_form(client, tenant)
    assert len(trigger["token"]) >= 32
    assert trigger["secret"].startswith("wf_")
    shown = (await client.get("/api/agents/ai/web-form-trigger/", headers=tenant)).json()
    assert "secret" not in shown
    assert shown["secret_hint"].endswith(trigger["secret"][-4:])
    phone = number()
    body = json.dumps(
        {
            "phone_number": phone,
            "name": "Kim",
            "email": "kim@example.org",
            "fields": {"roof": "south"},
        }
    ).encode()
    response = await client.post(
        trigger["path"], content=body, headers=signed(trigger["secret"], body, clock.now)
    )
    assert response.status_code == 202, response.text
    assert set(response.json()) == {"status", "scheduled_at"}  # no ids to a public form
    found = (
        await client.get("/api/customers/", params={"phone_number": phone}, headers=tenant)
    ).json()
    (contact,) = found["items"]
    assert (contact["name"], contact["email"]) == ("Kim", "kim@example.org")
    assert contact["preferences"]["web_form"] == {"roof": "south"}
    (row,) = await due_rows(db, contact["id"])
    assert (row.scheduled_at, row.reason, row.priority) == (clock.now, "sales_outreach", 2)
    assert row.context == {"source": "web_form", "fields": {"roof": "south"}}
    # The same person again, a minute later (a new signature): updated, not duplicated.
    clock.advance(minutes=1)
    body = json.dumps({"phone_number": phone, "name": "Kim Lee"}).encode()
    again = await client.post(
        trigger["path"], content=body, headers=signed(trigger["secret"], body, clock.now)
    )
    assert again.status_code == 202, again.text
    assert (await client.get(f"/api/customers/{contact['id']}/", headers=tenant)).json()[
        "name"
    ] == "Kim Lee"
    assert len(await due_rows(db, contact["id"])) == 2


async def test_web_form_requests_not_proven_by_the_secret_are_401_naming_why(
    client: Client, tenant: Headers, clock: FixedClock, db: Database
) -> None:
    await train_to(client, tenant, 20)
    trigger = await web_form(client, tenant)
    path, secret = trigger["path"], trigger["secret"]
    body = json.dumps({"phone_number": number()}).encode()

    async def post(headers: dict[str, str], to: str = path) -> Any:
        return await client.post(to, content=body, headers=headers)

    good = signed(secret, body, clock.now)
    unsigned = await post({"Content-Type": "application/json"})
    stale = await post(signed(secret, body, clock.now - dt.timedelta(minutes=6)))
    future = await post(signed(secret, body, clock.now + dt.timedelta(minutes=6)))
    wrong = await post(signed("wf_not-the-secret", body, clock.now))
    for response, code in (
        (unsigned, "unsigned"),
        (stale, "stale"),
        (future, "stale"),
        (wrong, "bad_signature"),
    ):
        assert response.status_code == 401, response.text
        assert response.json()["error"] == code
    accepted = await post(good)
    assert accepted.status_code == 202, accepted.text
    clock.advance(minutes=4)  # still inside the window
    replayed = await post(good)
    assert replayed.status_code == 401
    assert replayed.json()["error"] == "replayed"
    # Rotating makes the old token and secret useless at once.
    rotated = await web_form(client, tenant)
    assert rotated["token"] != trigger["token"]
    old = await post(signed(secret, body, clock.now))
    assert (old.status_code, old.json()["error"]) == (401, "unknown_token")
    # A signed request with a bad number is a 400 naming it.
    bad_body = json.dumps({"phone_number": "12345"}).encode()
    bad = await client.post(
        rotated["path"], content=bad_body, headers=signed(rotated["secret"], bad_body, clock.now)
    )
    assert bad.status_code == 400
    assert "phone_number" in bad.json()["detail"]
