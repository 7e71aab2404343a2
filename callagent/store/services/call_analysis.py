"""What the post-call analysis learnt, written into the records (docs/analysis.md).

The language model reads the call's transcript after hang-up (``dialog/analysis.py``) and
answers a :class:`CallAnalysis`; this module is the store's side: what the model is given
(:func:`load_call`) and how its validated answer lands on the call session, the customer, the
notes, the callbacks and the opportunities (:func:`apply_analysis`) - in one transaction that
first checks the job's lease (``analysis_jobs.hold``), so at most one result per call is ever
stored.

**What happened live wins.** The analysis reads words; what was *done* during or about the
call is a fact and is never overwritten:

* an outcome the call already has - set by ``call-outcome`` (a CRM), by the phone system or
  by an action during the call - stays; the analysis's reading is kept beside it
  (``analysis.result``) and changes neither interest level nor learning counts;
* a customer who is on the do-not-call list gets no callback and no opportunity from the
  analysis, whatever the model read; one put on the list during this call makes the outcome
  ``do_not_call``, a call that was handed over to a person is ``transferred``, an appointment
  the agent booked makes it ``demo_scheduled`` (unless the model read a sale) and a callback
  it scheduled ``callback_requested`` (unless the model read a sale or a meeting) - the
  in-call actions done, from the call's ``actions_taken`` (docs/dialog.md);
* an interest level the agent set during the call stays;
* a callback the call already produced (an in-call action, ``call-outcome``) is not doubled,
  and a summary note the CRM wrote for the call is not doubled either;
* a CRM that reports ``call-outcome`` *after* the analysis replaces the analysis's outcome
  (:func:`withdraw_outcome`): a person's report is worth more than the model's reading.

A model that hears "take me off your list" sets do-not-call even when the in-call backstop
missed it: the outcome ``do_not_call`` decided by the analysis puts the customer on the list and
cancels their scheduled callbacks.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
import zoneinfo
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from callagent.store import counters
from callagent.store.db import Database
from callagent.store.models import (
    AgentTraining,
    AIAgent,
    CallSession,
    Client,
    ContactNote,
    CustomerProfile,
    Opportunity,
    ScheduledCallback,
)
from callagent.store.schemas import CallOutcomeReport
from callagent.store.services import analysis_jobs, events, learning
from callagent.store.services import callbacks as callback_service
from callagent.store.services.analysis_jobs import JobLease
from callagent.store.services.customers import (
    customer_counts,
    merge,
    set_do_not_call,
    set_interest,
)
from callagent.store.states import (
    AgentStatus,
    CallbackStatus,
    CallOutcome,
    CallType,
    InterestLevel,
    NoteKind,
    OpportunityStage,
    Sentiment,
    check_transition,
)

# --- the model's answer ----------------------------------------------------------------------

#: The outcomes a conversation can have (busy, no answer and failed are the phone system's).
AnalysedOutcome = Literal[
    "answered",
    "interested",
    "not_interested",
    "converted",
    "callback_requested",
    "demo_scheduled",
    "do_not_call",
    "transferred",
    "wrong_number",
    "voicemail",
]
#: What the agent did on the call, by the names of the in-call actions (docs/dialog.md).
ActionTaken = Literal[
    "end_call",
    "schedule_callback",
    "book_appointment",
    "set_do_not_call",
    "transfer",
    "send_information",
    "set_interest",
]
DecisionMaker = Literal["yes", "no", "unknown"]
Phrase = Annotated[str, Meta(min_length=1, max_length=80)]
Phrases = Annotated[list[Phrase], Meta(max_length=5)]

PROBABILITIES: Final = tuple(range(0, 101, 10))
"""The model picks a probability from these: finer steps would be false precision."""
MAX_VALUE: Final = 1_000_000_000


class CallAnalysis(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The analysis of one call, as the model must answer it (every field required; the
    JSON schema the model is held to is ``dialog.analysis.ANALYSIS_SCHEMA``)."""

    summary: Annotated[str, Meta(min_length=1, max_length=600)]
    # Facts the outcome is decided from (``dialog.analysis.decide_outcome``): a small model
    # answers such yes/no questions better than it picks one of ten outcomes (measured on the
    # labelled calls, docs/analysis.md).
    asked_not_to_call: bool
    wrong_person: bool
    bought: bool
    meeting_agreed: bool
    declined: bool
    outcome: AnalysedOutcome
    sentiment: Sentiment
    interest_level: Literal["cold", "warm", "hot"]
    objections: Phrases
    pain_points: Phrases
    decision_maker: DecisionMaker
    budget: Annotated[str, Meta(max_length=120)]
    callback_requested: bool
    callback_time: Annotated[str, Meta(max_length=120)]
    """The callback time as the caller said it ("tomorrow after three")."""
    preferred_call_time: Annotated[str, Meta(max_length=120)]
    next_action: Annotated[str, Meta(max_length=200)]
    probability: Annotated[int, Meta(ge=0, le=100)]
    estimated_value: Annotated[int, Meta(ge=0, le=MAX_VALUE)]
    """In whole units of the client's currency; 0 when nothing was said about money."""
    actions_taken: Annotated[list[ActionTaken], Meta(max_length=7)]


