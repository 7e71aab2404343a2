"""The one writer of a call session's state once it exists (DESIGN.md, ``store/``: one writer
per aggregate, "one for a call's state").

Whatever reports on a live call - the call journal (AMI events, the call runner, every finished
turn), a test, a future scheduler - changes it through :func:`apply_call_update` (status, the
phone system's facts, outcome), :func:`append_turns` (transcript and latency figures) and
:func:`apply_call_action` (what the agent did during the call: do-not-call, a callback, …). Each
is one short transaction (DESIGN.md practice 11) that takes ids and returns plain values.

The rules are those a real call needs. Status changes go through ``CALL_TRANSITIONS``: a call
only moves forward, an update that arrives late (Asterisk's "ringing" after the AudioSocket call
already started: AMI events and the AudioSocket side race) changes nothing, and one final state
never silently replaces another. Peer input is bounded (DESIGN.md practice 2): key presses,
hang-up text, failure reasons and the transcript have caps.

Two API calls also end in a call's status, inside their own larger transactions and through
the same transition table: start-call's ``calls.record_placement`` (``dialing``, or ``failed``
when nothing was placed) and ``calls.record_outcome`` (docs/api.md "start-call",
"call-outcome").

Every write here is also a sign of life: it moves the call's ``last_activity_at`` on, and so does
:func:`touch_calls`, the heartbeat of the calls a node is running. A live call without a sign of
life for longer than a grace period was lost with its node (DESIGN.md: nothing depends on local
memory surviving a restart) and is settled through :func:`apply_call_update` with
``CallUpdate.idle_before`` (``store/services/recovery.py``; docs/telephony.md "After a crash").
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from callagent.store import counters
from callagent.store.db import Database
from callagent.store.errors import IllegalTransition, NotFound
from callagent.store.models import CallSession, CustomerProfile, utcnow
from callagent.store.schemas import TranscriptTurn
from callagent.store.services import analysis_jobs, events
from callagent.store.services import callbacks as callback_service
from callagent.store.services._common import get_scoped
from callagent.store.services.customers import (
    customer_counts,
    merge,
    set_do_not_call,
    set_interest,
)
from callagent.store.states import (
    UNREACHED_OUTCOMES,
    CallOutcome,
    CallStatus,
    InterestLevel,
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
#: A call in one of these is still going on somewhere (or was, until its node died).
LIVE = frozenset(CallStatus) - FINAL
#: Heartbeats are written in batches of at most this many ids (one statement each).
TOUCH_BATCH = 500
#: Bounded like every peer input (DESIGN.md practice 2): a caller cannot grow a row forever.
MAX_DTMF = 64
MACHINE = "MACHINE"
#: A call's transcript keeps its newest turns up to this many (a stuck call cannot grow a row
#: without bound; an hour of conversation is a few hundred turns).
MAX_TRANSCRIPT_TURNS = 2000
#: A call's ``actions_taken`` keeps its newest entries up to this many (a call takes a few).
MAX_CALL_ACTIONS = 50


@dataclass(frozen=True)
class CallUpdate:
    """What the phone system reported about a call; ``None`` / empty fields change nothing.

    ``status`` moves the call forward through the transition table (see the module docstring);
    with ``only_if_answered`` only a call that is ``in_progress`` moves (Asterisk's hang-up of a
    call that was never answered leaves the verdict to the Originate's outcome). ``outcome`` is
    set only if the call has none yet (``call-outcome`` may have set it).

    With ``idle_before`` the update is applied only to a live call with no sign of life since
    that time, and then as of the call's last sign of life: it ends then, not when the update
    is applied. Crash recovery settles a call whose node died this way; a call that is still
    live elsewhere (a write or a heartbeat since) is left as it is, whatever the update says.
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
    idle_before: dt.datetime | None = None


async def append_turns(
    db: Database,
    client_id: uuid.UUID,
    call_id: uuid.UUID,
    turns: list[TranscriptTurn],
    latency: dict[str, Any] | None = None,
    *,
    now: dt.datetime | None = None,
) -> int:
    """Append what was just said to the call's transcript (and replace its latency figures),
    in one transaction, as it happens: a crash later in the call loses none of it. The
    transcript keeps its newest ``MAX_TRANSCRIPT_TURNS`` turns; the number it holds now is
    returned. Raises NotFound (no such call for this client)."""
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
        _alive(call, now or utcnow())
        return len(call.transcript)


def _alive(call: CallSession, now: dt.datetime) -> None:
    """Note a sign of life of a live call (never moving it back: writes may carry older times)."""
    if call.status in LIVE and (call.last_activity_at is None or now > call.last_activity_at):
        call.last_activity_at = now


async def touch_calls(db: Database, call_ids: Collection[uuid.UUID], now: dt.datetime) -> int:
    """The heartbeat of the calls a node runs: the last sign of life of the live ones among
    ``call_ids`` becomes ``now`` (whichever client owns them: the node runs them). Returns how
    many moved on."""
    ids = list(call_ids)
    touched = 0
    for start in range(0, len(ids), TOUCH_BATCH):
        async with db.write() as session:
            result = await session.execute(
                sql_update(CallSession)
                .where(
                    CallSession.id.in_(ids[start : start + TOUCH_BATCH]),
                    CallSession.status.in_(LIVE),
                    CallSession.last_activity_at < now,
                )
                .values(last_activity_at=now)
                .execution_options(synchronize_session=False)
            )
            touched += int(getattr(result, "rowcount", 0) or 0)
    return touched


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


async def apply_call_update(
    db: Database,
    client_id: uuid.UUID,
    call_id: uuid.UUID,
    update: CallUpdate,
    now: dt.datetime,
) -> CallStatus:
    """Apply one report about a call (status, the phone system's facts, outcome) in one
    transaction; the call's status afterwards.

    Raises NotFound (no such call for this client) and IllegalTransition (one final state
    would replace another, e.g. ``completed`` → ``failed``).
    """
    async with db.write() as session:
        call = await get_scoped(session, CallSession, client_id, call_id, "call", for_update=True)
        if update.idle_before is not None:
            if call.status not in LIVE or call.last_activity_at >= update.idle_before:
                return call.status  # over already, or alive: not this update's business
            now = call.last_activity_at
        _alive(call, now)
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
            await _move(session, call, target, update.outcome, now, analyse=db.analyse_calls)
        elif update.outcome is not None:
            await _set_outcome(session, call, update.outcome, now)
        return call.status


async def _move(
    session: AsyncSession,
    call: CallSession,
    target: CallStatus,
    outcome: CallOutcome | None,
    now: dt.datetime,
    *,
    analyse: bool = True,
) -> None:
    current = call.status
    if target == current or _RANK[target] < _RANK[current]:
        # A report that arrives after the call moved on changes nothing (AMI events and the
        # AudioSocket side race: "ringing" can land after the answer); only its outcome may
        # still be news.
        if outcome is not None:
            await _set_outcome(session, call, outcome, now)
        return
    if _RANK[target] == _RANK[current]:
        raise IllegalTransition(f"call status cannot change from '{current}' to '{target}'")
    call.status = _walk(current, target)
    if target == CallStatus.IN_PROGRESS and call.started_at is None:
        call.started_at = now
        await events.call_started(session, call)
    analysed = False
    if target in FINAL:
        call.ended_at = now
        if call.started_at is not None:
            call.duration_s = max(0.0, (now - call.started_at).total_seconds())
        machine = outcome is None and call.amd_status == MACHINE
        if machine and not await _caller_spoke(session, call):
            # AMD heard a machine and nothing was said back on the line: nobody was reached,
            # so a callback behind the call is retried. A conversation after a MACHINE verdict
            # leaves the outcome to call-outcome.
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
            # Its post-call analysis is queued in the transaction that ends it, so no answered
            # call is ever over without one, whichever node or sweep ends it (docs/analysis.md)
            # - unless no node analyses calls: then it is complete now, with what is known.
            if analyse:
                await analysis_jobs.enqueue(session, call, now)
                analysed = True
    if outcome is not None:
        await _set_outcome(session, call, outcome, now)
    if target in FINAL and not analysed:
        # An analysed call is announced when its analysis is written (docs/webhooks.md).
        await events.call_completed(session, call)


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
    await callback_service.settle_for_call(session, call.client_id, call.callback_id, outcome, now)


@dataclass(frozen=True)
class CallAction:
    """One action the agent took during a call (docs/dialog.md "In-call actions"), as the
    store records and applies it. ``record`` is its entry for ``actions_taken`` (its type,
    source and arguments, plain JSON); the other fields are what it changes, ``None`` / false
    changing nothing:

    * ``do_not_call`` puts the call's customer on the do-not-call list at once and cancels
      their scheduled callbacks (start-call refuses them from then on);
    * ``callback_at`` schedules a callback (an appointment too: ``expected_outcome`` names it)
      to the customer, made by this call - not for a do-not-call customer;
    * ``interest`` moves the customer's interest level, if its transitions allow;
    * ``transferred_to`` names the hand-over target on the call.
    """

    record: dict[str, Any]
    do_not_call: bool = False
    callback_at: dt.datetime | None = None
    callback_reason: str = ""
    expected_outcome: str = ""
    interest: InterestLevel | None = None
    transferred_to: str | None = None


async def apply_call_action(
    db: Database,
    client_id: uuid.UUID,
    call_id: uuid.UUID,
    action: CallAction,
    now: dt.datetime,
) -> dict[str, Any]:
    """Record ``action`` on the call and apply what it changes, in one transaction; the entry
    it added to ``actions_taken`` (with ``taken_at`` and ``result``: "done", or "skipped: why").
    Raises NotFound (no such call for this client)."""
    async with db.write() as session:
        call = await get_scoped(session, CallSession, client_id, call_id, "call", for_update=True)
        _alive(call, now)
        customer = await get_scoped(
            session, CustomerProfile, client_id, call.customer_id, "customer", for_update=True
        )
        entry: dict[str, Any] = {**action.record, "taken_at": now.isoformat()}
        # An action the dialog decided not to carry out (the call's purpose does not allow it,
        # docs/dialog.md "Call purposes") comes with why; nothing else of it is applied.
        skipped: list[str] = [str(entry.pop("skipped"))] if entry.get("skipped") else []
        snapshot = events.customer_snapshot(customer)
        before = customer_counts(customer, -1)
        if action.do_not_call:
            set_do_not_call(customer, True)
            await callback_service.cancel_open_callbacks(session, client_id, customer.id)
        if action.interest is not None:
            try:
                set_interest(customer, action.interest)
            except IllegalTransition as error:
                skipped.append(str(error))
        await counters.bump(session, client_id, merge(before, customer_counts(customer)))
        if action.callback_at is not None:
            if customer.do_not_call:
                skipped.append("the customer is on the do-not-call list")
            elif action.callback_at <= now:
                skipped.append("the time has passed")
            else:
                booked = action.record.get("type") == "book_appointment"
                callback = await callback_service.new_callback(
                    session,
                    client_id,
                    customer.id,
                    scheduled_at=action.callback_at,
                    reason=action.callback_reason[:500],
                    expected_outcome=action.expected_outcome[:500],
                    priority=2,
                    origin_call_id=call.id,
                    announce=not booked,
                )
                entry["callback_id"] = str(callback.id)
                if booked:
                    await events.appointment_booked(
                        session,
                        callback,
                        customer,
                        kind=action.expected_outcome or "appointment",
                        said=str(action.record.get("when", "")),
                    )
        if action.transferred_to is not None:
            call.transferred_to = action.transferred_to[:32]
        entry["result"] = f"skipped: {'; '.join(skipped)}" if skipped else "done"
        call.actions_taken = [*(call.actions_taken or []), entry][-MAX_CALL_ACTIONS:]
        await events.customer_changed(session, customer, snapshot, call_id=call.id)
        if action.record.get("type") == "send_information":
            channel = str(action.record.get("channel", ""))
            await events.information_requested(session, call, customer, channel)
        return entry
