"""Calls that happen without anyone pressing a button (docs/api.md, "Autonomous calls" and
"Web-form trigger").

A call asked for later - a trigger with ``scheduled_time``, each item of a bulk trigger, a
web-form submission - is a due row (``scheduled_callbacks``, kind ``scheduled``) that the
scheduler dials with the dial-time rules of the moment (docs/scheduler.md): nothing here dials.
The row's ``reason`` is the call's purpose (the scheduler's call takes it as its purpose) and
its ``context`` goes into the call's context. A trigger's ``Idempotency-Key`` is stored on the
row (unique per client), so a repeated request finds its row instead of adding another.

The web-form trigger is the one route without an API key: a request is accepted only when it
carries a fresh timestamp and an HMAC-SHA256 of ``timestamp + "." + body`` keyed with the
agent's web-form secret, and its signature was not seen before (``web_form_replays``, unique
per trigger, so a replay is refused on every node).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callagent.store import training as rubric
from callagent.store.db import Database
from callagent.store.errors import CallRefused, NotFound, Unauthorized, ValidationFailed
from callagent.store.models import (
    AIAgent,
    CallSession,
    CustomerProfile,
    ScheduledCallback,
    WebFormReplay,
    WebFormTrigger,
)
from callagent.store.phone import normalize_phone
from callagent.store.schemas import AwareDateTime, CustomerView, Input, Output
from callagent.store.services import events
from callagent.store.services._common import customer_view, get_agent_row, get_scoped
from callagent.store.services.callbacks import new_callback
from callagent.store.services.customers import find_or_create_customer
from callagent.store.states import CallbackStatus, CallOutcome, CallStatus

#: How far a web-form request's timestamp may be from the server's clock (either way).
REPLAY_WINDOW = dt.timedelta(minutes=5)
#: Header names, as the outbound webhooks use them (docs/webhooks.md).
TIMESTAMP_HEADER = "X-Callagent-Timestamp"
SIGNATURE_HEADER = "X-Callagent-Signature"
#: A bulk trigger's largest batch.
MAX_BULK = 1000
#: The latest a trigger may schedule a call: a year ahead.
MAX_AHEAD = dt.timedelta(days=366)
#: A scheduled_time this far in the past is still "now" (clocks of CRMs drift).
PAST_TOLERANCE = dt.timedelta(minutes=1)
#: How many calls the status route shows, newest first.
RECENT_CALLS = 10

Purpose = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=500,
        description='a call purpose ("follow_up", "renewal_reminder: …") or free text',
    ),
]
# A context given as text is stored as {"note": text} (docs/api.md).
Context = dict[str, Any] | Annotated[str, Meta(max_length=20_000)]


def context_object(context: dict[str, Any] | str) -> dict[str, Any]:
    """A trigger's ``context`` as the object a call stores: text becomes ``{"note": text}``."""
    if isinstance(context, str):
        return {"note": context} if context else {}
    return context


class AutonomousCall(Input):
    """``POST /calls/api/calls/trigger_autonomous_call/``."""

    contact_id: uuid.UUID
    call_purpose: Purpose
    context: Context = msgspec.field(default_factory=dict)
    scheduled_time: AwareDateTime | None = None


class BulkCallItem(Input):
    """One call of a bulk trigger."""

    contact_id: uuid.UUID
    call_purpose: Purpose
    delay_minutes: Annotated[int, Meta(ge=0, le=527_040)] = 0
    context: Context = msgspec.field(default_factory=dict)


class BulkCalls(Input):
    """``POST /calls/api/calls/bulk_autonomous_calls/``."""

    calls: Annotated[list[BulkCallItem], Meta(min_length=1, max_length=MAX_BULK)]


class ScheduledCall(Output):
    """A call scheduled for later: a due row the scheduler dials."""

    status: str
    scheduled_callback_id: uuid.UUID
    customer_id: uuid.UUID
    call_purpose: str
    scheduled_at: dt.datetime


class BulkItemResult(Output):
    """What became of one item of a bulk trigger: ``scheduled``, or ``refused`` with the
    field and the reason."""

    index: int
    status: str
    scheduled_callback_id: uuid.UUID | None = None
    scheduled_at: dt.datetime | None = None
    field: str | None = None
    reason: str | None = None


