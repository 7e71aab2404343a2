"""The telephony layer's side of the store (issue #4): routing calls and persisting call state.

The phone system knows a call by its id only (the AudioSocket UUID, which is also the call
session's id), so a few functions here look a call up by that id without a client: they serve
the call router and the call journal, never an API route, and the id is a random UUID that only
callagent and Asterisk ever see. Everything after the lookup is scoped to the call's client like
every other service (issue #3).

Each function is one short transaction (DESIGN.md practice 11) and returns plain dataclasses or
msgspec views, never ORM objects. Status changes go through ``CALL_TRANSITIONS``: a call only
moves forward, an update that arrives late (Asterisk's "ringing" after the AudioSocket call
already started) changes nothing, and one final state never silently replaces another.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from callagent.store import counters
from callagent.store.db import Database
from callagent.store.errors import IllegalTransition, NotFound
from callagent.store.models import (
    AgentTraining,
    AIAgent,
    CallSession,
    Client,
    CustomerProfile,
    PhoneNumber,
    ScheduledCallback,
)
from callagent.store.schemas import AgentView, TrainingView, TranscriptTurn
from callagent.store.services import callbacks as callback_service
from callagent.store.services._common import (
    agent_phone_numbers,
    agent_view,
    get_scoped,
    training_view,
)
from callagent.store.services.customers import find_or_create_customer
from callagent.store.states import (
    UNREACHED_OUTCOMES,
    CallOutcome,
    CallStatus,
    CallType,
    check_transition,
)

#: How far along its life a status is; a call never moves to a lower rank.
_RANK = {
    CallStatus.QUEUED: 0,
    CallStatus.DIALING: 1,
    CallStatus.RINGING: 2,
    CallStatus.IN_PROGRESS: 3,
    CallStatus.COMPLETED: 4,
    CallStatus.FAILED: 4,
    CallStatus.CANCELLED: 4,
}
FINAL = frozenset({CallStatus.COMPLETED, CallStatus.FAILED, CallStatus.CANCELLED})
#: Bounded like every peer input (DESIGN.md practice 2): a caller cannot grow a row forever.
MAX_DTMF = 64
MACHINE = "MACHINE"
#: A call's transcript keeps its newest turns up to this many (a stuck call cannot grow a row
#: without bound; an hour of conversation is a few hundred turns).
MAX_TRANSCRIPT_TURNS = 2000


@dataclass(frozen=True)
class NumberOwner:
    """Whose agent answers a number."""

    client_id: uuid.UUID
    agent_id: uuid.UUID


@dataclass(frozen=True)
class InboundCall:
    """An inbound call routed to a client's agent. ``call_id`` and ``customer_id`` are None
    when the caller id was withheld or unusable: the agent answers, nothing is stored."""

    client_id: uuid.UUID
    agent_id: uuid.UUID
    call_id: uuid.UUID | None
    customer_id: uuid.UUID | None
    customer_created: bool = False


@dataclass(frozen=True)
class PlacedCall:
    """The call session an outbound AudioSocket connection belongs to (UUID = session id)."""

    call_id: uuid.UUID
    client_id: uuid.UUID
    agent_id: uuid.UUID
    customer_id: uuid.UUID
    call_type: CallType
    status: CallStatus
    purpose: str
    context: dict[str, Any]


@dataclass(frozen=True)
class AgentMaterial:
    """Everything an agent's dialog profile is built from (``dialog.profile_builder``)."""

    client_name: str
    agent: AgentView
    trainings: list[TrainingView]


