"""The scheduler's queue: due rows, their leases, and the facts a dial-time rule needs.

Every due call is a ``scheduled_callbacks`` row (docs/scheduler.md): a callback a customer asked
for, a retry of an unreached call, a follow-up the post-call analysis decided, a call scheduled
for later. Nothing lives only in a node's memory:

1. :func:`claim_due` takes up to ``limit`` due rows (and rows whose lease ran out: their node
   died) for one node, in one short transaction: ``scheduled`` → ``in_progress`` with the node's
   name and a lease. On PostgreSQL under ``SELECT … FOR UPDATE SKIP LOCKED``, so nodes claiming at
   once each get other rows and none waits; on SQLite in the one write transaction at a time.
2. :func:`take` checks the dial-time rules under the row lock, with fresh facts (a do-not-call
   added after scheduling, a window that closed, a customer already on the phone …), and either
   writes the call it will place - a ``queued`` call session whose id is written on the row
   *before* anything is dialled - or moves / closes / defers the row with the reason.
3. The caller places the call and records the placement (``calls.record_placement``), then
   :func:`release` drops the lease. The call's end settles the row (``callbacks.settle``).

A node that dies between 2 and 3 leaves a leased row with a ``queued`` call: whoever claims the
expired lease dials *that* call again - the same call id, which is Asterisk's channel id, so
Asterisk refuses a second channel while the first lives - and a row whose call moved past
``queued`` (it was dialled) is only released, never dialled again.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callagent.store import counters
from callagent.store.db import Database
from callagent.store.models import (
    AIAgent,
    CallSession,
    CustomerProfile,
    PhoneNumber,
    ScheduledCallback,
)
from callagent.store.services import callbacks as callback_service
from callagent.store.services import campaigns, suppression
from callagent.store.states import (
    UNREACHED_OUTCOMES,
    CallbackStatus,
    CallStatus,
    CallType,
)

#: Call statuses of a call that is still going on somewhere (``call_state.LIVE``).
LIVE = (CallStatus.QUEUED, CallStatus.DIALING, CallStatus.RINGING, CallStatus.IN_PROGRESS)
#: What a due row's kind dials as.
CALL_TYPES = {
    "callback": CallType.SCHEDULED,
    "scheduled": CallType.SCHEDULED,
    "retry": CallType.FOLLOWUP,
    "followup": CallType.FOLLOWUP,
    # A campaign's contact (docs/campaigns.md): an outgoing call nobody asked for.
    "campaign": CallType.OUTBOUND,
}
KINDS = frozenset(CALL_TYPES)
#: A live call with no sign of life for this long was lost with its node (crash recovery's
#: default grace, ``recovery.stale_after_s``): it no longer counts as a live call.
LIVE_GRACE = dt.timedelta(seconds=90)


@dataclass(frozen=True)
class DialFacts:
    """What the store knows at dial time about one call to one number, read under the
    customer's row lock; the dial-time rules (``callagent.scheduler.rules``) decide on these."""

    now: dt.datetime
    phone: str
    customer_zone: str | None
    agent_zone: str
    agent_hours: tuple[dt.time, dt.time]
    agent_policy: dict[str, Any]
    suppressed: bool
    customer_live_calls: int
    attempts_24h: tuple[dt.datetime, ...]
    agent_live_calls: int
    client_live_calls: int


@dataclass(frozen=True)
class Verdict:
    """A rule's answer: ``dial``; ``move`` to ``at`` (a closed window, the day's attempts used
    up); ``close`` for good (do-not-call, a blocked number); ``wait`` a little (a cap is full,
    the customer is on another call). ``code`` is short and stable; ``reason`` says why."""

    action: str
    code: str = ""
    reason: str = ""
    at: dt.datetime | None = None


Rule = Callable[[DialFacts], Verdict]


@dataclass(frozen=True)
class Claimed:
    """A row a node holds the lease of, by ids."""

    callback_id: uuid.UUID
    client_id: uuid.UUID


@dataclass(frozen=True)
class DialOrder:
    """A call to place: its committed call session and what the placer needs."""

    callback_id: uuid.UUID
    call_id: uuid.UUID
    client_id: uuid.UUID
    agent_id: uuid.UUID
    customer_id: uuid.UUID
    phone_number: str
    call_type: CallType
    purpose: str
    caller_id: str
    redial: bool = False