# --- what the model is given ------------------------------------------------------------------


@dataclass(frozen=True)
class CallForAnalysis:
    """One finished call as the analysis reads it, by value."""

    call_id: uuid.UUID
    client_id: uuid.UUID
    customer_id: uuid.UUID
    direction: Literal["inbound", "outbound"]
    purpose: str
    company: str
    agent_name: str
    customer_name: str
    phone_number: str
    customer_timezone: str | None
    """The customer record's time zone, if it has one (callback times are the customer's)."""
    agent_timezone: str
    working_hours: tuple[dt.time, dt.time]
    """The agent's working hours, in ``agent_timezone``."""
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    transcript: list[tuple[str, str]]
    """(speaker, text), speaker ``agent`` or ``caller``, in order."""
    live_outcome: CallOutcome | None
    transferred_to: str
    do_not_call: bool

    @property
    def caller_spoke(self) -> bool:
        """Whether the caller said anything at all (else there is nothing to analyse)."""
        return any(speaker == "caller" and text.strip() for speaker, text in self.transcript)


async def load_call(db: Database, lease: JobLease) -> CallForAnalysis | None:
    """The call of a claimed job, with its transcript; None when it is gone (deleted with its
    customer)."""
    async with db.read() as session:
        row = (
            await session.execute(
                select(CallSession, CustomerProfile, AIAgent, Client.name)
                .join(CustomerProfile, CustomerProfile.id == CallSession.customer_id)
                .join(AIAgent, AIAgent.id == CallSession.agent_id)
                .join(Client, Client.id == CallSession.client_id)
                .where(CallSession.id == lease.call_id, CallSession.client_id == lease.client_id)
                .options(undefer(CallSession.transcript))
            )
        ).one_or_none()
    if row is None:
        return None
    call, customer, agent, client_name = row
    company = str((agent.business_info or {}).get("company_name") or client_name or "")
    return CallForAnalysis(
        call_id=call.id,
        client_id=call.client_id,
        customer_id=customer.id,
        direction="inbound" if call.call_type in _CALLED_US else "outbound",
        purpose=call.purpose,
        company=company,
        agent_name=agent.agent_name,
        customer_name=customer.name,
        phone_number=customer.phone_number,
        customer_timezone=customer.timezone,
        agent_timezone=agent.timezone,
        working_hours=(agent.working_hours_start, agent.working_hours_end),
        started_at=call.started_at,
        ended_at=call.ended_at,
        transcript=[
            (str(turn.get("speaker", "")), str(turn.get("text", "")))
            for turn in call.transcript or []
            if isinstance(turn, dict)
        ],
        live_outcome=call.outcome,
        transferred_to=call.transferred_to,
        do_not_call=customer.do_not_call,
    )


# --- what is written ------------------------------------------------------------------------

MEMORY_ENTRIES: Final = 5
"""Calls a customer's ``conversation_memory`` keeps (newest last)."""
_MAX_CUSTOMER_OBJECTIONS: Final = 50
_CALLED_US: Final = frozenset({CallType.INBOUND, CallType.TEST})
"""Calls the customer made: a browser-phone test call is the client's person calling in."""
_ALREADY_SCHEDULED: Final = "callback: the call already scheduled one"
_STRONGER_THAN_MEETING: Final = frozenset({CallOutcome.CONVERTED, CallOutcome.DO_NOT_CALL})
_STRONGER_THAN_CALLBACK: Final = _STRONGER_THAN_MEETING | {CallOutcome.DEMO_SCHEDULED}


