"""Webhook endpoints and deliveries (docs/webhooks.md): the client's CRUD, the delivery log,
redelivery, and the delivery worker's claim and report.

Endpoints are per client like every resource (another client's is a 404). Deliveries are rows
(``webhook_deliveries``, written with their event by ``events.emit``) that exactly one node
sends at a time, the way analysis jobs are run (``analysis_jobs``):

* **claim** (:func:`claim`): one short transaction takes the oldest due delivery - ``pending``
  with its next attempt due, or ``delivering`` with a lease that ran out (its node died) - of an
  active endpoint, and writes this node's name and a lease on it. On PostgreSQL the pick is
  ``SELECT … FOR UPDATE SKIP LOCKED``, so nodes claiming at once get different rows; on SQLite
  the write transaction's ``BEGIN IMMEDIATE`` serialises claims (one node).
* **ordering**: a delivery whose ordering key (its call, or its customer) has an earlier
  unfinished delivery to the same endpoint (``pending`` or ``delivering``) is not due: a call's
  later event never reaches a CRM before an earlier one. An earlier one that ``failed`` for good
  no longer holds the rest back.
* **report** (:func:`report`): the attempt's result is written only while this node still holds
  the lease (fencing); ``delivered`` on a 2xx, else ``pending`` again after the backoff the
  worker computed, or ``failed`` after ``max_attempts``. Every attempt is logged. A retry's
  backoff also moves the later pending deliveries of its key to its next attempt: they could
  not go before it, and not being due they stay out of every claim's scan meanwhile.
* **tries**: the writers of events run wherever a change is made and cannot know the sending
  node's ``webhooks.max_attempts``: a new (or redelivered) delivery gets its tries from the
  node that first claims it.
* **retention** (:func:`purge_delivered`): delivered deliveries, and then events that have no
  delivery left, are deleted in batches once they are older than the retention; a delivery
  that is pending, being sent or ``failed`` is never deleted, nor its event.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

import msgspec
from msgspec import UNSET, Meta, UnsetType
from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from callagent.store.db import Database
from callagent.store.errors import Conflict, NotFound, ValidationFailed
from callagent.store.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from callagent.store.pagination import SortKey, paginate
from callagent.store.schemas import Input, Output
from callagent.store.services._common import get_scoped, to_view
from callagent.store.services.events import (
    ALL,
    DEFAULT_MAX_ATTEMPTS,
    EVENT_TYPES,
    UNSET_ATTEMPTS,
)

SECRET_PREFIX: Final = "whsec_"
MAX_ENDPOINTS: Final = 20
"""Endpoints per client: each event is one delivery per endpoint, so this bounds the fan-out."""
_ERROR_CHARS: Final = 1000
NEWEST_FIRST = (SortKey(WebhookEndpoint.id),)
DELIVERIES_NEWEST_FIRST = (SortKey(WebhookDelivery.id),)

METADATA_HOSTS: Final = frozenset({"metadata", "metadata.google.internal", "instance-data"})
"""Cloud metadata services by name (their addresses are link-local and refused as such)."""

Url = Annotated[str, Meta(min_length=1, max_length=2000)]
Secret = Annotated[str, Meta(min_length=16, max_length=200)]
EventTypes = Annotated[list[str], Meta(min_length=1, max_length=len(EVENT_TYPES) + 1)]


# Bodies -------------------------------------------------------------------------------------


class WebhookEndpointCreate(Input):
    """``POST /api/webhooks/``: where to send which events. Without ``secret`` one is made."""

    url: Url
    event_types: EventTypes
    secret: Secret | UnsetType = UNSET
    active: bool = True
    description: Annotated[str, Meta(max_length=200)] = ""


class WebhookEndpointUpdate(Input):
    """Fields to change on an endpoint; ``secret`` replaces the signing secret."""

    url: Url | UnsetType = UNSET
    event_types: EventTypes | UnsetType = UNSET
    secret: Secret | UnsetType = UNSET
    active: bool | UnsetType = UNSET
    description: Annotated[str, Meta(max_length=200)] | UnsetType = UNSET


class WebhookEndpointView(Output):
    """An endpoint; its secret only as a hint (its last four characters)."""

    id: uuid.UUID
    url: str
    event_types: list[str]
    active: bool
    description: str
    secret_hint: str
    created_at: dt.datetime
    updated_at: dt.datetime


class WebhookEndpointWithSecret(WebhookEndpointView):
    """An endpoint as created (or with a secret just set): the secret, shown this once."""

    secret: str


class WebhookEndpointPage(Output):
    """One page of endpoints, newest first."""

    items: list[WebhookEndpointView]
    next_cursor: str | None


class WebhookAttemptView(Output):
    """One try of a delivery."""

    attempt: int
    started_at: dt.datetime
    duration_ms: float
    status_code: int | None
    error: str
    next_attempt_at: dt.datetime | None


class WebhookDeliveryView(Output):
    """One event to one endpoint; ``max_attempts`` is null until a node first sends it (again,
    after a redelivery): that node's ``webhooks.max_attempts`` applies."""

    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempts: int
    max_attempts: int | None
    next_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str
    created_at: dt.datetime
    updated_at: dt.datetime
    delivered_at: dt.datetime | None


