"""Customer profiles: create, read, update, delete, list, CSV import, do-not-call (docs/api.md)."""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter as Tally
from collections.abc import Mapping
from typing import Any

import msgspec
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callagent.store import counters
from callagent.store.db import Database
from callagent.store.errors import NUL_REASON, Conflict, ValidationFailed
from callagent.store.models import CallSession, CustomerProfile, ScheduledCallback, utcnow
from callagent.store.pagination import SortKey, paginate
from callagent.store.phone import normalize_phone
from callagent.store.schemas import (
    CustomerCreate,
    CustomerPage,
    CustomerUpdate,
    CustomerView,
    ImportResult,
    ImportRowError,
)
from callagent.store.services import events
from callagent.store.services._common import (
    check_timezone,
    customer_view,
    get_scoped,
)
from callagent.store.services.callbacks import cancel_open_callbacks
from callagent.store.services.suppression import SOURCE_ATTRIBUTE
from callagent.store.states import InterestLevel, check_transition

MAX_IMPORT_ROWS = 10_000
BROWSER_TEST_NUMBER = "+12025550100"
"""The number of each client's "Browser test" customer, who makes the dashboard's browser-phone
calls (docs/dashboard.md "Talk to your agent"): a valid E.164 number from the range the North
American plan keeps for fiction (555-0100..0199), so it reaches nobody."""
NEWEST_FIRST = (SortKey(CustomerProfile.id),)


class _DryRun(Exception):
    """Raised to roll back a dry-run import after it was fully checked."""


IMPORT_COLUMNS = (
    "phone_number",
    "name",
    "email",
    "company",
    "timezone",
    "interest_level",
    "call_preference_time",
    "do_not_call",
)


def customer_counts(customer: CustomerProfile, sign: int = 1) -> dict[str, int]:
    """The counters one customer contributes to (negated with ``sign=-1``). The browser
    phone's "Browser test" customer contributes to none: the dashboard's figures count the
    client's customers, not its own person trying the agent. Every writer bumps the counters
    by this function's before/after, so leaving the customer out here leaves it out for good."""
    if customer.phone_number == BROWSER_TEST_NUMBER:
        return {}
    deltas = {"customers.total": sign, f"customers.{customer.interest_level.value}": sign}
    if customer.do_not_call:
        deltas["customers.do_not_call"] = sign
    return deltas


def merge(*deltas: Mapping[str, int]) -> dict[str, int]:
    """Sum counter deltas."""
    total: Tally[str] = Tally()
    for delta in deltas:
        total.update(delta)
    return dict(total)


def set_interest(customer: CustomerProfile, target: InterestLevel) -> None:
    """Change the interest level through its transition table; ``converted`` follows it."""
    if target != customer.interest_level:
        customer.interest_level = check_transition(customer.interest_level, target)
    customer.converted = customer.interest_level == InterestLevel.CONVERTED


def set_do_not_call(customer: CustomerProfile, value: bool, *, source: str = "") -> None:
    """Set or clear do-not-call, remembering when it was set. The one writer of the flag: the
    flush that saves it appends the change to the client's suppression list
    (``services.suppression``; ``source`` says who: api, import, call, analysis, …)."""
    setattr(customer, SOURCE_ATTRIBUTE, source)
    if value and not customer.do_not_call:
        customer.do_not_call_at = utcnow()
    if not value:
        customer.do_not_call_at = None
    customer.do_not_call = value


def new_customer(
    client_id: uuid.UUID,
    phone: str,
    *,
    interest_level: InterestLevel = InterestLevel.COLD,
    do_not_call: bool = False,
    do_not_call_source: str = "",
    **fields: Any,
) -> CustomerProfile:
    """A new customer row with nothing counted yet (calls, talk time, objections) and
    ``converted`` following the interest level; the caller adds it and bumps the counters."""
    customer = CustomerProfile(
        client_id=client_id,
        phone_number=phone,
        interest_level=interest_level,
        converted=interest_level == InterestLevel.CONVERTED,
        objections=[],
        total_calls=0,
        answered_calls=0,
        total_talk_time_s=0.0,
        **{"preferences": {}, **fields},
    )
    set_do_not_call(customer, do_not_call, source=do_not_call_source)
    return customer


