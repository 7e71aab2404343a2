"""The scheduler dials due rows: against the AMI simulator (a copy of real Asterisk), after a
crash of the node that held a row, and with dial-time rules that stop a row (docs/scheduler.md)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from callagent.scheduler.rules import DialPolicy
from callagent.scheduler.service import Scheduler, SchedulerParams
from callagent.store.db import Database
from callagent.store.models import CallSession, ScheduledCallback
from callagent.store.schemas import AgentUpdate, CallbackCreate, CustomerCreate, StartCall
from callagent.store.services import agents, callbacks, calls, customers, dial_queue
from callagent.store.services.call_state import CallUpdate, apply_call_update
from callagent.store.states import CallbackStatus, CallOutcome, CallStatus
from callagent.telephony.admission import CallAdmission
from callagent.telephony.asterisk.placer import AmiCallPlacer
from callagent.telephony.call_journal import CallJournals
from callagent.telephony.outbound import OutboundCallRequest, PlacementResult

from fakes.ami_rig import NUMBER, rig
from fakes.ami_simulator import Callee
from fakes.routing_rig import CALLER, make_tenant, routing_rig
from helpers.audio import voice
from helpers.store_data import number, ready_client

pytestmark = pytest.mark.timeout(60)

WEDNESDAY = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)  # 11:00 in Berlin
AGENT_NUMBER = "+4930123456"


@dataclass
class Clock:
    now: dt.datetime = WEDNESDAY

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class LedgerPlacer:
    """A CallPlacer that, like Asterisk with ChannelId, makes at most one channel per call id:
    a second request for a call id it has seen is refused and makes no call."""

    dialled: dict[uuid.UUID, OutboundCallRequest] = field(default_factory=dict)
    refused: list[uuid.UUID] = field(default_factory=list)

    async def place_call(self, request: OutboundCallRequest) -> PlacementResult:
        if request.call_session_id in self.dialled:
            self.refused.append(request.call_session_id)
            return PlacementResult(placed=False, reason="Uniqueid already in use.")
        self.dialled[request.call_session_id] = request
        return PlacementResult(placed=True, telephony_call_id=str(request.call_session_id))


def params(node: str = "node-a", **policy: object) -> SchedulerParams:
    return SchedulerParams(
        node=node,
        lease_s=30.0,
        wait_s=60.0,
        policy=dataclasses.replace(DialPolicy(), **policy),  # type: ignore[arg-type]
    )


async def berlin_client(db: Database, phone: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A client whose agent (08:00-18:00 Berlin, answering AGENT_NUMBER-like numbers) is ready,
    and a Berlin customer; their ids."""
    client_id = await ready_client(db, phone_numbers=[AGENT_NUMBER, "+4930999999"])
    await agents.update_agent(
        db,
        client_id,
        AgentUpdate(
            timezone="Europe/Berlin", working_hours_start="08:00", working_hours_end="18:00"
        ),
    )
    customer = await customers.create_customer(
        db, client_id, CustomerCreate(phone_number=phone, name="Kim")
    )
    return client_id, customer.id


async def due_callback(
    db: Database, client_id: uuid.UUID, customer_id: uuid.UUID, clock: Clock
) -> uuid.UUID:
    """A callback scheduled a minute from ``clock``, which is then moved past it."""
    view = await callbacks.create_callback(
        db,
        client_id,
        CallbackCreate(customer_id=customer_id, scheduled_at=clock.now + dt.timedelta(minutes=1)),
        clock.now,
    )
    clock.now += dt.timedelta(minutes=2)
    return view.id


async def calls_of(db: Database, callback_id: uuid.UUID) -> list[CallSession]:
    async with db.read() as session:
        return list(
            await session.scalars(select(CallSession).where(CallSession.callback_id == callback_id))
        )


async def row(db: Database, callback_id: uuid.UUID) -> ScheduledCallback:
    async with db.read() as session:
        found = await session.get(ScheduledCallback, callback_id)
        assert found is not None
        return found


