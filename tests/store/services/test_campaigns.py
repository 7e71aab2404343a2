"""The campaign service's create-with-contacts on both backends: the campaign and its contacts
are one transaction (docs/campaigns.md, "create"), so contacts that cannot be added - a bad
file, an unknown customer, a database error - leave no campaign, no contact and no new
customer behind."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.exc import DBAPIError

from callagent.store import counters
from callagent.store.db import Database
from callagent.store.errors import ValidationFailed
from callagent.store.schemas import CustomerCreate
from callagent.store.services import campaigns, customers
from callagent.store.services.campaigns import CampaignCreate, ContactFilter, ContactsAdd

from helpers.db_faults import contacts_refused
from helpers.store_data import NOW, new_client, number


async def _state(db: Database, client_id: uuid.UUID) -> tuple[list[str], int, int]:
    """The client's campaign names, its customers and its customer counter."""
    page = await campaigns.list_campaigns(db, client_id)
    listed = await customers.list_customers(db, client_id)
    async with db.read() as session:
        total = (await counters.read(session, client_id)).get("customers.total", 0)
    return [item.name for item in page.items], len(listed.items), total


async def test_a_campaign_is_written_with_its_contacts_or_not_at_all(db: Database) -> None:
    client_id = await new_client(db)
    known = [
        await customers.create_customer(
            db, client_id, CustomerCreate(phone_number=number(), name=name)
        )
        for name in ("Ann", "Bob")
    ]
    everyone = ContactsAdd(filter=ContactFilter())

    made, added = await campaigns.create_campaign_with_contacts(
        db, client_id, CampaignCreate(name="Spring"), everyone, NOW
    )
    assert (added.added, added.already, made.status, made.progress.total) == (2, 0, "draft", 2)
    before = await _state(db, client_id)
    assert before == (["Spring"], 2, 2)

    new_row = f"phone_number,name\n{known[0].phone_number},Ann\n{number()},Newcomer\n"
    async with contacts_refused(db, "Doomed"):
        # The database refuses the contacts after the campaign (and the CSV's new customer)
        # were written in the same transaction: all of it is rolled back.
        for contacts in (everyone, new_row):
            with pytest.raises(DBAPIError, match="injected failure"):
                await campaigns.create_campaign_with_contacts(
                    db, client_id, CampaignCreate(name="Doomed"), contacts, NOW
                )
    bad_inputs: list[tuple[ContactsAdd | str, str]] = [
        ("email\na@b.example\n", "file"),
        (ContactsAdd(customer_ids=[known[0].id, uuid.uuid4()]), "customer_ids"),
        (ContactsAdd(), "customer_ids"),
    ]
    for contacts, field in bad_inputs:
        with pytest.raises(ValidationFailed) as refused:
            await campaigns.create_campaign_with_contacts(
                db, client_id, CampaignCreate(name="Refused"), contacts, NOW
            )
        assert refused.value.field == field
    assert await _state(db, client_id) == before


async def test_bad_csv_rows_are_reported_and_the_good_ones_added_with_the_campaign(
    db: Database,
) -> None:
    client_id = await new_client(db)
    made, added = await campaigns.create_campaign_with_contacts(
        db,
        client_id,
        CampaignCreate(name="From a file"),
        f"phone_number\n{number()}\nnot a number\n",
        NOW,
    )
    assert (added.added, [(e.row, e.field) for e in added.errors]) == (1, [(2, "phone_number")])
    assert made.progress.total == 1