async def find_or_create_customer(
    session: AsyncSession, client_id: uuid.UUID, phone: str
) -> tuple[CustomerProfile, bool]:
    """The client's customer with this E.164 number, locked for the caller's write, or a new
    cold one (counted in the running totals). Returns the customer and whether it is new."""
    customer = await session.scalar(
        select(CustomerProfile)
        .where(CustomerProfile.client_id == client_id, CustomerProfile.phone_number == phone)
        .with_for_update()
    )
    if customer is not None:
        return customer, False
    customer = new_customer(client_id, phone)
    session.add(customer)
    await counters.bump(session, client_id, customer_counts(customer))
    await session.flush()
    return customer, True


async def _phone_taken(
    session: AsyncSession, client_id: uuid.UUID, phone: str, except_id: uuid.UUID | None = None
) -> bool:
    statement = select(CustomerProfile.id).where(
        CustomerProfile.client_id == client_id, CustomerProfile.phone_number == phone
    )
    found = await session.scalar(statement)
    return found is not None and found != except_id


async def create_customer(db: Database, client_id: uuid.UUID, data: CustomerCreate) -> CustomerView:
    """A new customer; a phone number the client already has is a 409."""
    phone = normalize_phone(data.phone_number)
    if data.timezone is not None:
        check_timezone(data.timezone)
    customer = new_customer(
        client_id,
        phone,
        interest_level=data.interest_level,
        do_not_call=data.do_not_call,
        do_not_call_source="api",
        name=data.name,
        email=data.email,
        company=data.company,
        timezone=data.timezone,
        call_preference_time=data.call_preference_time,
        conversation_notes=data.conversation_notes,
        preferences=data.preferences,
    )
    try:
        async with db.write() as session:
            if await _phone_taken(session, client_id, phone):
                raise Conflict(f"a customer with phone number {phone} already exists")
            session.add(customer)
            await counters.bump(session, client_id, customer_counts(customer))
            await events.customer_created(session, customer, source="api")
    except IntegrityError:
        raise Conflict(f"a customer with phone number {phone} already exists") from None
    return customer_view(customer)


async def get_customer(db: Database, client_id: uuid.UUID, customer_id: uuid.UUID) -> CustomerView:
    """One customer of this client."""
    async with db.read() as session:
        return customer_view(
            await get_scoped(session, CustomerProfile, client_id, customer_id, "customer")
        )


async def update_customer(
    db: Database, client_id: uuid.UUID, customer_id: uuid.UUID, data: CustomerUpdate
) -> CustomerView:
    """Change the given fields; interest level changes follow the transition table."""
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    if "phone_number" in changes:
        changes["phone_number"] = normalize_phone(changes["phone_number"])
    if changes.get("timezone") is not None:
        check_timezone(changes["timezone"])
    async with db.write() as session:
        customer = await get_scoped(
            session, CustomerProfile, client_id, customer_id, "customer", for_update=True
        )
        snapshot = events.customer_snapshot(customer)
        before = customer_counts(customer, -1)
        phone = changes.pop("phone_number", None)
        if phone is not None and phone != customer.phone_number:
            if await _phone_taken(session, client_id, phone, customer.id):
                raise Conflict(f"a customer with phone number {phone} already exists")
            customer.phone_number = phone
        interest = changes.pop("interest_level", None)
        if interest is not None:
            set_interest(customer, interest)
        for name, value in changes.items():
            setattr(customer, name, value)
        await counters.bump(session, client_id, merge(before, customer_counts(customer)))
        await events.customer_changed(session, customer, snapshot)
        await session.flush()
        return customer_view(customer)


async def mark_do_not_call(
    db: Database, client_id: uuid.UUID, customer_id: uuid.UUID, value: bool
) -> CustomerView:
    """Set (or clear) do-not-call; start-call refuses such customers, and setting it cancels
    their scheduled callbacks (nobody may dial them later)."""
    async with db.write() as session:
        customer = await get_scoped(
            session, CustomerProfile, client_id, customer_id, "customer", for_update=True
        )
        snapshot = events.customer_snapshot(customer)
        before = customer_counts(customer, -1)
        set_do_not_call(customer, value, source="api")
        if value:
            await cancel_open_callbacks(session, client_id, customer.id)
        await counters.bump(session, client_id, merge(before, customer_counts(customer)))
        await events.customer_changed(session, customer, snapshot)
        await session.flush()
        return customer_view(customer)


