"""The do-not-call suppression list: append-only, per client, keyed by number (docs/scheduler.md).

Every do-not-call in callagent goes through one writer, ``customers.set_do_not_call`` - the API's
PUT do-not-call, customer creation and CSV import, the agent's in-call ``set_do_not_call``
(``call_state.apply_call_action``), the post-call analysis and call-outcome. This module hangs
the list off that writer: when a customer row is flushed with its flag newly set, an ``add``
line is appended in the same transaction; when a person clears it through the API, a ``lift``
line. Nothing here updates or deletes a line, so:

* deleting the customer leaves the number suppressed (lines are keyed by number, not customer);
* an import can only add (``customers.import_customers`` never clears the flag);
* the scheduler and start-call ask :func:`is_suppressed` at dial time, not the customer row.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import event, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from callagent.store.ids import new_id
from callagent.store.models import CustomerProfile, DoNotCallEntry, utcnow

ADD = "add"
LIFT = "lift"
#: The attribute ``set_do_not_call`` leaves on a customer to say who set or cleared the flag.
SOURCE_ATTRIBUTE = "_dnc_source"


def _entry(connection: Any, customer: CustomerProfile, action: str) -> None:
    connection.execute(
        insert(DoNotCallEntry.__table__).values(
            id=new_id(),
            client_id=customer.client_id,
            phone_number=customer.phone_number,
            action=action,
            source=str(getattr(customer, SOURCE_ATTRIBUTE, "") or "")[:32],
            created_at=(customer.do_not_call_at if action == ADD else None) or utcnow(),
        )
    )


@event.listens_for(CustomerProfile, "after_insert")
def _on_insert(_mapper: Any, connection: Any, customer: CustomerProfile) -> None:
    if customer.do_not_call:
        _entry(connection, customer, ADD)


@event.listens_for(CustomerProfile, "after_update")
def _on_update(_mapper: Any, connection: Any, customer: CustomerProfile) -> None:
    history = inspect(customer).attrs.do_not_call.history
    if not history.has_changes():
        return
    before = bool(history.deleted[0]) if history.deleted else False
    if customer.do_not_call and not before:
        _entry(connection, customer, ADD)
    elif before and not customer.do_not_call:
        _entry(connection, customer, LIFT)


async def is_suppressed(session: AsyncSession, client_id: uuid.UUID, phone: str) -> bool:
    """Whether ``phone`` (E.164) is on the client's suppression list now: its newest line is an
    ``add``."""
    newest = await session.scalar(
        select(DoNotCallEntry.action)
        .where(DoNotCallEntry.client_id == client_id, DoNotCallEntry.phone_number == phone)
        .order_by(DoNotCallEntry.created_at.desc(), DoNotCallEntry.id.desc())
        .limit(1)
    )
    return newest == ADD


async def history(
    session: AsyncSession, client_id: uuid.UUID, phone: str
) -> list[tuple[str, str, dt.datetime]]:
    """The number's lines, oldest first: (action, source, when)."""
    rows = await session.execute(
        select(DoNotCallEntry.action, DoNotCallEntry.source, DoNotCallEntry.created_at)
        .where(DoNotCallEntry.client_id == client_id, DoNotCallEntry.phone_number == phone)
        .order_by(DoNotCallEntry.created_at, DoNotCallEntry.id)
    )
    return [(action, source, at) for action, source, at in rows.all()]
