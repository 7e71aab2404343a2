"""A write is one transaction: on any error nothing of it is kept (docs/api.md, "Conventions")."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from callagent.store import counters
from callagent.store.db import Database
from callagent.store.errors import NotFound
from callagent.store.models import ScheduledCallback
from callagent.store.schemas import StartCall
from callagent.store.services import calls, customers

from helpers.store_data import NOW, new_client, ready_agent


async def test_a_failed_write_leaves_nothing(db: Database) -> None:
    client_id = await new_client(db)
    await ready_agent(db, client_id)
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
