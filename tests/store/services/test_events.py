"""Webhook events in the outbox (docs/webhooks.md): written by the writers of the changes they
report, in the same transaction, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from callagent.store.db import Database
from callagent.store.errors import NotFound
from callagent.store.models import CustomerProfile, WebhookDelivery, WebhookEvent
from callagent.store.schemas import (
    CallOutcomeReport,
    CustomerCreate,
    CustomerUpdate,
    OpportunityCreate,
    StartCall,
)
from callagent.store.services import (
    analysis_jobs,
    call_analysis,
    call_state,
    calls,
    customers,
    events,
    opportunities,
    webhooks,
)
from callagent.store.services import telephony as telephony_store
from callagent.store.services.analysis_jobs import START_DELAY
from callagent.store.services.call_state import CallAction, CallUpdate
from callagent.store.services.webhooks import WebhookEndpointCreate
from callagent.store.states import CallOutcome, CallStatus, InterestLevel

from helpers.analysis_data import START, TALK, analysis, finished_browser_call, finished_call
from helpers.store_data import NOW, number, ready_client

LEASE = dt.timedelta(minutes=5)


async def subscribe(db: Database, client_id: uuid.UUID, *types: str, active: bool = True) -> None:
    await webhooks.create_endpoint(
        db,
        client_id,
        WebhookEndpointCreate(
            url="http://127.0.0.1:9/hook", event_types=list(types or ["*"]), active=active
        ),
    )


async def outbox(db: Database, client_id: uuid.UUID) -> list[WebhookEvent]:
    async with db.read() as session:
        rows = await session.scalars(
            select(WebhookEvent)
            .where(WebhookEvent.client_id == client_id)
            .order_by(WebhookEvent.seq)
        )
        return list(rows)


async def new_call(db: Database, client_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    prepared = await calls.prepare_call(db, client_id, StartCall(phone_number=number()), NOW)
    await calls.record_placement(
        db, client_id, prepared.call_id, placed=True, reason="", telephony_call_id="t", now=NOW
    )
    return prepared.call_id, prepared.customer_id


async def test_an_unanswered_call_is_completed_at_hang_up_and_an_answered_one_started(
    db: Database,
) -> None:
    client_id = await ready_client(db)
    await subscribe(db, client_id)
    unanswered, _ = await new_call(db, client_id)
    await call_state.apply_call_update(
        db, client_id, unanswered, CallUpdate(status=CallStatus.FAILED, outcome="no_answer"), NOW
    )
    answered, _ = await new_call(db, client_id)
    await call_state.apply_call_update(
        db, client_id, answered, CallUpdate(status=CallStatus.IN_PROGRESS), NOW
    )
    rows = await outbox(db, client_id)
    assert [(row.type, row.ordering_key) for row in rows] == [
        ("customer.created", f"call:{unanswered}"),  # start-call to a number not on file
        ("call.completed", f"call:{unanswered}"),
        ("customer.created", f"call:{answered}"),
        ("call.started", f"call:{answered}"),
    ]
    assert rows[0].data["source"] == "call"
    assert rows[0].data["call_id"] == str(unanswered)
    completed = rows[1].data
    assert completed["outcome"] == "no_answer"
    assert completed["call"]["id"] == str(unanswered)
    assert completed["analysed"] is False
    assert rows[3].data["call"]["status"] == "in_progress"


async def test_in_call_actions_raise_their_events(db: Database) -> None:
    client_id = await ready_client(db)
    await subscribe(db, client_id)
    call_id, customer_id = await new_call(db, client_id)
    await customers.update_customer(
        db, client_id, customer_id, CustomerUpdate(name="Ada Lovelace", email="ada@example.org")
    )
    at = NOW + dt.timedelta(days=2)
    actions = [
        CallAction(
            record={"type": "book_appointment", "kind": "demo", "when": "Friday at ten"},
            callback_at=at,
            callback_reason="demo booked",
            expected_outcome="demo",
        ),
        CallAction(
            record={"type": "schedule_callback", "when": "next week"},
            callback_at=at + dt.timedelta(days=5),
        ),
        CallAction(record={"type": "send_information", "channel": "email"}),
        CallAction(record={"type": "set_interest", "level": "hot"}, interest=InterestLevel.HOT),
        CallAction(record={"type": "set_do_not_call"}, do_not_call=True),
    ]
    for action in actions:
        await call_state.apply_call_action(db, client_id, call_id, action, NOW)
    created, *rows = await outbox(db, client_id)
    assert (created.type, created.data["customer"]["id"]) == ("customer.created", str(customer_id))
    assert [row.type for row in rows] == [
        "customer.updated",  # the name and e-mail, through the API
        "appointment.booked",  # not also callback.scheduled: one event per booking
        "callback.scheduled",
        "information.requested",
        "customer.updated",  # interest
        "do_not_call.added",
        "customer.updated",
    ]
    assert rows[0].ordering_key == f"customer:{customer_id}"
    assert {row.ordering_key for row in rows[1:]} == {f"call:{call_id}"}
    assert rows[0].data["changed"] == ["name", "email"]
    booked = rows[1].data
    assert booked["appointment"]["kind"] == "demo"
    assert dt.datetime.fromisoformat(booked["appointment"]["starts_at"]) == at
    event = parse_ics(booked["ics"])
    assert event["DTSTART"] == at.strftime("%Y%m%dT%H%M%SZ")
    assert event["UID"] == f"{booked['appointment']['callback_id']}@callagent"
    assert "Ada Lovelace" in event["SUMMARY"]
    assert event["ATTENDEE"].endswith("mailto:ada@example.org")
    assert rows[2].data["callback"]["origin_call_id"] == str(call_id)
    assert rows[3].data["channel"] == "email"
    assert rows[3].data["customer"]["email"] == "ada@example.org"
    assert rows[4].data["changed"] == ["interest_level"]
    assert rows[5].data["customer"]["do_not_call"] is True
    assert rows[6].data["changed"] == ["do_not_call"]


async def test_the_event_is_written_with_its_change_or_not_at_all(db: Database) -> None:
    client_id = await ready_client(db)
    await subscribe(db, client_id, "customer.updated")
    _, customer_id = await new_call(db, client_id)

    class Refused(Exception):
        pass

    async def change_then_fail() -> None:
        async with db.write() as session:
            customer = await session.get(CustomerProfile, customer_id)
            assert customer is not None
            before = events.customer_snapshot(customer)
            customer.company = "Analytical Engines Ltd"
            await events.customer_changed(session, customer, before)
            raise Refused  # the write fails after the event was added: both roll back

    with pytest.raises(Refused):
        await change_then_fail()
    assert await outbox(db, client_id) == []
    assert (await customers.get_customer(db, client_id, customer_id)).company == ""
    async with db.read() as session:
        assert (
            list(
                await session.scalars(
                    select(WebhookDelivery).where(WebhookDelivery.client_id == client_id)
                )
            )
            == []
        )

    await customers.update_customer(
        db, client_id, customer_id, CustomerUpdate(company="Analytical Engines Ltd")
    )
    rows = await outbox(db, client_id)
    assert [row.data["customer"]["company"] for row in rows] == ["Analytical Engines Ltd"]
    # A refused write (another client's customer) leaves no event either.
    with pytest.raises(NotFound):
        await customers.update_customer(
            db, await ready_client(db), customer_id, CustomerUpdate(company="x")
        )
    assert len(await outbox(db, client_id)) == 1


async def test_only_subscribed_active_endpoints_get_deliveries(db: Database) -> None:
    nobody = await ready_client(db)
    _, customer_id = await new_call(db, nobody)
    await customers.update_customer(db, nobody, customer_id, CustomerUpdate(name="B"))
    assert await outbox(db, nobody) == []  # no endpoint: nothing written

    client_id = await ready_client(db)
    await subscribe(db, client_id, "opportunity.created")
    await subscribe(db, client_id, "*", active=False)
    await subscribe(db, client_id, "customer.updated", "opportunity.created")
    _, customer_id = await new_call(db, client_id)
    created = await opportunities.create_opportunity(
        db, client_id, OpportunityCreate(customer_id=customer_id, title="Roof")
    )
    rows = await outbox(db, client_id)
    assert [row.type for row in rows] == ["opportunity.created"]
    assert rows[0].data["opportunity"]["id"] == str(created.id)
    async with db.read() as session:
        deliveries = list(
            await session.scalars(
                select(WebhookDelivery).where(WebhookDelivery.event_id == rows[0].id)
            )
        )
    assert len(deliveries) == 2  # the two active endpoints that want it
    assert {d.event_seq for d in deliveries} == {rows[0].seq}


def parse_ics(text: str) -> dict[str, str]:
    """A strict reading of an RFC 5545 calendar holding one VEVENT: CRLF line ends, content
    lines of at most 75 octets, folding undone, components nested; the VEVENT's properties."""
    assert text.endswith("\r\n")
    raw_lines = text[:-2].split("\r\n")
    for line in raw_lines:
        assert len(line.encode()) <= 75, line
        assert "\n" not in line
        assert "\r" not in line
    lines: list[str] = []
    for line in raw_lines:
        if line.startswith(" "):
            lines[-1] += line[1:]
        else:
            lines.append(line)
    stack: list[str] = []
    properties: dict[str, dict[str, str]] = {}
    for line in lines:
        name, _, value = line.partition(":")
        assert value != "" or name in ("BEGIN", "END"), line
        if name == "BEGIN":
            stack.append(value)
            properties.setdefault(value, {})
        elif name == "END":
            assert stack.pop() == value
        else:
            key = name.split(";", 1)[0]
            properties[stack[-1]][key if key != "ATTENDEE" else "ATTENDEE"] = (
                value if key != "ATTENDEE" else line
            )
    assert stack == []
    calendar = properties["VCALENDAR"]
    assert calendar["VERSION"] == "2.0"
    assert calendar["PRODID"]
    event = properties["VEVENT"]
    for required in ("UID", "DTSTAMP", "DTSTART", "DTEND"):
        assert required in event
    for stamp in ("DTSTAMP", "DTSTART", "DTEND"):
        dt.datetime.strptime(event[stamp], "%Y%m%dT%H%M%SZ")
    return event


