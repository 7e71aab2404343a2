"""The do-not-call suppression list: every writer of the flag adds to it, it survives the
customer's deletion, imports only add to it, and start-call refuses what it holds
(docs/scheduler.md)."""

from __future__ import annotations

import pytest

from callagent.api.state import default_start_call_rule
from callagent.store.db import Database
from callagent.store.errors import CallRefused
from callagent.store.schemas import CustomerCreate, StartCall
from callagent.store.services import call_state, calls, customers, suppression
from callagent.store.states import CallStatus

from helpers.store_data import NOW, number, ready_client


async def _suppressed(db: Database, client_id: object, phone: str) -> bool:
    async with db.read() as session:
        return await suppression.is_suppressed(session, client_id, phone)  # type: ignore[arg-type]


async def _history(db: Database, client_id: object, phone: str) -> list[tuple[str, str]]:
    async with db.read() as session:
        lines = await suppression.history(session, client_id, phone)  # type: ignore[arg-type]
    return [(action, source) for action, source, _ in lines]


async def _start(db: Database, client_id: object, phone: str) -> calls.PreparedCall:
    return await calls.prepare_call(
        db,
        client_id,  # type: ignore[arg-type]
        StartCall(phone_number=phone, ignore_working_hours=True),
        NOW,
        rule=default_start_call_rule(),
    )


async def test_a_deleted_customer_stays_suppressed(db: Database) -> None:
    client_id = await ready_client(db)
    phone = number()
    customer = await customers.create_customer(
        db, client_id, CustomerCreate(phone_number=phone, name="Ann")
    )
    await customers.mark_do_not_call(db, client_id, customer.id, True)
    await customers.delete_customer(db, client_id, customer.id)
    assert await _suppressed(db, client_id, phone)
    # start-call to the number makes a new customer - who is still not called.
    with pytest.raises(CallRefused) as refused:
        await _start(db, client_id, phone)
    assert refused.value.code == "do_not_call"
    # Another client's list is its own.
    other = await ready_client(db)
    assert not await _suppressed(db, other, phone)


async def test_imports_only_add_and_a_person_lifts(db: Database) -> None:
    client_id = await ready_client(db)
    listed, kept = number(), number()
    await customers.import_customers(
        db, client_id, f"phone_number,do_not_call\n{listed},true\n{kept},false\n"
    )
    assert await _suppressed(db, client_id, listed)
    assert not await _suppressed(db, client_id, kept)
    # A second file saying "false" clears nothing.
    result = await customers.import_customers(
        db, client_id, f"phone_number,do_not_call\n{listed},false\n"
    )
    assert result.updated == 1
    assert await _suppressed(db, client_id, listed)
    (customer,) = (await customers.list_customers(db, client_id, phone_number=listed)).items
    assert customer.do_not_call is True
    # A person clearing it through the API lifts it, and the list keeps both lines.
    await customers.mark_do_not_call(db, client_id, customer.id, False)
    assert not await _suppressed(db, client_id, listed)
    assert await _history(db, client_id, listed) == [("add", "import"), ("lift", "api")]
    prepared = await _start(db, client_id, listed)
    assert not prepared.existing


async def test_the_agents_do_not_call_during_a_call_reaches_the_list(db: Database) -> None:
    client_id = await ready_client(db)
    phone = number()
    prepared = await _start(db, client_id, phone)
    await call_state.apply_call_update(
        db, client_id, prepared.call_id, call_state.CallUpdate(status=CallStatus.IN_PROGRESS), NOW
    )
    await call_state.apply_call_action(
        db,
        client_id,
        prepared.call_id,
        call_state.CallAction(record={"type": "set_do_not_call"}, do_not_call=True),
        NOW,
    )
    assert await _suppressed(db, client_id, phone)
    assert [action for action, _ in await _history(db, client_id, phone)] == ["add"]
