"""The customer service on both backends."""

from __future__ import annotations

import asyncio

from callagent.store import counters
from callagent.store.db import Database
from callagent.store.errors import Conflict
from callagent.store.schemas import CustomerCreate
from callagent.store.services import customers

from helpers.store_data import new_client


async def test_duplicate_phone_is_a_conflict_even_when_concurrent(db: Database) -> None:
    client_id = await new_client(db)
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
