"""A campaign dialled by the scheduler through the AMI simulator (a copy of real Asterisk):
staggered rows, the campaign's max concurrent calls, pause and resume, a do-not-call at dial
time, the retry backoff and the progress counts (docs/campaigns.md). SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from callagent.scheduler.rules import DialPolicy
from callagent.scheduler.service import Scheduler, SchedulerParams
from callagent.store.db import Database
from callagent.store.models import CallSession, ScheduledCallback, WebhookEvent
from callagent.store.schemas import AgentUpdate, CustomerCreate
from callagent.store.services import agents, campaigns, customers, dial_queue, webhooks
from callagent.store.services.call_state import CallUpdate, apply_call_update
from callagent.store.services.campaigns import CampaignCreate, ContactsAdd, Pacing, RetryPolicy
from callagent.store.services.webhooks import WebhookEndpointCreate
from callagent.store.states import CallbackStatus, CallOutcome, CallStatus
from callagent.telephony.asterisk.placer import AmiCallPlacer
from callagent.telephony.call_journal import CallJournals
from callagent.telephony.outbound import OutboundCallRequest, PlacementResult

from fakes.ami_rig import rig
from fakes.ami_simulator import Callee
from helpers.store_data import number, ready_client

WEDNESDAY = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)  # 11:00 in Berlin


@dataclass
class Clock:
    now: dt.datetime = WEDNESDAY

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class LedgerPlacer:
    """A CallPlacer that, like Asterisk with ChannelId, makes one channel per call id."""

    dialled: dict[uuid.UUID, OutboundCallRequest] = field(default_factory=dict)

    async def place_call(self, request: OutboundCallRequest) -> PlacementResult:
        if request.call_session_id in self.dialled:
            return PlacementResult(placed=False, reason="Uniqueid already in use.")
        self.dialled[request.call_session_id] = request
        return PlacementResult(placed=True, telephony_call_id=str(request.call_session_id))


async def berlin_client(db: Database, phone: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A ready client whose agent works 08:00-18:00 Berlin, and a Berlin customer."""
    client_id = await ready_client(db, phone_numbers=[number()])
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


pytestmark = pytest.mark.timeout(90)

STAGGER = dt.timedelta(minutes=2)


def params(node: str = "node-a") -> SchedulerParams:
    # Caps above the campaign's own max_concurrent (2), so the campaign's is the one that
    # binds; a long grace so a ringing call counts as live on the test's clock.
    return SchedulerParams(
        node=node,
        wait_s=60.0,
        live_grace_s=86_400.0,
        policy=dataclasses.replace(DialPolicy(), max_calls_per_agent=10, max_calls_per_client=10),
    )


async def campaign_rows(db: Database, campaign_id: uuid.UUID) -> list[ScheduledCallback]:
    async with db.read() as session:
        return list(
            await session.scalars(
                select(ScheduledCallback)
                .where(ScheduledCallback.kind == "campaign")
                .order_by(ScheduledCallback.scheduled_at)
            )
        )


async def call(db: Database, call_id: uuid.UUID) -> CallSession:
    async with db.read() as session:
        found = await session.get(CallSession, call_id)
        assert found is not None
        return found


async def end(
    db: Database, client_id: uuid.UUID, call_id: uuid.UUID, outcome: CallOutcome, now: dt.datetime
) -> None:
    status = CallStatus.FAILED if outcome == CallOutcome.BUSY else CallStatus.COMPLETED
    await apply_call_update(db, client_id, call_id, CallUpdate(status=status, outcome=outcome), now)