async def delete_customer(db: Database, client_id: uuid.UUID, customer_id: uuid.UUID) -> list[str]:
    """Delete a customer and everything about them (calls, callbacks, notes, opportunities).
    Returns the recording references of the deleted calls: the files are the caller's to
    delete (the store knows no folders), once this transaction has committed."""
    async with db.write() as session:
        customer = await get_scoped(
            session, CustomerProfile, client_id, customer_id, "customer", for_update=True
        )
        statuses = await session.execute(
            select(ScheduledCallback.status, func.count())
            .where(
                ScheduledCallback.client_id == client_id,
                ScheduledCallback.customer_id == customer_id,
            )
            .group_by(ScheduledCallback.status)
        )
        deltas = customer_counts(customer, -1)
        for status, count in statuses.all():
            deltas[f"callbacks.{status.value}"] = -count
        recordings = await session.scalars(
            select(CallSession.recording_ref).where(
                CallSession.client_id == client_id,
                CallSession.customer_id == customer_id,
                CallSession.recording_ref != "",
            )
        )
        references = list(recordings)
        # The database cascades to the customer's calls, callbacks, notes and opportunities.
        await session.execute(
            delete(CustomerProfile).where(
                CustomerProfile.id == customer_id, CustomerProfile.client_id == client_id
            )
        )
        await counters.bump(session, client_id, deltas)
    return references


async def list_customers(
    db: Database,
    client_id: uuid.UUID,
    *,
    interest_level: InterestLevel | None = None,
    converted: bool | None = None,
    do_not_call: bool | None = None,
    phone_number: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> CustomerPage:
    """Customers newest first, filtered; keyset-paginated on the id."""
    statement = select(CustomerProfile).where(CustomerProfile.client_id == client_id)
    if interest_level is not None:
        statement = statement.where(CustomerProfile.interest_level == interest_level)
    if converted is not None:
        statement = statement.where(CustomerProfile.converted == converted)
    if do_not_call is not None:
        statement = statement.where(CustomerProfile.do_not_call == do_not_call)
    if phone_number is not None:
        statement = statement.where(CustomerProfile.phone_number == normalize_phone(phone_number))
    async with db.read() as session:
        page = await paginate(
            session, statement, NEWEST_FIRST, cursor=cursor, limit=limit, descending=True
        )
    return CustomerPage(
        items=[customer_view(row) for row in page.rows], next_cursor=page.next_cursor
    )


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "y"):
        return True
    if lowered in ("", "0", "false", "no", "n"):
        return False
    raise ValueError("must be true or false")


def _parse_row(raw: Mapping[str, str | None]) -> dict[str, Any]:
    """One CSV row as customer fields; raises ValidationFailed naming the column."""
    values = {key: (value or "").strip() for key, value in raw.items() if key is not None}
    if None in raw:
        raise ValidationFailed("row", "more values than columns")
    for key, value in values.items():
        # Checked here, per row, so the other rows are still imported (PostgreSQL would
        # refuse the NUL only at the commit, taking the whole file with it).
        if "\x00" in value:
            raise ValidationFailed(key, NUL_REASON)
    row: dict[str, Any] = {"phone_number": normalize_phone(values.get("phone_number", ""))}
    for name, limit in (
        ("name", 200),
        ("email", 320),
        ("company", 200),
        ("call_preference_time", 100),
    ):
        if values.get(name):
            if len(values[name]) > limit:
                raise ValidationFailed(name, f"longer than {limit} characters")
            row[name] = values[name]
    if values.get("timezone"):
        row["timezone"] = check_timezone(values["timezone"])
    if values.get("interest_level"):
        try:
            row["interest_level"] = InterestLevel(values["interest_level"].lower())
        except ValueError:
            allowed = ", ".join(level.value for level in InterestLevel)
            raise ValidationFailed("interest_level", f"must be one of {allowed}") from None
    if values.get("do_not_call"):
        try:
            row["do_not_call"] = _parse_bool(values["do_not_call"])
        except ValueError as error:
            raise ValidationFailed("do_not_call", str(error)) from None
    return row


