"""The campaign pages through Litestar's test client, on both backends: create with contacts
by filter or CSV (bad rows reported by number, nothing written for them), start, pause,
resume, cancel, progress and outcomes; CSRF on every form; another client's campaign never
shown or changed."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import select

from callagent.store import counters
from callagent.store.db import Database
from callagent.store.models import AIAgent, CallSession, CampaignContact, ScheduledCallback
from callagent.store.services import callbacks
from callagent.store.states import CallbackStatus, CallOutcome, CallStatus, CallType

from helpers.api_fixtures import train_to
from helpers.dashboard_fixtures import Person, sign_in
from helpers.db_faults import contacts_refused

Client = AsyncTestClient[Any]


async def _customers(client: Client, who: Person) -> dict[str, str]:
    """An agent and three customers (one on the do-not-call list); their ids by name."""
    await train_to(client, who.headers, 20)
    ids = {}
    for number, name, dnc in [
        ("+14155550101", "Ann Warm", False),
        ("+14155550102", "Bob Cold", False),
        ("+14155550103", "Cy Nocall", True),
    ]:
        made = await client.post(
            "/api/customers/", json={"phone_number": number, "name": name}, headers=who.headers
        )
        assert made.status_code == 201, made.text
        ids[name] = made.json()["id"]
        if dnc:
            marked = await client.put(
                f"/api/customers/{ids[name]}/do-not-call/",
                json={"do_not_call": True},
                headers=who.headers,
            )
            assert marked.is_success, marked.text
    return ids


def _create_form(csrf: str, name: str, **fields: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "name": name,
        "call_purpose": "sales_outreach",
        "script_override": "Mention the spring offer.",
        "stagger_minutes": "2",
        "max_concurrent": "1",
        "max_attempts": "2",
        "contacts": "filter",
        **fields,
    }


async def _campaigns(client: Client, who: Person) -> list[dict[str, Any]]:
    listed = await client.get("/api/campaigns/", headers=who.headers)
    assert listed.status_code == 200, listed.text
    return list(listed.json()["items"])


async def test_create_by_filter_then_start_pause_resume_cancel(
    client: Client, person: Person, db: Database
) -> None:
    await _customers(client, person)
    csrf = await sign_in(client, person)
    page = await client.get("/dashboard/campaigns")
    assert page.status_code == 200
    assert "No campaigns yet." in page.text
    assert "<strong>Alex</strong>" in page.text  # the agent that makes the calls

    created = await client.post(
        "/dashboard/campaigns",
        data=_create_form(csrf, "Spring offer"),
        files={"file": ("", b"", "application/octet-stream")},  # as a browser sends "no file"
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    detail_url = created.headers["location"]
    campaign_id = detail_url.rsplit("/", 1)[1]
    detail = await client.get(detail_url)
    assert "Spring offer" in detail.text
    assert "Draft" in detail.text
    assert "Ann Warm" in detail.text
    assert "Bob Cold" in detail.text
    assert "Cy Nocall" not in detail.text  # do-not-call customers never match a filter
    assert "0 of 2 contacts dialled" in detail.text
    assert "Mention the spring offer." in detail.text
    [stored] = await _campaigns(client, person)
    assert stored["pacing"] == {"stagger_minutes": 2.0, "max_concurrent": 1}
    assert stored["retry"]["max_attempts"] == 2

    started = await client.post(
        f"/dashboard/campaigns/{campaign_id}/start", data={"csrf_token": csrf}
    )
    assert started.status_code == 200
    assert '<span id="campaign-status">Running</span>' in started.text
    assert "Pause" in started.text
    assert "Resume" not in started.text

    # The scheduler dialled Ann and she showed interest: the pages show the progress.
    call_id = await _dialled(db, campaign_id, CallOutcome.INTERESTED)
    detail = await client.get(detail_url)
    assert "1 of 2 contacts dialled; 1 answered, 0 converted" in detail.text
    assert f'href="/dashboard/calls/{call_id}"' in detail.text
    listing = (await client.get("/dashboard/campaigns")).text
    assert "1 of 2 dialled" in listing
    assert "Interested 1" in listing

    paused = await client.post(
        f"/dashboard/campaigns/{campaign_id}/pause", data={"csrf_token": csrf}
    )
    assert '<span id="campaign-status">Paused</span>' in paused.text
    assert (await _campaigns(client, person))[0]["status"] == "paused"
    again = await client.post(
        f"/dashboard/campaigns/{campaign_id}/pause", data={"csrf_token": csrf}
    )
    assert again.status_code == 409
    assert "only a running campaign can be paused" in again.text
    resumed = await client.post(
        f"/dashboard/campaigns/{campaign_id}/resume", data={"csrf_token": csrf}
    )
    assert '<span id="campaign-status">Running</span>' in resumed.text
    cancelled = await client.post(
        f"/dashboard/campaigns/{campaign_id}/cancel", data={"csrf_token": csrf}
    )
    assert '<span id="campaign-status">Cancelled</span>' in cancelled.text
    assert "/start" not in cancelled.text
    assert "Add contacts" not in cancelled.text
    assert (await _campaigns(client, person))[0]["status"] == "cancelled"


async def _dialled(db: Database, campaign_id: str, outcome: CallOutcome) -> str:
    """What the scheduler does when it dials the campaign's first contact and the call ends
    with ``outcome``: a call row, the contact done and answered. The call's id."""
    async with db.write() as session:
        contact = await session.scalar(
            select(CampaignContact)
            .where(CampaignContact.campaign_id == uuid.UUID(campaign_id))
            .order_by(CampaignContact.position)
            .limit(1)
        )
        assert contact is not None
        agent_id = await session.scalar(
            select(AIAgent.id).where(AIAgent.client_id == contact.client_id)
        )
        assert agent_id is not None
        call = CallSession(
            client_id=contact.client_id,
            agent_id=agent_id,
            customer_id=contact.customer_id,
            call_type=CallType.OUTBOUND,
            phone_number="+14155550101",
            status=CallStatus.COMPLETED,
            outcome=outcome,
        )
        session.add(call)
        await session.flush()
        # The row the scheduler dialled is completed and leaves the contact (as
        # campaigns.settled does when the call's outcome settles it).
        row = await session.get(ScheduledCallback, contact.callback_id)
        assert row is not None
        for status in (CallbackStatus.IN_PROGRESS, CallbackStatus.COMPLETED):
            await counters.bump(session, row.client_id, callbacks.move(row, status))
        contact.callback_id = None
        contact.state, contact.answered, contact.attempts = "done", True, 1
        contact.reason = "interested"
        contact.last_call_id = call.id
        return str(call.id)


