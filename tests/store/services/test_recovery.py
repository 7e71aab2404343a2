"""After a crash nothing stays stuck, on both backends: idle live calls are settled through the
one writer of call state, calls with a recent sign of life are left to the node running them,
and callbacks no call will settle are retried (docs/telephony.md, "After a crash").

The test database is shared, so each test works in its own stretch of the past (no other test
writes there) and only asserts about the calls and callbacks it made.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import update

from callagent.store.db import Database
from callagent.store.models import ScheduledCallback
from callagent.store.schemas import CallbackCreate, CustomerCreate, StartCall, TranscriptTurn
from callagent.store.services import call_state, callbacks, calls, customers, recovery
from callagent.store.services.call_state import CallUpdate
from callagent.store.services.recovery import INTERRUPTED, IdleCall
from callagent.store.states import CallbackStatus, CallOutcome, CallStatus

from helpers.store_data import number, ready_client

GRACE = dt.timedelta(seconds=90)


def past(year: int) -> dt.datetime:
    """A moment in a year no other test writes about."""
    return dt.datetime(year, 5, 6, 10, 0, tzinfo=dt.UTC)


async def placed_call(
    db: Database, client_id: uuid.UUID, at: dt.datetime, callback_id: uuid.UUID | None = None
) -> uuid.UUID:
    """A call start-call placed at ``at`` (``dialing``), for ``callback_id`` if given."""
    phone = number()
    if callback_id is not None:
        phone = (await callbacks.get_callback(db, client_id, callback_id, at)).phone_number
    data = StartCall(
        phone_number=phone, ignore_working_hours=True, scheduled_callback_id=callback_id
    )
    prepared = await calls.prepare_call(db, client_id, data, at)
    await calls.record_placement(
        db, client_id, prepared.call_id, placed=True, reason="", telephony_call_id="t", now=at
    )
    return prepared.call_id


async def idle(db: Database, idle_before: dt.datetime, call_id: uuid.UUID) -> IdleCall | None:
    """``call_id`` among the idle calls, if it is one."""
    found = [c for c in await recovery.idle_calls(db, idle_before) if c.call_id == call_id]
    return found[0] if found else None


async def test_a_call_whose_node_died_fails_as_interrupted_at_its_last_sign_of_life(
    db: Database,
) -> None:
    client_id = await ready_client(db)
    start = past(2001)
    call_id = await placed_call(db, client_id, start)
    answered = start + dt.timedelta(seconds=10)
    await call_state.apply_call_update(
        db, client_id, call_id, CallUpdate(status=CallStatus.IN_PROGRESS), answered
    )
    last_word = answered + dt.timedelta(seconds=50)
    turn = TranscriptTurn(speaker="caller", text="Tell me more.", at=last_word)
    await call_state.append_turns(db, client_id, call_id, [turn], now=last_word)

    # A sweep within the grace period after the last word: the call may be running on another
    # node, it is not idle. Just after the grace period it is.
    second = dt.timedelta(seconds=1)
    assert await idle(db, last_word + GRACE - second - GRACE, call_id) is None
    idle_before = last_word + GRACE + second - GRACE
    found = await idle(db, idle_before, call_id)
    assert found is not None
    assert (found.status, found.last_activity_at) == (CallStatus.IN_PROGRESS, last_word)

    assert await recovery.settle_idle_call(db, found, idle_before, recording_ref=f"{call_id}.wav")
    detail = await calls.get_call(db, client_id, call_id)
    assert detail.status == CallStatus.FAILED
    assert detail.failure_reason == INTERRUPTED
    # It ended at its last sign of life, not when the sweep found it.
    assert (detail.ended_at, detail.duration_s) == (last_word, 50.0)
    assert detail.recording_ref == f"{call_id}.wav"
    assert [t.text for t in detail.transcript] == ["Tell me more."]  # what was said stays
    # Someone answered: the outcome stays open as for any answered call, and the customer
    # counts the call as answered.
    assert detail.outcome is None
    customer = await customers.get_customer(db, client_id, detail.customer_id)
    assert (customer.answered_calls, customer.total_talk_time_s) == (1, 50.0)
    assert await idle(db, idle_before + GRACE, call_id) is None


async def test_a_call_with_a_sign_of_life_since_is_left_to_its_node(db: Database) -> None:
    client_id = await ready_client(db)
    start = past(2002)
    call_id = await placed_call(db, client_id, start)
    idle_before = start + GRACE
    found = await idle(db, idle_before + dt.timedelta(seconds=1), call_id)
    assert found is not None
    # The node running the call writes its heartbeat after the sweep listed it: the settle,
    # checked under the row lock, leaves the call alone.
    assert await call_state.touch_calls(db, [call_id], idle_before) == 1
    assert not await recovery.settle_idle_call(db, found, idle_before, recording_ref="x.wav")
    detail = await calls.get_call(db, client_id, call_id)
    assert (detail.status, detail.failure_reason, detail.recording_ref) == (
        CallStatus.DIALING,
        "",
        "",
    )
    assert await idle(db, idle_before, call_id) is None


async def test_heartbeats_touch_live_calls_only(db: Database) -> None:
    client_id = await ready_client(db)
    start = past(2003)
    live = await placed_call(db, client_id, start)
    over = await placed_call(db, client_id, start)
    await call_state.apply_call_update(
        db, client_id, over, CallUpdate(status=CallStatus.COMPLETED), start
    )
    later = start + dt.timedelta(minutes=5)
    assert await call_state.touch_calls(db, [live, over, uuid.uuid4()], later) == 1
    assert await idle(db, later, live) is None
    assert (await calls.get_call(db, client_id, over)).ended_at == start


async def test_an_unanswered_call_fails_and_its_callback_is_retried(db: Database) -> None:
    client_id = await ready_client(db)
    start = past(2004)
    phone = number()
    customer = await customers.create_customer(db, client_id, CustomerCreate(phone_number=phone))
    callback = await callbacks.create_callback(
        db,
        client_id,
        CallbackCreate(customer_id=customer.id, scheduled_at=start, reason="promised"),
        start - dt.timedelta(days=1),
    )
    call_id = await placed_call(db, client_id, start, callback.id)
    await call_state.apply_call_update(
        db, client_id, call_id, CallUpdate(status=CallStatus.RINGING), start
    )
    idle_before = start + GRACE
    found = await idle(db, idle_before, call_id)
    assert found is not None
    assert await recovery.settle_idle_call(db, found, idle_before)

    detail = await calls.get_call(db, client_id, call_id)
    assert (detail.status, detail.outcome, detail.failure_reason) == (
        CallStatus.FAILED,
        CallOutcome.FAILED,
        INTERRUPTED,
    )
    assert detail.duration_s is None  # never answered
    # Nobody was reached: the callback is tried again an hour after the call was lost.
    retried = await callbacks.get_callback(db, client_id, callback.id, start)
    assert retried.status == CallbackStatus.SCHEDULED
    assert retried.scheduled_at == start + callbacks.RETRY_DELAY
    assert retried.attempts == 1


async def backdate(db: Database, callback_id: uuid.UUID, when: dt.datetime) -> None:
    """Set the callback's last change (the column's own clock is the wall clock)."""
    async with db.write() as session:
        await session.execute(
            update(ScheduledCallback)
            .where(ScheduledCallback.id == callback_id)
            .values(updated_at=when)
        )


async def test_a_callback_no_call_will_settle_is_retried(db: Database) -> None:
    client_id = await ready_client(db)
    start = past(2005)
    made: dict[str, uuid.UUID] = {}
    for name in ("lost", "awaiting_outcome", "live"):
        customer = await customers.create_customer(
            db, client_id, CustomerCreate(phone_number=number())
        )
        callback = await callbacks.create_callback(
            db,
            client_id,
            CallbackCreate(customer_id=customer.id, scheduled_at=start, reason=name),
            start - dt.timedelta(days=1),
        )
        made[name] = callback.id
        call_id = await placed_call(db, client_id, start, callback.id)
        if name != "live":
            await call_state.apply_call_update(
                db, client_id, call_id, CallUpdate(status=CallStatus.IN_PROGRESS), start
            )
        if name == "lost":
            # An answered call settled as interrupted: no outcome, so nothing settled the
            # callback.
            found = await idle(db, start + GRACE, call_id)
            assert found is not None
            assert await recovery.settle_idle_call(db, found, start + GRACE)
        if name == "awaiting_outcome":
            # Completed and answered: the CRM's call-outcome report settles its callback.
            await call_state.apply_call_update(
                db, client_id, call_id, CallUpdate(status=CallStatus.COMPLETED), start
            )
        await backdate(db, callback.id, start)
    now = start + dt.timedelta(hours=2)

    # Within the grace period of its last change a callback is left alone.
    early = await recovery.settle_stuck_callbacks(db, start, now)
    assert made["lost"] not in early
    settled = await recovery.settle_stuck_callbacks(db, start + GRACE, now)
    assert made["lost"] in settled
    assert made["awaiting_outcome"] not in settled
    assert made["live"] not in settled
    lost = await callbacks.get_callback(db, client_id, made["lost"], now)
    assert (lost.status, lost.scheduled_at) == (
        CallbackStatus.SCHEDULED,
        now + callbacks.RETRY_DELAY,
    )
    for name in ("awaiting_outcome", "live"):
        kept = await callbacks.get_callback(db, client_id, made[name], now)
        assert kept.status == CallbackStatus.IN_PROGRESS
    assert made["lost"] not in await recovery.settle_stuck_callbacks(db, start + GRACE, now)