def test_the_calendar_entry_escapes_and_folds_text() -> None:
    text = events.vevent(
        uid="abc@callagent",
        starts=NOW,
        ends=NOW + dt.timedelta(minutes=30),
        summary="Demo with Zoë; Müller, \\ & Co",
        description='Said: "Friday"\nnext line ' + "ü" * 60,
        stamp=NOW,
        attendee_email="zoe@example.org",
        attendee_name='Zoë "Z" Müller',
    )
    event: dict[str, Any] = parse_ics(text)
    assert event["SUMMARY"] == "Demo with Zoë\\; Müller\\, \\\\ & Co"
    assert event["DESCRIPTION"].startswith('Said: "Friday"\\nnext line üü')
    assert event["DESCRIPTION"].endswith("ü")
    assert event["ATTENDEE"] == (
        'ATTENDEE;CN="Zoë Z Müller";ROLE=REQ-PARTICIPANT:mailto:zoe@example.org'
    )


async def test_an_answered_call_is_completed_once_its_analysis_is_written(
    own_db: Database,
) -> None:
    """docs/webhooks.md: ``call.completed`` waits for the post-call analysis and carries it;
    the analysis's callback, customer changes and opportunity come before it, in its order."""
    db = own_db
    client_id = await ready_client(db)
    await subscribe(db, client_id)
    call_id = await finished_call(db, client_id, purpose="Solar panels")
    assert [row.type for row in await outbox(db, client_id)] == [
        "customer.created",
        "call.started",
    ]
    lease = await analysis_jobs.claim(db, "test", START + TALK + START_DELAY, LEASE)
    assert lease is not None
    await call_analysis.apply_analysis(
        db,
        lease,
        analysis(outcome="interested", callback_requested=False),
        START + TALK + START_DELAY,
    )
    rows = await outbox(db, client_id)
    assert [row.type for row in rows] == [
        "customer.created",
        "call.started",
        "customer.updated",
        "opportunity.created",
        "call.completed",
    ]
    assert {row.ordering_key for row in rows} == {f"call:{call_id}"}
    completed = rows[-1].data
    assert completed["analysed"] is True
    assert completed["outcome"] == "interested"
    assert completed["summary"] == analysis().summary
    assert completed["analysis"]["applied"]["outcome"] == "interested"
    assert rows[3].data["call_id"] == str(call_id)