class WebhookDeliveryDetail(WebhookDeliveryView):
    """A delivery with its event's body and every attempt, oldest first."""

    payload: dict[str, Any]
    attempt_log: list[WebhookAttemptView]


class WebhookDeliveryPage(Output):
    """One page of deliveries, newest first."""

    items: list[WebhookDeliveryView]
    next_cursor: str | None


# Validation ---------------------------------------------------------------------------------


def check_url(url: str, field: str = "url") -> str:
    """``url`` if it is an absolute http(s) URL that may be called (docs/webhooks.md,
    "Which URLs"): no credentials in it, and not a link-local or cloud metadata address."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ValidationFailed(field, f"not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise ValidationFailed(field, "must be an http:// or https:// URL")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ValidationFailed(field, "has no host")
    if parts.username is not None or parts.password is not None:
        raise ValidationFailed(field, "must not carry credentials: the signature authenticates")
    if port == 0:
        raise ValidationFailed(field, "port 0 is not a port")
    if any(ord(ch) < 0x21 for ch in url):
        raise ValidationFailed(field, "must not contain spaces or control characters")
    reason = refused_host(host)
    if reason:
        raise ValidationFailed(field, reason)
    return url


def refused_host(host: str) -> str:
    """Why webhooks may not go to ``host`` (a name or an address), or ""."""
    if host in METADATA_HOSTS:
        return "is a cloud metadata service"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return ""
    return refused_address(address)


def refused_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Why webhooks may not go to ``address``, or "". Link-local covers the metadata
    services (169.254.169.254, fd00:ec2::254 is unique-local and allowed like any LAN)."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    if address.is_link_local:
        return "is a link-local address (where cloud metadata services answer)"
    if address.is_multicast or address.is_unspecified:
        return "is not a unicast address"
    return ""


def check_event_types(types: list[str], field: str = "event_types") -> list[str]:
    """Known types only, without duplicates; ``"*"`` alone means all of them."""
    for index, name in enumerate(types):
        if name != ALL and name not in EVENT_TYPES:
            known = ", ".join(EVENT_TYPES)
            raise ValidationFailed(f"{field}[{index}]", f"unknown event type; known: *, {known}")
    unique = list(dict.fromkeys(types))
    return [ALL] if ALL in unique else unique


def new_secret() -> str:
    """A signing secret: 256 random bits."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _view(row: WebhookEndpoint) -> WebhookEndpointView:
    return to_view(row, WebhookEndpointView, secret_hint="…" + row.secret[-4:])