async def test_a_due_callback_is_dialled_once_through_asterisk_with_the_agents_number(
    own_db: Database,
) -> None:
    clock = Clock()
    client_id, customer_id = await berlin_client(own_db, NUMBER)
    callback_id = await due_callback(own_db, client_id, customer_id, clock)
    callee = Callee(ring_s=0.2, utterances=(voice(0.3, 16000),))
    journals = CallJournals(own_db)
    async with rig(callees={NUMBER: callee}) as r:
        r.client.subscribe(journals.on_call_event)
        await r.client.wait_connected(2)
        scheduler = Scheduler(own_db, AmiCallPlacer(r.dialer), params(), clock=clock)
        first = await scheduler.run_pass()
        second = await scheduler.run_pass()  # the row is being dialled: nothing more to do
        assert (len(first.dialled), len(second.dialled)) == (1, 0)
        (call_id,) = first.dialled
        await r.wait_for(lambda: call_id in r.agent.calls)
        channels = [c for c in r.sim.channels.values() if c.call_id == call_id]
        (channel,) = channels  # one channel for the row: dialled once
        # The agent presents its own number (the first of its PhoneNumbers), not a shared id.
        assert channel.originate_caller_id == AGENT_NUMBER
        await r.wait_for(lambda: channel.ended.is_set())
        await journals.close()
    (call,) = await calls_of(own_db, callback_id)
    assert call.id == call_id
    assert call.phone_number == NUMBER
    assert call.status in (CallStatus.IN_PROGRESS, CallStatus.COMPLETED)
    assert call.started_at is not None  # answered: the AMI events reached the store
    callback = await row(own_db, callback_id)
    assert (callback.status, callback.attempts, callback.call_id) == (
        CallbackStatus.IN_PROGRESS,  # until the call's outcome settles it
        1,
        call_id,
    )
    assert callback.locked_by == ""  # placed and recorded: the lease is given back


async def test_a_crash_loses_no_row_and_dials_none_twice(own_db: Database) -> None:
    clock = Clock()
    client_id, first_customer = await berlin_client(own_db, number())
    second_customer = (
        await customers.create_customer(own_db, client_id, CustomerCreate(phone_number=number()))
    ).id
    third_customer = (
        await customers.create_customer(own_db, client_id, CustomerCreate(phone_number=number()))
    ).id
    rows = [
        await due_callback(own_db, client_id, customer, clock)
        for customer in (first_customer, second_customer, third_customer)
    ]
    placer = LedgerPlacer()
    dead = params("node-dead")
    lease = dt.timedelta(seconds=dead.lease_s)
    grace = dt.timedelta(seconds=dead.live_grace_s)
    wait = dt.timedelta(seconds=dead.wait_s)

    def allow(_facts: object) -> dial_queue.Verdict:
        return dial_queue.Verdict("dial")

    # The node that dies: it claims all three, then dies at three different points.
    claimed = await dial_queue.claim_due(own_db, "node-dead", clock.now, lease=lease, limit=10)
    assert {c.callback_id for c in claimed} == set(rows)
    by_id = {c.callback_id: c for c in claimed}
    # Row 1: died right after the claim. Row 2: died after writing its call, before dialling.
    taken = await dial_queue.take(
        own_db, by_id[rows[1]], "node-dead", allow, clock.now, live_grace=grace, wait=wait
    )
    assert taken.order is not None
    written_call = taken.order.call_id
    # Row 3: died after dialling and recording the placement, before giving the lease back.
    taken = await dial_queue.take(
        own_db, by_id[rows[2]], "node-dead", allow, clock.now, live_grace=grace, wait=wait
    )
    assert taken.order is not None
    dialled_call = taken.order.call_id
    await placer.place_call(
        OutboundCallRequest(
            call_session_id=dialled_call,
            client_id=client_id,
            agent_id=taken.order.agent_id,
            customer_id=taken.order.customer_id,
            phone_number=taken.order.phone_number,
            call_type="scheduled",
        )
    )
    await calls.record_placement(
        own_db, client_id, dialled_call, placed=True, reason="", telephony_call_id="", now=clock.now
    )

    # A new node - or the same one restarted - while the leases hold: nothing is taken.
    survivor = Scheduler(own_db, placer, params("node-new"), clock=clock)
    assert (await survivor.run_pass()).claimed == 0
    # Once they ran out, each row is finished exactly once.
    clock.now += lease + dt.timedelta(seconds=1)
    report = await survivor.run_pass()
    assert report.verdicts == {"dial": 1, "redial": 1, "released": 1}
    assert written_call in report.dialled  # the call written before the crash, same id
    await survivor.run_pass()
    # Every row was dialled, each once: one call per row, and no call id asked for twice.
    dialled_per_row = {r: [c.id for c in await calls_of(own_db, r)] for r in rows}
    assert all(len(ids) == 1 for ids in dialled_per_row.values()), dialled_per_row
    assert set(placer.dialled) == {ids[0] for ids in dialled_per_row.values()}
    assert placer.refused == []
    for callback_id in rows:
        settled = await row(own_db, callback_id)
        assert settled.locked_by == ""
        assert settled.attempts == 1