async def test_a_campaign_is_dialled_staggered_capped_paused_resumed_and_counted(
    own_db: Database,
) -> None:
    clock = Clock()
    client_id, first = await berlin_client(own_db, number())
    others = [
        (
            await customers.create_customer(
                own_db, client_id, CustomerCreate(phone_number=number(), name=f"C{i}")
            )
        ).id
        for i in range(4)
    ]
    people = [first, *others]  # five contacts, in this calling order
    await webhooks.create_endpoint(
        own_db,
        client_id,
        WebhookEndpointCreate(url="http://127.0.0.1:9/hook", event_types=["campaign.progress"]),
    )
    created = await campaigns.create_campaign(
        own_db,
        client_id,
        CampaignCreate(
            name="Spring renewals",
            call_purpose="renewal_reminder: your home insurance",
            script_override="Mention the 10 % loyalty discount before anything else.",
            pacing=Pacing(stagger_minutes=2, max_concurrent=2),
            retry=RetryPolicy(max_attempts=3, busy_minutes=20),
        ),
        clock.now,
    )
    added = await campaigns.add_contacts(
        own_db, client_id, created.id, ContactsAdd(customer_ids=people), clock.now
    )
    assert (added.added, added.already) == (5, 0)
    started = await campaigns.start_campaign(own_db, client_id, created.id, clock.now)
    assert started.status == "running"
    rows = await campaign_rows(own_db, created.id)
    # Staggered: one row per contact, two minutes apart, in the order they were added.
    assert [r.scheduled_at - clock.now for r in rows] == [STAGGER * i for i in range(5)]
    assert [r.customer_id for r in rows] == people

    # Every callee rings for longer than the test looks: each call stays live.
    callee = Callee(ring_s=30.0)
    journals = CallJournals(own_db)
    async with rig(callees=lambda _number: callee) as r:  # type: ignore[arg-type]
        r.client.subscribe(journals.on_call_event)
        await r.client.wait_connected(2)
        scheduler = Scheduler(own_db, AmiCallPlacer(r.dialer), params(), clock=clock)
        first_pass = await scheduler.run_pass()
        assert len(first_pass.dialled) == 1  # only the first contact is due
        clock.now += STAGGER
        second_pass = await scheduler.run_pass()
        assert len(second_pass.dialled) == 1
        clock.now += STAGGER
        third_pass = await scheduler.run_pass()
        # Two calls of the campaign are live: the third contact waits, like at any cap.
        assert third_pass.dialled == []
        assert third_pass.verdicts == {"campaign_concurrency": 1}
        dialled = [*first_pass.dialled, *second_pass.dialled]
        await r.wait_for(lambda: sum(c.call_id in dialled for c in r.sim.channels.values()) == 2)
        placed = await call(own_db, dialled[0])
        # The campaign's purpose and script reach the call (its context message).
        assert placed.purpose == "renewal_reminder: your home insurance"
        assert placed.context["script"].startswith("Mention the 10 % loyalty discount")
        assert placed.context["campaign_id"] == str(created.id)
        progress = await campaigns.get_progress(own_db, client_id, created.id)
        assert (progress.dialling, progress.pending) == (2, 3)

        # A node leases the next due row; then the campaign is paused and the fourth customer
        # asks not to be called; the first call ends answered, the second busy.
        clock.now += dt.timedelta(minutes=5)
        leased = await dial_queue.claim_due(
            own_db, "node-b", clock.now, lease=dt.timedelta(seconds=30), limit=1
        )
        assert len(leased) == 1
        paused = await campaigns.pause_campaign(own_db, client_id, created.id, clock.now)
        assert paused.status == "paused"
        await end(own_db, client_id, dialled[0], CallOutcome.ANSWERED, clock.now)
        await end(own_db, client_id, dialled[1], CallOutcome.BUSY, clock.now)
        # The leased row meets the pause at dial time: closed, nothing dialled.
        node_b = Scheduler(own_db, AmiCallPlacer(r.dialer), params("node-b"), clock=clock)
        verdict, call_id = await node_b.dial(leased[0])
        assert (verdict, call_id) == ("campaign_paused", None)
        clock.now += dt.timedelta(hours=1)
        assert (await scheduler.run_pass()).dialled == []  # paused: no further dials
        channels_while_paused = len(r.sim.channels)
        progress = await campaigns.get_progress(own_db, client_id, created.id)
        assert (progress.done, progress.answered, progress.pending, progress.dialling) == (
            1,
            1,
            4,  # the busy one waits for its retry with the others
            0,
        )

        # Resumed: the pending contacts get rows again, staggered from now, and the busy one
        # keeps its attempt. The fourth contact is leased when do-not-call is set: the rule
        # suppresses it at dial time.
        await campaigns.resume_campaign(own_db, client_id, created.id, clock.now)
        pending_rows = [
            r for r in await campaign_rows(own_db, created.id) if r.status == "scheduled"
        ]
        assert [r.customer_id for r in pending_rows] == [people[1], *people[2:]]
        assert [r.scheduled_at - clock.now for r in pending_rows] == [STAGGER * i for i in range(4)]
        assert pending_rows[0].max_attempts == 2  # three calls in all, one made already
        clock.now += STAGGER * 3
        due = await dial_queue.claim_due(
            own_db, "node-a", clock.now, lease=dt.timedelta(seconds=30), limit=10
        )
        await customers.mark_do_not_call(own_db, client_id, people[3], True)
        outcomes = [await scheduler.dial(row) for row in due]
        verdicts = sorted(v for v, _ in outcomes)
        assert verdicts == ["campaign_concurrency", "dial", "dial", "do_not_call"]
        resumed_calls = [c for v, c in outcomes if v == "dial" and c is not None]
        await r.wait_for(
            lambda: sum(c.call_id in resumed_calls for c in r.sim.channels.values()) == 2
        )
        assert len(r.sim.channels) == channels_while_paused + 2
        await journals.close()

    # Nothing dialled twice: one call per contact attempt, never two live for a contact.
    async with own_db.read() as session:
        all_calls = list(await session.scalars(select(CallSession)))
    per_customer: dict[uuid.UUID, int] = {}
    for c in all_calls:
        per_customer[c.customer_id] = per_customer.get(c.customer_id, 0) + 1
    assert per_customer[people[0]] == 1
    assert per_customer.get(people[3], 0) == 0  # suppressed before any call
    assert max(per_customer.values()) <= 2
    progress = await campaigns.get_progress(own_db, client_id, created.id)
    assert (progress.suppressed, progress.dialling, progress.done, progress.total) == (1, 2, 1, 5)
    contacts = await campaigns.list_contacts(own_db, client_id, created.id, state="suppressed")
    (suppressed,) = contacts.items
    assert suppressed.customer_id == people[3]
    assert suppressed.reason.startswith("do_not_call")

    # campaign.progress went out on start, pause and resume (state changes).
    async with own_db.read() as session:
        sent = list(
            await session.scalars(
                select(WebhookEvent)
                .where(WebhookEvent.type == "campaign.progress")
                .order_by(WebhookEvent.seq)
            )
        )
    assert [e.data["status"] for e in sent] == ["running", "paused", "running"]
    assert sent[1].data["totals"]["reached"] == 0  # paused before either call ended


