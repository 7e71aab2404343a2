"""Campaigns: many outbound calls with one purpose, paced and retried (docs/campaigns.md).

A campaign owns its contacts (``campaign_contacts``); starting it turns each pending contact
into a ``scheduled_callbacks`` row of kind ``campaign``, ``stagger_minutes`` after the one
before, and the scheduler dials those rows like any due row (docs/scheduler.md). What is the
campaign's own is checked where the scheduler checks its rules, under the same locks:

- :func:`gate` (from ``dial_queue.take``, the row locked, then the campaign row): a paused or
  cancelled campaign closes the row without dialling; a campaign past its end date closes it;
  ``max_concurrent`` live calls of the campaign make the row wait like any other cap;
- :func:`dialled` records the call written for the row on its contact;
- :func:`settled` (from ``callbacks.settle_for_call``, when the call's outcome settles the row)
  moves the contact on and applies the campaign's retry backoff per unreached outcome.

Pause and cancel close the campaign's rows that are still only scheduled, in their own
transaction, under the campaign's row lock; a row a node has already leased meets :func:`gate`.
Resume gives the pending contacts new rows. A contact has at most one open row (the unique
``callback_id``, and only contacts without one get a row), so nothing is dialled twice.

``campaign.progress`` webhook events go out when the status changes and after every
:data:`PROGRESS_EVERY` contacts finished (done, failed or suppressed).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Final

import msgspec
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callagent.store import counters
from callagent.store.db import Database
from callagent.store.errors import Conflict, ValidationFailed
from callagent.store.models import (
    CallSession,
    Campaign,
    CampaignContact,
    CustomerProfile,
    ScheduledCallback,
)
from callagent.store.pagination import SortKey, cursor_datetime, paginate
from callagent.store.phone import normalize_phone
from callagent.store.schemas import AwareDateTime, ImportRowError, Input, Output
from callagent.store.services import callbacks as callback_service
from callagent.store.services import customers as customer_service
from callagent.store.services import events
from callagent.store.services._common import get_scoped
from callagent.store.states import (
    CallbackStatus,
    CallOutcome,
    CallStatus,
    InterestLevel,
)

KIND: Final = "campaign"
"""``scheduled_callbacks.kind`` of a campaign's rows."""
PROGRESS_EVERY: Final = 10
"""A ``campaign.progress`` event after this many contacts finished since the last one."""
MAX_CONTACTS_PER_REQUEST: Final = 10_000
STATUSES: Final = ("draft", "running", "paused", "cancelled", "completed")
CONTACT_STATES: Final = ("pending", "dialling", "done", "failed", "suppressed", "cancelled")
#: Minutes before the next try, per unreached outcome (voicemail counts as no answer).
DEFAULT_BACKOFF: Final = {"no_answer": 60.0, "busy": 15.0, "failed": 30.0}
_BACKOFF_OF = {
    CallOutcome.NO_ANSWER: "no_answer",
    CallOutcome.VOICEMAIL: "no_answer",
    CallOutcome.BUSY: "busy",
    CallOutcome.FAILED: "failed",
}
_LIVE = (CallStatus.QUEUED, CallStatus.DIALING, CallStatus.RINGING, CallStatus.IN_PROGRESS)
#: Verdict codes of the campaign's own that close a row as cancelled (not failed).
CANCELLING_CODES: Final = frozenset({"campaign_paused", "campaign_cancelled"})
CSV_COLUMNS: Final = ("phone_number", "name", "customer_id")

# Bodies ----------------------------------------------------------------------------------------

Minutes = Annotated[float, Meta(ge=0, le=10_080, description="minutes")]
Purpose = Annotated[str, Meta(max_length=500)]
Script = Annotated[str, Meta(max_length=4000)]


class RetryPolicy(Input):
    """How a contact nobody reached is tried again: at most ``max_attempts`` calls in all, the
    next after the backoff of the last call's outcome (voicemail counts as no answer)."""

    max_attempts: Annotated[int, Meta(ge=1, le=10)] = 3
    no_answer_minutes: Minutes = DEFAULT_BACKOFF["no_answer"]
    busy_minutes: Minutes = DEFAULT_BACKOFF["busy"]
    failed_minutes: Minutes = DEFAULT_BACKOFF["failed"]


class Pacing(Input):
    """``stagger_minutes`` between two contacts' first calls; at most ``max_concurrent`` of
    the campaign's calls live at once (checked at dial time)."""

    stagger_minutes: Minutes = 1.0
    max_concurrent: Annotated[int, Meta(ge=1, le=100)] = 2


class CampaignCreate(Input):
    """A new campaign (a draft until it is started)."""

    name: Annotated[str, Meta(min_length=1, max_length=200)]
    call_purpose: Purpose = ""
    script_override: Script = ""
    pacing: Pacing = msgspec.field(default_factory=Pacing)
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    starts_at: AwareDateTime | None = None
    ends_at: AwareDateTime | None = None


class CampaignUpdate(Input):
    """Fields to change; absent ones stay. Pacing and retries apply to rows scheduled later."""

    name: Annotated[str, Meta(min_length=1, max_length=200)] | UnsetType = UNSET
    call_purpose: Purpose | UnsetType = UNSET
    script_override: Script | UnsetType = UNSET
    pacing: Pacing | UnsetType = UNSET
    retry: RetryPolicy | UnsetType = UNSET
    starts_at: AwareDateTime | UnsetType | None = UNSET
    ends_at: AwareDateTime | UnsetType | None = UNSET


