"""Scheduled callbacks: create, list, reschedule, cancel, and settle after a call (docs/api.md)."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callagent.store import counters
from callagent.store.db import Database
from callagent.store.errors import Conflict, ValidationFailed
from callagent.store.models import CustomerProfile, ScheduledCallback
from callagent.store.pagination import SortKey, cursor_datetime, paginate
from callagent.store.schemas import CallbackCreate, CallbackPage, CallbackReschedule, CallbackView
from callagent.store.services import events
from callagent.store.services._common import callback_view, get_scoped
from callagent.store.states import UNREACHED_OUTCOMES, CallbackStatus, CallOutcome, check_transition

#: When a callback's call reached nobody, it is tried again this much later.
RETRY_DELAY = dt.timedelta(hours=1)
RETRY_DELAY_MAX = dt.timedelta(hours=24)
#: The dashboard counts overdue callbacks up to this many (a bounded index scan), then says "more".
OVERDUE_COUNT_CAP = 1000
SOONEST_FIRST = (
    SortKey(ScheduledCallback.scheduled_at, parse=cursor_datetime, format=dt.datetime.isoformat),
    SortKey(ScheduledCallback.id),
)


def retry_delay(attempts: int) -> dt.timedelta:
    """How long after an unreached attempt the next one waits: RETRY_DELAY after the first,
    doubling with each attempt, at most RETRY_DELAY_MAX (docs/scheduler.md)."""
    return min(RETRY_DELAY * 2 ** max(0, attempts - 1), RETRY_DELAY_MAX)


def move(callback: ScheduledCallback, target: CallbackStatus) -> dict[str, int]:
    """Change a callback's status through the table; the counter deltas it implies."""
    old = callback.status
    callback.status = check_transition(old, target)
    return {f"callbacks.{old.value}": -1, f"callbacks.{target.value}": 1}


def settle(callback: ScheduledCallback, outcome: CallOutcome, now: dt.datetime) -> dict[str, int]:
    """After the call made for ``callback`` ended with ``outcome``: done, or retried later when
    nobody was reached, or failed after ``max_attempts``."""
    if callback.status != CallbackStatus.IN_PROGRESS:
        return {}  # cancelled meanwhile: the cancellation stands
    if outcome in UNREACHED_OUTCOMES:
        if callback.attempts >= callback.max_attempts:
            return move(callback, CallbackStatus.FAILED)
        callback.scheduled_at = now + retry_delay(callback.attempts)
        return move(callback, CallbackStatus.SCHEDULED)
    return move(callback, CallbackStatus.COMPLETED)


async def settle_for_call(
    session: AsyncSession,
    client_id: uuid.UUID,
    callback_id: uuid.UUID | None,
    outcome: CallOutcome,
    now: dt.datetime,
) -> None:
    """Lock and :func:`settle` the callback a call was made for (none: nothing to do), in the
    caller's transaction, counters included."""
    if callback_id is None:
        return
    callback = await get_scoped(
        session, ScheduledCallback, client_id, callback_id, "callback", for_update=True
    )
    was = callback.status
    await counters.bump(session, client_id, settle(callback, outcome, now))
    if callback.kind == "campaign":
        # Its contact follows, with the campaign's own backoff (docs/campaigns.md). Imported
        # here: the campaign service schedules its rows through this module.
        from callagent.store.services import campaigns

        await campaigns.settled(session, callback, was, outcome, now)


async def new_callback(
    session: AsyncSession,
    client_id: uuid.UUID,
    customer_id: uuid.UUID,
    *,
    scheduled_at: dt.datetime,
    reason: str,
    priority: int = 3,
    expected_outcome: str = "",
    max_attempts: int = 3,
    origin_call_id: uuid.UUID | None = None,
    announce: bool = True,
) -> ScheduledCallback:
    """Add a scheduled callback in the caller's transaction, counters included, and its
    ``callback.scheduled`` webhook event unless ``announce`` is false (an appointment is
    announced as ``appointment.booked`` instead)."""
    callback = ScheduledCallback(
        client_id=client_id,
        customer_id=customer_id,
        scheduled_at=scheduled_at,
        reason=reason,
        priority=priority,
        expected_outcome=expected_outcome,
        max_attempts=max_attempts,
        origin_call_id=origin_call_id,
        status=CallbackStatus.SCHEDULED,
        attempts=0,
    )
    session.add(callback)
    await counters.bump(session, client_id, {"callbacks.scheduled": 1})
    await session.flush()
    if announce:
        customer = await session.get(CustomerProfile, customer_id)
        if customer is not None:
            await events.callback_scheduled(session, callback, customer)
    return callback


async def cancel_open_callbacks(
    session: AsyncSession, client_id: uuid.UUID, customer_id: uuid.UUID
) -> None:
    """Cancel a customer's scheduled callbacks (they asked not to be called)."""
    rows = await session.scalars(
        select(ScheduledCallback)
        .where(
            ScheduledCallback.client_id == client_id,
            ScheduledCallback.customer_id == customer_id,
            ScheduledCallback.status == CallbackStatus.SCHEDULED,
        )
        .with_for_update()
    )
    for callback in rows:
        await counters.bump(session, client_id, move(callback, CallbackStatus.CANCELLED))
        if callback.kind == "campaign":
            from callagent.store.services import campaigns  # see settle_for_call

            await campaigns.row_cancelled(session, callback, "do_not_call", "do-not-call set")