def _with_secret(row: WebhookEndpoint) -> WebhookEndpointWithSecret:
    return to_view(
        row, WebhookEndpointWithSecret, secret_hint="…" + row.secret[-4:], secret=row.secret
    )


# Endpoints ----------------------------------------------------------------------------------


async def create_endpoint(
    db: Database, client_id: uuid.UUID, data: WebhookEndpointCreate
) -> WebhookEndpointWithSecret:
    """A new endpoint; its secret (made here unless given) is in this answer only."""
    url = check_url(data.url)
    types = check_event_types(data.event_types)
    secret = new_secret() if isinstance(data.secret, UnsetType) else data.secret
    async with db.write() as session:
        count = len(
            list(
                await session.scalars(
                    select(WebhookEndpoint.id)
                    .where(WebhookEndpoint.client_id == client_id)
                    .limit(MAX_ENDPOINTS)
                )
            )
        )
        if count >= MAX_ENDPOINTS:
            raise Conflict(f"a client may have at most {MAX_ENDPOINTS} webhook endpoints")
        row = WebhookEndpoint(
            client_id=client_id,
            url=url,
            secret=secret,
            event_types=types,
            active=data.active,
            description=data.description,
        )
        session.add(row)
        await session.flush()
        return _with_secret(row)


async def get_endpoint(
    db: Database, client_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpointView:
    """One endpoint of this client (without its secret)."""
    async with db.read() as session:
        return _view(await get_scoped(session, WebhookEndpoint, client_id, endpoint_id, "webhook"))


async def list_endpoints(
    db: Database, client_id: uuid.UUID, *, cursor: str | None = None, limit: int = 50
) -> WebhookEndpointPage:
    """The client's endpoints, newest first."""
    statement = select(WebhookEndpoint).where(WebhookEndpoint.client_id == client_id)
    async with db.read() as session:
        page = await paginate(
            session, statement, NEWEST_FIRST, cursor=cursor, limit=limit, descending=True
        )
    return WebhookEndpointPage(
        items=[_view(row) for row in page.rows], next_cursor=page.next_cursor
    )


async def update_endpoint(
    db: Database, client_id: uuid.UUID, endpoint_id: uuid.UUID, data: WebhookEndpointUpdate
) -> WebhookEndpointView | WebhookEndpointWithSecret:
    """Change the given fields; with a new ``secret`` the answer shows it (this once)."""
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not UNSET}
    if "url" in changes:
        changes["url"] = check_url(changes["url"])
    if "event_types" in changes:
        changes["event_types"] = check_event_types(changes["event_types"])
    async with db.write() as session:
        row = await get_scoped(
            session, WebhookEndpoint, client_id, endpoint_id, "webhook", for_update=True
        )
        for name, value in changes.items():
            setattr(row, name, value)
        await session.flush()
        return _with_secret(row) if "secret" in changes else _view(row)


async def delete_endpoint(db: Database, client_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
    """Delete an endpoint with its deliveries and their log."""
    async with db.write() as session:
        row = await get_scoped(
            session, WebhookEndpoint, client_id, endpoint_id, "webhook", for_update=True
        )
        await session.delete(row)


# Deliveries ---------------------------------------------------------------------------------


async def list_deliveries(
    db: Database,
    client_id: uuid.UUID,
    *,
    endpoint_id: uuid.UUID | None = None,
    status: DeliveryStatus | None = None,
    event_type: str | None = None,
    event_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> WebhookDeliveryPage:
    """The client's deliveries, newest first, filtered."""
    statement = select(WebhookDelivery).where(WebhookDelivery.client_id == client_id)
    if endpoint_id is not None:
        statement = statement.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status)
    if event_type is not None:
        if event_type not in EVENT_TYPES:
            raise ValidationFailed("event_type", "unknown event type")
        statement = statement.where(WebhookDelivery.event_type == event_type)
    if event_id is not None:
        statement = statement.where(WebhookDelivery.event_id == event_id)
    async with db.read() as session:
        page = await paginate(
            session, statement, DELIVERIES_NEWEST_FIRST, cursor=cursor, limit=limit, descending=True
        )
    return WebhookDeliveryPage(
        items=[
            to_view(row, WebhookDeliveryView, max_attempts=_max_attempts(row)) for row in page.rows
        ],
        next_cursor=page.next_cursor,
    )


async def get_delivery(
    db: Database, client_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDeliveryDetail:
    """One delivery with the body it sends and its attempts."""
    async with db.read() as session:
        row = await get_scoped(session, WebhookDelivery, client_id, delivery_id, "delivery")
        return await _detail(session, row)


async def _detail(session: AsyncSession, row: WebhookDelivery) -> WebhookDeliveryDetail:
    event = await session.scalar(select(WebhookEvent).where(WebhookEvent.id == row.event_id))
    attempts = await session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == row.id)
        .order_by(WebhookAttempt.attempt, WebhookAttempt.id)
    )
    return to_view(
        row,
        WebhookDeliveryDetail,
        max_attempts=_max_attempts(row),
        payload=envelope(event) if event is not None else {},
        attempt_log=[to_view(attempt, WebhookAttemptView) for attempt in attempts],
    )


