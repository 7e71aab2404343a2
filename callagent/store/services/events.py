"""Webhook events: written to the outbox in the transaction of the change they report
(docs/webhooks.md).

The services that own a write (``call_state``, ``call_analysis``, ``callbacks``, ``customers``,
``opportunities``, ``calls``) call the functions here with their open session, so an event
exists exactly when its change was committed: a rolled-back write leaves no event, and no
committed change goes unannounced (the transactional outbox). Each event gets one delivery row
per active endpoint of the client that subscribed to its type; the delivery worker
(``callagent/webhooks/``) sends them. A client without such an endpoint gets no rows at all:
there would be nobody to send them to, and the tables would only grow.

A browser-phone call (call type ``test``, docs/dashboard.md "Talk to your agent") raises no
event at all: it is the client's own person trying the agent, not business a CRM should see.
Every event a call causes carries that call's ordering key (:func:`call_key`), so
:func:`emit_many` drops them in one place, whichever writer raised them.

Events carry plain JSON (ids and values), never ORM objects (DESIGN.md practice 11).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callagent.store.ids import new_id
from callagent.store.models import (
    CallSession,
    CustomerProfile,
    DeliveryStatus,
    Opportunity,
    ScheduledCallback,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)
from callagent.store.services._common import call_view, customer_view, opportunity_view
from callagent.store.states import CallType

EVENT_TYPES: Final = (
    "call.started",
    "call.completed",
    "call.updated",
    "callback.scheduled",
    "appointment.booked",
    "customer.created",
    "customer.updated",
    "opportunity.created",
    "do_not_call.added",
    "information.requested",
    "campaign.progress",
)
"""Every event type an endpoint can subscribe to (``"*"``: all of them)."""

ALL: Final = "*"

DEFAULT_MAX_ATTEMPTS: Final = 12
"""Tries of one delivery before it is ``failed`` (the schedule: callagent/webhooks/delivery.py);
the worker's ``webhooks.max_attempts`` setting."""

UNSET_ATTEMPTS: Final = 0
"""``max_attempts`` of a delivery whose tries are not fixed yet: the node that first sends it
(or sends it again after a redelivery) gives it its ``webhooks.max_attempts``. The writers of
events cannot know that setting - they run wherever a change is made."""

APPOINTMENT_MINUTES: Final = 30
"""How long a booked appointment is in its calendar entry: the agent books a time, not a length."""

CUSTOMER_FIELDS: Final = (
    "phone_number",
    "name",
    "email",
    "company",
    "timezone",
    "interest_level",
    "converted",
    "call_preference_time",
    "conversation_notes",
    "preferences",
    "objections",
    "do_not_call",
)
"""What a CRM mirrors of a customer: a change to one of these is a ``customer.updated``.
Counters (calls, talk time, last call) change with every call and are left out."""

CALL_FIELDS: Final = (
    "status",
    "outcome",
    "customer_response",
    "conversation_notes",
    "customer_satisfaction",
    "sentiment",
    "duration_s",
)
"""What a report on a call that was announced complete may change: a ``call.updated``."""


_ENDPOINTS: Final = "callagent.webhook_endpoints"
"""``session.info`` key of the endpoints :func:`emit` looked up in this transaction."""

_TEST_CALLS: Final = "callagent.webhook_test_calls"
"""``session.info`` key of the call keys :func:`emit` found to be browser-phone calls."""

_CALL_PREFIX: Final = "call:"


def call_key(call_id: uuid.UUID) -> str:
    """The ordering key of a call's events: they are delivered in the order they were written."""
    return f"{_CALL_PREFIX}{call_id}"


def customer_key(customer_id: uuid.UUID) -> str:
    """The ordering key of a customer's events that belong to no call."""
    return f"customer:{customer_id}"


def subscribes(event_types: list[Any], event_type: str) -> bool:
    """Whether an endpoint with ``event_types`` wants ``event_type``."""
    return ALL in event_types or event_type in event_types


@dataclass(frozen=True)
class Pending:
    """One event to write with :func:`emit_many`."""

    event_type: str
    data: Mapping[str, Any]
    ordering_key: str = ""