def live_actions(call: CallSession) -> list[str]:
    """The in-call actions carried out on the call (``actions_taken`` entries whose result is
    "done"), by type, in order."""
    return [
        str(entry.get("type"))
        for entry in call.actions_taken or []
        if isinstance(entry, dict) and entry.get("result") == "done" and entry.get("type")
    ]


_POSITIVE: Final = frozenset(
    {
        CallOutcome.INTERESTED,
        CallOutcome.DEMO_SCHEDULED,
        CallOutcome.CONVERTED,
        CallOutcome.CALLBACK_REQUESTED,
    }
)


@dataclass
class AppliedAnalysis:
    """What one analysis changed, by value (also stored as ``analysis.applied`` on the call)."""

    outcome: CallOutcome | None = None
    """The outcome the analysis set; None when the call kept the one it had."""
    kept_outcome: CallOutcome | None = None
    """The outcome the call already had (live wins)."""
    interest_level: InterestLevel | None = None
    do_not_call_set: bool = False
    callback_id: uuid.UUID | None = None
    callback_time_resolved: bool = False
    note_id: uuid.UUID | None = None
    opportunity_id: uuid.UUID | None = None
    opportunity_created: bool = False
    actions_taken: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """The analysis's findings that were not applied, and why (live wins, do-not-call…)."""

    def to_record(self) -> dict[str, Any]:
        """JSON for ``call_sessions.analysis["applied"]``."""
        return {
            "outcome": self.outcome.value if self.outcome else None,
            "kept_outcome": self.kept_outcome.value if self.kept_outcome else None,
            "interest_level": self.interest_level.value if self.interest_level else None,
            "do_not_call_set": self.do_not_call_set,
            "callback_id": str(self.callback_id) if self.callback_id else None,
            "callback_time_resolved": self.callback_time_resolved,
            "note_id": str(self.note_id) if self.note_id else None,
            "opportunity_id": str(self.opportunity_id) if self.opportunity_id else None,
            "opportunity_created": self.opportunity_created,
            "actions_taken": list(self.actions_taken),
            "skipped": list(self.skipped),
        }


def default_callback_time(agent: AIAgent, now: dt.datetime) -> dt.datetime:
    """When a requested callback whose time could not be resolved is put: the start of the
    agent's working hours on the next day, in the agent's time zone (its reason says the
    time is to be confirmed)."""
    zone = zoneinfo.ZoneInfo(agent.timezone)
    tomorrow = (now.astimezone(zone) + dt.timedelta(days=1)).date()
    return dt.datetime.combine(tomorrow, agent.working_hours_start, zone).astimezone(dt.UTC)


async def apply_analysis(
    db: Database,
    lease: JobLease,
    result: CallAnalysis,
    now: dt.datetime,
    *,
    callback_at: dt.datetime | None = None,
    model: str = "",
    seconds: float | None = None,
) -> AppliedAnalysis:
    """Write ``result`` for the lease's call and mark its job ``done``, in one transaction, by
    the rules of the module docstring. ``callback_at`` is the requested callback time resolved
    in the customer's time zone (None: not resolved). Raises ``analysis_jobs.LeaseLost`` (and
    writes nothing) if this node no longer holds the job."""
    async with db.write() as session:
        job = await analysis_jobs.hold(session, lease)
        # The agent row first, as call-outcome locks it: learning counts never lose a call.
        agent = await session.scalar(
            select(AIAgent)
            .join(CallSession, CallSession.agent_id == AIAgent.id)
            .where(CallSession.id == lease.call_id, CallSession.client_id == lease.client_id)
            .with_for_update()
        )
        call = await session.scalar(
            select(CallSession)
            .where(CallSession.id == lease.call_id, CallSession.client_id == lease.client_id)
            .options(undefer(CallSession.transcript))  # the learning counts read it
            .with_for_update()
        )
        if call is None or agent is None:
            analysis_jobs.finish(job, now, "the call is gone")
            return AppliedAnalysis(skipped=["the call is gone"])
        if call.analyzed_at is not None:
            analysis_jobs.finish(job, now, "the call was analysed already")
            return AppliedAnalysis(skipped=["the call was analysed already"])
        customer = await session.scalar(
            select(CustomerProfile).where(CustomerProfile.id == call.customer_id).with_for_update()
        )
        assert customer is not None  # a call's customer is deleted with it (foreign key)
        snapshot = events.customer_snapshot(customer)
        applied = await _apply(session, agent, call, customer, result, now, callback_at)
        call.analysis = {
            "result": msgspec.to_builtins(result),
            "applied": applied.to_record(),
            "model": model,
            "seconds": None if seconds is None else round(seconds, 2),
        }
        await _count_for_learning(session, agent, call, customer)
        call.analyzed_at = now
        analysis_jobs.finish(job, now)
        await _announce(session, call, customer, snapshot, applied)
        return applied


