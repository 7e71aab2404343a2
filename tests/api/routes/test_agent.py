"""The integration contract's agent routes: setup, training, start-call, call-outcome.

docs/api.md, "Routes", "start-call" and "call-outcome", says what each must do.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from litestar.testing import AsyncTestClient

from callagent.api.app import create_app
from callagent.api.state import ApiState
from callagent.store.db import Database
from callagent.telephony.outbound import CallPlacer, NoTelephonyPlacer

from helpers.api_fixtures import Headers, train_to
from helpers.store_data import number
from helpers.store_fixtures import FixedClock, RecordingPlacer

Client = AsyncTestClient[Any]


async def test_setup_creates_a_blank_agent_once(client: Client, tenant: Headers) -> None:
    body = {
        "agent_name": "Alex",
        "personality_type": "friendly",
        "voice_model": "en_US-joe-medium",
        "working_hours_start": "08:30",
        "working_hours_end": "18:00",
        "timezone": "Europe/Berlin",
        "business_info": {"company": "Brightline"},
        "sales_goals": {"monthly": 10},
    }
    response = await client.post("/api/agents/ai/setup/", json=body, headers=tenant)
    assert response.status_code == 201, response.text
    agent = response.json()
    assert agent["status"] == "training"
    assert agent["training_level"] == 0
    assert agent["working_hours_start"] == "08:30"
    assert agent["business_info"] == {"company": "Brightline"}
    again = await client.post("/api/agents/ai/setup/", json=body, headers=tenant)
    assert again.status_code == 409
    assert (await client.get("/api/agents/ai/", headers=tenant)).json()["id"] == agent["id"]


async def test_setup_rejects_bad_input_naming_the_field(client: Client, tenant: Headers) -> None:
    cases = [
        ({"agent_name": "A", "personality_type": "grumpy"}, "personality_type"),
        ({"agent_name": "A", "timezone": "Mars/Olympus"}, "timezone"),
        ({"agent_name": "A", "working_hours_start": "25:00"}, "working_hours_start"),
        ({"agent_name": "A", "working_hours_end": "09:00"}, "working_hours_end"),
        ({"agent_name": ""}, "agent_name"),
        ({}, "agent_name"),
        ({"agent_name": "A", "colour": "blue"}, "colour"),
    ]
    for body, field in cases:
        response = await client.post("/api/agents/ai/setup/", json=body, headers=tenant)
        assert response.status_code == 400, (body, response.text)
        error = response.json()
        assert error["field"] == field, (body, error)
        assert error["reason"]
    # Nothing was written by the refused requests.
    assert (await client.get("/api/agents/ai/", headers=tenant)).status_code == 404


async def test_update_agent_settings(client: Client, tenant: Headers) -> None:
    await client.post("/api/agents/ai/setup/", json={"agent_name": "Alex"}, headers=tenant)
    response = await client.patch(
        "/api/agents/ai/",
        json={"agent_name": "Sam", "working_hours_end": "20:00", "timezone": "Asia/Tokyo"},
        headers=tenant,
    )
    assert response.status_code == 200, response.text
    agent = response.json()
    assert (agent["agent_name"], agent["working_hours_end"], agent["timezone"]) == (
        "Sam",
        "20:00",
        "Asia/Tokyo",
    )
    # Learnt state is not settable.
    bad = await client.patch("/api/agents/ai/", json={"training_level": 100}, headers=tenant)
    assert bad.status_code == 400


async def test_training_rubric_raises_level_and_status(client: Client, tenant: Headers) -> None:
    await client.post("/api/agents/ai/setup/", json={"agent_name": "Alex"}, headers=tenant)
    steps = [
        # 80 words of script: 10 points.
        ({"training_type": "script", "training_content": " ".join(["w"] * 80)}, 10, "training"),
        # The same again adds 80 more words: 20 points, learning.
        ({"training_type": "script", "training_content": " ".join(["w"] * 80)}, 20, "learning"),
        # Product: features, pricing, benefits (15) + 100 words of content (5).
        (
            {
                "training_type": "product",
                "training_content": " ".join(["w"] * 100),
                "product_details": {
                    "features": ["panels"],
                    "pricing": "from $9,000",
                    "benefits": ["lower bills"],
                },
            },
            40,
            "learning",
        ),
        # Five objections (20) and five techniques (15).
        (
            {
                "training_type": "objections",
                "objection_responses": {f"objection {i}": "answer" for i in range(5)},
                "sales_techniques": ["mirroring", "labelling", "SPIN", "FAB", "assumptive close"],
            },
            75,
            "learning",
        ),
        # Company: 50 words → 5 points: 80, active.
        ({"training_type": "company", "training_content": " ".join(["w"] * 50)}, 80, "active"),
        # Repeating known objections (different case) adds nothing.
        (
            {"training_type": "objections", "objection_responses": {"OBJECTION 1": "again"}},
            80,
            "active",
        ),
    ]
    for body, level, status in steps:
        response = await client.post("/api/agents/ai/training/", json=body, headers=tenant)
        assert response.status_code == 201, response.text
        result = response.json()
        assert (result["training_level"], result["status"]) == (level, status), body
        assert result["training"]["level_after"] == level
    listing = (await client.get("/api/agents/ai/training/", headers=tenant)).json()
    assert len(listing["items"]) == len(steps)
    assert listing["training_level"] == 80
    assert listing["coverage"]["objections"] == 20
    assert listing["items"][0]["completion_percentage"] == 40  # 10 of the script area's 25


async def test_training_rejects_unknown_type(client: Client, tenant: Headers) -> None:
    await client.post("/api/agents/ai/setup/", json={"agent_name": "Alex"}, headers=tenant)
    response = await client.post(
        "/api/agents/ai/training/", json={"training_type": "astrology"}, headers=tenant
    )
    assert response.status_code == 400
    assert response.json()["field"] == "training_type"


async def test_training_needs_an_agent(client: Client, tenant: Headers) -> None:
    response = await client.post(
        "/api/agents/ai/training/", json={"training_type": "script"}, headers=tenant
    )
    assert response.status_code == 404


async def test_start_call_refusals(client: Client, tenant: Headers, clock: FixedClock) -> None:
    phone = {"phone_number": "+14155550123"}
    assert (
        await client.post("/api/agents/ai/start-call/", json=phone, headers=tenant)
    ).status_code == 404
    await client.post("/api/agents/ai/setup/", json={"agent_name": "Alex"}, headers=tenant)
    response = await client.post("/api/agents/ai/start-call/", json=phone, headers=tenant)
    assert response.status_code == 409
    assert response.json()["error"] == "agent_not_ready"
    await client.post(
        "/api/agents/ai/training/",
        json={"training_type": "script", "training_content": " ".join(["w"] * 200)},
        headers=tenant,
    )
    # Outside working hours (09:00–17:00 UTC by default), unless asked.
    clock.now = dt.datetime(2026, 3, 4, 20, 0, tzinfo=dt.UTC)
    response = await client.post("/api/agents/ai/start-call/", json=phone, headers=tenant)
    assert response.status_code == 409
    assert response.json()["error"] == "outside_working_hours"
    assert "20:00" in response.json()["detail"]
    response = await client.post(
        "/api/agents/ai/start-call/", json={**phone, "ignore_working_hours": True}, headers=tenant
    )
    assert response.status_code == 201, response.text
    # A do-not-call customer is refused.
    customer_id = response.json()["customer_id"]
    await client.put(
        f"/api/customers/{customer_id}/do-not-call/", json={"do_not_call": True}, headers=tenant
    )
    clock.now = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)
    response = await client.post("/api/agents/ai/start-call/", json=phone, headers=tenant)
    assert response.status_code == 409
    assert response.json()["error"] == "do_not_call"
    # Invalid numbers and inbound calls are bad input.
    for body, field in [
        ({"phone_number": "12345"}, "phone_number"),
        ({"phone_number": "+1 415 555 01234567"}, "phone_number"),
        ({"phone_number": "+14155550199", "call_type": "inbound"}, "call_type"),
        # A browser-phone test call is made from the dashboard, never dialled.
        ({"phone_number": "+14155550199", "call_type": "test"}, "call_type"),
        ({"phone_number": "+14155550199", "call_type": "carrier-pigeon"}, "call_type"),
    ]:
        response = await client.post("/api/agents/ai/start-call/", json=body, headers=tenant)
        assert response.status_code == 400, body
        assert response.json()["field"] == field


async def test_start_call_hands_ids_to_the_placer(
    client: Client, tenant: Headers, placer: RecordingPlacer
) -> None:
    await train_to(client, tenant, 20)
    response = await client.post(
        "/api/agents/ai/start-call/",
        json={
            "phone_number": "+44 20 7946 0958",
            "call_type": "followup",
            "context": {"campaign": "spring"},
            "purpose": "follow up on the quote",
        },
        headers=tenant,
    )
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["status"] == "dialing"
    assert result["customer_created"] is True
    assert result["phone_number"] == "+442079460958"
    (request,) = placer.requests
    assert str(request.call_session_id) == result["call_id"]
    assert request.phone_number == "+442079460958"
    assert request.call_type == "followup"
    assert request.context == {"campaign": "spring"}
    # Once that call is over, the same number again finds the same customer (while it is live,
    # a second call to the customer is refused: one live call per customer).
    ended = await client.post(
        "/api/agents/ai/call-outcome/",
        json={"call_id": result["call_id"], "outcome": "no_answer"},
        headers=tenant,
    )
    assert ended.status_code == 200, ended.text
    again = await client.post(
        "/api/agents/ai/start-call/", json={"phone_number": "+442079460958"}, headers=tenant
    )
    assert again.json()["customer_id"] == result["customer_id"]
    assert again.json()["customer_created"] is False
    customer = (await client.get(f"/api/customers/{result['customer_id']}/", headers=tenant)).json()
    assert customer["total_calls"] == 2


async def test_start_call_without_telephony_fails_honestly(
    database_url: str, db: Database, new_tenant: Any
) -> None:
    # The embedded default: no CallPlacer configured, so the NoTelephonyPlacer is used.
    assert isinstance(NoTelephonyPlacer(), CallPlacer)
    app = create_app(lambda: {}, ApiState(db=Database(database_url), clock=FixedClock()))
    headers = await new_tenant("no phone line")
    async with AsyncTestClient(app=app) as client:
        await train_to(client, headers, 20)
        response = await client.post(
            "/api/agents/ai/start-call/", json={"phone_number": "+14155550123"}, headers=headers
        )
        assert response.status_code == 201, response.text
        result = response.json()
        assert result["status"] == "failed"
        assert result["failure_reason"] == "no telephony configured"
        call = (await client.get(f"/api/calls/{result['call_id']}/", headers=headers)).json()
        assert (call["status"], call["outcome"]) == ("failed", "failed")
        outcome = await client.post(
            "/api/agents/ai/call-outcome/",
            json={"call_id": result["call_id"], "outcome": "answered"},
            headers=headers,
        )
        assert outcome.status_code == 409


async def test_a_placer_that_raises_fails_the_call(
    client: Client, tenant: Headers, placer: RecordingPlacer
) -> None:
    async def explode(request: Any) -> Any:
        raise ConnectionError("AMI down")

    placer.place_call = explode  # type: ignore[method-assign]
    await train_to(client, tenant, 20)
    response = await client.post(
        "/api/agents/ai/start-call/", json={"phone_number": "+14155550123"}, headers=tenant
    )
    assert response.json()["status"] == "failed"
    assert response.json()["failure_reason"] == "telephony error: ConnectionError"


async def test_parallel_first_calls_to_a_new_number_dial_once(
    client: Client,
    tenant: Headers,
    database_url: str,
    placer: RecordingPlacer,
    clock: FixedClock,
) -> None:
    await train_to(client, tenant, 20)
    phone = number()
    # AsyncTestClient serves one request at a time; httpx's ASGI transport runs them all in this
    # event loop, interleaved at every database await as under a real server, so each request
    # tries to create the same new customer (on PostgreSQL: in its own transaction at once).
    state = ApiState(db=Database(database_url), placer=placer, clock=clock)
    transport = httpx.ASGITransport(app=create_app(lambda: {}, state))  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as parallel:
            responses = await asyncio.gather(
                *(
                    parallel.post(
                        "/api/agents/ai/start-call/", json={"phone_number": phone}, headers=tenant
                    )
                    for _ in range(8)
                )
            )
    finally:
        await state.db.dispose()
    # One live call per customer (docs/scheduler.md): one request dials, the others are refused.
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 7, [r.text for r in responses]
    refused = [r.json() for r in responses if r.status_code == 409]
    assert {r["error"] for r in refused} == {"call_in_progress"}
    (placed,) = [r.json() for r in responses if r.status_code == 201]
    assert placed["status"] == "dialing"
    assert placed["customer_created"] is True
    assert len(placer.requests) == 1
    listed = await client.get("/api/customers/", params={"phone_number": phone}, headers=tenant)
    (customer,) = listed.json()["items"]
    assert customer["total_calls"] == 1


async def _call(client: Client, headers: Headers, phone: str = "+14155550123", **extra: Any) -> str:
    response = await client.post(
        "/api/agents/ai/start-call/", json={"phone_number": phone, **extra}, headers=headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["call_id"])


async def test_call_outcome_updates_everything(
    client: Client, tenant: Headers, clock: FixedClock
) -> None:
    await train_to(client, tenant, 80)
    call_id = await _call(client, tenant)
    callback_at = (clock.now + dt.timedelta(days=1)).isoformat()
    response = await client.post(
        "/api/agents/ai/call-outcome/",
        json={
            "call_id": call_id,
            "outcome": "interested",
            "customer_response": "Sounds good but objection 1 worries me",
            "conversation_notes": "Wants a quote for 20 panels",
            "callback_requested": True,
            "callback_datetime": callback_at,
            "callback_reason": "send the quote first",
            "customer_satisfaction": 4,
            "objections": ["too expensive"],
            "duration_s": 95.5,
        },
        headers=tenant,
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["call"]["status"] == "completed"
    assert result["call"]["outcome"] == "interested"
    assert result["customer"]["interest_level"] == "warm"
    assert result["customer"]["conversation_notes"] == "Wants a quote for 20 panels"
    assert result["customer"]["objections"] == ["objection 1", "too expensive"]
    assert result["customer"]["answered_calls"] == 1
    assert result["callback"]["reason"] == "send the quote first"
    assert result["callback"]["status"] == "scheduled"
    assert result["calls_handled"] == 1
    agent = (await client.get("/api/agents/ai/", headers=tenant)).json()
    metrics = agent["performance_metrics"]
    assert metrics["outcomes"] == {"interested": 1}
    assert metrics["objections"]["objection 1"] == {"raised": 1, "converted": 0, "trained": True}
    assert metrics["objections"]["too expensive"]["trained"] is False
    assert metrics["satisfaction"] == {"sum": 4, "count": 1}
    notes = (
        await client.get(f"/api/customers/{result['customer']['id']}/notes/", headers=tenant)
    ).json()
    assert [note["kind"] for note in notes["items"]] == ["call_summary"]
    # An outcome is recorded once.
    again = await client.post(
        "/api/agents/ai/call-outcome/",
        json={"call_id": call_id, "outcome": "converted"},
        headers=tenant,
    )
    assert again.status_code == 409
    # A second call converts the customer.
    second = await _call(client, tenant)
    result = (
        await client.post(
            "/api/agents/ai/call-outcome/",
            json={"call_id": second, "outcome": "converted"},
            headers=tenant,
        )
    ).json()
    assert result["customer"]["interest_level"] == "converted"
    assert result["customer"]["converted"] is True
    assert result["successful_conversions"] == 1


async def test_call_outcome_bad_input_writes_nothing(
    client: Client, tenant: Headers, clock: FixedClock
) -> None:
    await train_to(client, tenant, 20)
    call_id = await _call(client, tenant)
    cases = [
        ({"outcome": "interested", "callback_requested": True}, "callback_datetime"),
        (
            {
                "outcome": "interested",
                "callback_requested": True,
                "callback_datetime": (clock.now - dt.timedelta(hours=1)).isoformat(),
            },
            "callback_datetime",
        ),
        (
            {
                "outcome": "interested",
                "callback_requested": True,
                "callback_datetime": "2026-03-05T10:00:00",  # no time zone
            },
            "callback_datetime",
        ),
        ({"outcome": "interested", "customer_satisfaction": 6}, "customer_satisfaction"),
        ({"outcome": "delighted"}, "outcome"),
    ]
    for body, field in cases:
        response = await client.post(
            "/api/agents/ai/call-outcome/", json={"call_id": call_id, **body}, headers=tenant
        )
        assert response.status_code == 400, (body, response.text)
        assert response.json()["field"] == field, response.json()
    call = (await client.get(f"/api/calls/{call_id}/", headers=tenant)).json()
    assert call["outcome"] is None
    assert call["status"] == "dialing"


async def test_do_not_call_outcome_cancels_callbacks(
    client: Client, tenant: Headers, clock: FixedClock
) -> None:
    await train_to(client, tenant, 20)
    call_id = await _call(client, tenant)
    customer_id = (await client.get(f"/api/calls/{call_id}/", headers=tenant)).json()["customer_id"]
    callback = await client.post(
        "/api/callbacks/",
        json={
            "customer_id": customer_id,
            "scheduled_at": (clock.now + dt.timedelta(days=2)).isoformat(),
        },
        headers=tenant,
    )
    assert callback.status_code == 201
    result = (
        await client.post(
            "/api/agents/ai/call-outcome/",
            json={"call_id": call_id, "outcome": "do_not_call"},
            headers=tenant,
        )
    ).json()
    assert result["customer"]["do_not_call"] is True
    status = (await client.get(f"/api/callbacks/{callback.json()['id']}/", headers=tenant)).json()
    assert status["status"] == "cancelled"


async def test_scheduled_callback_call_and_retry(
    client: Client, tenant: Headers, clock: FixedClock
) -> None:
    await train_to(client, tenant, 20)
    customer = (
        await client.post("/api/customers/", json={"phone_number": "+14155550123"}, headers=tenant)
    ).json()
    callback = (
        await client.post(
            "/api/callbacks/",
            json={
                "customer_id": customer["id"],
                "scheduled_at": (clock.now + dt.timedelta(minutes=5)).isoformat(),
                "max_attempts": 2,
            },
            headers=tenant,
        )
    ).json()
    clock.advance(minutes=10)
    for attempt, expected in [(1, "scheduled"), (2, "failed")]:
        call_id = await _call(
            client, tenant, call_type="scheduled", scheduled_callback_id=callback["id"]
        )
        state = (await client.get(f"/api/callbacks/{callback['id']}/", headers=tenant)).json()
        assert state["status"] == "in_progress"
        assert state["attempts"] == attempt
        await client.post(
            "/api/agents/ai/call-outcome/",
            json={"call_id": call_id, "outcome": "no_answer"},
            headers=tenant,
        )
        state = (await client.get(f"/api/callbacks/{callback['id']}/", headers=tenant)).json()
        assert state["status"] == expected
        clock.advance(hours=2)
    # A failed callback cannot be dialled again.
    response = await client.post(
        "/api/agents/ai/start-call/",
        json={"phone_number": "+14155550123", "scheduled_callback_id": callback["id"]},
        headers=tenant,
    )
    assert response.status_code == 409
    assert response.json()["error"] == "illegal_transition"
    # A callback for another number is bad input.
    other = (
        await client.post(
            "/api/callbacks/",
            json={
                "customer_id": customer["id"],
                "scheduled_at": (clock.now + dt.timedelta(hours=1)).isoformat(),
            },
            headers=tenant,
        )
    ).json()
    response = await client.post(
        "/api/agents/ai/start-call/",
        json={"phone_number": "+14155550124", "scheduled_callback_id": other["id"]},
        headers=tenant,
    )
    assert response.status_code == 400
    assert response.json()["field"] == "scheduled_callback_id"


# The numbers an agent answers (docs/api.md): optional, so the contract's bodies stay valid.
async def test_setup_and_patch_set_the_agents_numbers(client: Client, tenant: Headers) -> None:
    first, second = number(), number()
    response = await client.post(
        "/api/agents/ai/setup/",
        json={"agent_name": "Alex", "phone_numbers": [first.replace("+", "00")]},
        headers=tenant,
    )
    assert response.status_code == 201, response.text
    assert response.json()["phone_numbers"] == [first]
    patched = await client.patch(
        "/api/agents/ai/", json={"phone_numbers": [second, first]}, headers=tenant
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["phone_numbers"] == sorted([first, second])
    renamed = await client.patch("/api/agents/ai/", json={"agent_name": "Al"}, headers=tenant)
    assert renamed.json()["phone_numbers"] == sorted([first, second])  # absent: unchanged
    shown = await client.get("/api/agents/ai/", headers=tenant)
    assert shown.json()["phone_numbers"] == sorted([first, second])
    dashboard = await client.get("/api/dashboard/ai-agent/", headers=tenant)
    assert dashboard.json()["agent"]["phone_numbers"] == sorted([first, second])


async def test_bad_and_foreign_numbers_are_refused(
    client: Client, tenant: Headers, new_tenant: Callable[[str], Awaitable[Headers]]
) -> None:
    taken = number()
    other = await new_tenant("Other")
    response = await client.post(
        "/api/agents/ai/setup/",
        json={"agent_name": "Otto", "phone_numbers": [taken]},
        headers=other,
    )
    assert response.status_code == 201
    await client.post("/api/agents/ai/setup/", json={"agent_name": "Alex"}, headers=tenant)
    stolen = await client.patch(
        "/api/agents/ai/", json={"phone_numbers": [number(), taken]}, headers=tenant
    )
    assert stolen.status_code == 409
    assert stolen.json()["error"] == "conflict"
    assert "phone_numbers[1]" in stolen.json()["detail"]
    bad = await client.patch(
        "/api/agents/ai/", json={"phone_numbers": ["030 1234"]}, headers=tenant
    )
    assert bad.status_code == 400
    assert bad.json()["field"] == "phone_numbers[0]"
    too_many = [number() for _ in range(21)]
    response = await client.patch(
        "/api/agents/ai/", json={"phone_numbers": too_many}, headers=tenant
    )
    assert response.status_code == 400
    assert (await client.get("/api/agents/ai/", headers=tenant)).json()["phone_numbers"] == []
    assert (await client.get("/api/agents/ai/", headers=other)).json()["phone_numbers"] == [taken]


async def test_start_call_with_one_idempotency_key_dials_once(
    client: Client,
    tenant: Headers,
    database_url: str,
    placer: RecordingPlacer,
    clock: FixedClock,
) -> None:
    await train_to(client, tenant, 20)
    key = {"Idempotency-Key": f"crm-{uuid.uuid4()}"}
    # The same request sent five times at once (a CRM retrying on a timeout, say).
    state = ApiState(db=Database(database_url), placer=placer, clock=clock)
    transport = httpx.ASGITransport(app=create_app(lambda: {}, state))  # type: ignore[arg-type]
    phone = number()
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as parallel:
            responses = await asyncio.gather(
                *(
                    parallel.post(
                        "/api/agents/ai/start-call/",
                        json={"phone_number": phone},
                        headers={**tenant, **key},
                    )
                    for _ in range(5)
                )
            )
    finally:
        await state.db.dispose()
    assert [r.status_code for r in responses] == [201] * 5, [r.text for r in responses]
    assert len({r.json()["call_id"] for r in responses}) == 1
    assert len(placer.requests) == 1
    # And later: still that call, no second dial.
    again = await client.post(
        "/api/agents/ai/start-call/", json={"phone_number": phone}, headers={**tenant, **key}
    )
    assert again.json()["call_id"] == responses[0].json()["call_id"]
    assert len(placer.requests) == 1
    # Another key is another call (here refused: the first one is still live).
    other = await client.post(
        "/api/agents/ai/start-call/",
        json={"phone_number": phone},
        headers={**tenant, "Idempotency-Key": "another"},
    )
    assert other.status_code == 409
    assert other.json()["error"] == "call_in_progress"


async def test_what_the_agent_does_on_an_answering_machine_is_set_and_checked(
    client: Client, tenant: Headers
) -> None:
    created = await client.post(
        "/api/agents/ai/setup/", json={"agent_name": "Alex"}, headers=tenant
    )
    assert created.status_code == 201, created.text
    assert "on_machine" not in created.json()["dial_policy"]  # hang up: the default
    policy = {
        "on_machine": "leave_message",
        "machine_message": "This is {name} of {company} for {customer}; we will call again.",
    }
    changed = await client.patch("/api/agents/ai/", json={"dial_policy": policy}, headers=tenant)
    assert changed.status_code == 200, changed.text
    assert changed.json()["dial_policy"] == policy
    cases = [
        ({"on_machine": "voicemail"}, "dial_policy.on_machine"),
        ({"machine_message": "x" * 301}, "dial_policy.machine_message"),
        ({"machine_message": "Call {agent} back"}, "dial_policy.machine_message"),
        ({"machine_message": "Call us {back"}, "dial_policy.machine_message"),
    ]
    for body, field in cases:
        response = await client.patch("/api/agents/ai/", json={"dial_policy": body}, headers=tenant)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["field"] == field, (body, response.json())
    # The refused requests changed nothing.
    kept = await client.get("/api/agents/ai/", headers=tenant)
    assert kept.json()["dial_policy"] == policy
