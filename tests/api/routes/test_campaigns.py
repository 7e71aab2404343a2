"""Campaigns over the REST API (docs/api.md "Campaigns", docs/campaigns.md): create, add
contacts by id, filter and CSV with per-row errors, start through the contract's trigger with
the docs' example body, pause, resume, cancel, progress."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from helpers.api_fixtures import Headers, train_to
from helpers.store_data import number
from helpers.store_fixtures import FixedClock

Client = AsyncTestClient[Any]
DOCS = Path(__file__).parents[3] / "docs" / "api.md"
TRIGGER = "/calls/api/calls/trigger_campaign_calls/"


def docs_example() -> dict[str, Any]:
    """The body of the trigger's example in docs/api.md."""
    text = DOCS.read_text()
    found = re.search(
        r"Example \(`POST /calls/api/calls/trigger_campaign_calls/`\):\n\n```json\n(.*?)\n```",
        text,
        re.S,
    )
    assert found, "no example of trigger_campaign_calls in docs/api.md"
    return dict(json.loads(found.group(1)))


async def _customer(client: Client, headers: Headers, **fields: Any) -> str:
    response = await client.post(
        "/api/customers/", json={"phone_number": number(), **fields}, headers=headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _campaign(client: Client, headers: Headers, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/campaigns/", json={"name": "Spring", **fields}, headers=headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_a_campaign_from_draft_to_cancelled(
    client: Client, tenant: Headers, clock: FixedClock
) -> None:
    await train_to(client, tenant, 20)
    warm = [await _customer(client, tenant, interest_level="warm") for _ in range(3)]
    await _customer(client, tenant, interest_level="cold")
    await _customer(client, tenant, interest_level="warm", do_not_call=True)
    campaign = await _campaign(
        client,
        tenant,
        call_purpose="sales_outreach",
        script_override="Say the spring offer ends on Friday.",
        pacing={"stagger_minutes": 5, "max_concurrent": 1},
        retry={"max_attempts": 2, "busy_minutes": 10},
    )
    assert campaign["status"] == "draft"
    assert campaign["retry"] == {
        "max_attempts": 2,
        "no_answer_minutes": 60.0,
        "busy_minutes": 10.0,
        "failed_minutes": 30.0,
    }
    path = f"/api/campaigns/{campaign['id']}"
    # Nothing to call yet: starting is refused.
    assert (await client.post(f"{path}/start/", headers=tenant)).status_code == 409

    # By filter: the warm customers not on the do-not-call list.
    by_filter = await client.post(
        f"{path}/contacts/", json={"filter": {"interest_level": "warm"}}, headers=tenant
    )
    assert by_filter.json() == {"added": 3, "already": 0, "errors": []}
    # By id: the same again adds nothing.
    by_id = await client.post(f"{path}/contacts/", json={"customer_ids": warm}, headers=tenant)
    assert (by_id.json()["added"], by_id.json()["already"]) == (0, 3)
    neither = await client.post(f"{path}/contacts/", json={}, headers=tenant)
    assert neither.status_code == 400

    # Started through the contract's trigger, with the docs' example body.
    body = docs_example()
    body["campaign_id"] = campaign["id"]
    started = await client.post(TRIGGER, json=body, headers=tenant)
    assert started.status_code == 200, started.text
    view = started.json()
    assert view["status"] == "running"
    assert view["call_purpose"] == body["call_purpose"]
    assert view["pacing"]["stagger_minutes"] == body["stagger_minutes"]
    assert view["progress"]["pending"] == 3
    rows = (await client.get("/api/callbacks/", headers=tenant)).json()["items"]
    due = sorted(dt.datetime.fromisoformat(item["scheduled_at"]) for item in rows)
    # One due row per contact, the first now, staggered by the trigger's 2 minutes.
    assert [d - clock.now for d in due] == [dt.timedelta(minutes=2 * i) for i in range(3)]
    # Triggered again while running: nothing is scheduled twice.
    again = await client.post(TRIGGER, json=body, headers=tenant)
    assert again.status_code == 200
    assert len((await client.get("/api/callbacks/", headers=tenant)).json()["items"]) == 3

    paused = await client.post(f"{path}/pause/", headers=tenant)
    assert paused.json()["status"] == "paused"
    open_rows = (
        await client.get("/api/callbacks/", params={"status": "scheduled"}, headers=tenant)
    ).json()["items"]
    assert open_rows == []  # pause closed the rows not yet dialled
    assert (await client.post(f"{path}/pause/", headers=tenant)).status_code == 409
    resumed = await client.post(f"{path}/resume/", headers=tenant)
    assert resumed.json()["status"] == "running"
    open_rows = (
        await client.get("/api/callbacks/", params={"status": "scheduled"}, headers=tenant)
    ).json()["items"]
    assert len(open_rows) == 3
    assert (await client.delete(f"{path}/", headers=tenant)).status_code == 409  # running

    cancelled = await client.post(f"{path}/cancel/", headers=tenant)
    assert cancelled.json()["status"] == "cancelled"
    progress = (await client.get(f"{path}/progress/", headers=tenant)).json()
    assert (progress["cancelled"], progress["pending"], progress["total"]) == (3, 0, 3)
    open_rows = (
        await client.get("/api/callbacks/", params={"status": "scheduled"}, headers=tenant)
    ).json()["items"]
    assert open_rows == []
    assert (await client.post(f"{path}/resume/", headers=tenant)).status_code == 409
    listed = (await client.get("/api/campaigns/", headers=tenant)).json()["items"]
    assert [item["id"] for item in listed] == [campaign["id"]]
    assert (await client.delete(f"{path}/", headers=tenant)).status_code == 204
    assert (await client.get(f"{path}/", headers=tenant)).status_code == 404


async def test_campaign_csv_reports_row_errors(client: Client, tenant: Headers) -> None:
    await train_to(client, tenant, 20)
    known = await _customer(client, tenant, name="Known")
    on_dnc = number()
    await client.post(
        "/api/customers/", json={"phone_number": on_dnc, "do_not_call": True}, headers=tenant
    )
    campaign = await _campaign(client, tenant)
    new_number = number()
    csv_text = (
        "phone_number,name,customer_id\n"
        f"{new_number},New Person,\n"
        "12345,Bad Number,\n"
        f"{new_number},Twice,\n"
        f",,{known}\n"
        ",,not-a-uuid\n"
        f"{on_dnc},,\n"
        f",,{'0' * 8}-0000-0000-0000-{'0' * 12}\n"
    )
    response = await client.post(
        f"/api/campaigns/{campaign['id']}/contacts/import/",
        content=csv_text,
        headers={**tenant, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["added"], result["already"]) == (2, 0)
    assert [(e["row"], e["field"]) for e in result["errors"]] == [
        (2, "phone_number"),
        (3, "phone_number"),
        (5, "customer_id"),
        (6, "phone_number"),
        (7, "customer_id"),
    ]
    assert "do-not-call" in result["errors"][3]["reason"]
    contacts = (
        await client.get(f"/api/campaigns/{campaign['id']}/contacts/", headers=tenant)
    ).json()["items"]
    assert [(c["name"], c["state"]) for c in contacts] == [
        ("New Person", "pending"),
        ("Known", "pending"),
    ]
    # The new number became a customer of this client.
    found = (
        await client.get("/api/customers/", params={"phone_number": new_number}, headers=tenant)
    ).json()["items"]
    assert [c["name"] for c in found] == ["New Person"]
    bad_header = await client.post(
        f"/api/campaigns/{campaign['id']}/contacts/import/",
        content="phone,name\n+14155550101,x\n",
        headers={**tenant, "Content-Type": "text/csv"},
    )
    assert bad_header.status_code == 400
    assert bad_header.json()["field"] == "file"


async def test_bad_campaign_bodies_name_the_field(client: Client, tenant: Headers) -> None:
    misspelt = await client.post(
        "/api/campaigns/", json={"name": "x", "call_purpose": "renew_reminder"}, headers=tenant
    )
    assert misspelt.status_code == 400
    assert misspelt.json()["field"] == "call_purpose"
    backwards = await client.post(
        "/api/campaigns/",
        json={
            "name": "x",
            "starts_at": "2026-03-06T10:00:00+00:00",
            "ends_at": "2026-03-05T10:00:00+00:00",
        },
        headers=tenant,
    )
    assert backwards.status_code == 400
    assert backwards.json()["field"] == "ends_at"
    too_fast = await client.post(
        "/api/campaigns/", json={"name": "x", "pacing": {"max_concurrent": 0}}, headers=tenant
    )
    assert too_fast.status_code == 400
    unknown = await client.post(
        TRIGGER, json={"campaign_id": "00000000-0000-0000-0000-000000000000"}, headers=tenant
    )
    assert unknown.status_code == 404