class BulkResult(Output):
    """A bulk trigger's answer, item by item."""

    scheduled: int
    refused: int
    results: list[BulkItemResult]


class RecentCall(Output):
    """A call in the status route."""

    call_id: uuid.UUID
    status: CallStatus
    outcome: CallOutcome | None
    duration: float | None
    actions_taken: list[Any]
    purpose: str
    created_at: dt.datetime


class UpcomingCall(Output):
    """A due row of the contact's that the scheduler has not dialled yet."""

    scheduled_callback_id: uuid.UUID
    scheduled_at: dt.datetime
    status: CallbackStatus
    call_purpose: str


class AutonomousCallStatus(Output):
    """``GET /calls/api/calls/autonomous_call_status/``."""

    contact: CustomerView
    recent_calls: list[RecentCall]
    upcoming_calls: list[UpcomingCall]


class WebFormTriggerSetup(Input):
    """``POST /api/agents/ai/web-form-trigger/``: make (or rotate) the agent's trigger."""

    call_purpose: Purpose = "sales_outreach"


class WebFormTriggerView(Output):
    """The agent's web-form trigger; the secret only as a hint (its last four characters)."""

    token: str
    path: str
    call_purpose: str
    secret_hint: str
    created_at: dt.datetime
    rotated_at: dt.datetime


class WebFormTriggerCreated(WebFormTriggerView):
    """The trigger as just made or rotated: the signing secret, shown this once."""

    secret: str


class WebFormSubmission(Input):
    """What a web form posts: who to call, and what they wrote."""

    phone_number: Annotated[str, Meta(min_length=1, max_length=40)]
    name: Annotated[str, Meta(max_length=200)] = ""
    email: Annotated[str, Meta(max_length=320)] = ""
    fields: Annotated[dict[str, Any], Meta(max_length=50)] = msgspec.field(default_factory=dict)


class WebFormAccepted(Output):
    """A web-form submission's answer: the call is due now (no ids: the form is public)."""

    status: str
    scheduled_at: dt.datetime


