"""The customer service on both backends."""

from __future__ import annotations

import asyncio

from callagent.store import counters
from callagent.store.db import Database
from callagent.store.errors import Conflict
from callagent.store.schemas import CustomerCreate
from callagent.store.services import customers
from callagent.store.states import InterestLevel

from helpers.store_data import new_client, number


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


async def test_an_all_or_nothing_import_with_one_bad_row_writes_nothing(db: Database) -> None:
    client_id = await new_client(db)
    converted = await customers.create_customer(
        db,
        client_id,
        CustomerCreate(phone_number=number(), name="Won", interest_level=InterestLevel.CONVERTED),
    )
    # Row 1 is bad only against the database (a converted customer cannot go cold): the check
    # and the writes are one transaction, so the good row 2 is not written either.
    newcomer = number()
    text = (
        f"phone_number,name,interest_level\n{converted.phone_number},,cold\n{newcomer},New,warm\n"
    )
    result = await customers.import_customers(db, client_id, text, all_or_nothing=True)
    assert [(e.row, e.field) for e in result.errors] == [(1, "interest_level")]
    assert result.dry_run  # nothing was written
    listed = await customers.list_customers(db, client_id)
    assert [c.name for c in listed.items] == ["Won"]
    async with db.read() as session:
        assert (await counters.read(session, client_id))["customers.total"] == 1

    good = f"phone_number,name,interest_level\n{newcomer},New,warm\n"
    written = await customers.import_customers(db, client_id, good, all_or_nothing=True)
    assert (written.created, written.errors, written.dry_run) == (1, [], False)
    listed = await customers.list_customers(db, client_id)
    assert sorted(c.name for c in listed.items) == ["New", "Won"]
