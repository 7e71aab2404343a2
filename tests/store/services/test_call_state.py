"""The one writer of a call's state, on both backends: status only moves forward, outcomes the
phone system sets, the transcript (docs/telephony.md, "Persistence as the call goes")."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from callagent.store.db import Database
from callagent.store.errors import CallRefused, IllegalTransition, NotFound
from callagent.store.schemas import (
    CallbackCreate,
    CallOutcomeReport,
    CustomerCreate,
    StartCall,
    TranscriptTurn,
)
from callagent.store.services import call_state, callbacks, calls, customers
from callagent.store.services.call_state import CallUpdate
from callagent.store.states import CallbackStatus, CallOutcome, CallStatus, InterestLevel

from helpers.store_data import NOW, new_client, number, ready_agent, ready_client


async def test_telephony_updates_follow_the_table(db: Database) -> None:
    client_id = await new_client(db)
    await ready_agent(db, client_id)
    prepared = await calls.prepare_call(db, client_id, StartCall(phone_number="+14155550123"), NOW)

    async def move(status: CallStatus, when: dt.datetime = NOW, **fields: Any) -> CallStatus:
        update = CallUpdate(status=status, **fields)
        return await call_state.apply_call_update(db, client_id, prepared.call_id, update, when)

    assert await move(CallStatus.DIALING) == CallStatus.DIALING
    await move(CallStatus.RINGING)
    await move(CallStatus.IN_PROGRESS)
    # A late report (AMI's "ringing" after the answer) changes nothing; a step the table has
    # no arrow for is refused.
    assert await move(CallStatus.RINGING) == CallStatus.IN_PROGRESS
    with pytest.raises(IllegalTransition):
        await move(CallStatus.CANCELLED)
    other = await new_client(db)
    with pytest.raises(NotFound):
        await call_state.apply_call_update(
            db, other, prepared.call_id, CallUpdate(status=CallStatus.COMPLETED), NOW
        )
    later = NOW + dt.timedelta(seconds=42)
    await move(CallStatus.COMPLETED, later, recording_ref="rec/1.wav")
    with pytest.raises(IllegalTransition):
        await move(CallStatus.FAILED)
    detail = await calls.get_call(db, client_id, prepared.call_id)
    assert (detail.status, detail.duration_s, detail.recording_ref) == (
        CallStatus.COMPLETED,
        42.0,
        "rec/1.wav",
    )


async def test_call_state_only_moves_forward(db: Database) -> None:
    client_id = await ready_client(db)
    prepared = await calls.prepare_call(db, client_id, StartCall(phone_number=number()), NOW)
    call_id = prepared.call_id

    async def update(when: dt.datetime = NOW, **fields: Any) -> CallStatus:
        return await call_state.apply_call_update(
            db, client_id, call_id, CallUpdate(**fields), when
        )

    # Asterisk's "ringing" may arrive before start-call recorded the placement.
    assert await update(status=CallStatus.RINGING) == CallStatus.RINGING
    await calls.record_placement(
        db, client_id, call_id, placed=True, reason="", telephony_call_id="t", now=NOW
    )
    assert await update(status=CallStatus.IN_PROGRESS, amd_status="HUMAN") == CallStatus.IN_PROGRESS
    assert await update(status=CallStatus.RINGING) == CallStatus.IN_PROGRESS  # late: ignored
    assert await update(dtmf="12") == CallStatus.IN_PROGRESS
    await update(dtmf="3" * 100)
    later = NOW + dt.timedelta(seconds=30)
    await update(later, status=CallStatus.COMPLETED, hangup_cause=16, hangup_cause_text="Normal")
    with pytest.raises(IllegalTransition):
        await update(status=CallStatus.FAILED)
    assert await update(status=CallStatus.COMPLETED, only_if_answered=True) == CallStatus.COMPLETED
    detail = await calls.get_call(db, client_id, call_id)
    assert (detail.started_at, detail.ended_at, detail.duration_s) == (NOW, later, 30.0)
    assert (detail.amd_status, detail.hangup_cause, detail.hangup_cause_text) == (
        "HUMAN",
        16,
        "Normal",
    )
    assert detail.dtmf == ("12" + "3" * 100)[:64]
    assert detail.outcome is None  # an answered call's outcome is call-outcome's to report
    customer = await customers.get_customer(db, client_id, prepared.customer_id)
    assert (customer.total_calls, customer.answered_calls, customer.total_talk_time_s) == (1, 1, 30)
    # call-outcome on a call the telephony layer ended: no second count, status kept.
    result = await calls.record_outcome(
        db,
        client_id,
        CallOutcomeReport(call_id=call_id, outcome=CallOutcome.INTERESTED),
        later + dt.timedelta(minutes=5),
    )
    assert (result.call.status, result.call.outcome) == (
        CallStatus.COMPLETED,
        CallOutcome.INTERESTED,
    )
    assert (result.call.ended_at, result.call.duration_s) == (later, 30.0)
    assert (result.customer.answered_calls, result.customer.total_talk_time_s) == (1, 30.0)


async def test_an_unanswered_outcome_settles_the_callback(db: Database) -> None:
    client_id = await ready_client(db)
    customer = await customers.create_customer(db, client_id, CustomerCreate(phone_number=number()))
    callback = await callbacks.create_callback(
        db,
        client_id,
        CallbackCreate(customer_id=customer.id, scheduled_at=NOW + dt.timedelta(minutes=5)),
        NOW,
    )
    prepared = await calls.prepare_call(
        db,
        client_id,
        StartCall(phone_number=customer.phone_number, scheduled_callback_id=callback.id),
        NOW,
    )
    busy = CallUpdate(status=CallStatus.COMPLETED, outcome=CallOutcome.BUSY, failure_reason="busy")
    # Busy before start-call even recorded the placement (the Originate failed fast).
    await call_state.apply_call_update(db, client_id, prepared.call_id, busy, NOW)
    placed = await calls.record_placement(
        db, client_id, prepared.call_id, placed=True, reason="", telephony_call_id="t", now=NOW
    )
    assert placed.status == CallStatus.COMPLETED
    detail = await calls.get_call(db, client_id, prepared.call_id)
    assert (detail.outcome, detail.failure_reason, detail.started_at) == (
        CallOutcome.BUSY,
        "busy",
        None,
    )
    after = await callbacks.get_callback(db, client_id, callback.id, NOW)
    assert (after.status, after.attempts) == (CallbackStatus.SCHEDULED, 1)  # retried later
    profile = await customers.get_customer(db, client_id, customer.id)
    assert (profile.last_outcome, profile.answered_calls) == (CallOutcome.BUSY, 0)


@pytest.mark.parametrize("caller_spoke", [False, True])
async def test_a_machine_nobody_talked_to_is_voicemail(db: Database, caller_spoke: bool) -> None:
    client_id = await ready_client(db)
    prepared = await calls.prepare_call(db, client_id, StartCall(phone_number=number()), NOW)
    call_id = prepared.call_id
    await call_state.apply_call_update(
        db, client_id, call_id, CallUpdate(status=CallStatus.IN_PROGRESS, amd_status="MACHINE"), NOW
    )
    agent_turn = TranscriptTurn(speaker="agent", text="Hello?", at=NOW)
    await call_state.append_turns(db, client_id, call_id, [agent_turn])
    if caller_spoke:
        caller_turn = TranscriptTurn(speaker="caller", text="Yes, hi", at=NOW)
        await call_state.append_turns(db, client_id, call_id, [caller_turn], {"turns": [{}]})
    await call_state.apply_call_update(
        db, client_id, call_id, CallUpdate(status=CallStatus.COMPLETED), NOW
    )
    detail = await calls.get_call(db, client_id, call_id)
    assert detail.outcome == (None if caller_spoke else CallOutcome.VOICEMAIL)
    assert [t.speaker for t in detail.transcript] == ["agent", "caller"][: 1 + caller_spoke]
    customer = await customers.get_customer(db, client_id, prepared.customer_id)
    assert customer.answered_calls == int(caller_spoke)


async def test_the_transcript_keeps_its_newest_turns(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(call_state, "MAX_TRANSCRIPT_TURNS", 3)
    client_id = await ready_client(db)
    prepared = await calls.prepare_call(db, client_id, StartCall(phone_number=number()), NOW)
    turns = [TranscriptTurn(speaker="agent", text=f"turn {i}", at=NOW) for i in range(5)]
    assert await call_state.append_turns(db, client_id, prepared.call_id, turns[:2]) == 2
    latency = {"turns": [{"wire": 1}]}
    assert await call_state.append_turns(db, client_id, prepared.call_id, turns[2:], latency) == 3
    detail = await calls.get_call(db, client_id, prepared.call_id)
    assert [t.text for t in detail.transcript] == ["turn 2", "turn 3", "turn 4"]
    assert detail.transcript[0].at == NOW
    assert detail.latency == latency
    with pytest.raises(NotFound):
        await call_state.append_turns(db, await ready_client(db), prepared.call_id, turns)


async def test_in_call_actions_are_recorded_on_the_call_and_applied_at_once(
    db: Database,
) -> None:
    """docs/dialog.md "In-call actions": a callback with its resolved time made by the call,
    interest, a hand-over target, and do-not-call - which cancels the callback, and after
    which start-call refuses the number and no callback can be made."""
    client_id = await ready_client(db)
    phone = number()
    prepared = await calls.prepare_call(db, client_id, StartCall(phone_number=phone), NOW)
    call_id = prepared.call_id
    at = NOW + dt.timedelta(days=1)
    entry = await call_state.apply_call_action(
        db,
        client_id,
        call_id,
        call_state.CallAction(
            record={"type": "schedule_callback", "source": "model", "when": "tomorrow"},
            callback_at=at,
            callback_reason="asked on the call: tomorrow",
        ),
        NOW,
    )
    assert entry["result"] == "done"
    (callback,) = (await callbacks.list_callbacks(db, client_id, NOW)).items
    assert (callback.scheduled_at, callback.origin_call_id) == (at, call_id)
    assert str(callback.id) == entry["callback_id"]
    interest = call_state.CallAction(record={"type": "set_interest"}, interest=InterestLevel.HOT)
    await call_state.apply_call_action(db, client_id, call_id, interest, NOW)
    handed = call_state.CallAction(record={"type": "transfer"}, transferred_to="sales")
    await call_state.apply_call_action(db, client_id, call_id, handed, NOW)
    dnc = call_state.CallAction(
        record={"type": "set_do_not_call", "source": "rule"}, do_not_call=True
    )
    await call_state.apply_call_action(db, client_id, call_id, dnc, NOW)
    late = call_state.CallAction(record={"type": "schedule_callback"}, callback_at=at)
    skipped = await call_state.apply_call_action(db, client_id, call_id, late, NOW)
    assert skipped["result"] == "skipped: the customer is on the do-not-call list"
    # What the dialog did not carry out (the call's purpose forbids it) says why.
    refused = call_state.CallAction(
        record={"type": "book_appointment", "skipped": "not allowed on a customer support call"}
    )
    entry = await call_state.apply_call_action(db, client_id, call_id, refused, NOW)
    assert entry["result"] == "skipped: not allowed on a customer support call"
    assert "skipped" not in entry

    detail = await calls.get_call(db, client_id, call_id)
    assert [a["type"] for a in detail.actions_taken] == [
        "schedule_callback",
        "set_interest",
        "transfer",
        "set_do_not_call",
        "schedule_callback",
        "book_appointment",
    ]
    assert detail.actions_taken[3]["taken_at"] == NOW.isoformat()
    assert detail.transferred_to == "sales"
    profile = await customers.get_customer(db, client_id, detail.customer_id)
    assert profile.do_not_call
    assert profile.interest_level == InterestLevel.HOT
    cancelled = await callbacks.get_callback(db, client_id, callback.id, NOW)
    assert cancelled.status == CallbackStatus.CANCELLED
    with pytest.raises(CallRefused) as refused:
        await calls.prepare_call(db, client_id, StartCall(phone_number=phone), NOW)
    assert refused.value.code == "do_not_call"
