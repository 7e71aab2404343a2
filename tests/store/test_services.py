"""Store services on both backends: counters, transactions, declared loading, telephony updates."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import InvalidRequestError

from callagent.store import counters
from callagent.store.db import Database
from callagent.store.errors import Conflict, IllegalTransition, NotFound
from callagent.store.models import CallSession, CustomerProfile, ScheduledCallback
from callagent.store.schemas import (
    AgentSetup,
    CallbackCreate,
    CallOutcomeReport,
    CustomerCreate,
    CustomerUpdate,
    StartCall,
    TrainingCreate,
)
from callagent.store.services import agents, call_state, callbacks, calls, clients, customers
from callagent.store.services.call_state import CallUpdate
from callagent.store.states import (
    CallOutcome,
    CallStatus,
    InterestLevel,
    TrainingType,
)

NOW = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)


async def _client(db: Database) -> uuid.UUID:
    return (await clients.create_client(db, "store test")).client_id


async def _ready_agent(db: Database, client_id: uuid.UUID) -> None:
    await agents.setup_agent(db, client_id, AgentSetup(agent_name="Alex"))
    await agents.add_training(
        db,
        client_id,
        TrainingCreate(training_type=TrainingType.SCRIPT, training_content="w " * 200),
    )


async def _recount(db: Database, client_id: uuid.UUID) -> tuple[dict[str, int], dict[str, int]]:
    """What the counters should say (by scanning the tables), and what they say."""
    async with db.read() as session:
        expected: dict[str, int] = {}
        rows = await session.execute(
            select(CustomerProfile.interest_level, func.count())
            .where(CustomerProfile.client_id == client_id)
            .group_by(CustomerProfile.interest_level)
        )
        for level, count in rows.all():
            expected[f"customers.{level.value}"] = count
        expected["customers.total"] = sum(expected.values())
        dnc = await session.scalar(
            select(func.count()).where(
                CustomerProfile.client_id == client_id, CustomerProfile.do_not_call.is_(True)
            )
        )
        expected["customers.do_not_call"] = int(dnc or 0)
        rows = await session.execute(
            select(ScheduledCallback.status, func.count())
            .where(ScheduledCallback.client_id == client_id)
            .group_by(ScheduledCallback.status)
        )
        for status, count in rows.all():
            expected[f"callbacks.{status.value}"] = count
        actual = await counters.read(session, client_id)
    return expected, actual


async def test_counters_match_the_tables(db: Database) -> None:
    client_id = await _client(db)
    await _ready_agent(db, client_id)
    ids = []
    for index, level in enumerate(["cold", "warm", "hot", "hot"]):
        view = await customers.create_customer(
            db,
            client_id,
            CustomerCreate(
                phone_number=f"+1415555{index:04d}",
                interest_level=InterestLevel(level),
                do_not_call=index == 0,
            ),
        )
        ids.append(view.id)
    await customers.update_customer(
        db, client_id, ids[1], CustomerUpdate(interest_level=InterestLevel.CONVERTED)
    )
    callback = await callbacks.create_callback(
        db,
        client_id,
        CallbackCreate(customer_id=ids[2], scheduled_at=NOW + dt.timedelta(hours=1)),
        NOW,
    )
    await callbacks.create_callback(
        db,
        client_id,
        CallbackCreate(customer_id=ids[3], scheduled_at=NOW + dt.timedelta(hours=1)),
        NOW,
    )
    await callbacks.cancel_callback(db, client_id, callback.id, NOW)
    prepared = await calls.prepare_call(db, client_id, StartCall(phone_number="+14155550003"), NOW)
    await calls.record_placement(
        db, client_id, prepared.call_id, placed=True, reason="", telephony_call_id="t", now=NOW
    )
    await calls.record_outcome(
        db,
        client_id,
        CallOutcomeReport(call_id=prepared.call_id, outcome=CallOutcome.DO_NOT_CALL),
        NOW,
    )
    await customers.delete_customer(db, client_id, ids[2])
    await customers.import_customers(
        db, client_id, "phone_number,interest_level\n+14155559999,hot\n+14155550001,cold\n"
    )
    expected, actual = await _recount(db, client_id)
    assert {k: v for k, v in actual.items() if v} == {k: v for k, v in expected.items() if v}


async def test_concurrent_writes_lose_no_count(db: Database) -> None:
    client_id = await _client(db)
    await asyncio.gather(
        *(
            customers.create_customer(
                db, client_id, CustomerCreate(phone_number=f"+1415555{index:04d}")
            )
            for index in range(20)
        )
    )
    async with db.read() as session:
        totals = await counters.read(session, client_id)
    assert totals["customers.total"] == 20
    assert totals["customers.cold"] == 20


async def test_concurrent_training_sessions_all_count(db: Database) -> None:
    client_id = await _client(db)
    await agents.setup_agent(db, client_id, AgentSetup(agent_name="Alex"))
    await asyncio.gather(
        *(
            agents.add_training(
                db,
                client_id,
                TrainingCreate(training_type=TrainingType.TECHNIQUES, sales_techniques=[f"t{i}"]),
            )
            for i in range(5)
        )
    )
    assert (await agents.get_agent(db, client_id)).training_level == 15


async def test_duplicate_phone_is_a_conflict_even_when_concurrent(db: Database) -> None:
    client_id = await _client(db)
    results = await asyncio.gather(
        *(
            customers.create_customer(db, client_id, CustomerCreate(phone_number="+14155550123"))
            for _ in range(3)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(result, Conflict) for result in results) == 2
    async with db.read() as session:
        assert (await counters.read(session, client_id))["customers.total"] == 1


async def test_relationships_never_lazy_load(db: Database) -> None:
    client_id = await _client(db)
    await _ready_agent(db, client_id)
    prepared = await calls.prepare_call(db, client_id, StartCall(phone_number="+14155550123"), NOW)
    async with db.read() as session:
        call = await session.get(CallSession, prepared.call_id)
        assert call is not None
        with pytest.raises(InvalidRequestError, match="lazy='raise'"):
            _ = call.customer
        with pytest.raises(InvalidRequestError):
            _ = call.transcript  # deferred, and loaded only on purpose


async def test_telephony_updates_follow_the_table(db: Database) -> None:
    client_id = await _client(db)
    await _ready_agent(db, client_id)
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
    other = await _client(db)
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


async def test_a_failed_write_leaves_nothing(db: Database) -> None:
    client_id = await _client(db)
    await _ready_agent(db, client_id)
    # The callback id is unknown: the customer that start-call would create is not kept.
    with pytest.raises(NotFound):
        await calls.prepare_call(
            db,
            client_id,
            StartCall(phone_number="+14155550123", scheduled_callback_id=uuid.uuid4()),
            NOW,
        )
    page = await customers.list_customers(db, client_id)
    assert page.items == []
    async with db.read() as session:
        assert (await counters.read(session, client_id)).get("customers.total", 0) == 0
        assert (
            await session.scalar(
                select(func.count()).where(ScheduledCallback.client_id == client_id)
            )
        ) == 0