async def emit(
    session: AsyncSession,
    client_id: uuid.UUID,
    event_type: str,
    data: Mapping[str, Any],
    *,
    ordering_key: str = "",
    max_attempts: int = UNSET_ATTEMPTS,
) -> uuid.UUID | None:
    """Write one event and its deliveries in the caller's transaction; its id, or None when no
    active endpoint of the client subscribed to ``event_type`` (nothing is written then).
    ``max_attempts`` fixes the deliveries' tries (default: the sending node's setting)."""
    ids = await emit_many(
        session, client_id, [Pending(event_type, data, ordering_key)], max_attempts=max_attempts
    )
    return ids[0]


async def emit_many(
    session: AsyncSession,
    client_id: uuid.UUID,
    pending: Sequence[Pending],
    *,
    max_attempts: int = UNSET_ATTEMPTS,
) -> list[uuid.UUID | None]:
    """:func:`emit` for several events of one client, numbered in the order given; two
    flushes for all of them (an import of thousands of rows is not thousands of round trips).
    Their ids, None for an event nobody subscribed to.

    The client's endpoints are looked up once per transaction (``session.info``)."""
    endpoints = await _endpoints(session, client_id)
    now = utcnow()
    planned: list[tuple[WebhookEvent, list[uuid.UUID]] | None] = []
    for item in pending:
        if item.event_type not in EVENT_TYPES:
            raise ValueError(f"unknown webhook event type {item.event_type!r}")
        targets = [id_ for id_, types in endpoints if subscribes(types, item.event_type)]
        if targets and await _of_test_call(session, item.ordering_key):
            targets = []  # the browser phone's: no business event (module docstring)
        if not targets:
            planned.append(None)
            continue
        event = WebhookEvent(
            id=new_id(),
            client_id=client_id,
            type=item.event_type,
            ordering_key=item.ordering_key,
            data=msgspec.to_builtins(dict(item.data)),
            created_at=now,
        )
        session.add(event)
        planned.append((event, targets))
    if not any(planned):
        return [None] * len(planned)
    await session.flush()  # numbers the events (seq), in the order they were added
    for entry in planned:
        if entry is None:
            continue
        event, targets = entry
        for endpoint_id in targets:
            session.add(
                WebhookDelivery(
                    client_id=client_id,
                    endpoint_id=endpoint_id,
                    event_id=event.id,
                    event_seq=event.seq,
                    event_type=event.type,
                    ordering_key=event.ordering_key,
                    status=DeliveryStatus.PENDING,
                    attempts=0,
                    max_attempts=max_attempts,
                    next_attempt_at=now,
                    locked_by="",
                    last_error="",
                    created_at=now,
                    updated_at=now,
                )
            )
    await session.flush()
    return [None if entry is None else entry[0].id for entry in planned]


async def _endpoints(
    session: AsyncSession, client_id: uuid.UUID
) -> list[tuple[uuid.UUID, list[Any]]]:
    """The client's active endpoints and their types, looked up once per transaction."""
    cache: dict[uuid.UUID, list[tuple[uuid.UUID, list[Any]]]] = session.info.setdefault(
        _ENDPOINTS, {}
    )
    if client_id not in cache:
        rows = await session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
                WebhookEndpoint.client_id == client_id, WebhookEndpoint.active.is_(True)
            )
        )
        cache[client_id] = [(row.id, list(row.event_types)) for row in rows]
    return cache[client_id]


async def _of_test_call(session: AsyncSession, ordering_key: str) -> bool:
    """Whether ``ordering_key`` is a browser-phone call's; looked up once per transaction (the
    call's row is written, or at least flushed, before its events)."""
    if not ordering_key.startswith(_CALL_PREFIX):
        return False
    known: dict[str, bool] = session.info.setdefault(_TEST_CALLS, {})
    if ordering_key not in known:
        try:
            call_id = uuid.UUID(ordering_key.removeprefix(_CALL_PREFIX))
        except ValueError:
            return False
        call_type = await session.scalar(
            select(CallSession.call_type).where(CallSession.id == call_id)
        )
        known[ordering_key] = call_type == CallType.TEST
    return known[ordering_key]


