"""Calls as the API sees them: start-call, placement, outcome, lists and detail.

What the phone system reports while a call goes on (status, transcript, AMD, hang-up) is
written by :mod:`callagent.store.services.call_state`, the one writer of a live call's state.

``start-call`` is split in two short transactions around the telephony hand-over (DESIGN.md
practice 11; docs/api.md "start-call"): :func:`prepare_call` commits the customer and a
``queued`` call session (so the telephony layer can find it by id), the API hands the ids to a
``CallPlacer``, and :func:`record_placement` writes what the placer said. No transaction is
open while dialling.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
import zoneinfo
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from callagent.store import counters
from callagent.store import training as rubric
from callagent.store.db import Database
from callagent.store.errors import CallRefused, Conflict, NotFound, ValidationFailed
from callagent.store.models import (
    AgentTraining,
    AIAgent,
    CallSession,
    ContactNote,
    CustomerProfile,
    ScheduledCallback,
)
from callagent.store.pagination import SortKey, paginate
from callagent.store.phone import normalize_phone
from callagent.store.schemas import (
    CallDetail,
    CallOutcomeReport,
    CallOutcomeResult,
    CallPage,
    StartCall,
    StartCallResult,
)
from callagent.store.services import analysis_jobs, call_analysis, events
from callagent.store.services import callbacks as callback_service
from callagent.store.services._common import (
    call_view,
    callback_view,
    customer_view,
    get_agent_row,
    get_scoped,
    hhmm,
    to_view,
)
from callagent.store.services.agents import advance_status
from callagent.store.services.customers import (
    customer_counts,
    find_or_create_customer,
    merge,
    set_do_not_call,
    set_interest,
)
from callagent.store.services.dial_queue import (
    LIVE_GRACE,
    DialFacts,
    Rule,
    Verdict,
    caller_id_for,
    gather_facts,
)
from callagent.store.states import (
    UNREACHED_OUTCOMES,
    AgentStatus,
    CallbackStatus,
    CallOutcome,
    CallStatus,
    CallType,
    InterestLevel,
    NoteKind,
    check_transition,
)

#: An active agent with this many handled calls has enough data to be tuned: ``optimizing``.
OPTIMIZE_AFTER_CALLS = 50
_MAX_CUSTOMER_OBJECTIONS = 50
NEWEST_FIRST = (SortKey(CallSession.id),)


@dataclass(frozen=True)
class PreparedCall:
    """A committed ``queued`` call session, by ids, ready for the telephony layer."""

    call_id: uuid.UUID
    client_id: uuid.UUID
    agent_id: uuid.UUID
    customer_id: uuid.UUID
    customer_created: bool
    phone_number: str
    call_type: CallType
    purpose: str
    context: dict[str, Any]
    scheduled_callback_id: uuid.UUID | None
    caller_id: str = ""
    # An earlier call made with the same Idempotency-Key: nothing new was written or dialled.
    existing: bool = False


@runtime_checkable
class WindowedRule(Protocol):
    """A start-call rule that also checks the customer's legal calling window, and can give
    the same rule without it: what ``ignore_working_hours`` asks for (docs/api.md)."""

    def __call__(self, facts: DialFacts) -> Verdict:
        """The verdict on ``facts``."""
        ...

    def without_window(self) -> Rule:
        """The same rule without the calling window."""
        ...


def within_working_hours(agent: AIAgent, now: dt.datetime) -> bool:
    """Whether ``now`` falls in the agent's working hours, in the agent's time zone (a window
    that ends before it starts runs overnight)."""
    local = now.astimezone(zoneinfo.ZoneInfo(agent.timezone)).time().replace(tzinfo=None)
    start, end = agent.working_hours_start, agent.working_hours_end
    if start < end:
        return start <= local < end
    return local >= start or local < end


async def prepare_call(
    db: Database,
    client_id: uuid.UUID,
    data: StartCall,
    now: dt.datetime,
    *,
    idempotency_key: str | None = None,
    rule: Rule | None = None,
) -> PreparedCall:
    """Check that the call may be made, create or find the customer, and commit a ``queued``
    call session. Refusals (CallRefused) write nothing.

    ``idempotency_key``: a call made with the same key before is returned (``existing``) and
    nothing is written. ``rule``: the dial-time rules (docs/scheduler.md), checked on facts read
    under the customer's row lock - so of several start-calls to one number at once, one dials
    and the others see its live call; any verdict but ``dial`` is a refusal with its code."""
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
        raise ValidationFailed("Idempotency-Key", "must be 1..200 characters")
    if data.call_type in (CallType.INBOUND, CallType.TEST):
        raise ValidationFailed(
            "call_type", "start-call places outgoing calls: use outbound, scheduled or followup"
        )
    phone = None if data.phone_number is None else normalize_phone(data.phone_number)
    if data.ignore_working_hours and isinstance(rule, WindowedRule):
        # The person asked for the call now: neither the agent's hours nor the customer's
        # calling window stop it (docs/api.md "start-call"); every other rule still does.
        rule = rule.without_window()
    for attempt in range(2):
        try:
            async with db.write() as session:
                return await _prepare(session, client_id, data, phone, now, idempotency_key, rule)
        except IntegrityError:
            # Parallel first calls to one new number: the unique index let one request create
            # the customer and failed the others' transactions; the retry finds that customer
            # (as the inbound path does: services.telephony.open_inbound_call). The same holds
            # for two requests with one Idempotency-Key: the retry finds the first one's call.
            if attempt == 1:
                raise
    raise AssertionError("unreachable")


async def _earlier_call(
    session: AsyncSession, client_id: uuid.UUID, idempotency_key: str | None
) -> PreparedCall | None:
    """The call made earlier with ``idempotency_key`` (None: no key, or no such call)."""
    if idempotency_key is None:
        return None
    earlier = await session.scalar(
        select(CallSession).where(
            CallSession.client_id == client_id, CallSession.idempotency_key == idempotency_key
        )
    )
    if earlier is None:
        return None
    return PreparedCall(
        call_id=earlier.id,
        client_id=client_id,
        agent_id=earlier.agent_id,
        customer_id=earlier.customer_id,
        customer_created=False,
        phone_number=earlier.phone_number,
        call_type=earlier.call_type,
        purpose=earlier.purpose,
        context=earlier.context,
        scheduled_callback_id=earlier.callback_id,
        existing=True,
    )


async def _prepare(
    session: AsyncSession,
    client_id: uuid.UUID,
    data: StartCall,
    phone: str | None,
    now: dt.datetime,
    idempotency_key: str | None = None,
    rule: Rule | None = None,
) -> PreparedCall:
    """:func:`prepare_call`'s one transaction."""
    earlier = await _earlier_call(session, client_id, idempotency_key)
    if earlier is not None:
        return earlier
    if data.customer_id is not None:
        known = await get_scoped(session, CustomerProfile, client_id, data.customer_id, "customer")
        if phone is not None and phone != known.phone_number:
            raise ValidationFailed("customer_id", "that customer has another phone number")
        phone = known.phone_number
    if phone is None:
        raise ValidationFailed("phone_number", "phone_number or customer_id is required")
    context = data.context if isinstance(data.context, dict) else {"note": data.context}
    agent = await get_agent_row(session, client_id)
    if agent.training_level < rubric.LEARNING_AT:
        raise CallRefused(
            "agent_not_ready",
            f"the agent is trained to {agent.training_level} %; it can call from "
            f"{rubric.LEARNING_AT} % on (POST /api/agents/ai/training/)",
        )
    if not data.ignore_working_hours and not within_working_hours(agent, now):
        local = now.astimezone(zoneinfo.ZoneInfo(agent.timezone))
        raise CallRefused(
            "outside_working_hours",
            f"it is {local:%H:%M} in {agent.timezone}; the agent calls between "
            f"{hhmm(agent.working_hours_start)} and {hhmm(agent.working_hours_end)} "
            "(set ignore_working_hours to call anyway)",
        )
    customer, created = await find_or_create_customer(session, client_id, phone)
    # Asked again under the customer's lock: a request with the same key (same number) that
    # committed while this one waited for the lock made the call.
    earlier = await _earlier_call(session, client_id, idempotency_key)
    if earlier is not None:
        return earlier
    if not created and customer.do_not_call:
        raise CallRefused("do_not_call", f"{phone} is on the do-not-call list")
    if rule is not None:
        # The customer row is locked (find_or_create_customer): parallel calls queue here.
        verdict = rule(
            await gather_facts(session, agent, customer, phone, now, live_grace=LIVE_GRACE)
        )
        if verdict.action != "dial":
            raise CallRefused(verdict.code, verdict.reason)
    callback_id = None
    if data.scheduled_callback_id is not None:
        callback = await get_scoped(
            session,
            ScheduledCallback,
            client_id,
            data.scheduled_callback_id,
            "scheduled callback",
            for_update=True,
        )
        if callback.customer_id != customer.id:
            raise ValidationFailed(
                "scheduled_callback_id", "that callback is for another phone number"
            )
        await counters.bump(
            session, client_id, callback_service.move(callback, CallbackStatus.IN_PROGRESS)
        )
        callback.attempts += 1
        callback_id = callback.id
    call = CallSession(
        client_id=client_id,
        agent_id=agent.id,
        customer_id=customer.id,
        callback_id=callback_id,
        call_type=data.call_type,
        purpose=data.purpose,
        context=context,
        phone_number=phone,
        status=CallStatus.QUEUED,
        transcript=[],
        latency={},
        created_at=now,
        last_activity_at=now,
        idempotency_key=idempotency_key,
    )
    session.add(call)
    await session.flush()
    if created:
        await events.customer_created(session, customer, source="call", call_id=call.id)
    return PreparedCall(
        call_id=call.id,
        client_id=client_id,
        agent_id=agent.id,
        customer_id=customer.id,
        customer_created=created,
        phone_number=phone,
        call_type=data.call_type,
        purpose=data.purpose,
        context=context,
        scheduled_callback_id=callback_id,
        caller_id=await caller_id_for(session, agent.id),
    )