async def test_a_browser_phone_call_raises_no_event(own_db: Database) -> None:
    """docs/webhooks.md: the client's own person trying the agent is no business for a CRM -
    neither the call, nor its "Browser test" customer, nor what the analysis makes of it."""
    db = own_db
    client_id = await ready_client(db)
    await subscribe(db, client_id)
    await finished_browser_call(db, client_id)
    lease = await analysis_jobs.claim(db, "test", START + TALK + START_DELAY, LEASE)
    assert lease is not None
    await call_analysis.apply_analysis(
        db,
        lease,
        analysis(outcome="converted", bought=True, callback_requested=False),
        START + TALK + START_DELAY,
    )
    assert [row.type for row in await outbox(db, client_id)] == []
    # The client's real calls are announced as before.
    await finished_call(db, client_id)
    assert [row.type for row in await outbox(db, client_id)] == [
        "customer.created",
        "call.started",
    ]


async def test_an_analysis_that_fails_still_completes_the_call(own_db: Database) -> None:
    db = own_db
    client_id = await ready_client(db)
    await subscribe(db, client_id, "call.completed")
    call_id = await finished_call(db, client_id)
    lease = await analysis_jobs.claim(db, "test", START + TALK + START_DELAY, LEASE)
    assert lease is not None
    await analysis_jobs.fail(db, lease, "the model's answer stayed invalid", START + TALK)
    rows = await outbox(db, client_id)
    assert [(row.type, row.data["analysed"]) for row in rows] == [("call.completed", False)]
    assert rows[0].data["call"]["id"] == str(call_id)