async def wanted(session: AsyncSession, client_id: uuid.UUID, *event_types: str) -> bool:
    """Whether an active endpoint of the client subscribed to one of ``event_types`` (so a
    writer can skip building a payload nobody gets)."""
    return any(
        subscribes(types, event_type)
        for _, types in await _endpoints(session, client_id)
        for event_type in event_types
    )


# Payloads ------------------------------------------------------------------------------------


def call_data(call: CallSession) -> dict[str, Any]:
    """A call as events show it (the list view plus what the phone system and the agent did)."""
    data: dict[str, Any] = msgspec.to_builtins(call_view(call))
    data.update(
        did=call.did,
        transferred_to=call.transferred_to,
        amd_status=call.amd_status,
        hangup_cause=call.hangup_cause,
        summary=call.conversation_notes,
        actions_taken=list(call.actions_taken or []),
    )
    return data


def customer_data(customer: CustomerProfile) -> dict[str, Any]:
    """A customer as events show it (without the analysis's memory, which is the agent's)."""
    data: dict[str, Any] = msgspec.to_builtins(customer_view(customer))
    data.pop("conversation_memory", None)
    return data


def customer_snapshot(customer: CustomerProfile) -> dict[str, Any]:
    """The fields a ``customer.updated`` compares, before a write changes them."""
    return msgspec.to_builtins({name: getattr(customer, name) for name in CUSTOMER_FIELDS})


async def call_started(session: AsyncSession, call: CallSession) -> None:
    """``call.started``: the call was answered (or an inbound one taken)."""
    await session.flush()
    await emit(
        session, call.client_id, "call.started", {"call": call_data(call)},
        ordering_key=call_key(call.id),
    )  # fmt: skip


async def call_completed(
    session: AsyncSession, call: CallSession, analysis: Mapping[str, Any] | None = None
) -> None:
    """``call.completed``: the call is over, with its outcome and summary - after the post-call
    analysis when one ran (``analysis``: what it applied), else at hang-up."""
    await session.flush()
    data = call_data(call)
    await emit(
        session,
        call.client_id,
        "call.completed",
        {
            "call": data,
            "outcome": data["outcome"],
            "summary": call.conversation_notes or None,
            "analysed": analysis is not None,
            "analysis": None if analysis is None else dict(analysis),
        },
        ordering_key=call_key(call.id),
    )


def call_snapshot(call: CallSession) -> dict[str, Any]:
    """The fields a ``call.updated`` compares, before a write changes them."""
    return msgspec.to_builtins({name: getattr(call, name) for name in CALL_FIELDS})


async def call_updated(
    session: AsyncSession, call: CallSession, before: Mapping[str, Any], *, source: str
) -> None:
    """``call.updated``: a call announced complete changed afterwards (a CRM's
    ``call-outcome`` after the analysis) - if a field of :data:`CALL_FIELDS` did."""
    after = call_snapshot(call)
    changed = [name for name in CALL_FIELDS if after[name] != before.get(name)]
    if not changed:
        return
    await session.flush()
    data = call_data(call)
    await emit(
        session,
        call.client_id,
        "call.updated",
        {
            "call": data,
            "outcome": data["outcome"],
            "previous_outcome": before.get("outcome"),
            "summary": call.conversation_notes or None,
            "changed": changed,
            "source": source,
        },
        ordering_key=call_key(call.id),
    )


async def customer_created(
    session: AsyncSession,
    customer: CustomerProfile,
    *,
    source: str,
    call_id: uuid.UUID | None = None,
) -> None:
    """``customer.created`` (``source``: ``api``, ``import`` or ``call`` - a call to or from a
    number not on file), and ``do_not_call.added`` after it when the customer starts on the
    list. A customer made by a call is ordered with that call's events, before them."""
    await customers_written(
        session, customer.client_id, [(customer, None)], source=source, call_id=call_id
    )


async def customer_changed(
    session: AsyncSession,
    customer: CustomerProfile,
    before: Mapping[str, Any],
    *,
    call_id: uuid.UUID | None = None,
) -> None:
    """``customer.updated`` if a mirrored field changed since ``before``
    (:func:`customer_snapshot`), and ``do_not_call.added`` if they went on the list."""
    await customers_written(session, customer.client_id, [(customer, before)], call_id=call_id)