async def existing_call(db: Database, client_id: uuid.UUID, call_id: uuid.UUID) -> StartCallResult:
    """start-call's answer for a call made earlier with the same Idempotency-Key: the call as
    it is now (nothing dialled again)."""
    async with db.read() as session:
        call = await get_scoped(session, CallSession, client_id, call_id, "call")
        return to_view(
            call,
            StartCallResult,
            call_id=call.id,
            customer_created=False,
            scheduled_callback_id=call.callback_id,
        )


async def record_placement(
    db: Database,
    client_id: uuid.UUID,
    call_id: uuid.UUID,
    *,
    placed: bool,
    reason: str,
    telephony_call_id: str,
    now: dt.datetime,
) -> StartCallResult:
    """What the telephony layer said: ``dialing``, or ``failed`` with its reason (and then the
    call's outcome is ``failed`` and a callback behind it is retried or failed)."""
    async with db.write() as session:
        call = await get_scoped(session, CallSession, client_id, call_id, "call", for_update=True)
        # Locked: calls to one customer placed at the same time each count (total_calls).
        customer = await get_scoped(
            session, CustomerProfile, client_id, call.customer_id, "customer", for_update=True
        )
        # The placer starts dialling before this transaction: Asterisk's events (ringing,
        # answered, busy…) may have moved the call on already (call_state.apply_call_update).
        # Status only moves forward, so a call past ``queued`` keeps what the telephony layer
        # wrote.
        if placed:
            if call.status == CallStatus.QUEUED:
                call.status = check_transition(call.status, CallStatus.DIALING)
            call.telephony_call_id = telephony_call_id
            call.last_activity_at = max(call.last_activity_at, now)  # a sign of life (recovery.py)
            customer.total_calls += 1
            customer.last_call_at = now
        else:
            if call.status != CallStatus.FAILED:
                call.status = check_transition(call.status, CallStatus.FAILED)
            call.outcome = CallOutcome.FAILED
            call.failure_reason = reason
            call.ended_at = call.ended_at or now
            await callback_service.settle_for_call(
                session, client_id, call.callback_id, CallOutcome.FAILED, now
            )
            await events.call_completed(session, call)
        await session.flush()
        return to_view(
            call,
            StartCallResult,
            call_id=call.id,
            customer_created=False,
            scheduled_callback_id=call.callback_id,
        )