async def test_a_csv_of_contacts_reports_each_bad_row_and_adds_only_the_good_ones(
    client: Client, person: Person
) -> None:
    await _customers(client, person)
    csrf = await sign_in(client, person)
    csv = (
        "phone_number,name\n"
        "+14155550101,Ann Warm\n"
        "not a number,Nobody\n"
        "+14155550199,New Person\n"
        "+14155550103,Cy Nocall\n"
    )
    created = await client.post(
        "/dashboard/campaigns",
        data=_create_form(csrf, "From a file", contacts="csv"),
        files={"file": ("contacts.csv", csv.encode(), "text/csv")},
    )
    assert created.status_code == 200, created.text
    page = created.text
    assert "2 added" in page
    assert "2 rows were not added" in page
    assert '<th scope="row">Row 2</th><td>phone_number</td>' in page
    assert '<th scope="row">Row 4</th><td>phone_number</td><td>on the do-not-call list</td>' in page
    [campaign] = await _campaigns(client, person)
    contacts = await client.get(
        f"/api/campaigns/{campaign['id']}/contacts/", headers=person.headers
    )
    assert sorted(c["name"] for c in contacts.json()["items"]) == ["Ann Warm", "New Person"]
    customers = await client.get("/api/customers/", headers=person.headers)
    assert "Nobody" not in customers.text  # the bad row wrote nothing


