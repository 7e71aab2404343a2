"""The telephony layer's side of the store: routing calls and what a call needs to start.

The phone system knows a call by its id only (the AudioSocket UUID, which is also the call
session's id), so a few functions here look a call up by that id without a client: they serve
the call router and the call journal, never an API route, and the id is a random UUID that only
callagent and Asterisk ever see. Everything after the lookup is scoped to the call's client like
every other service (one client never sees another's rows; ``store/models.py``).

Each function is one short transaction (DESIGN.md practice 11) and returns plain dataclasses or
msgspec views, never ORM objects. A call's state after it is opened (status, transcript, what
the phone system reported) has one writer: :mod:`callagent.store.services.call_state`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callagent.store import counters
from callagent.store.db import Database
from callagent.store.models import (
    AgentTraining,
    AIAgent,
    CallSession,
    Client,
    CustomerProfile,
    PhoneNumber,
)
from callagent.store.schemas import AgentView, TrainingView
from callagent.store.services import events
from callagent.store.services._common import (
    agent_phone_numbers,
    agent_view,
    training_view,
)
from callagent.store.services.customers import (
    BROWSER_TEST_NUMBER,
    customer_counts,
    find_or_create_customer,
    new_customer,
)
from callagent.store.states import (
    CallStatus,
    CallType,
    check_transition,
)


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
    # The same new caller on two lines at once: the other call created the customer.
    return await _retried_once(
        db, lambda session: _open_inbound(session, call_id, did, caller, channel, now)
    )


async def _retried_once(
    db: Database, opening: Callable[[AsyncSession], Awaitable[InboundCall | None]]
) -> InboundCall | None:
    """``opening`` in one write, tried a second time when it lost a race to create the same
    customer (a unique key): the second try finds the customer the other call created."""
    try:
        async with db.write() as session:
            return await opening(session)
    except IntegrityError:
        async with db.write() as session:
            return await opening(session)


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
    return await _start_call(
        session,
        customer,
        created,
        now,
        id=call_id,
        agent_id=agent_id,
        call_type=CallType.INBOUND,
        did=did,
        telephony_call_id=str(call_id),
        telephony_channel=channel,
    )


async def _start_call(
    session: AsyncSession,
    customer: CustomerProfile,
    customer_created: bool,
    now: dt.datetime,
    **fields: Any,
) -> InboundCall:
    """The call session of ``customer`` (``fields``: its id, agent, type, …), live from the
    start, and the customer's count of calls; its events go out in the same transaction."""
    customer.total_calls += 1
    customer.last_call_at = now
    call = CallSession(
        client_id=customer.client_id,
        customer_id=customer.id,
        phone_number=customer.phone_number,
        status=CallStatus.QUEUED,
        transcript=[],
        latency={},
        created_at=now,
        last_activity_at=now,
        **fields,
    )
    # Answered before the AudioSocket (or browser) connected: the call is live from the start.
    call.status = check_transition(call.status, CallStatus.IN_PROGRESS)
    call.started_at = now
    session.add(call)
    await session.flush()
    if customer_created:
        await events.customer_created(session, customer, source="call", call_id=call.id)
    # Taken, so answered: call_state never moves it to in_progress, this is its start.
    await events.call_started(session, call)
    return InboundCall(
        client_id=call.client_id,
        agent_id=call.agent_id,
        call_id=call.id,
        customer_id=customer.id,
        customer_created=customer_created,
    )


BROWSER_TEST_NAME = "Browser test"


async def open_test_call(
    db: Database, *, call_id: uuid.UUID, client_id: uuid.UUID, now: dt.datetime
) -> InboundCall | None:
    """A browser-phone call of ``client_id`` to its own agent: a call session of type ``test``
    ``in_progress`` whose id is ``call_id``, from the client's "Browser test" customer
    (created the first time, on the do-not-call list so that no callback, campaign or
    retry ever dials its made-up number). None when the client has no agent yet."""
    # Two first test calls at once: the other one created the customer.
    return await _retried_once(db, lambda session: _open_test(session, call_id, client_id, now))


async def _open_test(
    session: AsyncSession, call_id: uuid.UUID, client_id: uuid.UUID, now: dt.datetime
) -> InboundCall | None:
    agent_id = await session.scalar(select(AIAgent.id).where(AIAgent.client_id == client_id))
    if agent_id is None:
        return None
    customer = await session.scalar(
        select(CustomerProfile)
        .where(
            CustomerProfile.client_id == client_id,
            CustomerProfile.phone_number == BROWSER_TEST_NUMBER,
        )
        .with_for_update()
    )
    created = customer is None
    if customer is None:
        customer = new_customer(
            client_id,
            BROWSER_TEST_NUMBER,
            name=BROWSER_TEST_NAME,
            do_not_call=True,
            do_not_call_source="browser test",
        )
        session.add(customer)
        await counters.bump(session, client_id, customer_counts(customer))
        await session.flush()
    return await _start_call(
        session,
        customer,
        created,
        now,
        id=call_id,
        agent_id=agent_id,
        call_type=CallType.TEST,
        purpose="browser test",
    )


async def placed_call(db: Database, call_id: uuid.UUID) -> PlacedCall | None:
    """The outbound call session ``call_id`` names (the AudioSocket UUID of a call placed by
    ``AmiCallPlacer``), or None."""
    async with db.read() as session:
        call = await session.scalar(
            select(CallSession).where(
                CallSession.id == call_id,
                CallSession.call_type.not_in((CallType.INBOUND, CallType.TEST)),
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


@dataclass(frozen=True)
class CallClock:
    """What a live call needs to read a time its customer says (``dialog/when.py``): the
    customer's number and stored zone, the agent's zone and working hours."""

    phone_number: str
    customer_timezone: str | None
    agent_timezone: str
    working_hours: tuple[dt.time, dt.time]


async def call_clock(db: Database, client_id: uuid.UUID, call_id: uuid.UUID) -> CallClock | None:
    """:class:`CallClock` of one of the client's calls, or None when there is no such call."""
    async with db.read() as session:
        row = (
            await session.execute(
                select(
                    CallSession.phone_number,
                    CustomerProfile.timezone,
                    AIAgent.timezone,
                    AIAgent.working_hours_start,
                    AIAgent.working_hours_end,
                )
                .join(CustomerProfile, CustomerProfile.id == CallSession.customer_id)
                .join(AIAgent, AIAgent.id == CallSession.agent_id)
                .where(CallSession.id == call_id, CallSession.client_id == client_id)
            )
        ).one_or_none()
    if row is None:
        return None
    phone, customer_zone, agent_zone, start, end = row
    return CallClock(phone, customer_zone, agent_zone, (start, end))


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