def _interest_after(current: InterestLevel, outcome: CallOutcome) -> InterestLevel:
    """The interest level an outcome implies; converted customers stay converted."""
    if current == InterestLevel.CONVERTED:
        return current
    order = [InterestLevel.COLD, InterestLevel.WARM, InterestLevel.HOT]
    if outcome == CallOutcome.CONVERTED:
        return InterestLevel.CONVERTED
    if outcome == CallOutcome.INTERESTED:
        return order[min(order.index(current) + 1, 2)]
    if outcome == CallOutcome.DEMO_SCHEDULED:
        return InterestLevel.HOT
    if outcome == CallOutcome.CALLBACK_REQUESTED and current == InterestLevel.COLD:
        return InterestLevel.WARM
    if outcome in (CallOutcome.NOT_INTERESTED, CallOutcome.DO_NOT_CALL):
        return InterestLevel.COLD
    return current


async def _known_objections(session: Any, agent: AIAgent) -> set[str]:
    rows = await session.scalars(
        select(AgentTraining.objection_responses).where(AgentTraining.agent_id == agent.id)
    )
    return {name.strip().lower() for responses in rows for name in responses}


def _learn(
    agent: AIAgent, report: CallOutcomeReport, objections: set[str], known: set[str]
) -> None:
    """Fold one call into the agent's learning data (a new dict: JSON columns are not
    change-tracked in place)."""
    metrics = copy.deepcopy(agent.performance_metrics or {})
    outcomes = metrics.setdefault("outcomes", {})
    outcomes[report.outcome.value] = outcomes.get(report.outcome.value, 0) + 1
    per_objection = metrics.setdefault("objections", {})
    for name in sorted(objections):
        entry = per_objection.setdefault(name, {"raised": 0, "converted": 0, "trained": False})
        entry["raised"] += 1
        entry["trained"] = name in known
        if report.outcome == CallOutcome.CONVERTED:
            entry["converted"] += 1
    if report.customer_satisfaction is not None:
        satisfaction = metrics.setdefault("satisfaction", {"sum": 0, "count": 0})
        satisfaction["sum"] += report.customer_satisfaction
        satisfaction["count"] += 1
    if report.sentiment is not None:
        sentiments = metrics.setdefault("sentiment", {})
        sentiments[report.sentiment.value] = sentiments.get(report.sentiment.value, 0) + 1
    agent.performance_metrics = metrics


