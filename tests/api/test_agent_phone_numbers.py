"""The numbers an agent answers (docs/api.md) on the agent routes, and the telephony fields
of a call's detail. The contract's bodies stay valid without them."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from litestar.testing import AsyncTestClient

from callagent.store.db import Database
from callagent.store.services import call_state, telephony
from callagent.store.services.call_state import CallUpdate
from callagent.store.states import CallStatus

from .conftest import Headers

Client = AsyncTestClient[Any]


def number() -> str:
    """A valid number no other test uses (numbers are unique across the installation)."""
    return "+4930" + "".join(random.choice("0123456789") for _ in range(8))


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
