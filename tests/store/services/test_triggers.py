"""Triggered calls reach the phone: a web-form submission's due row is dialled by the scheduler
through the AMI simulator (a copy of real Asterisk), with the trigger's purpose and the form's
fields on the call; a triggered row meets the dial-time rules when it is dialled
(docs/api.md "Web-form trigger", docs/scheduler.md). SQLite and PostgreSQL, each on a database
of its own (the scheduler's claim spans every client)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from sqlalchemy import select

from callagent.scheduler.rules import DialPolicy
from callagent.scheduler.service import Scheduler, SchedulerParams
from callagent.store.db import Database
from callagent.store.models import CallSession, CustomerProfile, ScheduledCallback
from callagent.store.schemas import AgentUpdate, CustomerCreate
from callagent.store.services import agents, customers, triggers
from callagent.store.states import CallbackStatus, CallStatus
from callagent.telephony.asterisk.placer import AmiCallPlacer
from callagent.telephony.call_journal import CallJournals

from fakes.ami_rig import NUMBER, rig
from fakes.ami_simulator import Callee
from helpers.audio import voice
from helpers.store_data import number, ready_client

pytestmark = pytest.mark.timeout(60)

WEDNESDAY = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)  # 11:00 in Berlin


class Clock:
    def __init__(self) -> None:
        self.now = WEDNESDAY

    def __call__(self) -> dt.datetime:
        return self.now


async def berlin_agent(db: Database) -> uuid.UUID:
    client_id = await ready_client(db, phone_numbers=["+4930123456"])
    await agents.update_agent(
        db,
        client_id,
        AgentUpdate(
            timezone="Europe/Berlin", working_hours_start="08:00", working_hours_end="18:00"
        ),
    )
    return client_id


async def submit(
    db: Database, secret: str, token: str, body: dict[str, object], now: dt.datetime
) -> triggers.WebFormAccepted:
    raw = json.dumps(body).encode()
    timestamp = str(int(now.timestamp()))
    return await triggers.submit_web_form(
        db,
        token,
        raw,
        timestamp=timestamp,
        signature=triggers.sign(secret, timestamp, raw),
        now=now,
    )


async def test_a_web_form_call_is_dialled_by_the_scheduler_through_asterisk(
    own_db: Database,
) -> None:
    clock = Clock()
    client_id = await berlin_agent(own_db)
    trigger = await triggers.setup_web_form(own_db, client_id, "appointment_booking", clock.now)
    accepted = await submit(
        own_db,
        trigger.secret,
        trigger.token,
        {"phone_number": NUMBER, "name": "Kim", "fields": {"roof": "south"}},
        clock.now,
    )
    assert accepted.scheduled_at == clock.now
    callee = Callee(ring_s=0.2, utterances=(voice(0.3, 16000),))
    journals = CallJournals(own_db)
    async with rig(callees={NUMBER: callee}) as r:
        r.client.subscribe(journals.on_call_event)
        await r.client.wait_connected(2)
        scheduler = Scheduler(
            own_db, AmiCallPlacer(r.dialer), SchedulerParams(node="node-a"), clock=clock
        )
        report = await scheduler.run_pass()
        (call_id,) = report.dialled
        await r.wait_for(lambda: call_id in r.agent.calls)
        (channel,) = [c for c in r.sim.channels.values() if c.call_id == call_id]
        await r.wait_for(lambda: channel.ended.is_set())
        await journals.close()
    async with own_db.read() as session:
        call = await session.get(CallSession, call_id)
        row = await session.scalar(
            select(ScheduledCallback).where(ScheduledCallback.call_id == call_id)
        )
    assert call is not None
    assert row is not None
    assert call.phone_number == NUMBER
    assert call.purpose == "appointment_booking"
    assert call.context["source"] == "web_form"
    assert call.context["fields"] == {"roof": "south"}
    assert call.started_at is not None  # answered: Asterisk's events reached the store
    assert call.status in (CallStatus.IN_PROGRESS, CallStatus.COMPLETED)
    assert (row.kind, row.attempts) == ("scheduled", 1)


async def test_a_triggered_row_meets_the_dial_time_rules_when_it_is_dialled(
    own_db: Database,
) -> None:
    clock = Clock()
    client_id = await berlin_agent(own_db)
    phone = number()
    contact = await customers.create_customer(
        own_db, client_id, CustomerCreate(phone_number=phone, name="Kim")
    )
    # Scheduled for 22:30 Berlin time: outside the legal window (08:00-21:00), moved on.
    late = await triggers.schedule_call(
        own_db,
        client_id,
        customer_id=contact.id,
        purpose="follow_up",
        context={"note": "n"},
        at=dt.datetime(2026, 3, 4, 21, 30, tzinfo=dt.UTC),
        now=clock.now,
    )
    trigger = await triggers.setup_web_form(own_db, client_id, "sales_outreach", clock.now)
    other = number()
    await submit(own_db, trigger.secret, trigger.token, {"phone_number": other}, clock.now)
    # The web-form contact asks not to be called before the scheduler gets to the row.
    async with own_db.read() as session:
        other_id = await session.scalar(
            select(CustomerProfile.id).where(CustomerProfile.phone_number == other)
        )
    assert other_id is not None
    await customers.mark_do_not_call(own_db, client_id, other_id, True)

    class Refuse:
        async def place_call(self, request: object) -> object:
            raise AssertionError("nothing may be dialled")

    clock.now = dt.datetime(2026, 3, 4, 21, 31, tzinfo=dt.UTC)
    scheduler = Scheduler(
        own_db,
        Refuse(),  # type: ignore[arg-type]
        SchedulerParams(node="node-a", policy=DialPolicy()),
        clock=clock,
    )
    report = await scheduler.run_pass()
    assert report.dialled == []
    async with own_db.read() as session:
        rows = {
            row.customer_id: row
            for row in await session.scalars(
                select(ScheduledCallback).where(ScheduledCallback.client_id == client_id)
            )
        }
    moved = rows[contact.id]
    assert moved.id == late.scheduled_callback_id
    assert moved.status == CallbackStatus.SCHEDULED
    assert moved.scheduled_at > clock.now  # the next open minute in Berlin
    assert "outside_calling_window" in moved.closed_reason
    # Putting them on the list cancelled their open rows at once; nothing was dialled.
    assert rows[other_id].status == CallbackStatus.CANCELLED