@dataclass(frozen=True)
class CallUpdate:
    """What the phone system reported about a call; ``None`` / empty fields change nothing.

    ``status`` moves the call forward through the transition table (see the module docstring);
    with ``only_if_answered`` only a call that is ``in_progress`` moves (Asterisk's hang-up of a
    call that was never answered leaves the verdict to the Originate's outcome). ``outcome`` is
    set only if the call has none yet (``call-outcome`` may have set it).
    """

    status: CallStatus | None = None
    only_if_answered: bool = False
    outcome: CallOutcome | None = None
    failure_reason: str | None = None
    recording_ref: str | None = None
    latency: dict[str, Any] | None = None
    telephony_channel: str | None = None
    amd_status: str | None = None
    amd_cause: str | None = None
    hangup_cause: int | None = None
    hangup_cause_text: str | None = None
    dtmf: str = ""
    transferred_to: str | None = None


# --- routing ----------------------------------------------------------------------------------


async def find_number(db: Database, number: str) -> NumberOwner | None:
    """The client and agent that answer ``number`` (E.164), if any."""
    async with db.read() as session:
        row = (
            await session.execute(
                select(PhoneNumber.client_id, PhoneNumber.agent_id).where(
                    PhoneNumber.number == number
                )
            )
        ).one_or_none()
    return None if row is None else NumberOwner(client_id=row[0], agent_id=row[1])


async def open_inbound_call(
    db: Database,
    *,
    call_id: uuid.UUID,
    did: str,
    caller: str | None,
    channel: str,
    now: dt.datetime,
) -> InboundCall | None:
    """Route an answered inbound call: ``did`` (E.164) → the client's agent; ``caller``
    (E.164, or None when withheld) → that client's customer, created if new; and a call session
    ``in_progress`` whose id is ``call_id``. None when no client has the number."""
    for attempt in range(2):
        try:
            async with db.write() as session:
                return await _open_inbound(session, call_id, did, caller, channel, now)
        except IntegrityError:
            # The same new caller on two lines at once: the other call created the customer.
            if attempt == 1:
                raise
    raise AssertionError("unreachable")


async def _open_inbound(
    session: AsyncSession,
    call_id: uuid.UUID,
    did: str,
    caller: str | None,
    channel: str,
    now: dt.datetime,
) -> InboundCall | None:
    owner = (
        await session.execute(
            select(PhoneNumber.client_id, PhoneNumber.agent_id).where(PhoneNumber.number == did)
        )
    ).one_or_none()
    if owner is None:
        return None
    client_id, agent_id = owner
    if caller is None:
        return InboundCall(client_id=client_id, agent_id=agent_id, call_id=None, customer_id=None)
    customer, created = await find_or_create_customer(session, client_id, caller)
    customer.total_calls += 1
    customer.last_call_at = now
    call = CallSession(
        id=call_id,
        client_id=client_id,
        agent_id=agent_id,
        customer_id=customer.id,
        call_type=CallType.INBOUND,
        phone_number=caller,
        did=did,
        status=CallStatus.QUEUED,
        transcript=[],
        latency={},
        telephony_call_id=str(call_id),
        telephony_channel=channel,
        created_at=now,
    )
    # Asterisk answered before connecting the AudioSocket: the call is live from the start.
    call.status = check_transition(call.status, CallStatus.IN_PROGRESS)
    call.started_at = now
    session.add(call)
    await session.flush()
    return InboundCall(
        client_id=client_id,
        agent_id=agent_id,
        call_id=call.id,
        customer_id=customer.id,
        customer_created=created,
    )


async def placed_call(db: Database, call_id: uuid.UUID) -> PlacedCall | None:
    """The outbound call session ``call_id`` names (the AudioSocket UUID of a call placed by
    ``AmiCallPlacer``), or None."""
    async with db.read() as session:
        call = await session.scalar(
            select(CallSession).where(
                CallSession.id == call_id, CallSession.call_type != CallType.INBOUND
            )
        )
    if call is None:
        return None
    return PlacedCall(
        call_id=call.id,
        client_id=call.client_id,
        agent_id=call.agent_id,
        customer_id=call.customer_id,
        call_type=call.call_type,
        status=call.status,
        purpose=call.purpose,
        context=dict(call.context or {}),
    )