def _max_attempts(row: WebhookDelivery) -> int | None:
    """The delivery's tries, or None while the node that sends it has not fixed them."""
    return None if _tries_unset(row) else row.max_attempts


def _tries_unset(row: WebhookDelivery) -> bool:
    # A pending delivery with its tries used up is new or redelivered: a failed last try
    # makes it ``failed``, never ``pending``.
    return row.status == DeliveryStatus.PENDING and row.attempts >= row.max_attempts


async def redeliver(
    db: Database,
    client_id: uuid.UUID,
    delivery_id: uuid.UUID,
    now: dt.datetime,
    *,
    max_attempts: int = UNSET_ATTEMPTS,
) -> WebhookDeliveryDetail:
    """Send a delivery again, now, with a fresh set of tries - ``max_attempts``, or the sending
    node's setting (same event id: the receiver can tell it is the same event). One being sent
    right now is a 409."""
    async with db.write() as session:
        row = await get_scoped(
            session, WebhookDelivery, client_id, delivery_id, "delivery", for_update=True
        )
        if row.status == DeliveryStatus.DELIVERING:
            raise Conflict("this delivery is being sent right now")
        row.status = DeliveryStatus.PENDING
        row.max_attempts = row.attempts + max_attempts
        row.next_attempt_at = now
        row.delivered_at = None
        row.updated_at = now
        await session.flush()
        return await _detail(session, row)


def envelope(event: WebhookEvent) -> dict[str, Any]:
    """The JSON body a delivery sends: the event's id, type, time and data."""
    return {
        "id": str(event.id),
        "type": event.type,
        "created_at": event.created_at.isoformat(),
        "data": event.data,
    }


# The worker's side --------------------------------------------------------------------------


class LeaseLost(Conflict):
    """This node no longer holds the delivery (its lease ran out and another node took it, or
    it was redelivered meanwhile). Nothing is written."""


@dataclass(frozen=True)
class DeliveryLease:
    """A delivery this node claimed: what to send, where, until when it is this node's."""

    delivery_id: uuid.UUID
    client_id: uuid.UUID
    endpoint_id: uuid.UUID
    url: str
    secret: str
    event_id: uuid.UUID
    event_type: str
    body: bytes
    worker: str
    attempt: int
    max_attempts: int
    locked_until: dt.datetime


def _due(now: dt.datetime) -> Any:
    return or_(
        and_(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
        ),
        and_(
            WebhookDelivery.status == DeliveryStatus.DELIVERING,
            WebhookDelivery.locked_until < now,
        ),
    )


