"""Tenant isolation on every route: another client's resource is a 404, exactly like a missing
one (docs/api.md), and a test proves it for every route.

Client A gets an agent, a customer, a call, a callback, a note and an opportunity. Client B,
fully set up itself, then aims each route at A's ids: every route that takes an id answers 404
(the same body as for an id that never existed), every list leaves A's rows out, and A's data is
unchanged afterwards. ``test_every_route_is_in_the_table`` fails when a route is added without
a row here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from callagent.api.app import create_app
from callagent.api.state import ApiState
from callagent.store.db import Database

from helpers.api_fixtures import Headers, train_to
from helpers.store_fixtures import FixedClock

Client = AsyncTestClient[Any]
Ids = dict[str, str]
LATER = "2026-03-06T10:00:00+00:00"


@dataclass(frozen=True)
class Probe:
    """Client B's request against client A's data, and what must come back."""

    method: str
    route: str  # as Litestar declares it
    path: Callable[[Ids], str]
    body: Callable[[Ids], Any] | None = None
    # "404": the foreign id is not found; "list": 200 without any of A's ids; "own": B acts on
    # its own data (a route with no id to point at A) and A's data stays unchanged.
    expect: str = "404"
    content: str | None = None


PROBES = [
    Probe("POST", "/api/agents/ai/setup", lambda i: "/api/agents/ai/setup/",
          lambda i: {"agent_name": "B again"}, expect="409-own"),
    Probe("GET", "/api/agents/ai", lambda i: "/api/agents/ai/", expect="own"),
    Probe("PATCH", "/api/agents/ai", lambda i: "/api/agents/ai/",
          lambda i: {"agent_name": "B renamed"}, expect="own"),
    Probe("POST", "/api/agents/ai/training", lambda i: "/api/agents/ai/training/",
          lambda i: {"training_type": "goals", "training_content": "sell"}, expect="own"),
    Probe("GET", "/api/agents/ai/training", lambda i: "/api/agents/ai/training/", expect="list"),
    Probe("POST", "/api/agents/ai/start-call", lambda i: "/api/agents/ai/start-call/",
          lambda i: {"phone_number": i["phone"], "scheduled_callback_id": i["callback"]}),
    Probe("POST", "/api/agents/ai/call-outcome", lambda i: "/api/agents/ai/call-outcome/",
          lambda i: {"call_id": i["open_call"], "outcome": "converted"}),
    Probe("GET", "/api/dashboard/ai-agent", lambda i: "/api/dashboard/ai-agent/", expect="list"),
    Probe("GET", "/api/dashboard/ai-agent/customers",
          lambda i: "/api/dashboard/ai-agent/customers/", expect="list"),
    Probe("GET", "/api/dashboard/ai-agent/callbacks",
          lambda i: "/api/dashboard/ai-agent/callbacks/", expect="list"),
    Probe("POST", "/api/customers", lambda i: "/api/customers/",
          lambda i: {"phone_number": i["phone"]}, expect="own"),
    Probe("GET", "/api/customers", lambda i: "/api/customers/", expect="list"),
    Probe("POST", "/api/customers/import", lambda i: "/api/customers/import/",
          content="phone_number,name\n+14155550123,Taken over\n", expect="own"),
    Probe("GET", "/api/customers/{customer_id:uuid}",
          lambda i: f"/api/customers/{i['customer']}/"),
    Probe("PATCH", "/api/customers/{customer_id:uuid}",
          lambda i: f"/api/customers/{i['customer']}/", lambda i: {"name": "stolen"}),
    Probe("DELETE", "/api/customers/{customer_id:uuid}",
          lambda i: f"/api/customers/{i['customer']}/"),
    Probe("PUT", "/api/customers/{customer_id:uuid}/do-not-call",
          lambda i: f"/api/customers/{i['customer']}/do-not-call/",
          lambda i: {"do_not_call": True}),
    Probe("POST", "/api/customers/{customer_id:uuid}/notes",
          lambda i: f"/api/customers/{i['customer']}/notes/", lambda i: {"body": "x"}),
    Probe("GET", "/api/customers/{customer_id:uuid}/notes",
          lambda i: f"/api/customers/{i['customer']}/notes/"),
    Probe("GET", "/api/notes/{note_id:uuid}", lambda i: f"/api/notes/{i['note']}/"),
    Probe("DELETE", "/api/notes/{note_id:uuid}", lambda i: f"/api/notes/{i['note']}/"),
    Probe("GET", "/api/calls", lambda i: "/api/calls/", expect="list"),
    Probe("GET", "/api/calls/{call_id:uuid}", lambda i: f"/api/calls/{i['call']}/"),
    # A's call with its recording on disk is a 404 for B too: tests/api/test_recordings.py.
    Probe("GET", "/api/calls/{call_id:uuid}/recording",
          lambda i: f"/api/calls/{i['call']}/recording/"),
    Probe("POST", "/api/callbacks", lambda i: "/api/callbacks/",
          lambda i: {"customer_id": i["customer"], "scheduled_at": LATER}),
    Probe("GET", "/api/callbacks", lambda i: "/api/callbacks/", expect="list"),
    Probe("GET", "/api/callbacks/{callback_id:uuid}", lambda i: f"/api/callbacks/{i['callback']}/"),
    Probe("POST", "/api/callbacks/{callback_id:uuid}/reschedule",
          lambda i: f"/api/callbacks/{i['callback']}/reschedule/",
          lambda i: {"scheduled_at": LATER}),
    Probe("POST", "/api/callbacks/{callback_id:uuid}/cancel",
          lambda i: f"/api/callbacks/{i['callback']}/cancel/"),
    Probe("POST", "/api/opportunities", lambda i: "/api/opportunities/",
          lambda i: {"customer_id": i["customer"], "title": "steal"}),
    Probe("GET", "/api/opportunities", lambda i: "/api/opportunities/", expect="list"),
    Probe("GET", "/api/opportunities/{opportunity_id:uuid}",
          lambda i: f"/api/opportunities/{i['opportunity']}/"),
    Probe("PATCH", "/api/opportunities/{opportunity_id:uuid}",
          lambda i: f"/api/opportunities/{i['opportunity']}/", lambda i: {"title": "stolen"}),
    Probe("POST", "/api/webhooks", lambda i: "/api/webhooks/",
          lambda i: {"url": "http://127.0.0.1:9/b", "event_types": ["*"]}, expect="own"),
    Probe("GET", "/api/webhooks", lambda i: "/api/webhooks/", expect="list"),
    Probe("GET", "/api/webhooks/{endpoint_id:uuid}", lambda i: f"/api/webhooks/{i['webhook']}/"),
    Probe("PATCH", "/api/webhooks/{endpoint_id:uuid}",
          lambda i: f"/api/webhooks/{i['webhook']}/", lambda i: {"url": "http://127.0.0.1:9/x"}),
    Probe("DELETE", "/api/webhooks/{endpoint_id:uuid}",
          lambda i: f"/api/webhooks/{i['webhook']}/"),
    Probe("GET", "/api/webhook-deliveries", lambda i: "/api/webhook-deliveries/", expect="list"),
    Probe("GET", "/api/webhook-deliveries/{delivery_id:uuid}",
          lambda i: f"/api/webhook-deliveries/{i['delivery']}/"),
    Probe("POST", "/api/webhook-deliveries/{delivery_id:uuid}/redeliver",
          lambda i: f"/api/webhook-deliveries/{i['delivery']}/redeliver/"),
    Probe("POST", "/api/campaigns", lambda i: "/api/campaigns/",
          lambda i: {"name": "B's own"}, expect="own"),
    Probe("GET", "/api/campaigns", lambda i: "/api/campaigns/", expect="list"),
    Probe("GET", "/api/campaigns/{campaign_id:uuid}", lambda i: f"/api/campaigns/{i['campaign']}/"),
    Probe("PATCH", "/api/campaigns/{campaign_id:uuid}",
          lambda i: f"/api/campaigns/{i['campaign']}/", lambda i: {"name": "stolen"}),
    Probe("DELETE", "/api/campaigns/{campaign_id:uuid}",
          lambda i: f"/api/campaigns/{i['campaign']}/"),
    Probe("POST", "/api/campaigns/{campaign_id:uuid}/contacts",
          lambda i: f"/api/campaigns/{i['campaign']}/contacts/",
          lambda i: {"customer_ids": [i["customer"]]}),
    Probe("POST", "/api/campaigns/{campaign_id:uuid}/contacts/import",
          lambda i: f"/api/campaigns/{i['campaign']}/contacts/import/",
          content="phone_number\n+14155550123\n"),
    Probe("GET", "/api/campaigns/{campaign_id:uuid}/contacts",
          lambda i: f"/api/campaigns/{i['campaign']}/contacts/"),
    Probe("GET", "/api/campaigns/{campaign_id:uuid}/progress",
          lambda i: f"/api/campaigns/{i['campaign']}/progress/"),
    Probe("POST", "/api/campaigns/{campaign_id:uuid}/start",
          lambda i: f"/api/campaigns/{i['campaign']}/start/"),
    Probe("POST", "/api/campaigns/{campaign_id:uuid}/pause",
          lambda i: f"/api/campaigns/{i['campaign']}/pause/"),
    Probe("POST", "/api/campaigns/{campaign_id:uuid}/resume",
          lambda i: f"/api/campaigns/{i['campaign']}/resume/"),
    Probe("POST", "/api/campaigns/{campaign_id:uuid}/cancel",
          lambda i: f"/api/campaigns/{i['campaign']}/cancel/"),
    Probe("POST", "/calls/api/calls/trigger_campaign_calls",
          lambda i: "/calls/api/calls/trigger_campaign_calls/",
          lambda i: {"campaign_id": i["campaign"], "stagger_minutes": 0}),
    Probe("POST", "/calls/api/calls/trigger_autonomous_call",
          lambda i: "/calls/api/calls/trigger_autonomous_call/",
          lambda i: {"contact_id": i["customer"], "call_purpose": "follow_up",
                     "scheduled_time": LATER}),
    Probe("POST", "/calls/api/calls/bulk_autonomous_calls",
          lambda i: "/calls/api/calls/bulk_autonomous_calls/",
          lambda i: {"calls": [{"contact_id": i["customer"], "call_purpose": "follow_up",
                                "delay_minutes": 0}]}, expect="items-refused"),
    Probe("GET", "/calls/api/calls/autonomous_call_status",
          lambda i: f"/calls/api/calls/autonomous_call_status/?contact_id={i['customer']}"),
    Probe("POST", "/api/agents/ai/web-form-trigger", lambda i: "/api/agents/ai/web-form-trigger/",
          lambda i: {"call_purpose": "follow_up"}, expect="own"),
    Probe("GET", "/api/agents/ai/web-form-trigger", lambda i: "/api/agents/ai/web-form-trigger/"),
    # The form's endpoint takes no API key: B's key does not open A's form (unsigned: 401).
    Probe("POST", "/api/triggers/web-form/{agent_token:str}",
          lambda i: f"/api/triggers/web-form/{i['web_form']}/",
          lambda i: {"phone_number": i["phone"]}, expect="401"),
]  # fmt: skip


async def _world_of_a(client: Client, headers: Headers, clock: FixedClock) -> Ids:
    await train_to(client, headers, 20)
    customer = (
        await client.post(
            "/api/customers/",
            json={"phone_number": "+14155550123", "name": "A's customer"},
            headers=headers,
        )
    ).json()
    call = (
        await client.post(
            "/api/agents/ai/start-call/", json={"phone_number": "+14155550123"}, headers=headers
        )
    ).json()
    # Another number: one live call per customer (docs/scheduler.md) refuses a second call
    # to the first customer while the first is live.
    open_call = (
        await client.post(
            "/api/agents/ai/start-call/", json={"phone_number": "+14155550124"}, headers=headers
        )
    ).json()
    await client.post(
        "/api/agents/ai/call-outcome/",
        json={"call_id": call["call_id"], "outcome": "interested", "conversation_notes": "n"},
        headers=headers,
    )
    callback = (
        await client.post(
            "/api/callbacks/",
            json={"customer_id": customer["id"], "scheduled_at": LATER},
            headers=headers,
        )
    ).json()
    note = (
        await client.post(
            f"/api/customers/{customer['id']}/notes/", json={"body": "A's note"}, headers=headers
        )
    ).json()
    opportunity = (
        await client.post(
            "/api/opportunities/",
            json={"customer_id": customer["id"], "title": "A's deal"},
            headers=headers,
        )
    ).json()
    webhook = (
        await client.post(
            "/api/webhooks/",
            json={"url": "http://127.0.0.1:9/a", "event_types": ["customer.updated"]},
            headers=headers,
        )
    ).json()
    await client.patch(
        f"/api/customers/{customer['id']}/", json={"company": "A's company"}, headers=headers
    )
    delivery = (await client.get("/api/webhook-deliveries/", headers=headers)).json()["items"][0]
    campaign = (
        await client.post("/api/campaigns/", json={"name": "A's campaign"}, headers=headers)
    ).json()
    await client.post(
        f"/api/campaigns/{campaign['id']}/contacts/",
        json={"customer_ids": [customer["id"]]},
        headers=headers,
    )
    web_form = (
        await client.post(
            "/api/agents/ai/web-form-trigger/", json={"call_purpose": "follow_up"}, headers=headers
        )
    ).json()
    return {
        "web_form": web_form["token"],
        "campaign": campaign["id"],
        "webhook": webhook["id"],
        "delivery": delivery["id"],
        "customer": customer["id"],
        "phone": "+14155550123",
        "call": call["call_id"],
        "open_call": open_call["call_id"],
        "callback": callback["id"],
        "note": note["id"],
        "opportunity": opportunity["id"],
    }


async def _snapshot(client: Client, headers: Headers, ids: Ids) -> list[Any]:
    paths = [
        "/api/agents/ai/",
        f"/api/customers/{ids['customer']}/",
        f"/api/calls/{ids['call']}/",
        f"/api/calls/{ids['open_call']}/",
        f"/api/callbacks/{ids['callback']}/",
        f"/api/notes/{ids['note']}/",
        f"/api/opportunities/{ids['opportunity']}/",
        "/api/agents/ai/training/",
        f"/api/webhooks/{ids['webhook']}/",
        f"/api/webhook-deliveries/{ids['delivery']}/",
        f"/api/campaigns/{ids['campaign']}/",
        f"/api/campaigns/{ids['campaign']}/contacts/",
        "/api/agents/ai/web-form-trigger/",
        f"/calls/api/calls/autonomous_call_status/?contact_id={ids['customer']}",
    ]
    return [(await client.get(path, headers=headers)).json() for path in paths]


def _random_ids(ids: Ids) -> Ids:
    return {key: (value if key == "phone" else str(uuid.uuid4())) for key, value in ids.items()}


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: f"{p.method} {p.route}")
async def test_client_b_cannot_reach_client_a(
    probe: Probe, client: Client, new_tenant: Any, clock: FixedClock
) -> None:
    a = await new_tenant("A")
    b = await new_tenant("B")
    ids = await _world_of_a(client, a, clock)
    await train_to(client, b, 20)
    before = await _snapshot(client, a, ids)

    async def send(target: Ids) -> Any:
        kwargs: dict[str, Any] = {"headers": b}
        if probe.body is not None:
            kwargs["json"] = probe.body(target)
        if probe.content is not None:
            kwargs["content"] = probe.content
            kwargs["headers"] = {**b, "Content-Type": "text/csv"}
        return await client.request(probe.method, probe.path(target), **kwargs)

    response = await send(ids)
    if probe.expect == "404":
        assert response.status_code == 404, response.text
        missing = await send(_random_ids(ids))
        assert missing.status_code == 404
        # Indistinguishable from an id that never existed, but for the id in the message.
        assert response.json()["error"] == missing.json()["error"]
    elif probe.expect == "items-refused":
        # A batch answers item by item: A's customer is "not found", as an unknown id.
        assert response.status_code == 200, response.text
        missing = await send(_random_ids(ids))
        for answer in (response.json(), missing.json()):
            assert answer["scheduled"] == 0
            assert [r["field"] for r in answer["results"]] == ["contact_id"]
        assert "not found" in response.json()["results"][0]["reason"]
    elif probe.expect == "401":
        assert response.status_code == 401, response.text
    elif probe.expect == "list":
        assert response.status_code == 200, response.text
        text = response.text
        for key, value in ids.items():
            if key != "phone":
                assert value not in text, f"{key} of client A listed for client B"
        assert "A's" not in text
    else:
        expected = 409 if probe.expect == "409-own" else None
        if expected:
            assert response.status_code == expected, response.text
        else:
            assert response.status_code < 300, response.text
    assert await _snapshot(client, a, ids) == before, "client A's data changed"


def test_every_route_is_in_the_table(database_url: str) -> None:
    app = create_app(lambda: {}, ApiState(db=Database(database_url)))
    declared = {
        (method, route.path)
        for route in app.routes
        # The contract's /calls/api/calls/… routes are client-scoped too (docs/api.md).
        if route.path.startswith(("/api", "/calls/api"))
        for handler in route.route_handlers  # type: ignore[attr-defined]
        for method in handler.http_methods
        if method not in ("HEAD", "OPTIONS")
    }
    probed = {(probe.method, probe.route) for probe in PROBES}
    assert declared == probed


def test_probe_paths_are_unique() -> None:
    keys = [(probe.method, probe.route) for probe in PROBES]
    assert len(keys) == len(set(keys))