async def test_customer_creation_and_imports_raise_their_events(db: Database) -> None:
    """docs/webhooks.md: a customer made by the API, an import or a call is a
    ``customer.created``; an import's changes are ``customer.updated`` and, when it puts a
    number on the list, ``do_not_call.added`` - in the import's transaction (a dry run: none)."""
    client_id = await ready_client(db)
    await subscribe(db, client_id)
    plain = await customers.create_customer(db, client_id, CustomerCreate(phone_number=number()))
    barred = await customers.create_customer(
        db, client_id, CustomerCreate(phone_number=number(), name="Bo", do_not_call=True)
    )
    rows = await outbox(db, client_id)
    assert [(row.type, row.ordering_key) for row in rows] == [
        ("customer.created", f"customer:{plain.id}"),
        ("customer.created", f"customer:{barred.id}"),
        ("do_not_call.added", f"customer:{barred.id}"),
    ]
    assert rows[0].data["source"] == "api"
    assert rows[0].data["call_id"] is None
    assert rows[1].data["customer"]["name"] == "Bo"
    assert rows[2].data["customer"]["do_not_call"] is True

    fresh, renamed, unchanged = number(), number(), number()
    renamed_id = (
        await customers.create_customer(db, client_id, CustomerCreate(phone_number=renamed))
    ).id
    await customers.create_customer(db, client_id, CustomerCreate(phone_number=unchanged))
    seen = len(await outbox(db, client_id))
    csv = (
        "phone_number,name,do_not_call\n"
        f"{fresh},Cy,\n"
        f"{renamed},Di,true\n"
        f"{unchanged},,\n"
        f"{plain.phone_number},Al,\n"
    )
    dry = await customers.import_customers(db, client_id, csv, dry_run=True)
    assert (dry.created, dry.updated) == (1, 3)
    assert len(await outbox(db, client_id)) == seen  # a dry run writes nothing
    await customers.import_customers(db, client_id, csv)
    rows = (await outbox(db, client_id))[seen:]
    assert [row.type for row in rows] == [
        "customer.created",
        "do_not_call.added",
        "customer.updated",
        "customer.updated",
    ]
    assert rows[0].data["customer"]["phone_number"] == fresh
    assert rows[0].data["source"] == "import"
    assert {row.ordering_key for row in rows[1:3]} == {f"customer:{renamed_id}"}
    assert rows[2].data["changed"] == ["name", "do_not_call"]
    assert rows[3].data["customer"]["id"] == str(plain.id)
    assert rows[3].data["changed"] == ["name"]


async def test_an_inbound_caller_not_on_file_is_created_then_the_call_started(
    db: Database,
) -> None:
    did = number()
    client_id = await ready_client(db, [did])
    await subscribe(db, client_id)
    call_id = uuid.uuid4()
    caller = number()
    for _ in range(2):  # the second call from the number: only started
        taken = await telephony_store.open_inbound_call(
            db, call_id=call_id, did=did, caller=caller, channel="c", now=NOW
        )
        assert taken is not None
        call_id = uuid.uuid4()
    rows = await outbox(db, client_id)
    assert [row.type for row in rows] == ["customer.created", "call.started", "call.started"]
    assert rows[0].ordering_key == rows[1].ordering_key  # the first call's, in its order
    assert rows[0].data["source"] == "call"
    assert rows[1].data["call"]["call_type"] == "inbound"