@dataclass
class TakeResult:
    """What :func:`take` did with a claimed row."""

    order: DialOrder | None = None
    verdict: Verdict | None = None
    released: bool = False
    notes: list[str] = field(default_factory=list)


async def gather_facts(
    session: AsyncSession,
    agent: AIAgent,
    customer: CustomerProfile | None,
    phone: str,
    now: dt.datetime,
    *,
    live_grace: dt.timedelta,
) -> DialFacts:
    """The facts of a call to ``phone`` now, in the caller's transaction (which should hold the
    customer's row lock, so two dials to one customer see each other)."""
    since = now - live_grace
    client_id = agent.client_id
    attempts = await session.scalars(
        select(CallSession.created_at)
        .where(
            CallSession.client_id == client_id,
            CallSession.phone_number == phone,
            CallSession.call_type != CallType.INBOUND,
            CallSession.created_at > now - dt.timedelta(hours=24),
        )
        .order_by(CallSession.created_at)
    )
    live = (
        await session.execute(
            select(
                func.count(),
                func.sum(case((CallSession.agent_id == agent.id, 1), else_=0)),
                func.sum(
                    case(
                        (CallSession.customer_id == (customer.id if customer else None), 1),
                        else_=0,
                    )
                ),
            ).where(
                CallSession.client_id == client_id,
                CallSession.status.in_(LIVE),
                CallSession.last_activity_at >= since,
            )
        )
    ).one()
    return DialFacts(
        now=now,
        phone=phone,
        customer_zone=None if customer is None else customer.timezone,
        agent_zone=agent.timezone,
        agent_hours=(agent.working_hours_start, agent.working_hours_end),
        agent_policy=dict(agent.dial_policy or {}),
        suppressed=(customer is not None and customer.do_not_call)
        or await suppression.is_suppressed(session, client_id, phone),
        customer_live_calls=int(live[2] or 0),
        attempts_24h=tuple(attempts),
        agent_live_calls=int(live[1] or 0),
        client_live_calls=int(live[0] or 0),
    )


async def caller_id_for(session: AsyncSession, agent_id: uuid.UUID) -> str:
    """The number the agent presents on its calls: the first of its own numbers (PhoneNumber
    rows, sorted), or "" for the trunk's default."""
    return (
        await session.scalar(
            select(PhoneNumber.number)
            .where(PhoneNumber.agent_id == agent_id)
            .order_by(PhoneNumber.number)
            .limit(1)
        )
        or ""
    )


async def claim_due(
    db: Database, node: str, now: dt.datetime, *, lease: dt.timedelta, limit: int
) -> list[Claimed]:
    """Lease up to ``limit`` due rows to ``node``: scheduled rows due by ``now``, most urgent
    first (priority 1 first, then the earliest due), and rows whose lease ran out."""
    due = or_(
        and_(
            ScheduledCallback.status == CallbackStatus.SCHEDULED,
            ScheduledCallback.scheduled_at <= now,
        ),
        and_(
            ScheduledCallback.status == CallbackStatus.IN_PROGRESS,
            ScheduledCallback.locked_by != "",
            ScheduledCallback.locked_until < now,
        ),
    )
    statement = (
        select(ScheduledCallback)
        .where(due)
        .order_by(ScheduledCallback.priority, ScheduledCallback.scheduled_at)
        .limit(limit)
    )
    async with db.write() as session:
        if session.bind.dialect.name == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        rows = list(await session.scalars(statement))
        for row in rows:
            if row.status == CallbackStatus.SCHEDULED:
                await counters.bump(
                    session,
                    row.client_id,
                    callback_service.move(row, CallbackStatus.IN_PROGRESS),
                )
                row.call_id = None  # a new attempt: no call placed for it yet
            row.locked_by = node
            row.locked_until = now + lease
        return [Claimed(row.id, row.client_id) for row in rows]


async def _close(
    session: AsyncSession, row: ScheduledCallback, verdict: Verdict, now: dt.datetime
) -> None:
    cancelled = verdict.code == "do_not_call" or verdict.code in campaigns.CANCELLING_CODES
    target = CallbackStatus.CANCELLED if cancelled else CallbackStatus.FAILED
    await counters.bump(session, row.client_id, callback_service.move(row, target))
    row.closed_reason = f"{verdict.code}: {verdict.reason}"[:300]
    _unlock(row)