async def _announce(
    session: AsyncSession,
    call: CallSession,
    customer: CustomerProfile,
    snapshot: dict[str, Any],
    applied: AppliedAnalysis,
) -> None:
    """The webhook events of an analysis, in its transaction (docs/webhooks.md): what it
    changed of the customer, the opportunity it opened, then the call's ``call.completed``."""
    await events.customer_changed(session, customer, snapshot, call_id=call.id)
    if applied.opportunity_created and applied.opportunity_id is not None:
        row = await session.get(Opportunity, applied.opportunity_id)
        if row is not None:
            await events.opportunity_created(session, row, call_id=call.id)
    await events.call_completed(session, call, analysis=call.analysis)


async def _apply(
    session: AsyncSession,
    agent: AIAgent,
    call: CallSession,
    customer: CustomerProfile,
    result: CallAnalysis,
    now: dt.datetime,
    callback_at: dt.datetime | None,
) -> AppliedAnalysis:
    applied = AppliedAnalysis()
    before = customer_counts(customer, -1)
    started = call.started_at or call.created_at
    dnc_this_call = (
        customer.do_not_call
        and customer.do_not_call_at is not None
        and customer.do_not_call_at >= started
    )
    read = CallOutcome(result.outcome)

    # The outcome: the call's own, if it has one; else the analysis's, corrected by what was
    # done live (the do-not-call set during the call, the hand-over to a person).
    if call.outcome is not None:
        applied.kept_outcome = call.outcome
        if read != call.outcome:
            applied.skipped.append(f"outcome {read.value}: the call has {call.outcome.value}")
    else:
        outcome = read
        done = live_actions(call)
        if dnc_this_call:
            outcome = CallOutcome.DO_NOT_CALL
        elif call.transferred_to and read != CallOutcome.DO_NOT_CALL:
            outcome = CallOutcome.TRANSFERRED
        elif "book_appointment" in done and read not in _STRONGER_THAN_MEETING:
            outcome = CallOutcome.DEMO_SCHEDULED
        elif "schedule_callback" in done and read not in _STRONGER_THAN_CALLBACK:
            outcome = CallOutcome.CALLBACK_REQUESTED
        if outcome != read:
            applied.skipped.append(f"outcome {read.value}: {outcome.value} was done live")
        call.outcome = outcome
        customer.last_outcome = outcome
        customer.last_call_at = max(customer.last_call_at or now, call.ended_at or now)
        applied.outcome = outcome
        await callback_service.settle_for_call(
            session, call.client_id, call.callback_id, outcome, now
        )
        _learn(agent, call, result, outcome)
    final = call.outcome
    assert final is not None

    if call.sentiment is None:
        call.sentiment = result.sentiment
    if not call.conversation_notes:
        call.conversation_notes = result.summary

    # The customer. Do-not-call first: it decides what else may be written.
    if applied.outcome == CallOutcome.DO_NOT_CALL and not customer.do_not_call:
        set_do_not_call(customer, True)
        await callback_service.cancel_open_callbacks(session, call.client_id, customer.id)
        applied.do_not_call_set = True
    interest_set_live = "set_interest" in live_actions(call)
    if applied.outcome is not None and not interest_set_live:
        target = _interest(customer, applied.outcome, result)
        if target != customer.interest_level:
            set_interest(customer, target)
            applied.interest_level = target
    elif result.interest_level != customer.interest_level.value:
        why = "the agent set it during the call" if interest_set_live else "the outcome was live"
        applied.skipped.append(f"interest {result.interest_level}: {why}")
    if result.preferred_call_time.strip():
        customer.call_preference_time = result.preferred_call_time.strip()[:100]
    preferences = dict(customer.preferences or {})
    if result.budget.strip():
        preferences["budget"] = result.budget.strip()
    if result.decision_maker != "unknown":
        preferences["decision_maker"] = result.decision_maker
    if preferences != (customer.preferences or {}):
        customer.preferences = preferences
    raised = [o.strip().lower() for o in result.objections if o.strip()]
    if raised:
        merged = list(dict.fromkeys([*customer.objections, *raised]))
        customer.objections = merged[-_MAX_CUSTOMER_OBJECTIONS:]
    customer.conversation_memory = [
        *(customer.conversation_memory or []),
        memory_entry(call, result, final),
    ][-MEMORY_ENTRIES:]
    await counters.bump(session, call.client_id, merge(before, customer_counts(customer)))

    applied.note_id = await _summary_note(session, call, customer, result)
    await _callback(session, agent, call, customer, result, final, now, callback_at, applied)
    await _opportunity(session, call, customer, result, final, applied)
    applied.actions_taken = _actions_taken(call, result, dnc_this_call, applied)
    return applied