async def customers_written(
    session: AsyncSession,
    client_id: uuid.UUID,
    written: Sequence[tuple[CustomerProfile, Mapping[str, Any] | None]],
    *,
    source: str = "",
    call_id: uuid.UUID | None = None,
) -> None:
    """The events of customers one transaction created (``before`` None: ``customer.created``
    from ``source``) or changed (``before``: :func:`customer_snapshot` from before the change),
    in the order given - all of them in two flushes (a CSV import)."""
    if not await wanted(
        session, client_id, "customer.created", "customer.updated", "do_not_call.added"
    ):
        return  # no flush for nobody: an import of thousands of rows stays one write
    changes = []
    for customer, before in written:
        changed: list[str] = []
        if before is not None:
            after = customer_snapshot(customer)
            changed = [name for name in CUSTOMER_FIELDS if after[name] != before.get(name)]
            if not changed:
                continue
        changes.append((customer, before, changed))
    if not changes:
        return
    await session.flush()  # ids and defaults of new customers
    cause = {"call_id": None if call_id is None else str(call_id)}
    pending: list[Pending] = []
    for customer, before, changed in changes:
        key = call_key(call_id) if call_id is not None else customer_key(customer.id)
        data = customer_data(customer)
        if before is None:
            pending.append(
                Pending("customer.created", {"customer": data, "source": source, **cause}, key)
            )
            if customer.do_not_call:
                pending.append(Pending("do_not_call.added", {"customer": data, **cause}, key))
            continue
        if customer.do_not_call and not before.get("do_not_call"):
            pending.append(Pending("do_not_call.added", {"customer": data, **cause}, key))
        pending.append(
            Pending("customer.updated", {"customer": data, "changed": changed, **cause}, key)
        )
    await emit_many(session, client_id, pending)


async def callback_scheduled(
    session: AsyncSession, callback: ScheduledCallback, customer: CustomerProfile
) -> None:
    """``callback.scheduled``: a call to the customer is due at a time."""
    await session.flush()
    key = (
        call_key(callback.origin_call_id)
        if callback.origin_call_id is not None
        else customer_key(customer.id)
    )
    await emit(
        session,
        callback.client_id,
        "callback.scheduled",
        {"callback": _callback_data(callback, customer), "customer": customer_data(customer)},
        ordering_key=key,
    )


async def appointment_booked(
    session: AsyncSession,
    callback: ScheduledCallback,
    customer: CustomerProfile,
    *,
    kind: str,
    said: str,
    agent_name: str = "",
) -> None:
    """``appointment.booked``: the agent booked a meeting on a call; ``ics`` is its calendar
    entry (RFC 5545), the CRM's to put in a calendar or send to the customer."""
    await session.flush()
    starts = callback.scheduled_at
    ends = starts + dt.timedelta(minutes=APPOINTMENT_MINUTES)
    who = customer.name or customer.company or customer.phone_number
    summary = f"{kind.capitalize()} with {who}"
    description = f"Booked by {agent_name or 'the agent'} on a call"
    if said:
        description += f' ("{said}")'
    description += f". Phone: {customer.phone_number}"
    await emit(
        session,
        callback.client_id,
        "appointment.booked",
        {
            "appointment": {
                "callback_id": str(callback.id),
                "kind": kind,
                "starts_at": starts.isoformat(),
                "ends_at": ends.isoformat(),
                "said": said,
            },
            "customer": customer_data(customer),
            "call_id": None if callback.origin_call_id is None else str(callback.origin_call_id),
            "ics": vevent(
                uid=f"{callback.id}@callagent",
                starts=starts,
                ends=ends,
                summary=summary,
                description=description,
                stamp=utcnow(),
                attendee_email=customer.email,
                attendee_name=customer.name,
            ),
        },
        ordering_key=call_key(callback.origin_call_id)
        if callback.origin_call_id is not None
        else customer_key(customer.id),
    )


async def opportunity_created(
    session: AsyncSession, opportunity: Opportunity, *, call_id: uuid.UUID | None = None
) -> None:
    """``opportunity.created``: by the API or by the post-call analysis of ``call_id``."""
    await session.flush()
    await emit(
        session,
        opportunity.client_id,
        "opportunity.created",
        {
            "opportunity": msgspec.to_builtins(opportunity_view(opportunity)),
            "call_id": None if call_id is None else str(call_id),
        },
        ordering_key=call_key(call_id)
        if call_id is not None
        else customer_key(opportunity.customer_id),
    )