async def test_retries_wait_the_campaigns_backoff_and_the_last_contact_completes_it(
    own_db: Database,
) -> None:
    clock = Clock()
    client_id, customer_id = await berlin_client(own_db, number())
    created = await campaigns.create_campaign(
        own_db,
        client_id,
        CampaignCreate(
            name="One",
            call_purpose="follow_up",
            retry=RetryPolicy(max_attempts=2, no_answer_minutes=7),
        ),
        clock.now,
    )
    await campaigns.add_contacts(
        own_db, client_id, created.id, ContactsAdd(customer_ids=[customer_id]), clock.now
    )
    await campaigns.start_campaign(own_db, client_id, created.id, clock.now)
    placer = LedgerPlacer()
    scheduler = Scheduler(own_db, placer, params(), clock=clock)
    (first_call,) = (await scheduler.run_pass()).dialled
    await end(own_db, client_id, first_call, CallOutcome.NO_ANSWER, clock.now)
    (row,) = await campaign_rows(own_db, created.id)
    assert row.status == CallbackStatus.SCHEDULED
    assert row.scheduled_at == clock.now + dt.timedelta(minutes=7)  # the campaign's backoff
    clock.now += dt.timedelta(minutes=6)
    assert (await scheduler.run_pass()).dialled == []
    clock.now += dt.timedelta(minutes=1)
    (second_call,) = (await scheduler.run_pass()).dialled
    await end(own_db, client_id, second_call, CallOutcome.NO_ANSWER, clock.now)
    view = await campaigns.get_campaign(own_db, client_id, created.id)
    # Two attempts, nobody reached: the contact failed, and with it the campaign is done.
    assert (view.progress.failed, view.progress.pending, view.status) == (1, 0, "completed")
    assert len(placer.dialled) == 2


async def test_progress_goes_out_every_ten_finished_contacts_and_at_completion(
    own_db: Database,
) -> None:
    clock = Clock()
    client_id, first = await berlin_client(own_db, number())
    people = [first] + [
        (
            await customers.create_customer(
                own_db, client_id, CustomerCreate(phone_number=number())
            )
        ).id
        for _ in range(10)
    ]
    await webhooks.create_endpoint(
        own_db,
        client_id,
        WebhookEndpointCreate(url="http://127.0.0.1:9/hook", event_types=["campaign.progress"]),
    )
    created = await campaigns.create_campaign(
        own_db,
        client_id,
        CampaignCreate(name="Eleven", pacing=Pacing(stagger_minutes=0, max_concurrent=20)),
        clock.now,
    )
    await campaigns.add_contacts(
        own_db, client_id, created.id, ContactsAdd(customer_ids=people), clock.now
    )
    await campaigns.start_campaign(own_db, client_id, created.id, clock.now)
    scheduler = Scheduler(own_db, LedgerPlacer(), params(), clock=clock)
    dialled = (await scheduler.run_pass()).dialled
    assert len(dialled) == 10  # the node's cap (10) holds the eleventh back
    for call_id in dialled:
        await end(own_db, client_id, call_id, CallOutcome.ANSWERED, clock.now)
    clock.now += dt.timedelta(minutes=2)
    (last,) = (await scheduler.run_pass()).dialled
    await end(own_db, client_id, last, CallOutcome.ANSWERED, clock.now)
    async with own_db.read() as session:
        sent = list(
            await session.scalars(
                select(WebhookEvent)
                .where(WebhookEvent.type == "campaign.progress")
                .order_by(WebhookEvent.seq)
            )
        )
    assert [(e.data["status"], e.data["totals"]["done"]) for e in sent] == [
        ("running", 0),  # started
        ("running", 10),  # ten contacts finished
        ("completed", 11),  # the last one: the campaign is done
    ]