def memory_entry(call: CallSession, result: CallAnalysis, outcome: CallOutcome) -> dict[str, Any]:
    """What one call adds to the customer's ``conversation_memory`` (short: it is read into
    the next call's prompt, ``dialog/customer_context.py``)."""
    when = call.ended_at or call.started_at or call.created_at
    entry: dict[str, Any] = {
        "call_id": str(call.id),
        "date": when.date().isoformat() if when else "",
        "outcome": outcome.value,
        "summary": result.summary[:300],
    }
    optional = {
        "next_action": result.next_action[:160],
        "preferred_call_time": result.preferred_call_time[:100],
        "callback_time": result.callback_time[:100] if result.callback_requested else "",
        "budget": result.budget[:100],
        "pain_points": [p[:80] for p in result.pain_points[:3]],
        "objections": [o[:80] for o in result.objections[:3]],
        "decision_maker": "" if result.decision_maker == "unknown" else result.decision_maker,
    }
    entry.update({key: value for key, value in optional.items() if value})
    return entry


def _interest(
    customer: CustomerProfile, outcome: CallOutcome, result: CallAnalysis
) -> InterestLevel:
    """The interest level after an outcome the analysis decided."""
    if customer.interest_level == InterestLevel.CONVERTED:
        return InterestLevel.CONVERTED
    if outcome == CallOutcome.CONVERTED:
        return InterestLevel.CONVERTED
    if outcome in (CallOutcome.DO_NOT_CALL, CallOutcome.NOT_INTERESTED):
        return InterestLevel.COLD
    if outcome == CallOutcome.DEMO_SCHEDULED:
        return InterestLevel.HOT
    return InterestLevel(result.interest_level)


async def _summary_note(
    session: AsyncSession, call: CallSession, customer: CustomerProfile, result: CallAnalysis
) -> uuid.UUID | None:
    existing = await session.scalar(
        select(ContactNote.id).where(
            ContactNote.call_id == call.id, ContactNote.kind == NoteKind.CALL_SUMMARY
        )
    )
    if existing is not None:
        return None  # the CRM's summary of the call (call-outcome) stands
    body = result.summary.strip()
    if result.next_action.strip():
        body += f"\nNext: {result.next_action.strip()}"
    note = ContactNote(
        client_id=call.client_id,
        customer_id=customer.id,
        call_id=call.id,
        kind=NoteKind.CALL_SUMMARY,
        body=body,
    )
    session.add(note)
    await session.flush()
    return note.id


async def _callback(
    session: AsyncSession,
    agent: AIAgent,
    call: CallSession,
    customer: CustomerProfile,
    result: CallAnalysis,
    outcome: CallOutcome,
    now: dt.datetime,
    callback_at: dt.datetime | None,
    applied: AppliedAnalysis,
) -> None:
    if not result.callback_requested:
        return
    if customer.do_not_call or outcome == CallOutcome.DO_NOT_CALL:
        applied.skipped.append("callback: the customer is on the do-not-call list")
        return
    made = await session.scalar(
        select(ScheduledCallback.id).where(
            ScheduledCallback.client_id == call.client_id,
            ScheduledCallback.origin_call_id == call.id,
        )
    )
    if made is not None:
        applied.skipped.append(_ALREADY_SCHEDULED)
        return
    said = result.callback_time.strip()
    resolved = callback_at is not None and callback_at > now
    when = callback_at if callback_at is not None and resolved else None
    when = when or default_callback_time(agent, now)
    if resolved:
        reason = f"asked on the call: {said}" if said else "asked on the call"
    else:
        reason = (
            f"asked on the call: {said} (time to be confirmed)"
            if said
            else "asked on the call (no time given: confirm it)"
        )
    callback = await callback_service.new_callback(
        session,
        call.client_id,
        customer.id,
        scheduled_at=when,
        reason=reason[:500],
        priority=2 if customer.interest_level == InterestLevel.HOT else 3,
        expected_outcome=result.next_action[:500],
        origin_call_id=call.id,
    )
    applied.callback_id = callback.id
    applied.callback_time_resolved = resolved