async def information_requested(
    session: AsyncSession, call: CallSession, customer: CustomerProfile, channel: str
) -> None:
    """``information.requested``: the caller asked for information by ``channel`` (email, sms,
    post, or "" when they did not say); the CRM sends it - callagent has no mail server."""
    await session.flush()
    await emit(
        session,
        call.client_id,
        "information.requested",
        {
            "channel": channel,
            "call_id": str(call.id),
            "customer": customer_data(customer),
            "purpose": call.purpose,
        },
        ordering_key=call_key(call.id),
    )


async def campaign_progress(
    session: AsyncSession,
    client_id: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    name: str,
    status: str,
    totals: Mapping[str, int],
) -> None:
    """``campaign.progress``: how far a campaign has got (for the campaign runner to come).
    ``totals`` counts its customers: ``total``, ``called``, ``reached``, ``converted``,
    ``remaining``, ``failed`` (docs/webhooks.md)."""
    await emit(
        session,
        client_id,
        "campaign.progress",
        {
            "campaign_id": str(campaign_id),
            "name": name,
            "status": status,
            "totals": {key: int(value) for key, value in totals.items()},
            "at": utcnow().isoformat(),
        },
        ordering_key=f"campaign:{campaign_id}",
    )


def _callback_data(callback: ScheduledCallback, customer: CustomerProfile) -> dict[str, Any]:
    return {
        "id": str(callback.id),
        "customer_id": str(customer.id),
        "phone_number": customer.phone_number,
        "scheduled_at": callback.scheduled_at.isoformat(),
        "reason": callback.reason,
        "priority": callback.priority,
        "expected_outcome": callback.expected_outcome,
        "origin_call_id": None if callback.origin_call_id is None else str(callback.origin_call_id),
    }


# iCalendar (RFC 5545) ------------------------------------------------------------------------


def _ics_text(value: str) -> str:
    """A TEXT value escaped (RFC 5545 3.3.11): backslash, semicolon, comma, newline."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return "".join(ch for ch in value.replace("\n", "\\n") if ch == "\t" or ord(ch) >= 0x20)


def _ics_param(value: str) -> str:
    """A parameter value, quoted (RFC 5545 3.2: no DQUOTE or control characters inside)."""
    cleaned = "".join(ch for ch in value if ch != '"' and ord(ch) >= 0x20 and ch != "\x7f")
    return f'"{cleaned}"'


def _ics_time(value: dt.datetime) -> str:
    """A UTC DATE-TIME (form 2, RFC 5545 3.3.5)."""
    return value.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _fold(line: str) -> str:
    """A content line folded at 75 octets (RFC 5545 3.1), never inside a UTF-8 character."""
    out: list[str] = []
    current = ""
    size = 0
    limit = 75
    for char in line:
        width = len(char.encode())
        if size + width > limit:
            out.append(current)
            current, size, limit = " ", 1, 75  # a continuation line starts with one space
        current += char
        size += width
    out.append(current)
    return "\r\n".join(out)


def vevent(
    *,
    uid: str,
    starts: dt.datetime,
    ends: dt.datetime,
    summary: str,
    description: str,
    stamp: dt.datetime,
    attendee_email: str = "",
    attendee_name: str = "",
) -> str:
    """A VCALENDAR holding one VEVENT, CRLF-terminated lines folded at 75 octets."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//callagent//webhooks//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:{_ics_text(uid)}",
        f"DTSTAMP:{_ics_time(stamp)}",
        f"DTSTART:{_ics_time(starts)}",
        f"DTEND:{_ics_time(ends)}",
        f"SUMMARY:{_ics_text(summary)}",
        f"DESCRIPTION:{_ics_text(description)}",
    ]
    email = attendee_email.strip()
    if email and all(ord(ch) > 0x20 and ch not in '"\\' for ch in email):
        name = f";CN={_ics_param(attendee_name)}" if attendee_name.strip() else ""
        lines.append(f"ATTENDEE{name};ROLE=REQ-PARTICIPANT:mailto:{email}")
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "".join(_fold(line) + "\r\n" for line in lines)