async def create_callback(
    db: Database, client_id: uuid.UUID, data: CallbackCreate, now: dt.datetime
) -> CallbackView:
    """Schedule a callback to one of the client's customers (not a do-not-call one)."""
    if data.scheduled_at <= now:
        raise ValidationFailed("scheduled_at", "must be in the future")
    async with db.write() as session:
        customer = await get_scoped(
            session, CustomerProfile, client_id, data.customer_id, "customer"
        )
        if customer.do_not_call:
            raise Conflict("this customer is on the do-not-call list")
        callback = await new_callback(
            session,
            client_id,
            customer.id,
            scheduled_at=data.scheduled_at,
            reason=data.reason,
            priority=data.priority,
            expected_outcome=data.expected_outcome,
            max_attempts=data.max_attempts,
        )
        return callback_view(callback, customer, now)


async def _with_customer(
    session: AsyncSession, client_id: uuid.UUID, callback_id: uuid.UUID, *, for_update: bool
) -> tuple[ScheduledCallback, CustomerProfile]:
    callback = await get_scoped(
        session, ScheduledCallback, client_id, callback_id, "callback", for_update=for_update
    )
    customer = await get_scoped(
        session, CustomerProfile, client_id, callback.customer_id, "customer"
    )
    return callback, customer


async def get_callback(
    db: Database, client_id: uuid.UUID, callback_id: uuid.UUID, now: dt.datetime
) -> CallbackView:
    """One callback of this client."""
    async with db.read() as session:
        callback, customer = await _with_customer(session, client_id, callback_id, for_update=False)
        return callback_view(callback, customer, now)


async def reschedule_callback(
    db: Database,
    client_id: uuid.UUID,
    callback_id: uuid.UUID,
    data: CallbackReschedule,
    now: dt.datetime,
) -> CallbackView:
    """Move a callback that is still ``scheduled`` to another time."""
    if data.scheduled_at <= now:
        raise ValidationFailed("scheduled_at", "must be in the future")
    async with db.write() as session:
        callback, customer = await _with_customer(session, client_id, callback_id, for_update=True)
        if callback.status != CallbackStatus.SCHEDULED:
            raise Conflict(
                f"only a scheduled callback can be rescheduled; this one is {callback.status}"
            )
        callback.scheduled_at = data.scheduled_at
        changes = msgspec.structs.asdict(data)
        if changes["reason"] is not msgspec.UNSET:
            callback.reason = changes["reason"]
        if changes["priority"] is not msgspec.UNSET:
            callback.priority = changes["priority"]
        await session.flush()
        return callback_view(callback, customer, now)


async def cancel_callback(
    db: Database, client_id: uuid.UUID, callback_id: uuid.UUID, now: dt.datetime
) -> CallbackView:
    """Cancel a callback (scheduled or being dialled); a finished one is a 409."""
    async with db.write() as session:
        callback, customer = await _with_customer(session, client_id, callback_id, for_update=True)
        await counters.bump(session, client_id, move(callback, CallbackStatus.CANCELLED))
        if callback.kind == "campaign":
            from callagent.store.services import campaigns  # see settle_for_call

            await campaigns.row_cancelled(session, callback, "cancelled", "callback cancelled")
        await session.flush()
        return callback_view(callback, customer, now)


async def list_callbacks(
    db: Database,
    client_id: uuid.UUID,
    now: dt.datetime,
    *,
    status: CallbackStatus | None = None,
    overdue: bool | None = None,
    customer_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> CallbackPage:
    """Callbacks soonest first. ``overdue=true``: scheduled and due before now;
    ``overdue=false``: due from now on. Keyset-paginated on (scheduled_at, id)."""
    statement = select(ScheduledCallback, CustomerProfile).join(
        CustomerProfile, CustomerProfile.id == ScheduledCallback.customer_id
    )
    statement = statement.where(ScheduledCallback.client_id == client_id)
    if overdue is True:
        if status not in (None, CallbackStatus.SCHEDULED):
            raise ValidationFailed("overdue", "only scheduled callbacks can be overdue")
        status = CallbackStatus.SCHEDULED
        statement = statement.where(ScheduledCallback.scheduled_at < now)
    elif overdue is False:
        statement = statement.where(ScheduledCallback.scheduled_at >= now)
    if status is not None:
        statement = statement.where(ScheduledCallback.status == status)
    if customer_id is not None:
        statement = statement.where(ScheduledCallback.customer_id == customer_id)
    async with db.read() as session:
        page = await paginate(session, statement, SOONEST_FIRST, cursor=cursor, limit=limit)
    return CallbackPage(
        items=[callback_view(callback, customer, now) for callback, customer in page.rows],
        next_cursor=page.next_cursor,
    )


async def count_overdue(session: AsyncSession, client_id: uuid.UUID, now: dt.datetime) -> int:
    """Overdue callbacks, counted up to OVERDUE_COUNT_CAP + 1 (bounded work)."""
    inner = (
        select(ScheduledCallback.id)
        .where(
            ScheduledCallback.client_id == client_id,
            ScheduledCallback.status == CallbackStatus.SCHEDULED,
            ScheduledCallback.scheduled_at < now,
        )
        .limit(OVERDUE_COUNT_CAP + 1)
        .subquery()
    )
    return int(await session.scalar(select(func.count()).select_from(inner)) or 0)
