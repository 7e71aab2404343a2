"""After a crash nothing stays stuck: the calls and callbacks no node runs any more are settled
(docs/telephony.md, "After a crash").

A node killed mid-call (``kill -9``, the OOM killer, a power cut) never writes the end of its
calls: they stay ``in_progress`` (or ``queued`` / ``dialing`` / ``ringing``) and the callbacks
they were made for stay ``in_progress``, so the scheduler would never retry them. Nothing may
depend on local memory surviving a restart (DESIGN.md, Modes), and with several nodes on one
database (Scale-out) a call live in the store may be running on another node right now. So the
rule goes by the store alone:

* a live call is **idle** when nothing was written about it - no update, no transcript turn,
  no heartbeat (``call_state.touch_calls``, written every few seconds for every call a node
  runs) - since a grace period ago. Every node alive heartbeats its calls, so an idle call's
  node is gone;
* an idle call is settled through the one writer of call state
  (``call_state.apply_call_update`` with ``CallUpdate.idle_before``, which checks idleness again
  under the row lock): ``failed`` with the reason given, ended at its last sign of life (its
  duration runs to there, not to the restart). A call that was never answered gets the outcome
  ``failed`` - nobody was reached, so the callback behind it is retried as after any failed
  dial; an answered one keeps its outcome open, as every answered call does, and counts as
  answered for its customer;
* a callback left ``in_progress`` with no call of it still live and none waiting for its
  ``call-outcome`` report (a completed call without an outcome) is settled as a call that
  reached nobody: retried later, or failed after its last attempt.

Whether the phone system still has the call (AMI) is the telephony layer's to ask
(``telephony/recovery.py``); it leaves such calls alone.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import Exists, and_, exists, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from callagent.store import counters
from callagent.store.db import Database
from callagent.store.errors import NotFound
from callagent.store.models import CallSession, ScheduledCallback
from callagent.store.services import callbacks as callback_service
from callagent.store.services._common import get_scoped
from callagent.store.services.call_state import LIVE, CallUpdate, apply_call_update
from callagent.store.states import CallbackStatus, CallOutcome, CallStatus

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: callagent restarted or stopped during the call"
"""The failure reason of a call settled because its node stopped without ending it."""

BATCH = 200
"""Idle calls or stuck callbacks read per query (the sweep pages through all of them)."""


@dataclass(frozen=True)
class IdleCall:
    """A live call with no sign of life since the grace period began, by ids."""

    call_id: uuid.UUID
    client_id: uuid.UUID
    status: CallStatus
    last_activity_at: dt.datetime


async def idle_calls(
    db: Database, idle_before: dt.datetime, *, after: uuid.UUID | None = None, limit: int = BATCH
) -> list[IdleCall]:
    """Live calls (of every client) with no sign of life since ``idle_before``, by id, the
    first ``limit`` after ``after``."""
    statement = (
        select(
            CallSession.id,
            CallSession.client_id,
            CallSession.status,
            CallSession.last_activity_at,
        )
        .where(CallSession.status.in_(LIVE), CallSession.last_activity_at < idle_before)
        .order_by(CallSession.id)
        .limit(limit)
    )
    if after is not None:
        statement = statement.where(CallSession.id > after)
    async with db.read() as session:
        rows = (await session.execute(statement)).all()
    return [IdleCall(*row) for row in rows]


async def settle_idle_call(
    db: Database,
    call: IdleCall,
    idle_before: dt.datetime,
    *,
    reason: str = INTERRUPTED,
    recording_ref: str | None = None,
) -> bool:
    """Settle ``call`` as interrupted (see the module docstring) if it is still idle; whether
    this call is over now. A call that showed a sign of life meanwhile is left alone."""
    answered = call.status == CallStatus.IN_PROGRESS
    update = CallUpdate(
        status=CallStatus.FAILED,
        outcome=None if answered else CallOutcome.FAILED,
        failure_reason=reason,
        recording_ref=recording_ref,
        idle_before=idle_before,
    )
    try:
        status = await apply_call_update(
            db, call.client_id, call.call_id, update, call.last_activity_at
        )
    except NotFound:
        return False  # deleted meanwhile (with its customer): nothing left to settle
    return status not in LIVE


def _open_call_of(callback_id: InstrumentedAttribute[uuid.UUID] | uuid.UUID) -> Exists:
    """A call made for the callback that is still live, or completed and waiting for its
    ``call-outcome`` report (which settles the callback)."""
    return exists().where(
        CallSession.callback_id == callback_id,
        or_(
            CallSession.status.in_(LIVE),
            and_(CallSession.status == CallStatus.COMPLETED, CallSession.outcome.is_(None)),
        ),
    )


async def settle_stuck_callbacks(
    db: Database, idle_before: dt.datetime, now: dt.datetime, *, limit: int = BATCH
) -> list[uuid.UUID]:
    """Settle callbacks left ``in_progress`` (unchanged since ``idle_before``) that no call
    will settle any more, as a call that reached nobody: scheduled again after
    ``callbacks.RETRY_DELAY`` from ``now``, or failed after their last attempt. Returns their ids.
    """
    stuck = (
        select(ScheduledCallback.client_id, ScheduledCallback.id)
        .where(
            ScheduledCallback.status == CallbackStatus.IN_PROGRESS,
            ScheduledCallback.updated_at < idle_before,
            ~_open_call_of(ScheduledCallback.id),
        )
        .order_by(ScheduledCallback.id)
        .limit(limit)
    )
    settled: list[uuid.UUID] = []
    after: uuid.UUID | None = None
    while True:
        page = stuck if after is None else stuck.where(ScheduledCallback.id > after)
        async with db.read() as session:
            rows = (await session.execute(page)).all()
        for client_id, callback_id in rows:
            if await _settle_callback(db, client_id, callback_id, now):
                settled.append(callback_id)
        if len(rows) < limit:
            return settled
        after = rows[-1][1]


async def _settle_callback(
    db: Database, client_id: uuid.UUID, callback_id: uuid.UUID, now: dt.datetime
) -> bool:
    async with db.write() as session:
        try:
            callback = await get_scoped(
                session, ScheduledCallback, client_id, callback_id, "callback", for_update=True
            )
        except NotFound:
            return False
        # Checked again under the lock: a call-outcome or a new call may have come meanwhile.
        if callback.status != CallbackStatus.IN_PROGRESS or await session.scalar(
            select(_open_call_of(callback.id))
        ):
            return False
        await counters.bump(
            session, client_id, callback_service.settle(callback, CallOutcome.FAILED, now)
        )
        log.info("callback %s: its call was lost; settled as unreached", callback_id)
        return True