class ContactFilter(Input):
    """Which of the client's customers to add: all given conditions hold. Customers on the
    do-not-call list are never added by a filter."""

    interest_level: InterestLevel | None = None
    converted: bool | None = None
    not_called_since: AwareDateTime | None = None


class ContactsAdd(Input):
    """Customers to add, by id or by a filter (one of the two)."""

    customer_ids: Annotated[list[uuid.UUID], Meta(max_length=MAX_CONTACTS_PER_REQUEST)] | None = (
        None
    )
    filter: ContactFilter | None = None


class TriggerCampaign(Input):
    """``POST /calls/api/calls/trigger_campaign_calls/``: start (or resume) a campaign, with
    the purpose and stagger of this run."""

    campaign_id: uuid.UUID
    call_purpose: Purpose | None = None
    stagger_minutes: Minutes | None = None


class Progress(Output):
    """A campaign's contacts by state, and how many were reached and converted."""

    total: int
    pending: int
    dialling: int
    done: int
    failed: int
    suppressed: int
    cancelled: int
    answered: int
    converted: int
    conversion_rate: float
    """converted / answered (0 when nobody answered yet)."""


class CampaignView(Output):
    """A campaign as the API shows it."""

    id: uuid.UUID
    name: str
    status: str
    call_purpose: str
    script_override: str
    pacing: Pacing
    retry: RetryPolicy
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    started_at: dt.datetime | None
    created_at: dt.datetime
    progress: Progress


class CampaignPage(Output):
    """A page of campaigns, newest first."""

    items: list[CampaignView]
    next_cursor: str | None


class ContactView(Output):
    """One contact of a campaign."""

    id: uuid.UUID
    customer_id: uuid.UUID
    phone_number: str
    name: str
    state: str
    attempts: int
    answered: bool
    reason: str
    callback_id: uuid.UUID | None
    last_call_id: uuid.UUID | None


class ContactPage(Output):
    """A page of a campaign's contacts, in calling order."""

    items: list[ContactView]
    next_cursor: str | None


class ContactsAdded(Output):
    """What adding contacts did: ``added`` new, ``already`` in the campaign; for a CSV, the
    rows not added with why."""

    added: int
    already: int
    errors: list[ImportRowError] = msgspec.field(default_factory=list)


# Views -----------------------------------------------------------------------------------------


async def progress_of(session: AsyncSession, campaign: Campaign) -> Progress:
    """The campaign's counts now (one grouped scan of its contacts, one join for conversions)."""
    by_state = dict(
        (
            await session.execute(
                select(CampaignContact.state, func.count())
                .where(CampaignContact.campaign_id == campaign.id)
                .group_by(CampaignContact.state)
            )
        ).all()
    )
    answered = await session.scalar(
        select(func.count()).where(
            CampaignContact.campaign_id == campaign.id, CampaignContact.answered.is_(True)
        )
    )
    converted = await session.scalar(
        select(func.count())
        .select_from(CampaignContact)
        .join(CustomerProfile, CustomerProfile.id == CampaignContact.customer_id)
        .where(
            CampaignContact.campaign_id == campaign.id,
            CampaignContact.answered.is_(True),
            CustomerProfile.converted.is_(True),
        )
    )
    counts = {state: int(by_state.get(state, 0)) for state in CONTACT_STATES}
    answered, converted = int(answered or 0), int(converted or 0)
    return Progress(
        total=sum(counts.values()),
        **counts,
        answered=answered,
        converted=converted,
        conversion_rate=round(converted / answered, 4) if answered else 0.0,
    )


def _backoff(campaign: Campaign) -> dict[str, float]:
    return {**DEFAULT_BACKOFF, **(campaign.retry_backoff or {})}


async def _view(session: AsyncSession, campaign: Campaign) -> CampaignView:
    backoff = _backoff(campaign)
    return CampaignView(
        id=campaign.id,
        name=campaign.name,
        status=campaign.status,
        call_purpose=campaign.call_purpose,
        script_override=campaign.script_override,
        pacing=Pacing(
            stagger_minutes=campaign.stagger_minutes, max_concurrent=campaign.max_concurrent
        ),
        retry=RetryPolicy(
            max_attempts=campaign.max_attempts,
            no_answer_minutes=backoff["no_answer"],
            busy_minutes=backoff["busy"],
            failed_minutes=backoff["failed"],
        ),
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
        started_at=campaign.started_at,
        created_at=campaign.created_at,
        progress=await progress_of(session, campaign),
    )


# Create, change, list ----------------------------------------------------------------------------


def _check_purpose(text: str) -> str:
    # Whether the text names a known purpose is the API's check (dialog.purposes; the store
    # imports nothing of ours): here only what the column can hold.
    if "\x00" in text:
        raise ValidationFailed("call_purpose", "contains a NUL character (\\u0000)")
    return text.strip()


def _check_dates(starts_at: dt.datetime | None, ends_at: dt.datetime | None) -> None:
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise ValidationFailed("ends_at", "must be after starts_at")


