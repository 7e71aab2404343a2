"""The telephony layer's store services on both backends: numbers, inbound routing,
call state as the phone system reports it, and how that meets start-call and call-outcome."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

import pytest

from callagent.store.db import Database
from callagent.store.errors import Conflict, IllegalTransition, NotFound, ValidationFailed
from callagent.store.schemas import (
    AgentSetup,
    AgentUpdate,
    CallbackCreate,
    CallOutcomeReport,
    CustomerCreate,
    StartCall,
    TrainingCreate,
    TranscriptTurn,
)
from callagent.store.services import agents, call_state, callbacks, calls, clients, customers
from callagent.store.services import telephony as store
from callagent.store.services.call_state import CallUpdate
from callagent.store.states import (
    CallbackStatus,
    CallOutcome,
    CallStatus,
    CallType,
    TrainingType,
)

NOW = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)


def number() -> str:
    """A valid number no other test uses (the test database is shared, numbers are unique
    across the installation)."""
    return "+4930" + "".join(random.choice("0123456789") for _ in range(8))


async def _client(db: Database, dids: list[str] | None = None) -> uuid.UUID:
    client_id = (await clients.create_client(db, "telephony test")).client_id
    await agents.setup_agent(db, client_id, AgentSetup(agent_name="Alex", phone_numbers=dids or []))
    await agents.add_training(
        db,
        client_id,
        TrainingCreate(training_type=TrainingType.SCRIPT, training_content="w " * 200),
    )
    return client_id


async def test_numbers_are_normalised_and_unique_across_clients(db: Database) -> None:
    mine, theirs = number(), number()
    national = mine.replace("+", "00")
    client_id = await _client(db, [national, mine])
    agent = await agents.get_agent(db, client_id)
    assert agent.phone_numbers == [mine]  # E.164, once
    other = await _client(db, [theirs])
    with pytest.raises(Conflict, match=r"phone_numbers\[1\].*another agent"):
        await agents.update_agent(db, other, AgentUpdate(phone_numbers=[theirs, mine]))
    with pytest.raises(ValidationFailed, match=r"phone_numbers\[0\]"):
        await agents.update_agent(db, other, AgentUpdate(phone_numbers=["12"]))
    # Nothing was half-written, and the owner can release a number for someone else.
    assert (await agents.get_agent(db, other)).phone_numbers == [theirs]
    released = await agents.update_agent(db, client_id, AgentUpdate(phone_numbers=[]))
    assert released.phone_numbers == []
    taken = await agents.update_agent(db, other, AgentUpdate(phone_numbers=[mine, theirs]))
    assert taken.phone_numbers == sorted([mine, theirs])
    owner = await store.find_number(db, mine)
    assert owner is not None
    assert owner.client_id == other
    with pytest.raises(Conflict):
        await agents.setup_agent(
            db,
            (await clients.create_client(db, "late")).client_id,
            AgentSetup(agent_name="Late", phone_numbers=[theirs]),
        )


async def test_an_inbound_call_finds_the_client_and_creates_the_customer(db: Database) -> None:
    did = number()
    client_id = await _client(db, [did])
    nobody = await store.open_inbound_call(
        db, call_id=uuid.uuid4(), did=number(), caller="+4917012345678", channel="c", now=NOW
    )
    assert nobody is None
    call_id = uuid.uuid4()
    first = await store.open_inbound_call(
        db, call_id=call_id, did=did, caller="+4917012345678", channel="PJSIP/trunk-1", now=NOW
    )
    assert first is not None
    assert (first.client_id, first.call_id, first.customer_created) == (client_id, call_id, True)
    detail = await calls.get_call(db, client_id, call_id)
    assert (detail.call_type, detail.status, detail.did) == (
        CallType.INBOUND,
        CallStatus.IN_PROGRESS,
        did,
    )
    assert (detail.phone_number, detail.telephony_channel) == ("+4917012345678", "PJSIP/trunk-1")
    again = await store.open_inbound_call(
        db, call_id=uuid.uuid4(), did=did, caller="+4917012345678", channel="", now=NOW
    )
    assert again is not None
    assert again.customer_id == first.customer_id
    assert not again.customer_created
    assert first.customer_id is not None
    customer = await customers.get_customer(db, client_id, first.customer_id)
    assert customer.total_calls == 2
    withheld = await store.open_inbound_call(
        db, call_id=uuid.uuid4(), did=did, caller=None, channel="", now=NOW
    )
    assert withheld is not None
    assert (withheld.call_id, withheld.customer_id) == (None, None)


async def test_call_state_only_moves_forward(db: Database) -> None:
    client_id = await _client(db)
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
    client_id = await _client(db)
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


async def test_a_failed_placement_after_the_telephony_failure_is_no_error(db: Database) -> None:
    client_id = await _client(db)
    prepared = await calls.prepare_call(db, client_id, StartCall(phone_number=number()), NOW)
    failed = CallUpdate(status=CallStatus.FAILED, outcome=CallOutcome.FAILED)
    await call_state.apply_call_update(db, client_id, prepared.call_id, failed, NOW)
    result = await calls.record_placement(
        db,
        client_id,
        prepared.call_id,
        placed=False,
        reason="AMI down",
        telephony_call_id="",
        now=NOW,
    )
    assert (result.status, result.failure_reason) == (CallStatus.FAILED, "AMI down")


@pytest.mark.parametrize("caller_spoke", [False, True])
async def test_a_machine_nobody_talked_to_is_voicemail(db: Database, caller_spoke: bool) -> None:
    client_id = await _client(db)
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
    client_id = await _client(db)
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
        await call_state.append_turns(db, await _client(db), prepared.call_id, turns)


async def test_the_profile_material_and_its_fingerprint(db: Database) -> None:
    client_id = await _client(db)
    agent = await agents.get_agent(db, client_id)
    before = await store.agent_fingerprint(db, agent.id)
    material = await store.agent_material(db, client_id, agent.id)
    assert material is not None
    assert (material.client_name, material.agent.agent_name) == ("telephony test", "Alex")
    assert [t.training_type for t in material.trainings] == [TrainingType.SCRIPT]
    assert await store.agent_fingerprint(db, agent.id) == before
    await agents.add_training(
        db,
        client_id,
        TrainingCreate(training_type=TrainingType.SCRIPT, training_content="w " * 200),
    )  # the same material: the level and the agent row do not change, the fingerprint does
    assert await store.agent_fingerprint(db, agent.id) != before
    assert await store.agent_material(db, await _client(db), agent.id) is None
    assert await store.agent_fingerprint(db, uuid.uuid4()) is None