async def _opportunity(
    session: AsyncSession,
    call: CallSession,
    customer: CustomerProfile,
    result: CallAnalysis,
    outcome: CallOutcome,
    applied: AppliedAnalysis,
) -> None:
    """A positive outcome opens an opportunity, or moves the customer's open one on (its
    probability and value, the stage forward); other outcomes leave opportunities to people."""
    if outcome not in _POSITIVE or customer.do_not_call:
        return
    open_stages = [
        OpportunityStage.PROSPECTING,
        OpportunityStage.QUALIFICATION,
        OpportunityStage.PROPOSAL,
        OpportunityStage.NEGOTIATION,
    ]
    row = await session.scalar(
        select(Opportunity)
        .where(
            Opportunity.client_id == call.client_id,
            Opportunity.customer_id == customer.id,
            Opportunity.stage.in_(open_stages),
        )
        .order_by(Opportunity.id.desc())
        .limit(1)
        .with_for_update()
    )
    target = {
        CallOutcome.CONVERTED: OpportunityStage.CLOSED_WON,
        CallOutcome.DEMO_SCHEDULED: OpportunityStage.QUALIFICATION,
    }.get(outcome, OpportunityStage.PROSPECTING)
    if row is None:
        who = customer.name or customer.company or customer.phone_number
        title = f"{call.purpose.strip() or 'Sale'}: {who}"
        row = Opportunity(
            client_id=call.client_id,
            customer_id=customer.id,
            title=title[:200],
            estimated_value_cents=result.estimated_value * 100,
            probability=100 if outcome == CallOutcome.CONVERTED else result.probability,
            stage=target,
        )
        session.add(row)
        await session.flush()
        applied.opportunity_created = True
    else:
        row.probability = 100 if outcome == CallOutcome.CONVERTED else result.probability
        if result.estimated_value > 0:
            row.estimated_value_cents = result.estimated_value * 100
        if open_stages.index(row.stage) < _rank(target, open_stages):
            row.stage = check_transition(row.stage, target)
    applied.opportunity_id = row.id


def _rank(stage: OpportunityStage, open_stages: list[OpportunityStage]) -> int:
    return len(open_stages) if stage not in open_stages else open_stages.index(stage)


def _actions_taken(
    call: CallSession, result: CallAnalysis, dnc_this_call: bool, applied: AppliedAnalysis
) -> list[str]:
    """What the agent did on the call: what was carried out live (``actions_taken`` of the
    call), what the model read, and the facts the store knows."""
    actions = [*live_actions(call), *result.actions_taken]
    if call.transferred_to:
        actions.append("transfer")
    if dnc_this_call:
        actions.append("set_do_not_call")
    if applied.callback_id is None and _ALREADY_SCHEDULED in applied.skipped:
        actions.append("schedule_callback")
    return list(dict.fromkeys(actions))


# --- learning counts ------------------------------------------------------------------------


async def _count_for_learning(
    session: AsyncSession, agent: AIAgent, call: CallSession, customer: CustomerProfile
) -> None:
    """Count the analysed call, with the outcome it now has (whoever set it), into the agent's
    learning counts: the objection answers it gave, its opener, its local hour and weekday
    (``learning.record_call``; docs/learning.md)."""
    if call.call_type == CallType.TEST:
        return  # the browser phone's: not business (docs/dashboard.md "Talk to your agent")
    trained = await session.scalars(
        select(AgentTraining.objection_responses)
        .where(AgentTraining.agent_id == agent.id, AgentTraining.client_id == call.client_id)
        .order_by(AgentTraining.created_at, AgentTraining.id)
    )
    known = ((agent.performance_metrics or {}).get(learning.METRICS_KEY) or {}).get("openers")
    observation = learning.observe(
        [turn for turn in call.transcript or [] if isinstance(turn, dict)],
        list(trained),
        inbound=call.call_type in _CALLED_US,
        started_at=call.started_at or call.created_at,
        timezone=customer.timezone or agent.timezone,
        customer_name=customer.name,
        purpose=call.purpose,
        known_openers=known or {},
    )
    learning.record_call(agent, call, observation)