def _held_back() -> Any:
    """An earlier unfinished delivery of the same ordering key to the same endpoint."""
    earlier = aliased(WebhookDelivery)
    return and_(
        WebhookDelivery.ordering_key != "",
        exists().where(
            earlier.endpoint_id == WebhookDelivery.endpoint_id,
            earlier.ordering_key == WebhookDelivery.ordering_key,
            earlier.event_seq < WebhookDelivery.event_seq,
            earlier.status.in_((DeliveryStatus.PENDING, DeliveryStatus.DELIVERING)),
        ),
    )


async def claim(
    db: Database,
    worker: str,
    now: dt.datetime,
    lease: dt.timedelta,
    *,
    client_id: uuid.UUID | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> DeliveryLease | None:
    """Take the oldest due delivery for ``worker`` until ``now + lease`` (module docstring);
    None when there is none. ``client_id`` limits it to one client's deliveries (tests). A
    delivery whose tries are not fixed yet gets ``max_attempts`` (this node's setting).

    A delivery taken again after its lease ran out counts that lost attempt; one that used up
    its attempts that way is failed here and the next one is looked at."""
    while True:
        async with db.write() as session:
            statement = (
                select(WebhookDelivery, WebhookEndpoint)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(_due(now), WebhookEndpoint.active.is_(True), ~_held_back())
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.event_seq)
                .limit(1)
                .with_for_update(skip_locked=True, of=WebhookDelivery)
            )
            if client_id is not None:
                statement = statement.where(WebhookDelivery.client_id == client_id)
            found = (await session.execute(statement)).first()
            if found is None:
                return None
            row, endpoint = found
            row.updated_at = now
            if row.status == DeliveryStatus.DELIVERING and row.attempts >= row.max_attempts:
                error = (
                    f"gave up after {row.attempts} attempts: the lease of {row.locked_by} ran out"
                )
                row.status = DeliveryStatus.FAILED
                row.last_error = error[:_ERROR_CHARS]
                row.next_attempt_at = None
                row.locked_by, row.locked_until = "", None
                continue
            event = await session.scalar(
                select(WebhookEvent).where(WebhookEvent.id == row.event_id)
            )
            assert event is not None  # deleted only with its deliveries (foreign key)
            if _tries_unset(row):
                row.max_attempts = row.attempts + max(1, max_attempts)
            row.status = DeliveryStatus.DELIVERING
            row.attempts += 1
            row.locked_by = worker[:100]
            row.locked_until = now + lease
            return DeliveryLease(
                delivery_id=row.id,
                client_id=row.client_id,
                endpoint_id=endpoint.id,
                url=endpoint.url,
                secret=endpoint.secret,
                event_id=event.id,
                event_type=event.type,
                body=msgspec.json.encode(envelope(event)),
                worker=row.locked_by,
                attempt=row.attempts,
                max_attempts=row.max_attempts,
                locked_until=row.locked_until,
            )


@dataclass(frozen=True)
class AttemptResult:
    """What one POST came to: the status code (None: no answer) and the error, if any."""

    started_at: dt.datetime
    duration_ms: float
    status_code: int | None = None
    error: str = ""

    @property
    def delivered(self) -> bool:
        """A 2xx answer."""
        return self.status_code is not None and 200 <= self.status_code < 300