def _unlock(row: ScheduledCallback) -> None:
    row.locked_by = ""
    row.locked_until = None


async def _back_to_scheduled(
    session: AsyncSession, row: ScheduledCallback, at: dt.datetime
) -> None:
    await counters.bump(
        session, row.client_id, callback_service.move(row, CallbackStatus.SCHEDULED)
    )
    row.scheduled_at = at
    _unlock(row)


async def take(
    db: Database,
    claimed: Claimed,
    node: str,
    rule: Rule,
    now: dt.datetime,
    *,
    live_grace: dt.timedelta,
    wait: dt.timedelta,
) -> TakeResult:
    """Decide what happens to a claimed row, under its lock (see the module docstring)."""
    result = TakeResult()
    async with db.write() as session:
        row = await session.scalar(
            select(ScheduledCallback)
            .where(
                ScheduledCallback.id == claimed.callback_id,
                ScheduledCallback.client_id == claimed.client_id,
            )
            .with_for_update()
        )
        if row is None or row.status != CallbackStatus.IN_PROGRESS or row.locked_by != node:
            result.notes.append("no longer ours")
            return result  # cancelled, deleted or taken over meanwhile
        agent = await session.scalar(select(AIAgent).where(AIAgent.client_id == row.client_id))
        customer = await session.scalar(
            select(CustomerProfile).where(CustomerProfile.id == row.customer_id).with_for_update()
        )
        if agent is None or customer is None:
            await _close(session, row, Verdict("close", "no_agent", "the client has no agent"), now)
            result.verdict = Verdict("close", "no_agent")
            return result
        caller_id = await caller_id_for(session, agent.id)
        if row.call_id is not None:
            # A lease taken over from a node that died: its call is written already.
            call = await session.get(CallSession, row.call_id)
            if call is not None and call.status == CallStatus.QUEUED:
                # Never handed to Asterisk (it would have moved on): place it now, same call id.
                result.order = _order(row, call, agent, customer, caller_id, redial=True)
                return result
            # Dialled already: the call's end settles the row.
            _unlock(row)
            result.released = True
            return result
        # A campaign's row also asks its campaign (paused, cancelled, ended: closed before the
        # rules; max_concurrent: a cap like the others, after them). docs/campaigns.md.
        gate = (
            await campaigns.gate(session, row, now, live_grace=live_grace)
            if row.kind == campaigns.KIND
            else None
        )
        if gate is not None and gate.stop is not None:
            verdict = Verdict(*gate.stop)
        else:
            facts = await gather_facts(
                session, agent, customer, customer.phone_number, now, live_grace=live_grace
            )
            verdict = rule(facts)
            if gate is not None and gate.full is not None and verdict.action == "dial":
                verdict = Verdict("wait", *gate.full)
        result.verdict = verdict
        if gate is not None:
            await campaigns.after_verdict(
                session, row, verdict.action, verdict.code, verdict.reason, now
            )
        if verdict.action == "close":
            await _close(session, row, verdict, now)
            return result
        if verdict.action == "move":
            await _back_to_scheduled(session, row, verdict.at or now + wait)
            row.closed_reason = f"moved: {verdict.code}: {verdict.reason}"[:300]
            return result
        if verdict.action == "wait":
            await _back_to_scheduled(session, row, now + wait)
            return result
        call = CallSession(
            client_id=row.client_id,
            agent_id=agent.id,
            customer_id=customer.id,
            callback_id=row.id,
            call_type=CALL_TYPES.get(row.kind, CallType.SCHEDULED),
            purpose=(row.reason or row.kind)[:500],
            # A triggered call's context (docs/api.md "Autonomous calls") goes along.
            context={**(row.context or {}), "scheduled": row.kind, "callback_id": str(row.id)},
            phone_number=customer.phone_number,
            status=CallStatus.QUEUED,
            transcript=[],
            latency={},
            created_at=now,
            last_activity_at=now,
        )
        session.add(call)
        await session.flush()
        row.attempts += 1
        row.call_id = call.id
        row.closed_reason = ""
        if gate is not None:
            # The campaign's purpose and script reach the call (its context message).
            await campaigns.dialled(session, row, call, gate)
        result.order = _order(row, call, agent, customer, caller_id)
        return result