async def test_a_crm_outcome_after_the_analysis_is_a_call_updated(own_db: Database) -> None:
    """docs/webhooks.md "call.updated": once ``call.completed`` went out, a CRM's later outcome
    is announced as a change of the call; before the analysis ran, the analysis's
    ``call.completed`` carries it and nothing else is sent."""
    db = own_db
    client_id = await ready_client(db)
    await subscribe(db, client_id, "call.completed", "call.updated")
    analysed = await finished_call(db, client_id)
    reported_first = await finished_call(db, client_id)
    at = START + TALK + START_DELAY
    lease = await analysis_jobs.claim(db, "test", at, LEASE)
    assert lease is not None
    assert lease.call_id == analysed
    await call_analysis.apply_analysis(db, lease, analysis(outcome=CallOutcome.INTERESTED), at)
    await calls.record_outcome(
        db,
        client_id,
        CallOutcomeReport(
            call_id=analysed,
            outcome=CallOutcome.CONVERTED,
            conversation_notes="Signed on the phone.",
        ),
        at,
    )
    # The other call's report comes while its analysis is still queued.
    await calls.record_outcome(
        db,
        client_id,
        CallOutcomeReport(call_id=reported_first, outcome=CallOutcome.NOT_INTERESTED),
        at,
    )
    lease = await analysis_jobs.claim(db, "test", at, LEASE)
    assert lease is not None
    assert lease.call_id == reported_first
    await call_analysis.apply_analysis(db, lease, analysis(outcome=CallOutcome.INTERESTED), at)
    rows = await outbox(db, client_id)
    assert [(row.type, row.ordering_key) for row in rows] == [
        ("call.completed", f"call:{analysed}"),
        ("call.updated", f"call:{analysed}"),
        ("call.completed", f"call:{reported_first}"),
    ]
    updated = rows[1].data
    assert (updated["previous_outcome"], updated["outcome"]) == ("interested", "converted")
    assert updated["call"]["outcome"] == "converted"
    assert updated["summary"] == "Signed on the phone."
    assert updated["changed"][:1] == ["outcome"]
    assert "conversation_notes" in updated["changed"]
    assert updated["source"] == "call-outcome"
    assert rows[2].data["outcome"] == "not_interested"  # the CRM's report, live wins


async def test_without_analysis_an_answered_call_is_completed_at_hang_up(
    database_url: str,
) -> None:
    """``analysis.enabled = false`` and no other node analysing: no job waits, so the call is
    complete at hang-up with what is known (docs/webhooks.md); a CRM outcome then is a
    ``call.updated``, and call-outcome ending a live call completes it at once."""
    db = Database(database_url, analyse_calls=False)
    try:
        client_id = await ready_client(db)
        await subscribe(db, client_id, "call.started", "call.completed", "call.updated")
        ended = await finished_call(db, client_id)
        assert await analysis_jobs.job_for_call(db, client_id, ended) is None
        rows = await outbox(db, client_id)
        assert [row.type for row in rows] == ["call.started", "call.completed"]
        completed = rows[1].data
        assert completed["call"]["status"] == "completed"
        assert (completed["outcome"], completed["summary"]) == (None, None)
        assert (completed["analysed"], completed["analysis"]) == (False, None)
        await calls.record_outcome(
            db,
            client_id,
            CallOutcomeReport(call_id=ended, outcome=CallOutcome.INTERESTED),
            START + TALK,
        )
        live, _ = await new_call(db, client_id)
        await call_state.apply_call_update(
            db, client_id, live, CallUpdate(status=CallStatus.IN_PROGRESS), NOW
        )
        await calls.record_outcome(
            db,
            client_id,
            CallOutcomeReport(call_id=live, outcome=CallOutcome.CALLBACK_REQUESTED),
            NOW,
        )
        assert await analysis_jobs.job_for_call(db, client_id, live) is None
        rows = (await outbox(db, client_id))[2:]
        assert [(row.type, row.data["call"]["outcome"]) for row in rows] == [
            ("call.updated", "interested"),
            ("call.started", None),
            ("call.completed", "callback_requested"),
        ]
        assert rows[0].data["previous_outcome"] is None
    finally:
        await db.dispose()