def _apply_retry(campaign: Campaign, retry: RetryPolicy) -> None:
    campaign.max_attempts = retry.max_attempts
    campaign.retry_backoff = {
        "no_answer": retry.no_answer_minutes,
        "busy": retry.busy_minutes,
        "failed": retry.failed_minutes,
    }


def _check_new(data: CampaignCreate, now: dt.datetime) -> None:
    _check_dates(data.starts_at, data.ends_at)
    if data.ends_at is not None and data.ends_at <= now:
        raise ValidationFailed("ends_at", "must be in the future")


async def _new_campaign(
    session: AsyncSession, client_id: uuid.UUID, data: CampaignCreate, now: dt.datetime
) -> Campaign:
    campaign = Campaign(
        client_id=client_id,
        name=data.name.strip(),
        call_purpose=_check_purpose(data.call_purpose),
        script_override=data.script_override.strip(),
        stagger_minutes=data.pacing.stagger_minutes,
        max_concurrent=data.pacing.max_concurrent,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        status="draft",
        settled_since_event=0,
        created_at=now,
        updated_at=now,
    )
    _apply_retry(campaign, data.retry)
    session.add(campaign)
    await session.flush()
    return campaign


async def create_campaign(
    db: Database, client_id: uuid.UUID, data: CampaignCreate, now: dt.datetime
) -> CampaignView:
    """A new draft campaign."""
    _check_new(data, now)
    async with db.write() as session:
        return await _view(session, await _new_campaign(session, client_id, data, now))


async def create_campaign_with_contacts(
    db: Database,
    client_id: uuid.UUID,
    data: CampaignCreate,
    contacts: ContactsAdd | str,
    now: dt.datetime,
) -> tuple[CampaignView, ContactsAdded]:
    """A new draft campaign and its contacts (``contacts``: by id or filter as
    :func:`add_contacts`, or CSV text as :func:`import_contacts`) in one transaction: when the
    contacts cannot be added (a bad CSV header, a filter too wide, an unknown id, a database
    error), nothing is written, not even the campaign. CSV rows that are refused one by one
    are reported and skipped, as :func:`import_contacts` does."""
    _check_new(data, now)
    if isinstance(contacts, ContactsAdd):
        _check_contacts_add(contacts)
    # The file is read before the transaction: a bad header or file writes nothing.
    parsed = _parse_csv(contacts) if isinstance(contacts, str) else None
    async with db.write() as session:
        campaign = await _new_campaign(session, client_id, data, now)
        if parsed is not None:
            rows, errors = parsed
            added = await _add_rows(session, campaign, client_id, rows, errors, now)
        else:
            assert isinstance(contacts, ContactsAdd)
            added = await _add_chosen(session, campaign, client_id, contacts, now)
        return await _view(session, campaign), added


async def get_campaign(db: Database, client_id: uuid.UUID, campaign_id: uuid.UUID) -> CampaignView:
    """One campaign of this client, with its progress."""
    async with db.read() as session:
        campaign = await get_scoped(session, Campaign, client_id, campaign_id, "campaign")
        return await _view(session, campaign)


async def get_progress(db: Database, client_id: uuid.UUID, campaign_id: uuid.UUID) -> Progress:
    """A campaign's progress counts."""
    async with db.read() as session:
        campaign = await get_scoped(session, Campaign, client_id, campaign_id, "campaign")
        return await progress_of(session, campaign)


NEWEST_FIRST = (
    SortKey(Campaign.created_at, parse=cursor_datetime, format=dt.datetime.isoformat),
    SortKey(Campaign.id),
)