async def record_outcome(
    db: Database, client_id: uuid.UUID, report: CallOutcomeReport, now: dt.datetime
) -> CallOutcomeResult:
    """``call-outcome``: close the call, update the customer, schedule the callback, settle the
    callback the call was made for, and teach the agent. All in one transaction."""
    if report.callback_requested:
        if report.callback_datetime is None:
            raise ValidationFailed("callback_datetime", "required when callback_requested is true")
        if report.callback_datetime <= now:
            raise ValidationFailed("callback_datetime", "must be in the future")
        if report.outcome == CallOutcome.DO_NOT_CALL:
            raise ValidationFailed("callback_requested", "contradicts the outcome do_not_call")
    async with db.write() as session:
        # The agent row is locked first, by every outcome, so learning data never loses a call.
        agent = await get_agent_row(session, client_id, for_update=True)
        call = await get_scoped(
            session, CallSession, client_id, report.call_id, "call", for_update=True
        )
        call_before = events.call_snapshot(call)
        if call.outcome is not None:
            if not call_analysis.outcome_from_analysis(call):
                raise Conflict(f"call {call.id} already has the outcome '{call.outcome}'")
            # The post-call analysis decided it; a person's report replaces the model's reading
            # (docs/analysis.md, "What happened live wins").
            await call_analysis.withdraw_outcome(
                session,
                agent,
                call,
                cancel_callback=report.callback_requested
                or report.outcome == CallOutcome.DO_NOT_CALL,
                replacement=report.outcome,
            )
        target = CallStatus.FAILED if report.outcome == CallOutcome.FAILED else CallStatus.COMPLETED
        # The telephony layer ends a call when it hangs up (call_state) and leaves the outcome
        # of an answered call to this report: such a call keeps its status, end and duration, and
        # its talk time was counted then.
        ended_by_telephony = call.status == target and call.ended_at is not None
        # Announced complete already - at the hang-up, or by its analysis - so what this report
        # changes goes out as a call.updated; while its analysis is still to come, that
        # analysis announces the call with this report in it (docs/webhooks.md).
        announced = ended_by_telephony and not await analysis_jobs.pending(session, call.id)
        queued = False
        if not ended_by_telephony:
            call.status = check_transition(call.status, target)
            call.ended_at = now
            if call.started_at is not None and db.analyse_calls:
                # The call ends here: its post-call analysis is queued with it (docs/analysis.md).
                await analysis_jobs.enqueue(session, call, now)
                queued = True
        call.outcome = report.outcome
        call.customer_response = report.customer_response
        call.conversation_notes = report.conversation_notes
        call.customer_satisfaction = report.customer_satisfaction
        call.sentiment = report.sentiment
        if report.duration_s is not None:
            call.duration_s = report.duration_s
        elif call.started_at is not None and not ended_by_telephony:
            call.duration_s = (now - call.started_at).total_seconds()

        customer = await get_scoped(
            session, CustomerProfile, client_id, call.customer_id, "customer", for_update=True
        )
        snapshot = events.customer_snapshot(customer)
        before = customer_counts(customer, -1)
        set_interest(customer, _interest_after(customer.interest_level, report.outcome))
        customer.last_outcome = report.outcome
        customer.last_call_at = now
        if not ended_by_telephony:
            if report.outcome not in UNREACHED_OUTCOMES:
                customer.answered_calls += 1
            customer.total_talk_time_s += call.duration_s or 0.0
        if report.conversation_notes:
            customer.conversation_notes = report.conversation_notes
            session.add(
                ContactNote(
                    client_id=client_id,
                    customer_id=customer.id,
                    call_id=call.id,
                    kind=NoteKind.CALL_SUMMARY,
                    body=report.conversation_notes,
                )
            )
        known = await _known_objections(session, agent)
        response = report.customer_response.lower()
        raised = {name.strip().lower() for name in report.objections}
        raised |= {name for name in known if name and name in response}
        if raised:
            merged = list(dict.fromkeys([*customer.objections, *sorted(raised)]))
            customer.objections = merged[-_MAX_CUSTOMER_OBJECTIONS:]
        if report.outcome == CallOutcome.DO_NOT_CALL:
            set_do_not_call(customer, True)
            await callback_service.cancel_open_callbacks(session, client_id, customer.id)
        await counters.bump(session, client_id, merge(before, customer_counts(customer)))

        await callback_service.settle_for_call(
            session, client_id, call.callback_id, report.outcome, now
        )
        new_callback = None
        if report.callback_requested:
            assert report.callback_datetime is not None  # checked above
            new_callback = await callback_service.new_callback(
                session,
                client_id,
                customer.id,
                scheduled_at=report.callback_datetime,
                reason=report.callback_reason or "callback requested on the call",
                priority=2 if customer.interest_level == InterestLevel.HOT else 3,
                origin_call_id=call.id,
            )

        if call.call_type != CallType.TEST:  # the browser phone's is no business to learn from
            agent.calls_handled += 1
            if report.outcome == CallOutcome.CONVERTED:
                agent.successful_conversions += 1
            _learn(agent, report, raised, known)
            if agent.status == AgentStatus.ACTIVE and agent.calls_handled >= OPTIMIZE_AFTER_CALLS:
                agent.status = advance_status(agent.status, AgentStatus.OPTIMIZING)
        await events.customer_changed(session, customer, snapshot, call_id=call.id)
        if not ended_by_telephony and not queued:
            # Never answered, or no node analyses calls: no analysis will announce it
            # (docs/webhooks.md).
            await events.call_completed(session, call)
        elif announced:
            await events.call_updated(session, call, call_before, source="call-outcome")
        await session.flush()
        return CallOutcomeResult(
            call=call_view(call),
            customer=customer_view(customer),
            callback=callback_view(new_callback, customer, now) if new_callback else None,
            agent_status=agent.status,
            calls_handled=agent.calls_handled,
            successful_conversions=agent.successful_conversions,
        )