#: An active agent with this many handled calls is tuned by its calls (as call-outcome counts).
OPTIMIZE_AFTER_CALLS: Final = 50


def _learn(agent: AIAgent, call: CallSession, result: CallAnalysis, outcome: CallOutcome) -> None:
    """Count a call whose outcome the analysis decided, as ``call-outcome`` counts a reported
    one (``calls.record_outcome``): handled calls, conversions, outcomes, objections, sentiment."""
    from callagent.store.services.calls import _learn as learn_from_report

    if call.call_type == CallType.TEST:
        return  # the browser phone's: not business (docs/dashboard.md "Talk to your agent")
    agent.calls_handled += 1
    if outcome == CallOutcome.CONVERTED:
        agent.successful_conversions += 1
    report = CallOutcomeReport(
        call_id=call.id,
        outcome=outcome,
        objections=[o for o in result.objections if o.strip()],
        sentiment=Sentiment(result.sentiment),
    )
    objections = {o.strip().lower() for o in report.objections}
    learn_from_report(agent, report, objections, set())
    if agent.status == AgentStatus.ACTIVE and agent.calls_handled >= OPTIMIZE_AFTER_CALLS:
        agent.status = check_transition(agent.status, AgentStatus.OPTIMIZING)


def outcome_from_analysis(call: CallSession) -> bool:
    """Whether the call's outcome is the analysis's (a CRM report may replace it)."""
    applied = (call.analysis or {}).get("applied") or {}
    return call.outcome is not None and applied.get("outcome") == call.outcome.value


async def withdraw_outcome(
    session: AsyncSession,
    agent: AIAgent,
    call: CallSession,
    *,
    cancel_callback: bool,
    replacement: CallOutcome | None = None,
) -> None:
    """Take back the outcome the analysis set (a CRM reports one now: ``call-outcome``), with
    the learning counts it made, in the caller's transaction; with ``cancel_callback`` the
    callback the analysis scheduled is cancelled too (the CRM's report schedules its own).
    What the analysis wrote into the customer record stays, except what the report
    changes. The call's answer, opener and time counts move to ``replacement``, the outcome
    the CRM reports (none: they are taken back; docs/learning.md)."""
    assert call.outcome is not None
    outcome = call.outcome
    analysis = copy.deepcopy(call.analysis or {})
    if call.call_type != CallType.TEST:  # a test call was never counted (_learn)
        agent.calls_handled = max(0, agent.calls_handled - 1)
        if outcome == CallOutcome.CONVERTED:
            agent.successful_conversions = max(0, agent.successful_conversions - 1)
        agent.performance_metrics = _unlearn(agent.performance_metrics or {}, outcome, analysis)
    applied = analysis.setdefault("applied", {})
    applied["outcome_withdrawn"] = outcome.value
    callback_id = applied.get("callback_id")
    if cancel_callback and callback_id:
        callback = await session.scalar(
            select(ScheduledCallback)
            .where(
                ScheduledCallback.id == uuid.UUID(callback_id),
                ScheduledCallback.client_id == call.client_id,
            )
            .with_for_update()
        )
        if callback is not None and callback.status == CallbackStatus.SCHEDULED:
            await counters.bump(
                session, call.client_id, callback_service.move(callback, CallbackStatus.CANCELLED)
            )
            applied["callback_cancelled"] = True
    call.analysis = analysis
    learning.relabel(agent, call, replacement)
    call.outcome = None


def _unlearn(
    metrics: dict[str, Any], outcome: CallOutcome, analysis: dict[str, Any]
) -> dict[str, Any]:
    """``metrics`` without what :func:`_learn` added for one call (a new dict)."""
    metrics = copy.deepcopy(metrics)
    result = analysis.get("result") or {}

    def down(table: dict[str, Any], key: str) -> None:
        if table.get(key):
            table[key] -= 1

    down(metrics.get("outcomes", {}), outcome.value)
    down(metrics.get("sentiment", {}), str(result.get("sentiment", "")))
    per_objection = metrics.get("objections", {})
    for name in {str(o).strip().lower() for o in result.get("objections", [])}:
        entry = per_objection.get(name)
        if isinstance(entry, dict):
            down(entry, "raised")
            if outcome == CallOutcome.CONVERTED:
                down(entry, "converted")
    return metrics