async def test_rules_that_stop_a_row_say_why_through_the_callback(own_db: Database) -> None:
    clock = Clock()
    client_id, customer_id = await berlin_client(own_db, number())
    placer = LedgerPlacer()
    scheduler = Scheduler(own_db, placer, params(), clock=clock)

    # Do-not-call set after the row was leased for dialling (PUT do-not-call cancels only rows
    # still scheduled): the rule closes it at dial time, and nothing is dialled.
    leased_id = await due_callback(own_db, client_id, customer_id, clock)
    (claimed,) = await dial_queue.claim_due(
        own_db, "node-a", clock.now, lease=dt.timedelta(seconds=30), limit=5
    )
    await customers.mark_do_not_call(own_db, client_id, customer_id, True)
    verdict, call_id = await scheduler.dial(claimed)
    assert (verdict, call_id) == ("do_not_call", None)
    view = await callbacks.get_callback(own_db, client_id, leased_id, clock.now)
    assert view.status == CallbackStatus.CANCELLED
    assert view.closed_reason.startswith("do_not_call:")
    assert placer.dialled == {}

    # Due at 20:30 Berlin time: moved to 08:00 the next morning, not dialled.
    other = (
        await customers.create_customer(own_db, client_id, CustomerCreate(phone_number=number()))
    ).id
    clock.now = dt.datetime(2026, 3, 4, 19, 28, tzinfo=dt.UTC)
    late_id = await due_callback(own_db, client_id, other, clock)
    report = await scheduler.run_pass()
    assert report.verdicts == {"outside_calling_window": 1}
    view = await callbacks.get_callback(own_db, client_id, late_id, clock.now)
    assert view.status == CallbackStatus.SCHEDULED
    assert view.scheduled_at == dt.datetime(2026, 3, 5, 7, 0, tzinfo=dt.UTC)
    assert view.closed_reason.startswith("moved: outside_calling_window")
    # …and dialled then.
    clock.now = view.scheduled_at
    assert len((await scheduler.run_pass()).dialled) == 1

    # A premium-rate number is closed for good.
    premium = (
        await customers.create_customer(
            own_db, client_id, CustomerCreate(phone_number="+19005551234")
        )
    ).id
    premium_id = await due_callback(own_db, client_id, premium, clock)
    await scheduler.run_pass()
    view = await callbacks.get_callback(own_db, client_id, premium_id, clock.now)
    assert view.status == CallbackStatus.FAILED
    assert view.closed_reason.startswith("blocked_number_type:")
    assert len(placer.dialled) == 1


async def test_busy_and_unanswered_calls_come_back_as_retries(own_db: Database) -> None:
    clock = Clock()
    phone = number()
    client_id, _ = await berlin_client(own_db, phone)
    prepared = await calls.prepare_call(own_db, client_id, StartCall(phone_number=phone), clock.now)
    await calls.record_placement(
        own_db, client_id, prepared.call_id, placed=True, reason="", telephony_call_id="",
        now=clock.now,
    )  # fmt: skip
    await apply_call_update(
        own_db,
        client_id,
        prepared.call_id,
        CallUpdate(status=CallStatus.FAILED, outcome=CallOutcome.BUSY),
        clock.now,
    )
    placer = LedgerPlacer()
    scheduler = Scheduler(own_db, placer, params(), clock=clock)
    first = await scheduler.run_pass()
    assert first.retries == 1
    async with own_db.read() as session:
        (retry,) = list(
            await session.scalars(
                select(ScheduledCallback).where(
                    ScheduledCallback.retry_of_call_id == prepared.call_id
                )
            )
        )
    assert retry.kind == "retry"
    assert retry.scheduled_at == clock.now + dt.timedelta(minutes=30)
    assert retry.max_attempts == 2  # three calls in all, the first one included
    # A second node (or pass) makes no second retry of the same call.
    other = Scheduler(own_db, placer, params("node-b"), clock=clock)
    assert (await other.run_pass()).retries == 0
    clock.now = retry.scheduled_at
    report = await scheduler.run_pass()
    assert len(report.dialled) == 1
    assert placer.dialled[report.dialled[0]].phone_number == phone