async def report(
    db: Database, lease: DeliveryLease, result: AttemptResult, now: dt.datetime, retry_in: float
) -> DeliveryStatus:
    """Write an attempt's result (if this node still holds the delivery; else LeaseLost):
    ``delivered``, ``pending`` again in ``retry_in`` seconds, or ``failed`` after the last
    attempt. The attempt goes into the log either way."""
    async with db.write() as session:
        row = await session.scalar(
            select(WebhookDelivery).where(WebhookDelivery.id == lease.delivery_id).with_for_update()
        )
        if (
            row is None
            or row.status != DeliveryStatus.DELIVERING
            or row.locked_by != lease.worker
            or row.attempts != lease.attempt
        ):
            raise LeaseLost(f"delivery {lease.delivery_id} is no longer held by {lease.worker}")
        row.locked_by, row.locked_until = "", None
        row.updated_at = now
        row.last_status_code = result.status_code
        error = result.error or (
            "" if result.delivered else f"the endpoint answered {result.status_code}"
        )
        row.last_error = error[:_ERROR_CHARS]
        next_at: dt.datetime | None = None
        if result.delivered:
            row.status = DeliveryStatus.DELIVERED
            row.delivered_at = now
        elif row.attempts >= row.max_attempts:
            row.status = DeliveryStatus.FAILED
        else:
            row.status = DeliveryStatus.PENDING
            next_at = now + dt.timedelta(seconds=retry_in)
            if row.ordering_key:
                # The later deliveries of its call wait for it anyway: not due before it, they
                # stay out of the claim's scan of due rows while it backs off.
                await session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.endpoint_id == row.endpoint_id,
                        WebhookDelivery.ordering_key == row.ordering_key,
                        WebhookDelivery.event_seq > row.event_seq,
                        WebhookDelivery.status == DeliveryStatus.PENDING,
                        WebhookDelivery.next_attempt_at < next_at,
                    )
                    .values(next_attempt_at=next_at)
                    .execution_options(synchronize_session=False)
                )
        row.next_attempt_at = next_at
        session.add(
            WebhookAttempt(
                delivery_id=row.id,
                attempt=lease.attempt,
                worker=lease.worker,
                started_at=result.started_at,
                duration_ms=round(result.duration_ms, 1),
                status_code=result.status_code,
                error=error[:_ERROR_CHARS],
                next_attempt_at=next_at,
            )
        )
        return row.status


@dataclass(frozen=True)
class Purged:
    """What one retention sweep deleted."""

    deliveries: int
    events: int


async def purge_delivered(db: Database, before: dt.datetime, *, batch: int = 500) -> Purged:
    """Delete what was delivered before ``before`` (docs/webhooks.md "Retention"): delivered
    deliveries (with their attempt log), then events older than ``before`` that have no
    delivery left. ``batch`` rows per transaction, so a sweep never holds locks for long; an
    undelivered delivery (pending, being sent, failed) and its event are never touched."""
    deliveries = events = 0
    done = and_(
        WebhookDelivery.status == DeliveryStatus.DELIVERED,
        WebhookDelivery.delivered_at < before,
    )
    while True:
        async with db.write() as session:
            chosen = select(WebhookDelivery.id).where(done).limit(batch).scalar_subquery()
            # The condition again on the rows themselves: a delivery redelivered since the
            # pick is pending again and stays (PostgreSQL re-checks it on the locked row).
            result = await session.execute(
                delete(WebhookDelivery)
                .where(WebhookDelivery.id.in_(chosen), done)
                .execution_options(synchronize_session=False)
            )
        count = int(getattr(result, "rowcount", 0) or 0)
        deliveries += count
        if count < batch:
            break
    orphan = and_(
        WebhookEvent.created_at < before,
        ~exists().where(WebhookDelivery.event_id == WebhookEvent.id),
    )
    while True:
        async with db.write() as session:
            chosen = (
                select(WebhookEvent.seq)
                .where(orphan)
                .order_by(WebhookEvent.seq)
                .limit(batch)
                .scalar_subquery()
            )
            result = await session.execute(
                delete(WebhookEvent)
                .where(WebhookEvent.seq.in_(chosen), orphan)
                .execution_options(synchronize_session=False)
            )
        count = int(getattr(result, "rowcount", 0) or 0)
        events += count
        if count < batch:
            break
    return Purged(deliveries=deliveries, events=events)


async def endpoint_of(db: Database, client_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
    """NotFound unless ``endpoint_id`` is one of the client's endpoints (a filter's check)."""
    async with db.read() as session:
        found = await session.scalar(
            select(WebhookEndpoint.id).where(
                WebhookEndpoint.id == endpoint_id, WebhookEndpoint.client_id == client_id
            )
        )
    if found is None:
        raise NotFound(f"webhook {endpoint_id} not found")