async def import_customers(
    db: Database,
    client_id: uuid.UUID,
    text: str,
    *,
    dry_run: bool = False,
    all_or_nothing: bool = False,
) -> ImportResult:
    """Create or update customers from CSV (header row required; ``phone_number`` column
    required; other known columns optional). Each bad row is reported with its field and reason
    and skipped; the good rows are written in one transaction. An existing phone number updates
    that customer's non-empty columns. ``all_or_nothing``: a file with any bad row writes
    nothing, decided in that same transaction (the rows are checked against the customers as
    they are locked there); its result is then a dry run's."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if "phone_number" not in header:
        raise ValidationFailed("file", "the CSV header must have a phone_number column")
    unknown = [column for column in header if column not in IMPORT_COLUMNS]
    if unknown:
        raise ValidationFailed("file", f"unknown columns: {', '.join(unknown)}")
    errors: list[ImportRowError] = []
    parsed: dict[str, tuple[int, dict[str, Any]]] = {}
    try:
        for number, raw in enumerate(reader, start=1):
            if number > MAX_IMPORT_ROWS:
                raise ValidationFailed("file", f"more than {MAX_IMPORT_ROWS} rows")
            try:
                row = _parse_row(raw)
            except ValidationFailed as error:
                errors.append(ImportRowError(row=number, field=error.field, reason=error.reason))
                continue
            phone = row["phone_number"]
            if phone in parsed:
                errors.append(
                    ImportRowError(
                        row=number,
                        field="phone_number",
                        reason=f"same number as row {parsed[phone][0]}",
                    )
                )
                continue
            parsed[phone] = (number, row)
    except csv.Error as error:
        raise ValidationFailed("file", f"not valid CSV: {error}") from None

    created = updated = 0
    try:
        async with db.write() as session:
            existing: dict[str, CustomerProfile] = {}
            phones = list(parsed)
            for start in range(0, len(phones), 500):
                chunk = phones[start : start + 500]
                for customer in await session.scalars(
                    select(CustomerProfile)
                    .where(
                        CustomerProfile.client_id == client_id,
                        CustomerProfile.phone_number.in_(chunk),
                    )
                    .with_for_update()
                ):
                    existing[customer.phone_number] = customer
            deltas: Tally[str] = Tally()
            # What each row created or changed, in the file's order: its webhook events are
            # written together after the loop (docs/webhooks.md).
            written: list[tuple[CustomerProfile, dict[str, Any] | None]] = []
            for phone, (number, row) in parsed.items():
                customer = existing.get(phone)
                if customer is None:
                    customer = new_customer(
                        client_id,
                        phone,
                        interest_level=row.get("interest_level", InterestLevel.COLD),
                        do_not_call=row.get("do_not_call", False),
                        do_not_call_source="import",
                        **{
                            k: v
                            for k, v in row.items()
                            if k in ("name", "email", "company", "timezone", "call_preference_time")
                        },
                    )
                    session.add(customer)
                    deltas.update(customer_counts(customer))
                    written.append((customer, None))
                    created += 1
                    continue
                before = customer_counts(customer, -1)
                snapshot = events.customer_snapshot(customer)
                try:
                    if "interest_level" in row:
                        # Checked before anything is changed, so a refused row changes nothing.
                        if row["interest_level"] != customer.interest_level:
                            check_transition(customer.interest_level, row["interest_level"])
                        set_interest(customer, row["interest_level"])
                except Conflict as error:
                    errors.append(
                        ImportRowError(row=number, field="interest_level", reason=error.detail)
                    )
                    continue
                for name in ("name", "email", "company", "timezone", "call_preference_time"):
                    if name in row:
                        setattr(customer, name, row[name])
                if row.get("do_not_call"):
                    # Imports only add to the suppression list: a file with "false" never
                    # clears a do-not-call someone set (docs/scheduler.md).
                    set_do_not_call(customer, True, source="import")
                deltas.update(merge(before, customer_counts(customer)))
                written.append((customer, snapshot))
                updated += 1
            await events.customers_written(session, client_id, written, source="import")
            await counters.bump(session, client_id, dict(deltas))
            if all_or_nothing and errors:
                dry_run = True
            if dry_run:
                raise _DryRun  # leaves db.write() by the rollback path: nothing is written
    except _DryRun:
        pass
    except IntegrityError:  # a concurrent write added one of these numbers
        raise Conflict("a customer in the file was created meanwhile; retry the import") from None
    errors.sort(key=lambda error: error.row)
    return ImportResult(created=created, updated=updated, errors=errors, dry_run=dry_run)