class TriggerRefused(Unauthorized):
    """A web-form request that is not proven to come from the form's owner (401). ``code``
    names why: ``unsigned``, ``stale``, ``bad_signature``, ``replayed``, ``unknown_token``."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


# Due rows ------------------------------------------------------------------------------------


def _check_purpose(purpose: str) -> None:
    # dialog owns the purposes; store may not import it: the API checks the name first
    # (check_purpose), here only what the row can hold.
    if not purpose.strip():
        raise ValidationFailed("call_purpose", "must not be empty")


async def _ready_agent(session: AsyncSession, client_id: uuid.UUID) -> AIAgent:
    agent = await get_agent_row(session, client_id)
    if agent.training_level < rubric.LEARNING_AT:
        raise CallRefused(
            "agent_not_ready",
            f"the agent is trained to {agent.training_level} %; it can call from "
            f"{rubric.LEARNING_AT} % on (POST /api/agents/ai/training/)",
        )
    return agent


def _when(at: dt.datetime | None, now: dt.datetime, field: str) -> dt.datetime:
    if at is None:
        return now
    if at < now - PAST_TOLERANCE:
        raise ValidationFailed(field, "is in the past")
    if at > now + MAX_AHEAD:
        raise ValidationFailed(field, "is more than a year ahead")
    return max(at, now)


def _scheduled(row: ScheduledCallback) -> ScheduledCall:
    return ScheduledCall(
        status="scheduled",
        scheduled_callback_id=row.id,
        customer_id=row.customer_id,
        call_purpose=row.reason,
        scheduled_at=row.scheduled_at,
    )


async def _due_row(
    session: AsyncSession,
    customer: CustomerProfile,
    *,
    purpose: str,
    context: dict[str, Any],
    at: dt.datetime,
    idempotency_key: str | None,
    priority: int = 3,
) -> ScheduledCallback:
    row = await new_callback(
        session,
        customer.client_id,
        customer.id,
        scheduled_at=at,
        reason=purpose,
        priority=priority,
        # One attempt: a triggered call is not retried as a callback is; an unreached call gets
        # the scheduler's ordinary retry rows (docs/scheduler.md).
        max_attempts=1,
    )
    row.kind = "scheduled"
    row.context = context
    row.idempotency_key = idempotency_key
    await session.flush()
    return row


async def _row_by_key(
    session: AsyncSession, client_id: uuid.UUID, key: str | None
) -> ScheduledCallback | None:
    if key is None:
        return None
    return await session.scalar(
        select(ScheduledCallback).where(
            ScheduledCallback.client_id == client_id, ScheduledCallback.idempotency_key == key
        )
    )


def check_key(idempotency_key: str | None) -> None:
    """An ``Idempotency-Key`` must be 1..200 characters (as start-call's)."""
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
        raise ValidationFailed("Idempotency-Key", "must be 1..200 characters")


async def schedule_call(
    db: Database,
    client_id: uuid.UUID,
    *,
    customer_id: uuid.UUID | None,
    phone: str | None = None,
    purpose: str,
    context: dict[str, Any],
    at: dt.datetime | None,
    now: dt.datetime,
    idempotency_key: str | None = None,
    field: str = "scheduled_time",
) -> ScheduledCall:
    """A due row calling one of the client's customers (``customer_id``, or the E.164 ``phone``:
    found or created) at ``at``: refused (409) while the agent is under 20 % or when the
    customer is on the do-not-call list; a key used before returns that row, nothing new
    written."""
    check_key(idempotency_key)
    _check_purpose(purpose)
    when = _when(at, now, field)
    for attempt in range(2):
        try:
            async with db.write() as session:
                earlier = await _row_by_key(session, client_id, idempotency_key)
                if earlier is not None:
                    return _scheduled(earlier)
                await _ready_agent(session, client_id)
                if customer_id is not None:
                    customer = await get_scoped(
                        session,
                        CustomerProfile,
                        client_id,
                        customer_id,
                        "customer",
                        for_update=True,
                    )
                    if phone is not None and phone != customer.phone_number:
                        raise ValidationFailed(
                            "customer_id", "that customer has another phone number"
                        )
                elif phone is not None:
                    customer, created = await find_or_create_customer(session, client_id, phone)
                    if created:
                        await events.customer_created(session, customer, source="api")
                else:
                    raise ValidationFailed(
                        "contact_id", "a customer id or a phone number is needed"
                    )
                if customer.do_not_call:
                    raise CallRefused(
                        "do_not_call", f"{customer.phone_number} is on the do-not-call list"
                    )
                row = await _due_row(
                    session,
                    customer,
                    purpose=purpose,
                    context=context,
                    at=when,
                    idempotency_key=idempotency_key,
                )
                return _scheduled(row)
        except IntegrityError:
            # Two requests with one key at once: the retry finds the first one's row.
            if attempt == 1 or idempotency_key is None:
                raise
    raise AssertionError("unreachable")


async def schedule_bulk(
    db: Database,
    client_id: uuid.UUID,
    items: list[tuple[uuid.UUID, str, int, dict[str, Any], str | None]],
    now: dt.datetime,
    *,
    idempotency_key: str | None = None,
) -> BulkResult:
    """Schedule each item (contact, purpose, delay in minutes, context, why the API refused it
    already or None) as its own due row, in one transaction: an item that cannot be scheduled
    (unknown contact, do-not-call, bad purpose) is reported with its index and reason and the
    others are scheduled. With ``idempotency_key`` item ``i`` is stored under ``key:i``: a
    repeated batch finds the rows it made and schedules only the items refused before."""
    check_key(idempotency_key)
    results: list[BulkItemResult] = []
    async with db.write() as session:
        await _ready_agent(session, client_id)
        wanted = {contact for contact, *_ in items}
        found = {
            row.id: row
            for row in await session.scalars(
                select(CustomerProfile)
                .where(CustomerProfile.client_id == client_id, CustomerProfile.id.in_(wanted))
                .with_for_update()
            )
        }
        for index, (contact, purpose, delay, context, refused) in enumerate(items):
            key = None if idempotency_key is None else f"{idempotency_key}:{index}"
            earlier = await _row_by_key(session, client_id, key)
            if earlier is not None:
                results.append(_bulk_done(index, earlier))
                continue
            customer = found.get(contact)
            problem: tuple[str, str] | None = None
            if refused is not None:
                problem = ("call_purpose", refused)
            elif not purpose.strip():
                problem = ("call_purpose", "must not be empty")
            elif customer is None:
                problem = ("contact_id", f"customer {contact} not found")
            elif customer.do_not_call:
                problem = ("contact_id", f"{customer.phone_number} is on the do-not-call list")
            if problem is not None or customer is None:
                field, reason = problem or ("contact_id", "not found")
                results.append(
                    BulkItemResult(index=index, status="refused", field=field, reason=reason)
                )
                continue
            row = await _due_row(
                session,
                customer,
                purpose=purpose,
                context=context,
                at=now + dt.timedelta(minutes=delay),
                idempotency_key=key,
            )
            results.append(_bulk_done(index, row))
    done = sum(1 for r in results if r.status == "scheduled")
    return BulkResult(scheduled=done, refused=len(results) - done, results=results)


def _bulk_done(index: int, row: ScheduledCallback) -> BulkItemResult:
    return BulkItemResult(
        index=index,
        status="scheduled",
        scheduled_callback_id=row.id,
        scheduled_at=row.scheduled_at,
    )


async def call_status(
    db: Database, client_id: uuid.UUID, customer_id: uuid.UUID
) -> AutonomousCallStatus:
    """A contact, their latest calls (newest first) and their calls still to be dialled."""
    async with db.read() as session:
        customer = await get_scoped(session, CustomerProfile, client_id, customer_id, "customer")
        calls = await session.scalars(
            select(CallSession)
            .where(CallSession.client_id == client_id, CallSession.customer_id == customer.id)
            .order_by(CallSession.created_at.desc(), CallSession.id.desc())
            .limit(RECENT_CALLS)
        )
        recent = [
            RecentCall(
                call_id=call.id,
                status=call.status,
                outcome=call.outcome,
                duration=call.duration_s,
                actions_taken=list(call.actions_taken or []),
                purpose=call.purpose,
                created_at=call.created_at,
            )
            for call in calls
        ]
        rows = await session.scalars(
            select(ScheduledCallback)
            .where(
                ScheduledCallback.client_id == client_id,
                ScheduledCallback.customer_id == customer.id,
                ScheduledCallback.status.in_(
                    (CallbackStatus.SCHEDULED, CallbackStatus.IN_PROGRESS)
                ),
            )
            .order_by(ScheduledCallback.scheduled_at)
            .limit(RECENT_CALLS)
        )
        upcoming = [
            UpcomingCall(
                scheduled_callback_id=row.id,
                scheduled_at=row.scheduled_at,
                status=row.status,
                call_purpose=row.reason,
            )
            for row in rows
        ]
        return AutonomousCallStatus(
            contact=customer_view(customer), recent_calls=recent, upcoming_calls=upcoming
        )


# Web-form trigger ----------------------------------------------------------------------------


def web_form_path(token: str) -> str:
    """Where a trigger's form posts."""
    return f"/api/triggers/web-form/{token}/"


def _trigger_view(row: WebFormTrigger) -> WebFormTriggerView:
    return WebFormTriggerView(
        token=row.token,
        path=web_form_path(row.token),
        call_purpose=row.purpose,
        secret_hint="…" + row.secret[-4:],
        created_at=row.created_at,
        rotated_at=row.rotated_at,
    )


async def setup_web_form(
    db: Database, client_id: uuid.UUID, purpose: str, now: dt.datetime
) -> WebFormTriggerCreated:
    """Make the agent's web-form trigger, or rotate it: a new token and a new secret (the old
    ones stop working at once). The secret is in this answer only."""
    _check_purpose(purpose)
    token = secrets.token_urlsafe(24)  # 32 characters, 192 random bits: no id in it
    secret = "wf_" + secrets.token_urlsafe(32)
    async with db.write() as session:
        agent = await get_agent_row(session, client_id, for_update=True)
        row = await session.scalar(
            select(WebFormTrigger).where(WebFormTrigger.agent_id == agent.id)
        )
        if row is None:
            row = WebFormTrigger(client_id=client_id, agent_id=agent.id, created_at=now)
            session.add(row)
        row.token, row.secret, row.purpose, row.rotated_at = token, secret, purpose, now
        await session.flush()
        view = _trigger_view(row)
    return WebFormTriggerCreated(**msgspec.structs.asdict(view), secret=secret)


async def get_web_form(db: Database, client_id: uuid.UUID) -> WebFormTriggerView:
    """The agent's web-form trigger (404 until one was made)."""
    async with db.read() as session:
        row = await session.scalar(
            select(WebFormTrigger).where(WebFormTrigger.client_id == client_id)
        )
        if row is None:
            raise NotFound("no web-form trigger yet: POST /api/agents/ai/web-form-trigger/")
        return _trigger_view(row)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + digest.hexdigest()


def _fresh(timestamp: str | None, signature: str | None, now: dt.datetime) -> None:
    if not timestamp or not signature:
        raise TriggerRefused(
            "unsigned", f"the {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers are required"
        )
    try:
        sent = dt.datetime.fromtimestamp(int(timestamp.strip()), dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise TriggerRefused("stale", f"{TIMESTAMP_HEADER} is not Unix seconds") from None
    off = abs((now - sent).total_seconds())
    if off > REPLAY_WINDOW.total_seconds():
        raise TriggerRefused(
            "stale",
            f"{TIMESTAMP_HEADER} is {off:.0f} s from the server's clock; "
            f"at most {REPLAY_WINDOW.total_seconds():.0f} s is accepted",
        )


async def submit_web_form(
    db: Database,
    token: str,
    body: bytes,
    *,
    timestamp: str | None,
    signature: str | None,
    now: dt.datetime,
) -> WebFormAccepted:
    """Check a web-form request (signed, fresh, not seen before), create or update the contact
    and make a due row for now, in one transaction. Refusals: :class:`TriggerRefused` (401),
    bad fields 400, an agent under 20 % 409."""
    _fresh(timestamp, signature, now)
    assert timestamp is not None
    assert signature is not None
    async with db.write() as session:
        trigger = await session.scalar(select(WebFormTrigger).where(WebFormTrigger.token == token))
        if trigger is None:
            raise TriggerRefused("unknown_token", "no web-form trigger has this token")
        expected = sign(trigger.secret, timestamp.strip(), body)
        if not hmac.compare_digest(signature.strip().encode(), expected.encode()):
            raise TriggerRefused(
                "bad_signature",
                f"{SIGNATURE_HEADER} is not v1= + the HMAC-SHA256 of timestamp.body "
                "with this trigger's secret",
            )
        # Signatures older than the window can no longer pass the timestamp check: forget them.
        await session.execute(
            delete(WebFormReplay).where(WebFormReplay.seen_at < now - 2 * REPLAY_WINDOW)
        )
        session.add(WebFormReplay(trigger_id=trigger.id, signature=expected[3:], seen_at=now))
        try:
            await session.flush()
        except IntegrityError:
            raise TriggerRefused("replayed", "this signed request was accepted already") from None
        try:
            form = msgspec.json.decode(body, type=WebFormSubmission)
        except msgspec.ValidationError as error:
            raise ValidationFailed("body", str(error)) from None
        except msgspec.DecodeError:
            raise ValidationFailed("body", "not a JSON object") from None
        phone = normalize_phone(form.phone_number)
        email = form.email.strip()
        if email and ("@" not in email or email.startswith("@") or email.endswith("@")):
            raise ValidationFailed("email", "not an e-mail address")
        await _ready_agent(session, trigger.client_id)
        customer, created = await find_or_create_customer(session, trigger.client_id, phone)
        before = events.customer_snapshot(customer)
        if form.name.strip():
            customer.name = form.name.strip()
        if email:
            customer.email = email
        if form.fields:
            customer.preferences = {
                **(customer.preferences or {}),
                "web_form": {**(customer.preferences or {}).get("web_form", {}), **form.fields},
            }
        await session.flush()
        if created:
            await events.customer_created(session, customer, source="web_form")
        else:
            await events.customer_changed(session, customer, before)
        # Priority 2: a person asked for this call a moment ago (docs/api.md).
        row = await _due_row(
            session,
            customer,
            purpose=trigger.purpose,
            context={"source": "web_form", "fields": form.fields},
            at=now,
            idempotency_key=None,
            priority=2,
        )
        return WebFormAccepted(status="scheduled", scheduled_at=row.scheduled_at)
