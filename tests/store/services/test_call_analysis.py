"""What a post-call analysis writes, on both backends: the call, the customer and their memory,
a summary note, a requested callback, an opportunity, the learning counts - and what happened
live wins over what the model read (docs/analysis.md, "What is written")."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from callagent.store.db import Database
from callagent.store.schemas import CallbackCreate, CallOutcomeReport
from callagent.store.services import (
    agents,
    analysis_jobs,
    call_analysis,
    call_state,
    callbacks,
    calls,
    customers,
    notes,
    opportunities,
)
from callagent.store.services.analysis_jobs import START_DELAY, JobLease, LeaseLost
from callagent.store.services.call_state import CallUpdate
from callagent.store.states import (
    AnalysisStatus,
    CallbackStatus,
    CallOutcome,
    InterestLevel,
    NoteKind,
    OpportunityStage,
    Sentiment,
)

from helpers.analysis_data import START, TALK, analysis, finished_call
from helpers.store_data import number, ready_client

DONE = START + TALK + START_DELAY
LEASE = dt.timedelta(minutes=5)
TUESDAY_3PM = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)


async def leased(db: Database) -> JobLease:
    lease = await analysis_jobs.claim(db, "test", DONE, LEASE)
    assert lease is not None
    return lease


async def test_the_analysis_fills_the_call_and_customer_records(own_db: Database) -> None:
    db = own_db
    client_id = await ready_client(db)
    call_id = await finished_call(db, client_id, purpose="Solar panels")
    lease = await leased(db)
    material = await call_analysis.load_call(db, lease)
    assert material is not None
    assert material.caller_spoke
    assert material.transcript[1] == ("caller", "Hi, tell me more.")
    assert (material.direction, material.purpose, material.agent_timezone) == (
        "outbound",
        "Solar panels",
        "UTC",
    )
    assert material.working_hours == (dt.time(9), dt.time(17))

    applied = await call_analysis.apply_analysis(
        db, lease, analysis(), DONE, callback_at=TUESDAY_3PM, model="test-model", seconds=1.234
    )

    assert applied.outcome == CallOutcome.CALLBACK_REQUESTED
    detail = await calls.get_call(db, client_id, call_id)
    assert (detail.outcome, detail.sentiment) == (
        CallOutcome.CALLBACK_REQUESTED,
        Sentiment.POSITIVE,
    )
    assert detail.conversation_notes == analysis().summary
    assert detail.analyzed_at == DONE
    assert detail.analysis is not None
    assert detail.analysis["result"]["budget"] == "about 10,000 dollars"
    assert detail.analysis["applied"]["outcome"] == "callback_requested"
    assert (detail.analysis["model"], detail.analysis["seconds"]) == ("test-model", 1.23)

    customer = await customers.get_customer(db, client_id, material.customer_id)
    assert customer.interest_level == InterestLevel.WARM
    assert customer.last_outcome == CallOutcome.CALLBACK_REQUESTED
    assert customer.call_preference_time == "Tuesday afternoons"
    assert customer.preferences == {"budget": "about 10,000 dollars", "decision_maker": "yes"}
    assert customer.objections == ["too expensive"]
    [memory] = customer.conversation_memory
    assert memory["summary"] == analysis().summary
    assert memory["preferred_call_time"] == "Tuesday afternoons"
    assert memory["callback_time"] == "Tuesday afternoon"
    assert (memory["date"], memory["outcome"]) == ("2026-03-04", "callback_requested")

    [note] = (await notes.list_notes(db, client_id, material.customer_id)).items
    assert note.kind == NoteKind.CALL_SUMMARY
    assert note.call_id == call_id
    assert note.body.endswith("Next: Call back Tuesday afternoon with a financing quote")
    [callback] = (await callbacks.list_callbacks(db, client_id, DONE)).items
    assert (callback.scheduled_at, callback.origin_call_id) == (TUESDAY_3PM, call_id)
    assert callback.reason == "asked on the call: Tuesday afternoon"
    [opportunity] = (await opportunities.list_opportunities(db, client_id)).items
    assert (opportunity.stage, opportunity.probability, opportunity.estimated_value) == (
        OpportunityStage.PROSPECTING,
        40,
        Decimal("12000.00"),
    )
    assert opportunity.title.startswith("Solar panels: ")
    agent = await agents.get_agent(db, client_id)
    assert agent.calls_handled == 1
    assert agent.performance_metrics["outcomes"] == {"callback_requested": 1}
    assert agent.performance_metrics["objections"]["too expensive"]["raised"] == 1
    job = await analysis_jobs.job_for_call(db, client_id, call_id)
    assert job is not None
    assert (job.status, job.finished_at) == (AnalysisStatus.DONE, DONE)


async def test_an_unresolved_callback_time_goes_to_the_next_working_morning(
    own_db: Database,
) -> None:
    db = own_db
    client_id = await ready_client(db)
    await finished_call(db, client_id)
    applied = await call_analysis.apply_analysis(
        db, await leased(db), analysis(callback_time="after the holidays"), DONE
    )
    assert applied.callback_time_resolved is False
    [callback] = (await callbacks.list_callbacks(db, client_id, DONE)).items
    # The agent works 09:00-17:00 UTC (the default): the next day at 09:00.
    assert callback.scheduled_at == dt.datetime(2026, 3, 5, 9, 0, tzinfo=dt.UTC)
    assert callback.reason == "asked on the call: after the holidays (time to be confirmed)"


async def test_an_outcome_set_live_or_by_the_crm_wins(own_db: Database) -> None:
    db = own_db
    client_id = await ready_client(db)
    call_id = await finished_call(db, client_id)
    report = CallOutcomeReport(
        call_id=call_id,
        outcome=CallOutcome.INTERESTED,
        conversation_notes="CRM: wants the brochure.",
    )
    await calls.record_outcome(db, client_id, report, DONE)
    applied = await call_analysis.apply_analysis(
        db,
        await leased(db),
        analysis(outcome="not_interested", interest_level="cold", callback_requested=False),
        DONE,
    )
    assert (applied.outcome, applied.kept_outcome) == (None, CallOutcome.INTERESTED)
    assert "outcome not_interested: the call has interested" in applied.skipped
    detail = await calls.get_call(db, client_id, call_id)
    assert detail.outcome == CallOutcome.INTERESTED
    assert detail.conversation_notes == "CRM: wants the brochure."
    customer_id = detail.customer_id
    customer = await customers.get_customer(db, client_id, customer_id)
    assert customer.interest_level == InterestLevel.WARM  # call-outcome's step up, kept
    assert len(customer.conversation_memory) == 1  # the memory still learns from the call
    # The CRM's summary note stands alone; the learning counted the call once.
    assert [n.body for n in (await notes.list_notes(db, client_id, customer_id)).items] == [
        "CRM: wants the brochure."
    ]
    assert (await agents.get_agent(db, client_id)).calls_handled == 1


async def test_a_do_not_call_set_during_the_call_wins_over_the_models_reading(
    own_db: Database,
) -> None:
    db = own_db
    client_id = await ready_client(db)
    phone = number()
    call_id = await finished_call(db, client_id, phone=phone)
    detail = await calls.get_call(db, client_id, call_id)
    await customers.mark_do_not_call(db, client_id, detail.customer_id, True)  # live, in-call
    applied = await call_analysis.apply_analysis(
        db, await leased(db), analysis(outcome="interested", interest_level="hot"), DONE
    )
    assert applied.outcome == CallOutcome.DO_NOT_CALL
    assert applied.callback_id is None
    assert "callback: the customer is on the do-not-call list" in applied.skipped
    assert "set_do_not_call" in applied.actions_taken
    customer = await customers.get_customer(db, client_id, detail.customer_id)
    assert (customer.do_not_call, customer.interest_level) == (True, InterestLevel.COLD)
    assert (await callbacks.list_callbacks(db, client_id, DONE)).items == []
    assert (await opportunities.list_opportunities(db, client_id)).items == []


async def test_a_call_handed_to_a_person_is_transferred_and_a_live_callback_is_not_doubled(
    own_db: Database,
) -> None:
    db = own_db
    client_id = await ready_client(db)
    call_id = await finished_call(db, client_id)
    await call_state.apply_call_update(
        db, client_id, call_id, CallUpdate(transferred_to="sales"), DONE
    )
    detail = await calls.get_call(db, client_id, call_id)
    # A callback the call already produced (an in-call action): origin_call_id is the call.
    made = await callbacks.create_callback(
        db,
        client_id,
        CallbackCreate(customer_id=detail.customer_id, scheduled_at=TUESDAY_3PM),
        DONE,
    )
    await _set_origin(db, made.id, call_id)
    applied = await call_analysis.apply_analysis(db, await leased(db), analysis(), DONE)
    assert applied.outcome == CallOutcome.TRANSFERRED
    assert applied.callback_id is None
    assert set(applied.actions_taken) >= {"transfer", "schedule_callback"}
    assert [c.id for c in (await callbacks.list_callbacks(db, client_id, DONE)).items] == [made.id]


async def _set_origin(db: Database, callback_id: uuid.UUID, call_id: uuid.UUID) -> None:
    from sqlalchemy import update

    from callagent.store.models import ScheduledCallback

    async with db.write() as session:
        await session.execute(
            update(ScheduledCallback)
            .where(ScheduledCallback.id == callback_id)
            .values(origin_call_id=call_id)
        )


async def test_a_do_not_call_the_model_heard_puts_the_customer_on_the_list(
    own_db: Database,
) -> None:
    db = own_db
    client_id = await ready_client(db)
    phone = number()
    call_id = await finished_call(db, client_id, phone=phone)
    detail = await calls.get_call(db, client_id, call_id)
    earlier = await callbacks.create_callback(
        db,
        client_id,
        CallbackCreate(customer_id=detail.customer_id, scheduled_at=TUESDAY_3PM),
        DONE,
    )
    applied = await call_analysis.apply_analysis(
        db,
        await leased(db),
        analysis(outcome="do_not_call", interest_level="cold", callback_requested=True),
        DONE,
    )
    assert (applied.outcome, applied.do_not_call_set) == (CallOutcome.DO_NOT_CALL, True)
    customer = await customers.get_customer(db, client_id, detail.customer_id)
    assert customer.do_not_call
    assert (await callbacks.get_callback(db, client_id, earlier.id, DONE)).status == (
        CallbackStatus.CANCELLED
    )
    assert len((await callbacks.list_callbacks(db, client_id, DONE)).items) == 1


@pytest.mark.parametrize("crm_callback", [False, True])
async def test_a_crm_report_after_the_analysis_replaces_its_outcome(
    own_db: Database, crm_callback: bool
) -> None:
    db = own_db
    client_id = await ready_client(db)
    call_id = await finished_call(db, client_id)
    applied = await call_analysis.apply_analysis(
        db, await leased(db), analysis(), DONE, callback_at=TUESDAY_3PM
    )
    assert applied.callback_id is not None
    report = CallOutcomeReport(
        call_id=call_id,
        outcome=CallOutcome.CONVERTED,
        callback_requested=crm_callback,
        callback_datetime=TUESDAY_3PM + dt.timedelta(days=1) if crm_callback else None,
    )
    await calls.record_outcome(db, client_id, report, DONE)
    detail = await calls.get_call(db, client_id, call_id)
    assert detail.outcome == CallOutcome.CONVERTED
    assert detail.analysis is not None
    assert detail.analysis["applied"]["outcome_withdrawn"] == "callback_requested"
    agent = await agents.get_agent(db, client_id)
    assert (agent.calls_handled, agent.successful_conversions) == (1, 1)
    assert agent.performance_metrics["outcomes"] == {"callback_requested": 0, "converted": 1}
    analysed = await callbacks.get_callback(db, client_id, applied.callback_id, DONE)
    # The CRM asked for its own callback: the model's is cancelled; else it stays.
    expected = CallbackStatus.CANCELLED if crm_callback else CallbackStatus.SCHEDULED
    assert analysed.status == expected
    # A second report is a conflict again, as always.
    with pytest.raises(Exception, match="already has the outcome"):
        await calls.record_outcome(db, client_id, report, DONE)


async def test_a_run_that_lost_its_lease_writes_nothing(own_db: Database) -> None:
    db = own_db
    client_id = await ready_client(db)
    call_id = await finished_call(db, client_id)
    stale = await leased(db)
    taken = await analysis_jobs.claim(db, "other", stale.locked_until + START_DELAY, LEASE)
    assert taken is not None
    with pytest.raises(LeaseLost):
        await call_analysis.apply_analysis(db, stale, analysis(), DONE)
    detail = await calls.get_call(db, client_id, call_id)
    assert (detail.outcome, detail.analysis) == (None, None)
    assert (await callbacks.list_callbacks(db, client_id, DONE)).items == []


async def test_the_memory_keeps_the_newest_calls(own_db: Database) -> None:
    db = own_db
    client_id = await ready_client(db)
    phone = number()
    at = START
    for index in range(call_analysis.MEMORY_ENTRIES + 2):
        await finished_call(db, client_id, phone=phone, at=at)
        lease = await analysis_jobs.claim(db, "w", at + TALK + START_DELAY, LEASE)
        assert lease is not None
        await call_analysis.apply_analysis(
            db, lease, analysis(summary=f"Call {index}.", callback_requested=False), at + TALK
        )
        at += dt.timedelta(days=1)
    page = await customers.list_customers(db, client_id, phone_number=phone)
    memory = page.items[0].conversation_memory
    assert [entry["summary"] for entry in memory] == [f"Call {i}." for i in range(2, 7)]


async def test_in_call_actions_done_live_win_over_the_models_reading(own_db: Database) -> None:
    """An appointment the agent booked and an interest level it set during the call
    (call_state.apply_call_action, docs/dialog.md) are facts; the model's reading is not."""
    db = own_db
    client_id = await ready_client(db)
    call_id = await finished_call(db, client_id)
    booked = call_state.CallAction(
        record={"type": "book_appointment", "source": "model", "when": "Tuesday at two"},
        callback_at=TUESDAY_3PM,
        expected_outcome="demo",
    )
    interest = call_state.CallAction(
        record={"type": "set_interest", "source": "model", "level": "hot"},
        interest=InterestLevel.HOT,
    )
    for action in (booked, interest):
        await call_state.apply_call_action(db, client_id, call_id, action, DONE)
    applied = await call_analysis.apply_analysis(
        db,
        await leased(db),
        analysis(outcome="interested", interest_level="warm", callback_requested=False),
        DONE,
    )
    assert applied.outcome == CallOutcome.DEMO_SCHEDULED
    assert "outcome interested: demo_scheduled was done live" in applied.skipped
    assert "interest warm: the agent set it during the call" in applied.skipped
    assert applied.actions_taken[:2] == ["book_appointment", "set_interest"]
    detail = await calls.get_call(db, client_id, call_id)
    customer = await customers.get_customer(db, client_id, detail.customer_id)
    assert customer.interest_level == InterestLevel.HOT
    [opportunity] = (await opportunities.list_opportunities(db, client_id)).items
    assert opportunity.stage == OpportunityStage.QUALIFICATION
