"""A client's calls going on now, with what has been said so far (docs/dashboard.md "Live
calls").

The store is where a live call is known on every node: the call journal writes each call's
status as the phone system reports it and each finished turn as it ends
(``store/services/call_state.py``, docs/telephony.md "Persistence as the call goes"), so any
node can show any node's calls (DESIGN.md "Scale-out": nothing depends on local memory).
Read-only: one short read per request.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import undefer

from callagent.store.db import Database
from callagent.store.models import AIAgent, CallSession, CustomerProfile
from callagent.store.schemas import TranscriptTurn
from callagent.store.states import CallStatus, CallType

#: A call in one of these is being placed or talked on. ``queued`` is not: nothing has happened
#: on the line yet (a scheduled or not yet placed call).
ON_THE_LINE = (CallStatus.DIALING, CallStatus.RINGING, CallStatus.IN_PROGRESS)
MAX_LIVE_CALLS = 100
"""At most this many calls are listed (a node carries far fewer: docs/telephony.md "Capacity")."""
RECENT_TURNS = 20
"""Turns of each call's transcript shown live; the call's own page has them all."""


class LiveCall(msgspec.Struct, frozen=True, kw_only=True):
    """One call on the line now."""

    id: uuid.UUID
    agent_name: str
    customer_id: uuid.UUID
    customer_name: str
    phone_number: str
    call_type: CallType
    """``inbound`` and ``test`` (the browser phone) came in; the others were placed."""
    status: CallStatus
    created_at: dt.datetime
    started_at: dt.datetime | None
    """When it was answered (None while it is dialled or rings)."""
    last_activity_at: dt.datetime
    """The last write or heartbeat of its node."""
    turns: int
    """How many turns the transcript holds."""
    transcript: list[TranscriptTurn]
    """Its newest ``RECENT_TURNS`` turns, oldest first."""

    @property
    def inbound(self) -> bool:
        """Whether the customer called (or the client's person on the browser phone)."""
        return self.call_type in (CallType.INBOUND, CallType.TEST)

    def quiet_s(self, now: dt.datetime) -> float:
        """Seconds since its last sign of life (a write or its node's heartbeat) at ``now``."""
        return max(0.0, (now - self.last_activity_at).total_seconds())

    def seconds(self, now: dt.datetime) -> float:
        """How long it has been talked on (answered) or dialled/rung (not yet), at ``now``."""
        since = self.started_at or self.created_at
        return max(0.0, (now - since).total_seconds())


async def list_live_calls(
    db: Database,
    client_id: uuid.UUID,
    *,
    limit: int = MAX_LIVE_CALLS,
    recent_turns: int = RECENT_TURNS,
) -> list[LiveCall]:
    """``client_id``'s calls on the line now, the oldest first, each with its newest turns."""
    statement = (
        select(CallSession, CustomerProfile.name, AIAgent.agent_name)
        .join(CustomerProfile, CustomerProfile.id == CallSession.customer_id)
        .join(AIAgent, AIAgent.id == CallSession.agent_id)
        .where(CallSession.client_id == client_id, CallSession.status.in_(ON_THE_LINE))
        .options(undefer(CallSession.transcript))
        .order_by(CallSession.created_at, CallSession.id)
        .limit(limit)
    )
    async with db.read() as session:
        rows = (await session.execute(statement)).all()
    live = []
    for call, customer_name, agent_name in rows:
        stored: list[Any] = call.transcript or []
        live.append(
            LiveCall(
                id=call.id,
                agent_name=agent_name,
                customer_id=call.customer_id,
                customer_name=customer_name,
                phone_number=call.phone_number,
                call_type=call.call_type,
                status=call.status,
                created_at=call.created_at,
                started_at=call.started_at,
                last_activity_at=call.last_activity_at,
                turns=len(stored),
                transcript=msgspec.convert(
                    stored[-recent_turns:] if recent_turns > 0 else [], list[TranscriptTurn]
                ),
            )
        )
    return live
