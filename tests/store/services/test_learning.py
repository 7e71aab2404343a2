"""The learning loop (docs/learning.md): what an analysed call is counted under, counted once;
which trained answer the agent then uses; and, through real analysed calls on both backends,
that the outcomes of earlier calls change the answer a routed call's prompt carries."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.dialog.prompt import build_system_prompt
from callagent.store.db import Database
from callagent.store.models import AIAgent, CallSession
from callagent.store.schemas import CallOutcomeReport, ProductDetails, TrainingCreate
from callagent.store.services import agents, analysis_jobs, call_analysis, calls, learning
from callagent.store.services.analysis_jobs import START_DELAY, JobLease, LeaseLost
from callagent.store.services.learning import (
    MIN_SAMPLE,
    AnswerVariant,
    CallObservation,
    answer_variants,
    choose_answer,
    match_answers,
    opener_key,
)
from callagent.store.states import AgentStatus, CallOutcome, TrainingType
from callagent.telephony.routing import CallRouter, ProfileCache

from helpers.analysis_data import START, TALK, analysis, finished_call
from helpers.store_data import number, ready_client

FINANCE = (
    "Most customers finance the system and pay less per month than their old electricity bill."
)
STARTER = "We can start with a smaller starter package that fits a tighter budget."
EXPENSIVE = "too expensive"
VARIANTS = {
    EXPENSIVE: [
        AnswerVariant(objection=EXPENSIVE, text=FINANCE),
        AnswerVariant(objection=EXPENSIVE, text=STARTER),
    ],
    "no time": [AnswerVariant(objection="no time", text="I can call you back whenever suits.")],
}


# --- which answer the agent gave --------------------------------------------------------------


def test_the_agents_own_wording_of_a_trained_answer_counts_as_that_answer() -> None:
    said = (
        "I hear you. Most of our customers finance their system, and they end up paying less "
        "each month than their old electricity bill."
    )
    assert match_answers(["Hello, this is Alex.", said], VARIANTS) == [VARIANTS[EXPENSIVE][0]]
    other = "We could begin with a smaller starter package, one that fits a tight budget."
    assert match_answers([other], VARIANTS) == [VARIANTS[EXPENSIVE][1]]
    # One call can answer two objections; each counts once.
    both = [said, "No problem, I can call you back whenever it suits you."]
    assert {v.objection for v in match_answers(both, VARIANTS)} == {EXPENSIVE, "no time"}


def test_a_turn_that_merely_shares_a_few_words_is_no_answer() -> None:
    assert match_answers(["Our system has a monthly report."], VARIANTS) == []
    assert match_answers(["I'll call you back."], VARIANTS) == []  # "whenever suits" missing


def test_a_turn_that_fits_two_answers_of_one_objection_equally_counts_neither() -> None:
    variants = {
        "price": [
            AnswerVariant(objection="price", text="Financing makes solar affordable."),
            AnswerVariant(objection="price", text="Financing makes panels affordable."),
        ]
    }
    assert match_answers(["Financing makes solar panels affordable."], variants) == []


def test_every_answer_trained_for_an_objection_is_kept_newest_last() -> None:
    variants = answer_variants(
        [
            {"Too expensive": FINANCE},
            {"too  expensive": STARTER, "no time": "Whenever suits you."},
            {
                "TOO EXPENSIVE": " most customers  FINANCE the system and pay less per month than "
                "their old electricity bill."
            },
        ]
    )
    assert variants[EXPENSIVE][0].text == STARTER
    assert variants[EXPENSIVE][-1].id == learning.variant_id(FINANCE)  # taught again: newest
    assert len(variants[EXPENSIVE]) == 2


def test_an_opener_is_the_same_whoever_is_called_about_whatever() -> None:
    first = opener_key(
        "Hello, this is Alex from Brightline, calling about your solar enquiry. "
        "Am I speaking with Jane Doe?",
        customer_name="Jane Doe",
        purpose="Your solar enquiry. Quote ready.",
    )
    second = opener_key(
        "Hello, this is Alex from Brightline, calling about the roof survey. "
        "Am I speaking with Bo Li?",
        customer_name="Bo Li",
        purpose="the roof survey",
    )
    assert first == second
    assert first == "Hello, this is Alex from Brightline, calling about {reason}. " + (
        "Am I speaking with {customer}?"
    )
    # A purpose or a name that is also a word elsewhere is replaced only where it is said as
    # the purpose or as the name.
    custom = opener_key(
        "Hi Ann, Alex from Brightline Solar here. Is Annabel Solar in?",
        customer_name="Ann",
        purpose="Solar",
    )
    assert custom == "Hi {customer}, Alex from Brightline Solar here. Is Annabel Solar in?"


def test_a_greeting_the_caller_cut_short_counts_as_the_opener_it_begins() -> None:
    cut = [{"speaker": "agent", "text": "Hello, this is Alex from", "interrupted": True}]
    known = ["Hello, this is Alex from Brightline. How can I help?", "Hi, Alex here."]
    seen = learning.observe(
        cut, [], inbound=True, started_at=START, timezone="UTC", known_openers=known
    )
    assert seen.opener == known[0]
    unknown = learning.observe(cut, [], inbound=True, started_at=START, timezone="UTC")
    assert unknown.opener == ""


def test_the_call_time_is_the_customers_local_hour_and_weekday() -> None:
    # Wednesday 10:00 UTC is Wednesday 05:00 in New York and Wednesday 21:00 in Sydney.
    assert learning.call_time(START, "America/New_York") == (5, "wed")
    assert learning.call_time(START, "Australia/Sydney") == (21, "wed")
    assert learning.call_time(START, "Not/AZone") == (10, "wed")


def test_good_and_not_good_outcomes() -> None:
    assert all(learning.good_outcome(o) for o in learning.GOOD_OUTCOMES)
    assert learning.good_outcome(CallOutcome.NOT_INTERESTED) is False
    assert learning.good_outcome(CallOutcome.DO_NOT_CALL) is False
    for uncounted in ("transferred", "wrong_number", "voicemail", "no_answer", "busy", "failed"):
        assert learning.good_outcome(CallOutcome(uncounted)) is None


# --- counted once ---------------------------------------------------------------------------


def observation() -> CallObservation:
    return CallObservation(
        answers=(VARIANTS[EXPENSIVE][0],),
        opener="Hi.",
        direction="outbound",
        hour=14,
        weekday="tue",
    )


def test_a_call_is_counted_once_however_often_it_is_recorded() -> None:
    agent = AIAgent(performance_metrics={"outcomes": {"converted": 1}})
    call = CallSession(outcome=CallOutcome.CONVERTED, analysis={"result": {}})
    first = learning.record_call(agent, call, observation())
    again = learning.record_call(agent, call, observation())
    assert first == again
    counts = agent.performance_metrics["learning"]
    assert (counts["calls"], counts["good"]) == (1, 1)
    assert counts["answers"][learning.variant_id(FINANCE)]["calls"] == 1
    assert counts["hours"] == {"14": {"calls": 1, "good": 1}}
    assert counts["weekdays"] == {"tue": {"calls": 1, "good": 1}}
    assert agent.performance_metrics["outcomes"] == {"converted": 1}  # the rest kept
    assert call.analysis["result"] == {}
    assert call.analysis["learning"]["counted"] is True


def test_an_uncounted_outcome_is_recorded_but_not_counted() -> None:
    agent = AIAgent(performance_metrics={})
    call = CallSession(outcome=CallOutcome.TRANSFERRED, analysis={})
    record = learning.record_call(agent, call, observation())
    assert record["counted"] is False
    assert agent.performance_metrics == {}


def test_a_new_outcome_moves_the_calls_counts() -> None:
    agent = AIAgent(performance_metrics={})
    call = CallSession(outcome=CallOutcome.CONVERTED, analysis={})
    learning.record_call(agent, call, observation())
    learning.relabel(agent, call, CallOutcome.NOT_INTERESTED)
    counts = agent.performance_metrics["learning"]
    assert (counts["calls"], counts["good"]) == (1, 0)
    assert counts["answers"][learning.variant_id(FINANCE)] | {"text": ""} == {
        "calls": 1,
        "good": 0,
        "objection": EXPENSIVE,
        "text": "",
    }
    learning.relabel(agent, call, None)  # taken back: nothing counted
    counts = agent.performance_metrics["learning"]
    assert (counts["calls"], counts["good"]) == (0, 0)
    assert counts["hours"]["14"] == {"calls": 0, "good": 0}


# --- the choice -----------------------------------------------------------------------------


def counts(*per_variant: tuple[str, int, int], calls: int = 0, good: int = 0) -> dict[str, Any]:
    """performance_metrics with (answer text, calls, good) per answer and the overall totals
    (at least the answers' own)."""
    answers = {
        learning.variant_id(text): {"calls": n, "good": g, "objection": EXPENSIVE, "text": text}
        for text, n, g in per_variant
    }
    total = max(calls, sum(n for _, n, _ in per_variant))
    won = max(good, sum(g for _, _, g in per_variant))
    return {"learning": {"calls": total, "good": won, "answers": answers}}


OLD, NEW = VARIANTS[EXPENSIVE]


def test_without_learning_the_newest_answer_is_used_whatever_the_counts() -> None:
    metrics = counts((FINANCE, 30, 25), (STARTER, 30, 2))
    assert choose_answer([OLD, NEW], metrics, learning=False) == NEW
    assert choose_answer([OLD, NEW], metrics, learning=True) == OLD


def test_a_new_answer_is_tried_on_the_minimum_sample_before_it_is_judged() -> None:
    # Its unlucky first calls do not drop it ...
    unlucky = counts((FINANCE, 30, 20), (STARTER, MIN_SAMPLE - 1, 0))
    assert choose_answer([OLD, NEW], unlucky, learning=True) == NEW
    # ... and once it has them, it is judged on them.
    judged = counts((FINANCE, 30, 20), (STARTER, MIN_SAMPLE, 0))
    assert choose_answer([OLD, NEW], judged, learning=True) == OLD
    # An older answer that never had its trial is tried next, not judged on nothing.
    untried = counts((STARTER, 30, 20))
    assert choose_answer([OLD, NEW], untried, learning=True) == OLD


def test_a_short_lucky_run_does_not_beat_a_long_good_one() -> None:
    # 7 of 10 (70 %) against 65 of 100 (65 %), on an agent whose calls go well one time in
    # five: smoothed towards that, the short run scores lower and the long one stays.
    metrics = counts((FINANCE, MIN_SAMPLE, 7), (STARTER, 100, 65), calls=400, good=80)
    assert choose_answer([NEW, OLD], metrics, learning=True) == NEW
    assert learning.rate_of(metrics["learning"]["answers"][OLD.id], 0.2).rate == 0.7


def test_a_tie_keeps_the_newer_answer() -> None:
    metrics = counts((FINANCE, 20, 10), (STARTER, 20, 10))
    assert choose_answer([OLD, NEW], metrics, learning=True) == NEW


# --- through analysed calls ------------------------------------------------------------------

GREETING = "agent: Hello, this is Alex from Brightline. Am I speaking with you?"
SAID_FINANCE = (
    "agent: I understand. Most of our customers finance the system and pay less per month than "
    "their old electricity bill."
)
SAID_STARTER = "agent: We can start you on a smaller starter package that fits a tighter budget."


async def trained_to_active(
    db: Database, phone_numbers: list[str] | None = None
) -> tuple[uuid.UUID, uuid.UUID]:
    """A client whose agent is ``active`` (level 80) and was taught two answers to "too
    expensive": the finance one first, the starter package later."""
    client_id = await ready_client(db, phone_numbers)  # the script: 25
    sessions = [
        TrainingCreate(
            training_type=TrainingType.PRODUCT,
            training_content="w " * 100,
            product_details=ProductDetails(features=["a"], pricing="$9", benefits=["b"]),
        ),
        TrainingCreate(
            training_type=TrainingType.OBJECTIONS,
            objection_responses={
                EXPENSIVE: FINANCE,
                **{f"objection {i}": "answer" for i in range(4)},
            },
        ),
        TrainingCreate(training_type=TrainingType.TECHNIQUES, sales_techniques=list("abcde")),
        TrainingCreate(
            training_type=TrainingType.OBJECTIONS, objection_responses={EXPENSIVE: STARTER}
        ),
    ]
    for session in sessions:
        result = await agents.add_training(db, client_id, session)
    assert result.status == AgentStatus.ACTIVE
    return client_id, (await agents.get_agent(db, client_id)).id


def outcome_analysis(outcome: str) -> Any:
    good = outcome in ("converted", "callback_requested")
    return analysis(
        outcome=outcome,
        bought=outcome == "converted",
        declined=not good,
        callback_requested=outcome == "callback_requested",
        interest_level="hot" if good else "cold",
        objections=["too expensive"],
    )


async def analyse_all(db: Database, outcomes: dict[uuid.UUID, str]) -> list[JobLease]:
    """Claim and apply every queued analysis, each with the outcome given for its call."""
    done = START + TALK + START_DELAY
    leases = []
    for _ in outcomes:
        lease = await analysis_jobs.claim(db, "test", done, dt.timedelta(minutes=5))
        assert lease is not None
        await call_analysis.apply_analysis(
            db, lease, outcome_analysis(outcomes[lease.call_id]), done
        )
        leases.append(lease)
    return leases


class SipLine:
    """A direct-SIP call as the router sees it: its ids and the numbers it names (routing
    looks at nothing else)."""

    def __init__(self, dialed: str) -> None:
        self.call_id = uuid.uuid4()
        self.remote = "test"
        self.sample_rate = 16000
        self.dialed = dialed
        self.caller = number()

    async def frames(self) -> AsyncIterator[Any]:
        return
        yield

    async def send_audio(self, pcm: bytes) -> None:
        pass

    async def hang_up(self) -> None:
        pass


async def routed_prompt(db: Database, did: str) -> str:
    """The system prompt of an inbound call to ``did`` as the router answers it."""
    route = await CallRouter(db, ProfileCache(db), fallback=DEFAULT_AGENT).route(SipLine(did))
    assert route.kind == "agent"
    assert route.profile is not None
    return build_system_prompt(route.profile)


async def test_an_analysed_call_counts_its_answer_opener_and_time_once(own_db: Database) -> None:
    db = own_db
    client_id, _ = await trained_to_active(db)
    call_id = await finished_call(
        db, client_id, (GREETING, "caller: It's too expensive.", SAID_FINANCE), purpose="Solar"
    )
    [lease] = await analyse_all(db, {call_id: "converted"})

    metrics = (await agents.get_agent(db, client_id)).performance_metrics["learning"]
    assert (metrics["calls"], metrics["good"]) == (1, 1)
    assert metrics["answers"] == {
        learning.variant_id(FINANCE): {
            "calls": 1,
            "good": 1,
            "objection": EXPENSIVE,
            "text": FINANCE,
        }
    }
    assert metrics["openers"] == {
        "Hello, this is Alex from Brightline. Am I speaking with you?": {
            "calls": 1,
            "good": 1,
            "direction": "outbound",
        }
    }
    # The call started at 10:00 UTC on a Wednesday; the agent's zone is UTC.
    assert metrics["hours"] == {"10": {"calls": 1, "good": 1}}
    assert metrics["weekdays"] == {"wed": {"calls": 1, "good": 1}}
    detail = await calls.get_call(db, client_id, call_id)
    assert detail.analysis is not None
    record = detail.analysis["learning"]
    assert [a["variant"] for a in record["answers"]] == [learning.variant_id(FINANCE)]
    assert (record["outcome"], record["counted"], record["good"]) == ("converted", True, True)

    # The same result stored again (a run that lost its lease) counts nothing more.
    with pytest.raises(LeaseLost):
        await call_analysis.apply_analysis(db, lease, outcome_analysis("converted"), START)
    again = (await agents.get_agent(db, client_id)).performance_metrics["learning"]
    assert again == metrics


async def test_a_crm_report_after_the_analysis_moves_the_calls_counts(own_db: Database) -> None:
    db = own_db
    client_id, _ = await trained_to_active(db)
    call_id = await finished_call(db, client_id, (GREETING, "caller: Pricey.", SAID_STARTER))
    await analyse_all(db, {call_id: "callback_requested"})
    report = CallOutcomeReport(call_id=call_id, outcome=CallOutcome.NOT_INTERESTED)
    await calls.record_outcome(db, client_id, report, START + dt.timedelta(hours=1))

    metrics = (await agents.get_agent(db, client_id)).performance_metrics["learning"]
    assert (metrics["calls"], metrics["good"]) == (1, 0)
    starter = metrics["answers"][learning.variant_id(STARTER)]
    assert (starter["calls"], starter["good"]) == (1, 0)
    detail = await calls.get_call(db, client_id, call_id)
    assert detail.analysis is not None
    assert detail.analysis["learning"]["outcome"] == "not_interested"


async def test_earlier_outcomes_change_the_answer_a_routed_call_uses(own_db: Database) -> None:
    db = own_db
    did = number()
    client_id, _ = await trained_to_active(db, [did])
    before = await routed_prompt(db, did)
    assert STARTER in before  # the newest answer, as taught
    assert FINANCE not in before

    # The finance answer was followed by good outcomes on 9 of 12 calls, the starter package on
    # 2 of 12; 26 more calls without the objection make 50 handled calls: optimizing.
    outcomes: dict[uuid.UUID, str] = {}
    plan = (
        [(SAID_FINANCE, "converted")] * 5
        + [(SAID_FINANCE, "callback_requested")] * 4
        + [(SAID_FINANCE, "not_interested")] * 3
        + [(SAID_STARTER, "callback_requested")] * 2
        + [(SAID_STARTER, "not_interested")] * 10
        + [("agent: Thanks for your time.", "not_interested")] * 26
    )
    for said, outcome in plan:
        call_id = await finished_call(db, client_id, (GREETING, "caller: Hm.", said))
        outcomes[call_id] = outcome
    await analyse_all(db, outcomes)

    agent = await agents.get_agent(db, client_id)
    assert agent.status == AgentStatus.OPTIMIZING
    answers = agent.performance_metrics["learning"]["answers"]
    assert answers[learning.variant_id(FINANCE)] | {"text": ""} == {
        "calls": 12,
        "good": 9,
        "objection": EXPENSIVE,
        "text": "",
    }
    assert (
        answers[learning.variant_id(STARTER)]["calls"],
        answers[learning.variant_id(STARTER)]["good"],
    ) == (12, 2)
    after = await routed_prompt(db, did)
    assert f'- "{EXPENSIVE}": {FINANCE}' in after
    assert STARTER not in after
    # Byte-stable: the same counts build the same prompt.
    assert await routed_prompt(db, did) == after