async def call_owner(db: Database, call_id: uuid.UUID) -> uuid.UUID | None:
    """The client a call session belongs to (for call events that carry only the call id)."""
    async with db.read() as session:
        return await session.scalar(select(CallSession.client_id).where(CallSession.id == call_id))


async def agent_fingerprint(db: Database, agent_id: uuid.UUID) -> tuple[Any, ...] | None:
    """Something that changes whenever the agent's profile would: its row's last update and
    its training sessions (a session can leave the row unchanged). None: no such agent."""
    async with db.read() as session:
        of_agent = AgentTraining.agent_id == agent_id
        sessions = select(func.count(AgentTraining.id)).where(of_agent).scalar_subquery()
        latest = select(func.max(AgentTraining.created_at)).where(of_agent).scalar_subquery()
        row = (
            await session.execute(
                select(AIAgent.updated_at, Client.name, sessions, latest)
                .join(Client, Client.id == AIAgent.client_id)
                .where(AIAgent.id == agent_id)
            )
        ).one_or_none()
    return None if row is None else tuple(row)


async def agent_material(
    db: Database, client_id: uuid.UUID, agent_id: uuid.UUID
) -> AgentMaterial | None:
    """The agent, its training sessions (oldest first) and its client's name."""
    async with db.read() as session:
        row = (
            await session.execute(
                select(AIAgent, Client.name)
                .join(Client, Client.id == AIAgent.client_id)
                .where(AIAgent.id == agent_id, AIAgent.client_id == client_id)
            )
        ).one_or_none()
        if row is None:
            return None
        agent, client_name = row
        trainings = await session.scalars(
            select(AgentTraining)
            .where(AgentTraining.agent_id == agent_id, AgentTraining.client_id == client_id)
            .order_by(AgentTraining.created_at, AgentTraining.id)
        )
        return AgentMaterial(
            client_name=client_name,
            agent=agent_view(agent, await agent_phone_numbers(session, agent_id)),
            trainings=[training_view(training) for training in trainings],
        )


# --- call state -------------------------------------------------------------------------------


async def record_turn(
    db: Database,
    client_id: uuid.UUID,
    call_id: uuid.UUID,
    turns: list[TranscriptTurn],
    latency: dict[str, Any] | None = None,
) -> int:
    """Append what was just said to the call's transcript (and its latency figures), in one
    transaction, as it happens: a crash later in the call loses none of it (issue #4)."""
    async with db.write() as session:
        call = (
            await session.execute(
                select(CallSession)
                .where(CallSession.id == call_id, CallSession.client_id == client_id)
                .options(undefer(CallSession.transcript))
                .with_for_update()
            )
        ).scalar_one_or_none()
        if call is None:
            raise NotFound(f"call {call_id} not found")
        call.transcript = [*call.transcript, *msgspec.to_builtins(turns)][-MAX_TRANSCRIPT_TURNS:]
        if latency is not None:
            call.latency = latency
        return len(call.transcript)


def _walk(current: CallStatus, target: CallStatus) -> CallStatus:
    """``current`` → ``target`` through legal steps (queued → ringing goes via dialing)."""
    if current == CallStatus.QUEUED and target not in (
        CallStatus.DIALING,
        CallStatus.IN_PROGRESS,
        CallStatus.FAILED,
        CallStatus.CANCELLED,
    ):
        current = check_transition(current, CallStatus.DIALING)
    return check_transition(current, target)