async def list_campaigns(
    db: Database,
    client_id: uuid.UUID,
    *,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> CampaignPage:
    """The client's campaigns, newest first, optionally of one status."""
    statement = select(Campaign).where(Campaign.client_id == client_id)
    if status is not None:
        if status not in STATUSES:
            raise ValidationFailed("status", f"must be one of {', '.join(STATUSES)}")
        statement = statement.where(Campaign.status == status)
    async with db.read() as session:
        page = await paginate(
            session, statement, NEWEST_FIRST, cursor=cursor, limit=limit, descending=True
        )
        items = [await _view(session, row) for row in page.rows]
    return CampaignPage(items=items, next_cursor=page.next_cursor)


async def update_campaign(
    db: Database,
    client_id: uuid.UUID,
    campaign_id: uuid.UUID,
    data: CampaignUpdate,
    now: dt.datetime,
) -> CampaignView:
    """Change a campaign that has not finished (a cancelled or completed one is a 409)."""
    async with db.write() as session:
        campaign = await _locked(session, client_id, campaign_id)
        if campaign.status in ("cancelled", "completed"):
            raise Conflict(f"the campaign is {campaign.status}: it cannot be changed")
        changes = msgspec.structs.asdict(data)
        starts_at = campaign.starts_at if data.starts_at is UNSET else data.starts_at
        ends_at = campaign.ends_at if data.ends_at is UNSET else data.ends_at
        _check_dates(starts_at, ends_at)
        if changes["name"] is not UNSET:
            campaign.name = data.name.strip()  # type: ignore[union-attr]
        if changes["call_purpose"] is not UNSET:
            campaign.call_purpose = _check_purpose(data.call_purpose)  # type: ignore[arg-type]
        if changes["script_override"] is not UNSET:
            campaign.script_override = data.script_override.strip()  # type: ignore[union-attr]
        if isinstance(data.pacing, Pacing):
            campaign.stagger_minutes = data.pacing.stagger_minutes
            campaign.max_concurrent = data.pacing.max_concurrent
        if isinstance(data.retry, RetryPolicy):
            _apply_retry(campaign, data.retry)
        campaign.starts_at, campaign.ends_at = starts_at, ends_at
        campaign.updated_at = now
        await session.flush()
        return await _view(session, campaign)


async def delete_campaign(db: Database, client_id: uuid.UUID, campaign_id: uuid.UUID) -> None:
    """Delete a campaign that is not running (pause or cancel it first) and its contacts; rows
    still scheduled are cancelled first, so nothing of it is dialled afterwards."""
    async with db.write() as session:
        campaign = await _locked(session, client_id, campaign_id)
        if campaign.status == "running":
            raise Conflict("the campaign is running: pause or cancel it first")
        await _close_scheduled_rows(session, campaign, "campaign deleted", state="cancelled")
        await session.delete(campaign)


async def _locked(session: AsyncSession, client_id: uuid.UUID, campaign_id: uuid.UUID) -> Campaign:
    return await get_scoped(session, Campaign, client_id, campaign_id, "campaign", for_update=True)


# Contacts ----------------------------------------------------------------------------------------


async def _add(
    session: AsyncSession, campaign: Campaign, customers: Sequence[CustomerProfile]
) -> tuple[int, int]:
    """Add ``customers`` not yet in the campaign, in the given order; (added, already)."""
    ids = [customer.id for customer in customers]
    present: set[uuid.UUID] = set()
    for start in range(0, len(ids), 500):
        present.update(
            await session.scalars(
                select(CampaignContact.customer_id).where(
                    CampaignContact.campaign_id == campaign.id,
                    CampaignContact.customer_id.in_(ids[start : start + 500]),
                )
            )
        )
    position = int(
        await session.scalar(
            select(func.coalesce(func.max(CampaignContact.position), 0)).where(
                CampaignContact.campaign_id == campaign.id
            )
        )
        or 0
    )
    added = 0
    for customer in customers:
        if customer.id in present:
            continue
        present.add(customer.id)
        position += 1
        session.add(
            CampaignContact(
                client_id=campaign.client_id,
                campaign_id=campaign.id,
                customer_id=customer.id,
                position=position,
                state="pending",
                attempts=0,
                answered=False,
                reason="",
            )
        )
        added += 1
    await session.flush()
    return added, len(customers) - added


async def add_contacts(
    db: Database,
    client_id: uuid.UUID,
    campaign_id: uuid.UUID,
    data: ContactsAdd,
    now: dt.datetime,
) -> ContactsAdded:
    """Add the client's customers by id (an unknown or foreign id is a 404 and adds nothing) or
    by filter. A running campaign schedules them at once, after its last slot."""
    _check_contacts_add(data)
    async with db.write() as session:
        campaign = await _open_for_contacts(session, client_id, campaign_id)
        return await _add_chosen(session, campaign, client_id, data, now)


def _check_contacts_add(data: ContactsAdd) -> None:
    if (data.customer_ids is None) == (data.filter is None):
        raise ValidationFailed("customer_ids", "give either customer_ids or filter")


async def _add_chosen(
    session: AsyncSession,
    campaign: Campaign,
    client_id: uuid.UUID,
    data: ContactsAdd,
    now: dt.datetime,
) -> ContactsAdded:
    """:func:`add_contacts` in the caller's transaction, the campaign's row locked."""
    if data.customer_ids is not None:
        wanted = list(dict.fromkeys(data.customer_ids))
        found: dict[uuid.UUID, CustomerProfile] = {}
        for start in range(0, len(wanted), 500):
            for customer in await session.scalars(
                select(CustomerProfile).where(
                    CustomerProfile.client_id == client_id,
                    CustomerProfile.id.in_(wanted[start : start + 500]),
                )
            ):
                found[customer.id] = customer
        missing = [str(i) for i in wanted if i not in found]
        if missing:
            raise ValidationFailed("customer_ids", f"no such customer: {', '.join(missing[:5])}")
        chosen = [found[i] for i in wanted]
    else:
        assert data.filter is not None
        statement = select(CustomerProfile).where(
            CustomerProfile.client_id == client_id, CustomerProfile.do_not_call.is_(False)
        )
        if data.filter.interest_level is not None:
            statement = statement.where(
                CustomerProfile.interest_level == data.filter.interest_level
            )
        if data.filter.converted is not None:
            statement = statement.where(CustomerProfile.converted.is_(data.filter.converted))
        if data.filter.not_called_since is not None:
            statement = statement.where(
                (CustomerProfile.last_call_at.is_(None))
                | (CustomerProfile.last_call_at < data.filter.not_called_since)
            )
        chosen = list(
            await session.scalars(
                statement.order_by(CustomerProfile.id).limit(MAX_CONTACTS_PER_REQUEST + 1)
            )
        )
        if len(chosen) > MAX_CONTACTS_PER_REQUEST:
            raise ValidationFailed(
                "filter", f"matches more than {MAX_CONTACTS_PER_REQUEST} customers"
            )
    added, already = await _add(session, campaign, chosen)
    if campaign.status == "running":
        await _schedule_pending(session, campaign, now)
    return ContactsAdded(added=added, already=already)


async def import_contacts(
    db: Database, client_id: uuid.UUID, campaign_id: uuid.UUID, text: str, now: dt.datetime
) -> ContactsAdded:
    """Add contacts from CSV: a header with ``phone_number`` (or ``customer_id``) and optionally
    ``name``. A number no customer has yet becomes a new customer. Each bad row is reported
    (row, field, reason) and skipped; the good rows are added in one transaction."""
    rows, errors = _parse_csv(text)
    async with db.write() as session:
        campaign = await _open_for_contacts(session, client_id, campaign_id)
        return await _add_rows(session, campaign, client_id, rows, errors, now)


def _parse_csv(text: str) -> tuple[list[tuple[int, dict[str, str]]], list[ImportRowError]]:
    """The rows of a contacts CSV by number, and the rows refused already by their shape; a
    bad header or file is a :class:`ValidationFailed` (nothing is read from the database)."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if "phone_number" not in header and "customer_id" not in header:
        raise ValidationFailed(
            "file", "the CSV header must have a phone_number or customer_id column"
        )
    unknown = [column for column in header if column not in CSV_COLUMNS]
    if unknown:
        raise ValidationFailed("file", f"unknown columns: {', '.join(unknown)}")
    errors: list[ImportRowError] = []
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for number, raw in enumerate(reader, start=1):
            if number > customer_service.MAX_IMPORT_ROWS:
                raise ValidationFailed("file", f"more than {customer_service.MAX_IMPORT_ROWS} rows")
            if None in raw:
                errors.append(
                    ImportRowError(row=number, field="row", reason="more values than columns")
                )
                continue
            rows.append((number, {k: (v or "").strip() for k, v in raw.items() if k}))
    except csv.Error as error:
        raise ValidationFailed("file", f"not valid CSV: {error}") from None
    return rows, errors


async def _add_rows(
    session: AsyncSession,
    campaign: Campaign,
    client_id: uuid.UUID,
    rows: list[tuple[int, dict[str, str]]],
    errors: list[ImportRowError],
    now: dt.datetime,
) -> ContactsAdded:
    """:func:`import_contacts` of parsed rows in the caller's transaction, the campaign's row
    locked."""
    errors = list(errors)
    chosen: list[CustomerProfile] = []
    seen: dict[uuid.UUID, int] = {}
    created: list[tuple[CustomerProfile, Any]] = []
    for number, row in rows:
        try:
            customer = await _row_customer(session, client_id, row, created)
        except ValidationFailed as error:
            errors.append(ImportRowError(row=number, field=error.field, reason=error.reason))
            continue
        if customer.id in seen:
            errors.append(
                ImportRowError(
                    row=number,
                    field="phone_number",
                    reason=f"same customer as row {seen[customer.id]}",
                )
            )
            continue
        if customer.do_not_call:
            errors.append(
                ImportRowError(row=number, field="phone_number", reason="on the do-not-call list")
            )
            continue
        seen[customer.id] = number
        chosen.append(customer)
    if created:
        await events.customers_written(session, client_id, created, source="campaign")
    added, already = await _add(session, campaign, chosen)
    if campaign.status == "running":
        await _schedule_pending(session, campaign, now)
    errors.sort(key=lambda e: e.row)
    return ContactsAdded(added=added, already=already, errors=errors)


async def _row_customer(
    session: AsyncSession,
    client_id: uuid.UUID,
    row: dict[str, str],
    created: list[tuple[CustomerProfile, Any]],
) -> CustomerProfile:
    """The customer a CSV row names (by id, else by number; a new one for a new number)."""
    if "\x00" in "".join(row.values()):
        raise ValidationFailed("row", "contains a NUL character (\\u0000)")
    if row.get("customer_id"):
        try:
            customer_id = uuid.UUID(row["customer_id"])
        except ValueError:
            raise ValidationFailed("customer_id", "not a UUID") from None
        customer = await session.scalar(
            select(CustomerProfile).where(
                CustomerProfile.client_id == client_id, CustomerProfile.id == customer_id
            )
        )
        if customer is None:
            raise ValidationFailed("customer_id", "no such customer")
        return customer
    phone = normalize_phone(row.get("phone_number", ""))
    name = row.get("name", "")
    if len(name) > 200:
        raise ValidationFailed("name", "longer than 200 characters")
    customer = await session.scalar(
        select(CustomerProfile).where(
            CustomerProfile.client_id == client_id, CustomerProfile.phone_number == phone
        )
    )
    if customer is None:
        customer = customer_service.new_customer(client_id, phone, name=name)
        session.add(customer)
        await session.flush()
        await counters.bump(session, client_id, customer_service.customer_counts(customer))
        created.append((customer, None))
    return customer


async def _open_for_contacts(
    session: AsyncSession, client_id: uuid.UUID, campaign_id: uuid.UUID
) -> Campaign:
    campaign = await _locked(session, client_id, campaign_id)
    if campaign.status in ("cancelled", "completed"):
        raise Conflict(f"the campaign is {campaign.status}: no contacts can be added")
    return campaign


async def list_contacts(
    db: Database,
    client_id: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    state: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> ContactPage:
    """A campaign's contacts in calling order, optionally of one state."""
    statement = (
        select(CampaignContact, CustomerProfile)
        .join(CustomerProfile, CustomerProfile.id == CampaignContact.customer_id)
        .where(CampaignContact.client_id == client_id, CampaignContact.campaign_id == campaign_id)
    )
    if state is not None:
        if state not in CONTACT_STATES:
            raise ValidationFailed("state", f"must be one of {', '.join(CONTACT_STATES)}")
        statement = statement.where(CampaignContact.state == state)
    keys = (SortKey(CampaignContact.position, parse=int, format=str), SortKey(CampaignContact.id))
    async with db.read() as session:
        await get_scoped(session, Campaign, client_id, campaign_id, "campaign")
        page = await paginate(session, statement, keys, cursor=cursor, limit=limit)
    return ContactPage(
        items=[
            ContactView(
                id=contact.id,
                customer_id=customer.id,
                phone_number=customer.phone_number,
                name=customer.name,
                state=contact.state,
                attempts=contact.attempts,
                answered=contact.answered,
                reason=contact.reason,
                callback_id=contact.callback_id,
                last_call_id=contact.last_call_id,
            )
            for contact, customer in page.rows
        ],
        next_cursor=page.next_cursor,
    )


# Start, pause, resume, cancel -----------------------------------------------------------------


async def _schedule_pending(session: AsyncSession, campaign: Campaign, now: dt.datetime) -> int:
    """Give every pending contact without a row its row, ``stagger_minutes`` apart in calling
    order, the first at the later of now, the start date and one stagger after the campaign's
    last scheduled slot. The campaign's row is locked by the caller."""
    stagger = dt.timedelta(minutes=campaign.stagger_minutes)
    base = max(now, campaign.starts_at or now)
    last = await session.scalar(
        select(func.max(ScheduledCallback.scheduled_at))
        .join(CampaignContact, CampaignContact.callback_id == ScheduledCallback.id)
        .where(
            CampaignContact.campaign_id == campaign.id,
            ScheduledCallback.status == CallbackStatus.SCHEDULED,
        )
    )
    if last is not None:
        base = max(base, last + stagger)
    contacts = list(
        await session.scalars(
            select(CampaignContact)
            .where(
                CampaignContact.campaign_id == campaign.id,
                CampaignContact.state == "pending",
                CampaignContact.callback_id.is_(None),
            )
            .order_by(CampaignContact.position)
            .with_for_update()
        )
    )
    for index, contact in enumerate(contacts):
        row = await callback_service.new_callback(
            session,
            campaign.client_id,
            contact.customer_id,
            scheduled_at=base + stagger * index,
            reason=(campaign.call_purpose or f"campaign: {campaign.name}")[:500],
            # At most max_attempts calls per contact in all, across pauses.
            max_attempts=max(1, campaign.max_attempts - contact.attempts),
            announce=False,  # a campaign slot is not a callback the customer asked for
        )
        row.kind = KIND
        contact.callback_id = row.id
        contact.reason = ""
    await session.flush()
    return len(contacts)


async def _close_scheduled_rows(
    session: AsyncSession, campaign: Campaign, reason: str, *, state: str
) -> int:
    """Cancel the campaign's rows still only scheduled (not leased by a node); their contacts
    go to ``state`` without a row."""
    pairs = (
        await session.execute(
            select(CampaignContact, ScheduledCallback)
            .join(ScheduledCallback, ScheduledCallback.id == CampaignContact.callback_id)
            .where(
                CampaignContact.campaign_id == campaign.id,
                ScheduledCallback.status == CallbackStatus.SCHEDULED,
            )
            .with_for_update()
        )
    ).all()
    for contact, row in pairs:
        await counters.bump(
            session, row.client_id, callback_service.move(row, CallbackStatus.CANCELLED)
        )
        row.closed_reason = reason[:300]
        contact.callback_id = None
        contact.state = state
    return len(pairs)


async def _emit(session: AsyncSession, campaign: Campaign) -> None:
    progress = await progress_of(session, campaign)
    campaign.settled_since_event = 0
    await events.campaign_progress(
        session,
        campaign.client_id,
        campaign.id,
        name=campaign.name,
        status=campaign.status,
        totals={
            "total": progress.total,
            "called": progress.done + progress.failed + progress.dialling,
            "reached": progress.answered,
            "converted": progress.converted,
            "remaining": progress.pending + progress.dialling,
            "failed": progress.failed,
            "suppressed": progress.suppressed,
            "pending": progress.pending,
            "dialling": progress.dialling,
            "done": progress.done,
        },
    )


async def _finish_if_done(session: AsyncSession, campaign: Campaign, now: dt.datetime) -> bool:
    if campaign.status != "running":
        return False
    open_contacts = await session.scalar(
        select(func.count()).where(
            CampaignContact.campaign_id == campaign.id,
            CampaignContact.state.in_(("pending", "dialling")),
        )
    )
    if open_contacts:
        return False
    campaign.status = "completed"
    campaign.updated_at = now
    return True


async def start_campaign(
    db: Database,
    client_id: uuid.UUID,
    campaign_id: uuid.UUID,
    now: dt.datetime,
    *,
    call_purpose: str | None = None,
    stagger_minutes: float | None = None,
) -> CampaignView:
    """Start a draft, resume a paused campaign, or schedule the contacts added to a running
    one since; optionally with this run's purpose and stagger. A campaign without contacts, or
    a cancelled, completed or ended one, is a 409."""
    async with db.write() as session:
        campaign = await _locked(session, client_id, campaign_id)
        if campaign.status in ("cancelled", "completed"):
            raise Conflict(f"the campaign is {campaign.status}")
        if campaign.ends_at is not None and campaign.ends_at <= now:
            raise Conflict("the campaign's end date has passed")
        if call_purpose is not None:
            campaign.call_purpose = _check_purpose(call_purpose)
        if stagger_minutes is not None:
            campaign.stagger_minutes = stagger_minutes
        has_contacts = await session.scalar(
            select(func.count()).where(CampaignContact.campaign_id == campaign.id)
        )
        if not has_contacts:
            raise Conflict("the campaign has no contacts: add some first")
        changed = campaign.status != "running"
        campaign.status = "running"
        campaign.started_at = campaign.started_at or now
        campaign.updated_at = now
        await _schedule_pending(session, campaign, now)
        if changed:
            await _emit(session, campaign)
        return await _view(session, campaign)


async def pause_campaign(
    db: Database, client_id: uuid.UUID, campaign_id: uuid.UUID, now: dt.datetime
) -> CampaignView:
    """Stop dialling: rows not yet dialled are cancelled (a row a node has leased is stopped at
    dial time); calls already live go on. Resume continues with the contacts left."""
    async with db.write() as session:
        campaign = await _locked(session, client_id, campaign_id)
        if campaign.status != "running":
            raise Conflict(f"only a running campaign can be paused; this one is {campaign.status}")
        campaign.status = "paused"
        campaign.updated_at = now
        await _close_scheduled_rows(session, campaign, "campaign paused", state="pending")
        await _emit(session, campaign)
        return await _view(session, campaign)


async def resume_campaign(
    db: Database, client_id: uuid.UUID, campaign_id: uuid.UUID, now: dt.datetime
) -> CampaignView:
    """Continue a paused campaign: its pending contacts get rows again, staggered from now."""
    async with db.write() as session:
        campaign = await _locked(session, client_id, campaign_id)
        if campaign.status != "paused":
            raise Conflict(f"only a paused campaign can be resumed; this one is {campaign.status}")
    return await start_campaign(db, client_id, campaign_id, now)


async def cancel_campaign(
    db: Database, client_id: uuid.UUID, campaign_id: uuid.UUID, now: dt.datetime
) -> CampaignView:
    """End the campaign for good: rows not yet dialled are cancelled and its pending contacts
    with them; calls already live go on."""
    async with db.write() as session:
        campaign = await _locked(session, client_id, campaign_id)
        if campaign.status in ("cancelled", "completed"):
            raise Conflict(f"the campaign is {campaign.status} already")
        campaign.status = "cancelled"
        campaign.updated_at = now
        await _close_scheduled_rows(session, campaign, "campaign cancelled", state="cancelled")
        for contact in await session.scalars(
            select(CampaignContact)
            .where(CampaignContact.campaign_id == campaign.id, CampaignContact.state == "pending")
            .with_for_update()
        ):
            contact.state = "cancelled"
        await _emit(session, campaign)
        return await _view(session, campaign)


# The scheduler's hooks -----------------------------------------------------------------------


class Gate(msgspec.Struct, kw_only=True):
    """What :func:`gate` found for a campaign row at dial time."""

    stop: tuple[str, str, str] | None = None
    """(action, code, reason) that stops the row before the dial-time rules: close or wait."""
    full: tuple[str, str] | None = None
    """(code, reason) when the campaign's live calls are at ``max_concurrent``."""
    purpose: str = ""
    context: dict[str, Any] = msgspec.field(default_factory=dict)


async def _contact_of(session: AsyncSession, row: ScheduledCallback) -> CampaignContact | None:
    return await session.scalar(
        select(CampaignContact).where(CampaignContact.callback_id == row.id).with_for_update()
    )


async def gate(
    session: AsyncSession, row: ScheduledCallback, now: dt.datetime, *, live_grace: dt.timedelta
) -> Gate:
    """The campaign's say on one of its leased rows, in ``dial_queue.take``'s transaction (the
    row locked; the campaign's row is locked here, so ``max_concurrent`` counts the calls other
    nodes are writing for it too)."""
    contact = await _contact_of(session, row)
    campaign = (
        None
        if contact is None
        else await session.scalar(
            select(Campaign).where(Campaign.id == contact.campaign_id).with_for_update()
        )
    )
    if contact is None or campaign is None:
        return Gate(stop=("close", "campaign_cancelled", "the campaign is gone"))
    if campaign.status == "paused":
        return Gate(stop=("close", "campaign_paused", "the campaign is paused"))
    if campaign.status != "running":
        return Gate(stop=("close", "campaign_cancelled", f"the campaign is {campaign.status}"))
    if campaign.ends_at is not None and now >= campaign.ends_at:
        return Gate(stop=("close", "campaign_ended", "the campaign's end date has passed"))
    since = now - live_grace
    live = await session.scalar(
        select(func.count())
        .select_from(CampaignContact)
        .join(CallSession, CallSession.id == CampaignContact.last_call_id)
        .where(
            CampaignContact.campaign_id == campaign.id,
            CallSession.status.in_(_LIVE),
            CallSession.last_activity_at >= since,
        )
    )
    context: dict[str, Any] = {"campaign_id": str(campaign.id), "campaign": campaign.name}
    if campaign.script_override:
        context["script"] = campaign.script_override
    full = None
    if int(live or 0) >= campaign.max_concurrent:
        full = (
            "campaign_concurrency",
            f"the campaign has {live} live calls (max {campaign.max_concurrent})",
        )
    return Gate(full=full, purpose=campaign.call_purpose, context=context)


async def after_verdict(
    session: AsyncSession,
    row: ScheduledCallback,
    action: str,
    code: str,
    reason: str,
    now: dt.datetime,
) -> None:
    """The contact of a campaign row the rules (or :func:`gate`) did not let dial now: closed
    rows leave their contact suppressed (do-not-call), pending (paused), cancelled or failed."""
    if action != "close":
        return
    contact = await _contact_of(session, row)
    if contact is None:
        return
    contact.callback_id = None
    contact.reason = f"{code}: {reason}"[:300]
    if code == "do_not_call":
        contact.state = "suppressed"
    elif code == "campaign_paused":
        contact.state = "pending"
        return
    elif code in ("campaign_cancelled", "campaign_contact_cancelled"):
        contact.state = "cancelled"
        if code == "campaign_cancelled":
            return
    else:
        contact.state = "failed"
    await _contact_finished(session, contact.campaign_id, now)


async def row_cancelled(
    session: AsyncSession, row: ScheduledCallback, code: str, reason: str
) -> None:
    """A campaign row cancelled from outside the campaign (the customer set do-not-call, a
    person cancelled the callback): its contact is suppressed or cancelled, not left pending
    with a dead row."""
    await after_verdict(
        session,
        row,
        "close",
        "do_not_call" if code == "do_not_call" else "campaign_contact_cancelled",
        reason,
        dt.datetime.now(dt.UTC),
    )


async def dialled(
    session: AsyncSession, row: ScheduledCallback, call: CallSession, found: Gate
) -> None:
    """The call written for a campaign row: on its contact (what ``max_concurrent`` counts),
    and the campaign's purpose and script on the call, which the router turns into the call's
    context message after the byte-stable prompt (docs/dialog.md)."""
    if found.purpose:
        call.purpose = found.purpose[:500]
    call.context = {**(call.context or {}), **found.context}
    contact = await _contact_of(session, row)
    if contact is None:
        return
    contact.state = "dialling"
    contact.last_call_id = call.id
    contact.attempts += 1


async def settled(
    session: AsyncSession,
    row: ScheduledCallback,
    was: CallbackStatus,
    outcome: CallOutcome,
    now: dt.datetime,
) -> None:
    """After ``callbacks.settle`` moved a campaign row on its call's ``outcome``: the retry
    waits the campaign's backoff for that outcome instead of the callbacks' default, the
    contact follows the row, and a retry of a paused or cancelled campaign is not scheduled."""
    if was != CallbackStatus.IN_PROGRESS:
        return  # settled already (a later outcome of the same call changes nothing here)
    contact = await _contact_of(session, row)
    if contact is None:
        return
    campaign = await session.scalar(
        select(Campaign).where(Campaign.id == contact.campaign_id).with_for_update()
    )
    if campaign is None:
        return
    if row.status == CallbackStatus.SCHEDULED:
        key = _BACKOFF_OF.get(outcome, "no_answer")
        row.scheduled_at = now + dt.timedelta(minutes=_backoff(campaign)[key])
        contact.state = "pending"
        contact.reason = f"retry after {outcome.value}"
        if campaign.status != "running":
            await counters.bump(
                session, row.client_id, callback_service.move(row, CallbackStatus.CANCELLED)
            )
            row.closed_reason = f"campaign {campaign.status}"
            contact.callback_id = None
            if campaign.status == "cancelled":
                contact.state = "cancelled"
        return
    contact.callback_id = None
    if row.status == CallbackStatus.COMPLETED:
        contact.state = "done"
        contact.answered = True
        contact.reason = outcome.value
    else:
        contact.state = "failed"
        contact.reason = f"{row.attempts} attempts; last: {outcome.value}"[:300]
    await _contact_finished(session, campaign.id, now)


async def _contact_finished(
    session: AsyncSession, campaign_id: uuid.UUID, now: dt.datetime
) -> None:
    campaign = await session.scalar(
        select(Campaign).where(Campaign.id == campaign_id).with_for_update()
    )
    if campaign is None:
        return
    campaign.settled_since_event += 1
    await session.flush()
    if await _finish_if_done(session, campaign, now) or (
        campaign.settled_since_event >= PROGRESS_EVERY
    ):
        await _emit(session, campaign)


async def trigger(
    db: Database, client_id: uuid.UUID, data: TriggerCampaign, now: dt.datetime
) -> CampaignView:
    """``trigger_campaign_calls``: :func:`start_campaign` with the body's purpose and stagger."""
    return await start_campaign(
        db,
        client_id,
        data.campaign_id,
        now,
        call_purpose=data.call_purpose,
        stagger_minutes=data.stagger_minutes,
    )