async def test_a_full_node_dials_a_due_row_only_once_its_inbound_call_ended(
    own_db: Database, tmp_path: Path
) -> None:
    """docs/scheduler.md "Capacity": the scheduler takes its slot from the node's admission
    (routing.max_active_calls = 1 here), shared with the inbound call the call runner admitted."""
    did, callee_number = number(), number()
    callee = Callee(ring_s=0.1, utterances=(voice(0.3, 16000),), final_wait_s=0.5)
    async with routing_rig(
        own_db.url, tmp_path / "recordings", dids=[did], capacity=1, callees={callee_number: callee}
    ) as rig:
        assert rig.admission is not None
        admission = rig.admission
        tenant = await make_tenant(rig.db, "Alma", "Alpha Roofing", did)
        customer = await customers.create_customer(
            rig.db, tenant.client_id, CustomerCreate(phone_number=callee_number, name="Kim")
        )
        clock = Clock(now=dt.datetime.now(dt.UTC))
        callback_id = await due_callback(rig.db, tenant.client_id, customer.id, clock)
        scheduler = Scheduler(
            rig.db, rig.placer, params(check_window=False), clock=clock, admission=admission
        )
        # An inbound caller stays on the line, silent, until the test hangs up for them.
        inbound = asyncio.create_task(
            rig.sim.inbound_call(did, CALLER, (), final_wait_s=3600.0, max_wait_for_agent_s=3600.0)
        )
        await rig.wait_for(lambda: admission.active == 1)

        # Full: nothing is leased or dialled, and the row stays due as it was.
        for _ in range(3):
            report = await scheduler.run_pass()
            assert report.full
            assert (report.claimed, report.dialled) == (0, [])
        waiting = await row(rig.db, callback_id)
        assert (waiting.status, waiting.attempts, waiting.locked_by) == (
            CallbackStatus.SCHEDULED,
            0,
            "",
        )
        assert await calls_of(rig.db, callback_id) == []
        assert not [c for c in rig.sim.channels.values() if c.originate_caller_id]  # no Originate

        # The call ends: the next pass dials the row, once.
        channel = next(c for c in rig.sim.channels.values() if c.caller_num == CALLER)
        rig.sim.hang_up(channel, 16)
        await inbound
        await rig.wait_for(lambda: admission.active == 0)
        first = await scheduler.run_pass()
        second = await scheduler.run_pass()  # the slot is the placed call's now
        assert (len(first.dialled), second.dialled) == (1, [])
        (call_id,) = first.dialled
        # The call connects into the slot held for it: admitted, not turned away as busy.
        await rig.wait_for(lambda: call_id in {r.call_id for r in rig.reports})
        assert len([c for c in rig.sim.channels.values() if c.call_id == call_id]) == 1
        assert admission.refused == {}
        assert "busy" not in " ".join(rig.tts.spoken).lower()
        (call,) = await calls_of(rig.db, callback_id)
        assert call.id == call_id
        assert (await row(rig.db, callback_id)).attempts == 1


async def test_a_row_leased_before_the_node_filled_up_waits_for_any_node(
    own_db: Database,
) -> None:
    """A row claimed while there was room, dialled after an inbound call took the last slot:
    given back untouched - not failed, no attempt counted - and another node may take it."""
    clock = Clock()
    client_id, customer_id = await berlin_client(own_db, number())
    callback_id = await due_callback(own_db, client_id, customer_id, clock)
    admission = CallAdmission(1)
    placer = LedgerPlacer()
    scheduler = Scheduler(own_db, placer, params(), clock=clock, admission=admission)
    (claimed,) = await dial_queue.claim_due(
        own_db, "node-a", clock.now, lease=dt.timedelta(seconds=30), limit=5
    )
    assert admission.admit(uuid.uuid4(), "audiosocket")  # an inbound call takes the slot
    assert await scheduler.dial(claimed) == ("at_capacity", None)
    given_back = await row(own_db, callback_id)
    assert (given_back.status, given_back.attempts, given_back.locked_by) == (
        CallbackStatus.SCHEDULED,
        0,
        "",
    )
    assert placer.dialled == {}
    assert admission.refused == {}  # a row that waits is no refused call
    assert admission.reserved == 0
    other = Scheduler(own_db, placer, params("node-b"), clock=clock, admission=CallAdmission(1))
    report = await other.run_pass()
    assert len(report.dialled) == 1
    assert (await row(own_db, callback_id)).attempts == 1