async def update_call(
    db: Database,
    client_id: uuid.UUID,
    call_id: uuid.UUID,
    update: CallUpdate,
    now: dt.datetime,
) -> CallStatus:
    """Apply one report of the phone system to a call; its status afterwards.

    Raises NotFound (no such call for this client) and IllegalTransition (one final state
    would replace another, e.g. ``completed`` → ``failed``).
    """
    async with db.write() as session:
        call = await get_scoped(session, CallSession, client_id, call_id, "call", for_update=True)
        for name in ("telephony_channel", "amd_status", "amd_cause", "transferred_to"):
            value = getattr(update, name)
            if value is not None:
                setattr(call, name, value)
        if update.hangup_cause is not None:
            call.hangup_cause = update.hangup_cause
            call.hangup_cause_text = (update.hangup_cause_text or "")[:100]
        if update.dtmf:
            call.dtmf = (call.dtmf + update.dtmf)[:MAX_DTMF]
        if update.recording_ref is not None:
            call.recording_ref = update.recording_ref
        if update.latency is not None:
            call.latency = update.latency
        if update.failure_reason is not None and not call.failure_reason:
            call.failure_reason = update.failure_reason[:500]
        target = update.status
        if target is not None and update.only_if_answered and call.status != CallStatus.IN_PROGRESS:
            target = None
        if target is not None:
            await _move(session, call, target, update.outcome, now)
        elif update.outcome is not None:
            await _set_outcome(session, call, update.outcome, now)
        return call.status


async def _move(
    session: AsyncSession,
    call: CallSession,
    target: CallStatus,
    outcome: CallOutcome | None,
    now: dt.datetime,
) -> None:
    current = call.status
    if target == current or _RANK[target] < _RANK[current]:
        # A report that arrives after the call moved on changes nothing (issue #4: AMI events
        # and the AudioSocket side race); only its outcome may still be news.
        if outcome is not None:
            await _set_outcome(session, call, outcome, now)
        return
    if _RANK[target] == _RANK[current]:
        raise IllegalTransition(f"call status cannot change from '{current}' to '{target}'")
    call.status = _walk(current, target)
    if target == CallStatus.IN_PROGRESS and call.started_at is None:
        call.started_at = now
    if target in FINAL:
        call.ended_at = now
        if call.started_at is not None:
            call.duration_s = max(0.0, (now - call.started_at).total_seconds())
        machine = outcome is None and call.amd_status == MACHINE
        if machine and not await _caller_spoke(session, call):
            # AMD heard a machine and nothing was said back on the line: nobody was reached,
            # so a callback behind the call is retried (issue #4: the AMD result reaches the
            # call). A conversation after a MACHINE verdict leaves the outcome to call-outcome.
            outcome = CallOutcome.VOICEMAIL
        customer = await get_scoped(
            session, CustomerProfile, call.client_id, call.customer_id, "customer", for_update=True
        )
        customer.last_call_at = now
        reached = (outcome or call.outcome) not in UNREACHED_OUTCOMES
        if call.started_at is not None and reached:
            # Someone answered: counted here, once; call-outcome does not count a call the
            # telephony layer ended (calls.record_outcome).
            customer.answered_calls += 1
            customer.total_talk_time_s += call.duration_s or 0.0
    if outcome is not None:
        await _set_outcome(session, call, outcome, now)


async def _caller_spoke(session: AsyncSession, call: CallSession) -> bool:
    transcript = await session.scalar(
        select(CallSession.transcript).where(CallSession.id == call.id)
    )
    return any(turn.get("speaker") == "caller" for turn in transcript or [])


async def _set_outcome(
    session: AsyncSession, call: CallSession, outcome: CallOutcome, now: dt.datetime
) -> None:
    """The outcome the phone system knows (busy, no answer, failed, voicemail), set once."""
    if call.outcome is not None:
        return
    call.outcome = outcome
    customer = await get_scoped(
        session, CustomerProfile, call.client_id, call.customer_id, "customer", for_update=True
    )
    customer.last_outcome = outcome
    customer.last_call_at = now
    if call.callback_id is not None:
        callback = await get_scoped(
            session,
            ScheduledCallback,
            call.client_id,
            call.callback_id,
            "callback",
            for_update=True,
        )
        await counters.bump(
            session, call.client_id, callback_service.settle(callback, outcome, now)
        )
