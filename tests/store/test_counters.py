"""Per-client running totals on both backends: they match the tables, also under concurrent
writes."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from sqlalchemy import func, select

from callagent.store import counters
from callagent.store.db import Database
from callagent.store.models import CustomerProfile, ScheduledCallback
from callagent.store.schemas import (
    CallbackCreate,
    CallOutcomeReport,
    CustomerCreate,
    CustomerUpdate,
    StartCall,
)
from callagent.store.services import callbacks, calls, customers
from callagent.store.states import CallOutcome, InterestLevel

from helpers.store_data import NOW, new_client, ready_agent


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
    client_id = await new_client(db)
    await ready_agent(db, client_id)
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
    client_id = await new_client(db)
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