def _order(
    row: ScheduledCallback,
    call: CallSession,
    agent: AIAgent,
    customer: CustomerProfile,
    caller_id: str,
    *,
    redial: bool = False,
) -> DialOrder:
    return DialOrder(
        callback_id=row.id,
        call_id=call.id,
        client_id=row.client_id,
        agent_id=agent.id,
        customer_id=customer.id,
        phone_number=call.phone_number,
        call_type=call.call_type,
        purpose=call.purpose,
        caller_id=caller_id,
        redial=redial,
    )


async def release(db: Database, claimed: Claimed, node: str) -> None:
    """Drop ``node``'s lease on a row once its call's placement is recorded."""
    async with db.write() as session:
        row = await session.scalar(
            select(ScheduledCallback)
            .where(ScheduledCallback.id == claimed.callback_id)
            .with_for_update()
        )
        if row is not None and row.locked_by == node:
            _unlock(row)


async def give_back(db: Database, claimed: Claimed, node: str) -> None:
    """Hand back a row ``node`` leased but has no room to dial (docs/scheduler.md "Capacity"):
    due again as it was, no attempt counted, for any node's next pass. A row whose call was
    written already (taken over from a node that died) keeps its lease until it runs out, as
    any such row does, rather than be left in progress without a lease."""
    async with db.write() as session:
        row = await session.scalar(
            select(ScheduledCallback)
            .where(ScheduledCallback.id == claimed.callback_id)
            .with_for_update()
        )
        if row is None or row.locked_by != node:
            return
        if row.status == CallbackStatus.IN_PROGRESS and row.call_id is None:
            await counters.bump(
                session, row.client_id, callback_service.move(row, CallbackStatus.SCHEDULED)
            )
            _unlock(row)


@dataclass(frozen=True)
class RetryPolicy:
    """When an unreached call is tried again: ``base`` after it ended, and at most
    ``max_attempts`` calls in all (the first call is one). Later retries are spaced by
    ``callbacks.settle``'s backoff, as for any due row."""

    base: dt.timedelta = dt.timedelta(minutes=30)
    max_attempts: int = 3


async def create_retries(
    db: Database, now: dt.datetime, since: dt.datetime, policy: RetryPolicy, *, limit: int = 200
) -> list[uuid.UUID]:
    """A retry row for each outgoing call that ended unreached (busy, no answer, failed,
    voicemail) since ``since`` and was not made for a due row (those are retried by
    ``callbacks.settle``). One retry row per call, whichever node gets there first: the row's
    ``retry_of_call_id`` is unique. Returns the new rows' ids."""
    if policy.max_attempts <= 1:
        return []
    candidates = (
        select(CallSession.id, CallSession.client_id, CallSession.customer_id, CallSession.ended_at)
        .where(
            CallSession.outcome.in_(UNREACHED_OUTCOMES),
            CallSession.callback_id.is_(None),
            CallSession.call_type != CallType.INBOUND,
            CallSession.ended_at >= since,
            ~select(ScheduledCallback.id)
            .where(ScheduledCallback.retry_of_call_id == CallSession.id)
            .exists(),
        )
        .order_by(CallSession.ended_at)
        .limit(limit)
    )
    async with db.read() as session:
        rows = (await session.execute(candidates)).all()
    made: list[uuid.UUID] = []
    for call_id, client_id, customer_id, ended_at in rows:
        try:
            async with db.write() as session:
                if await session.scalar(
                    select(ScheduledCallback.id).where(
                        ScheduledCallback.retry_of_call_id == call_id
                    )
                ):
                    continue
                callback = await callback_service.new_callback(
                    session,
                    client_id,
                    customer_id,
                    scheduled_at=max(ended_at or now, now) + policy.base,
                    reason="retry: nobody was reached",
                    max_attempts=policy.max_attempts - 1,
                    origin_call_id=call_id,
                )
                callback.kind = "retry"
                callback.retry_of_call_id = call_id
                made.append(callback.id)
        except IntegrityError:
            continue  # another node made this retry at the same moment
    return made