async def test_a_form_whose_contacts_fail_leaves_no_campaign_behind(
    client: Client, person: Person
) -> None:
    await _customers(client, person)
    csrf = await sign_in(client, person)
    for files, message in [
        ({"file": ("c.csv", b"email\na@b.example\n", "text/csv")}, "phone_number or customer_id"),
        ({"file": ("", b"", "application/octet-stream")}, "choose a CSV file"),
        (
            {"file": ("c.csv", "phone_number\n+1415555\u00e9".encode("latin-1"), "text/csv")},
            "UTF-8",
        ),
    ]:
        refused = await client.post(
            "/dashboard/campaigns",
            data=_create_form(csrf, "Broken", contacts="csv"),
            files=files,
        )
        assert refused.status_code == 400, refused.text
        assert message in refused.text
        assert 'value="Broken"' in refused.text  # what was typed stays in the form
    bad_purpose = await client.post(
        "/dashboard/campaigns",
        data=_create_form(csrf, "Typo", call_purpose="sales_outrech"),
        files={"file": ("", b"", "application/octet-stream")},
    )
    assert bad_purpose.status_code == 400
    assert "unknown call purpose" in bad_purpose.text
    assert await _campaigns(client, person) == []


async def test_a_database_error_while_adding_the_contacts_leaves_no_campaign_behind(
    client: Client, person: Person, db: Database
) -> None:
    # The campaign and its contacts are one transaction (docs/campaigns.md): the database
    # refusing the contacts (a real trigger, helpers/db_faults.py) takes the campaign, and a
    # customer the file would have created, with it - as a process dying mid-way would.
    await _customers(client, person)
    csrf = await sign_in(client, person)
    async with contacts_refused(db, "Doomed"):
        failed = await client.post(
            "/dashboard/campaigns",
            data=_create_form(csrf, "Doomed", contacts="csv"),
            files={"file": ("c.csv", b"phone_number,name\n+14155550188,Newcomer\n", "text/csv")},
        )
    assert failed.status_code == 500
    assert await _campaigns(client, person) == []
    customers = await client.get("/api/customers/", headers=person.headers)
    assert "Newcomer" not in customers.text


async def test_the_forms_need_the_csrf_token(client: Client, person: Person) -> None:
    await _customers(client, person)
    csrf = await sign_in(client, person)
    refused = await client.post(
        "/dashboard/campaigns",
        data={**_create_form(csrf, "No token"), "csrf_token": "forged"},
        files={"file": ("", b"", "application/octet-stream")},
    )
    assert refused.status_code == 403
    assert await _campaigns(client, person) == []
    created = await client.post(
        "/dashboard/campaigns",
        data=_create_form(csrf, "Has token"),
        files={"file": ("", b"", "application/octet-stream")},
        follow_redirects=False,
    )
    campaign_id = created.headers["location"].rsplit("/", 1)[1]
    for path in ("start", "cancel", "contacts"):
        response = await client.post(f"/dashboard/campaigns/{campaign_id}/{path}", data={})
        assert response.status_code == 403, path
    assert (await _campaigns(client, person))[0]["status"] == "draft"


async def test_another_clients_campaign_is_never_shown_or_changed(
    client: Client, new_person: Callable[[str], Awaitable[Person]]
) -> None:
    owner, other = await new_person("Acme Solar"), await new_person("Globex Roofs")
    await _customers(client, owner)
    created = await client.post(
        "/api/campaigns/", json={"name": "Acme secret campaign"}, headers=owner.headers
    )
    campaign_id = created.json()["id"]
    added = await client.post(
        f"/api/campaigns/{campaign_id}/contacts/", json={"filter": {}}, headers=owner.headers
    )
    assert added.json()["added"] == 2
    csrf = await sign_in(client, other)
    listing = await client.get("/dashboard/campaigns")
    assert "Acme secret campaign" not in listing.text
    assert (await client.get(f"/dashboard/campaigns/{campaign_id}")).status_code == 404
    for path in ("start", "cancel"):
        response = await client.post(
            f"/dashboard/campaigns/{campaign_id}/{path}", data={"csrf_token": csrf}
        )
        assert response.status_code == 404, path
    contacts = await client.post(
        f"/dashboard/campaigns/{campaign_id}/contacts",
        data={"csrf_token": csrf, "contacts": "filter"},
        files={"file": ("", b"", "application/octet-stream")},
    )
    assert contacts.status_code == 404
    [mine] = await _campaigns(client, owner)
    assert mine["status"] == "draft"
    assert mine["progress"]["total"] == 2