async def list_calls(
    db: Database,
    client_id: uuid.UUID,
    *,
    status: CallStatus | None = None,
    outcome: CallOutcome | None = None,
    call_type: CallType | None = None,
    customer_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> CallPage:
    """Calls newest first, filtered; keyset-paginated on the id. No transcripts."""
    statement = select(CallSession).where(CallSession.client_id == client_id)
    if status is not None:
        statement = statement.where(CallSession.status == status)
    if outcome is not None:
        statement = statement.where(CallSession.outcome == outcome)
    if call_type is not None:
        statement = statement.where(CallSession.call_type == call_type)
    if customer_id is not None:
        statement = statement.where(CallSession.customer_id == customer_id)
    async with db.read() as session:
        page = await paginate(
            session, statement, NEWEST_FIRST, cursor=cursor, limit=limit, descending=True
        )
    return CallPage(items=[call_view(row) for row in page.rows], next_cursor=page.next_cursor)


async def get_call(db: Database, client_id: uuid.UUID, call_id: uuid.UUID) -> CallDetail:
    """One call with its transcript."""
    async with db.read() as session:
        row = (
            await session.execute(
                select(CallSession, CustomerProfile.name)
                .join(CustomerProfile, CustomerProfile.id == CallSession.customer_id)
                .where(CallSession.id == call_id, CallSession.client_id == client_id)
                .options(undefer(CallSession.transcript))
            )
        ).one_or_none()
    if row is None:
        raise NotFound(f"call {call_id} not found")
    call, customer_name = row
    # The transcript's stored turns (JSON) become TranscriptTurns on the way.
    return to_view(call, CallDetail, customer_name=customer_name)
