"""A stored agent's dialog profile, built from its training: complete, byte-stable, within the
prompt budget."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from callagent.dialog.agent_profile import AgentProfile, admits_ai
from callagent.dialog.profile_builder import (
    MAX_PROMPT_CHARS,
    BusinessInfoError,
    build_agent_profile,
    check_business_info,
    clip,
)
from callagent.dialog.prompt import build_profile_prompt, build_system_prompt
from callagent.store.schemas import AgentView, TrainingView
from callagent.store.services import learning
from callagent.store.states import AgentStatus, PersonalityType, TrainingType

NOW = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)


def agent(**changes: Any) -> AgentView:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "agent_name": "Bea",
        "personality_type": PersonalityType.EMPATHETIC,
        "voice_model": "v",
        "working_hours_start": "09:00",
        "working_hours_end": "17:00",
        "timezone": "UTC",
        "business_info": {"company_name": "Bravo Roofing", "description": "Roofs since 1990."},
        "sales_goals": {"primary_goal": "book a roof inspection", "monthly_inspections": 20},
        "status": AgentStatus.ACTIVE,
        "training_level": 80,
        "training_coverage": {},
        "calls_handled": 0,
        "successful_conversions": 0,
        "conversation_memory": {},
        "customer_preferences": {},
        "performance_metrics": {},
        "created_at": NOW,
        "updated_at": NOW,
    }
    fields.update(changes)
    return AgentView(**fields)


def training(kind: TrainingType, content: str = "", **changes: Any) -> TrainingView:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "training_type": kind,
        "training_content": content,
        "product_details": {},
        "objection_responses": {},
        "sales_techniques": [],
        "client_instructions": "",
        "completion_percentage": 0,
        "level_before": 0,
        "level_after": 0,
        "created_at": NOW,
    }
    fields.update(changes)
    return TrainingView(**fields)


TRAININGS = [
    training(TrainingType.SCRIPT, "Greet, ask about the roof, offer an inspection."),
    training(
        TrainingType.PRODUCT,
        "Our inspections use drones.",
        product_details={
            "name": "Inspection",
            "features": ["Drone photos"],
            "pricing": "Free",
            "benefits": ["Find leaks early"],
        },
        objection_responses={"Too busy": "It takes twenty minutes."},
        client_instructions="Never promise a price for repairs.",
    ),
    training(TrainingType.OBJECTIONS, objection_responses={"too busy": "Only 20 minutes."}),
    training(TrainingType.TECHNIQUES, sales_techniques=["Ask open questions"]),
    training(TrainingType.GOALS, "Book the inspection this week."),
    training(TrainingType.COMPANY, "Family business, three crews."),
]


def test_the_profile_comes_from_the_agent_and_its_training() -> None:
    profile = build_agent_profile(agent(), TRAININGS, "Bravo Ltd")
    assert (profile.name, profile.company) == ("Bea", "Bravo Roofing")
    assert profile.personality == "patient and empathetic"
    assert profile.purpose == "book a roof inspection"
    assert profile.script == "Greet, ask about the roof, offer an inspection."
    assert "Inspection: Drone photos" in profile.product_facts
    assert "Inspection: Pricing: Free" in profile.product_facts
    assert "Our inspections use drones." in profile.product_facts
    # The later answer to the same objection (any capitalisation) wins.
    assert profile.objection_answers == {"too busy": "Only 20 minutes."}
    assert profile.techniques == ["Ask open questions"]
    assert profile.goals == ["Book the inspection this week.", "monthly inspections: 20"]
    assert profile.company_info == "Family business, three crews. Roofs since 1990."
    assert profile.instructions == ["Never promise a price for repairs."]
    assert profile.greeting_text().startswith("Hello, this is Bea from Bravo Roofing.")
    prompt = build_system_prompt(profile)
    for expected in ("Bea", "Bravo Roofing", "drones", "20 minutes", "Never promise"):
        assert expected in prompt


def test_the_prompt_is_byte_stable_for_the_same_agent() -> None:
    first = build_system_prompt(build_agent_profile(agent(), TRAININGS, "Bravo Ltd"))
    shuffled = agent(
        sales_goals={"monthly_inspections": 20, "primary_goal": "book a roof inspection"}
    )
    second = build_system_prompt(build_agent_profile(shuffled, list(TRAININGS), "Bravo Ltd"))
    assert first == second


def test_the_client_name_is_the_company_when_business_info_has_none() -> None:
    profile = build_agent_profile(agent(business_info={}, sales_goals={}), [], "Acme Solar")
    assert profile.company == "Acme Solar"
    # Nothing taught: the plain defaults.
    assert profile.purpose == AgentProfile(name="x", company="y").purpose
    assert (profile.script, profile.product_facts, profile.goals) == ("", [], [])


def test_a_clients_greeting_with_stray_braces_cannot_break_formatting() -> None:
    info = {"greeting": "Hi {name} at {company} {oops} }{", "goodbye": "Bye!"}
    profile = build_agent_profile(agent(business_info=info), [], "Acme")
    assert profile.greeting_text() == "Hi Bea at Acme {oops} }{ I'm an AI assistant."
    assert profile.goodbye == "Bye!"


def test_a_clients_outbound_greeting_opens_the_calls_its_agent_places() -> None:
    plain = build_agent_profile(agent(), [], "Acme")
    assert plain.outbound_greeting_text("Jo") == (
        f"Hello, this is Bea from {plain.company}. I'm an AI assistant. Am I speaking with Jo?"
    )
    info = {"company_name": "Acme", "outbound_greeting": "Hi, {name} from {company} {customer}"}
    profile = build_agent_profile(agent(business_info=info), [], "Acme")
    assert (
        profile.outbound_greeting_text("Jo", "a quote")
        == "Hi, Bea from Acme {customer} I'm an AI assistant."
    )


def test_huge_training_is_trimmed_to_the_prompt_budget_deterministically() -> None:
    many = [
        training(
            TrainingType.PRODUCT,
            "word " * 5000,
            product_details={"features": [f"feature {i} " * 20 for i in range(40)]},
            objection_responses={f"objection {i}": "answer " * 60 for i in range(30)},
            sales_techniques=[f"technique {i}" for i in range(30)],
            client_instructions="instruction " * 100,
        ),
        training(TrainingType.SCRIPT, "script " * 10_000),
    ]
    profile = build_agent_profile(agent(), many, "Acme")
    prompt = build_system_prompt(profile)
    # The agent's part is bounded; the fixed action instructions come on top of it.
    assert len(build_profile_prompt(profile)) <= MAX_PROMPT_CHARS
    assert all((profile.script, profile.product_facts, profile.objection_answers))
    assert build_system_prompt(build_agent_profile(agent(), many, "Acme")) == prompt


def test_clip_cuts_at_a_word() -> None:
    assert clip("one two   three", 100) == "one two three"
    assert clip("one two three", 9) == "one two…"


def test_every_business_info_field_reaches_the_prompt() -> None:
    """``product_description`` and ``value_proposition`` were dropped once; every other key a
    client writes is company information (docs/api.md "What the agent is taught")."""
    info = {
        "company_name": "Bravo Roofing",
        "description": "Roofs since 1990.",
        "product_description": "Drone roof inspections with a written report.",
        "value_proposition": "We find leaks before they cost you a ceiling.",
        "industry": "roofing",
        "service_area": ["Leeds", "York"],
        "employees": 12,
    }
    profile = build_agent_profile(agent(business_info=info), [], "Bravo Ltd")
    prompt = build_system_prompt(profile)
    assert profile.product_facts[0] == "Drone roof inspections with a written report."
    assert profile.value_proposition == "We find leaks before they cost you a ceiling."
    assert "Why customers choose Bravo Roofing: We find leaks before" in prompt
    for said in ("industry: roofing", "service area: Leeds, York", "employees: 12", "1990"):
        assert said in prompt


def test_script_placeholders_are_filled_and_the_customers_name_stays_out_of_the_prompt() -> None:
    script = training(
        TrainingType.SCRIPT,
        "Hi [CUSTOMER_NAME], this is [AGENT_NAME] from [COMPANY]. [NAME], do you own your "
        "home? Mention [PROMO_CODE] if asked.",
    )
    plain = training(TrainingType.SCRIPT, "Say: hello, this is [NAME] from [Company Name].")
    profile = build_agent_profile(agent(), [script], "Bravo Ltd")
    assert profile.script.startswith(
        "Hi the customer, this is Bea from Bravo Roofing. the customer, do you own"
    )
    assert "[PROMO_CODE]" in profile.script  # not a known placeholder: left as written
    # A bare [NAME] after "this is" is the agent introducing itself.
    introduced = build_agent_profile(agent(), [plain], "Bravo Ltd")
    assert introduced.script == "Say: hello, this is Bea from Bravo Roofing."


def test_a_greetings_customer_placeholder_is_the_name_on_a_placed_call() -> None:
    info = {"outbound_greeting": "Hi [CUSTOMER_NAME], it's [AGENT_NAME] from [COMPANY]."}
    profile = build_agent_profile(agent(business_info=info), [], "Acme")
    assert profile.outbound_greeting_text("Jo") == (
        "Hi Jo, it's Bea from Acme. I'm an AI assistant."
    )
    assert profile.outbound_greeting_text("") == ("Hi, it's Bea from Acme. I'm an AI assistant.")


def test_the_disclosure_and_the_answer_about_being_an_ai_are_the_clients_words() -> None:
    info = {
        "ai_disclosure": "I'm Bravo's virtual assistant.",
        "ai_answer": "I am an AI, yes - {name}, Bravo's assistant.",
        "recording_notice": "We record calls for training.",
    }
    profile = build_agent_profile(agent(business_info=info), [], "Acme")
    assert profile.greeting_text(recording=True) == (
        "Hello, this is Bea from Acme. I'm Bravo's virtual assistant. "
        "We record calls for training. How can I help you today?"
    )
    assert profile.ai_answer_text() == "I am an AI, yes - Bea, Bravo's assistant."
    off = build_agent_profile(agent(business_info={"ai_disclosure": False}), [], "Acme")
    assert off.greeting_text() == "Hello, this is Bea from Acme. How can I help you today?"


@pytest.mark.parametrize(
    ("info", "field"),
    [
        ({"ai_answer": "No, I'm a real person."}, "business_info.ai_answer"),
        ({"ai_answer": "I'm Bea from Bravo."}, "business_info.ai_answer"),
        ({"ai_disclosure": "Hello!"}, "business_info.ai_disclosure"),
        ({"ai_disclosure": 1}, "business_info.ai_disclosure"),
        ({"value_proposition": ["cheap"]}, "business_info.value_proposition"),
    ],
)
def test_business_info_the_agent_cannot_use_is_an_error_naming_the_key(
    info: dict[str, Any], field: str
) -> None:
    with pytest.raises(BusinessInfoError) as caught:
        check_business_info(info)
    assert caught.value.field == field
    # Rows stored before the check cannot make the agent deny being an AI.
    profile = build_agent_profile(agent(business_info=info), [], "Acme")
    assert admits_ai(profile.ai_answer_text())


def test_an_optimizing_agent_carries_the_answer_its_calls_did_best_with() -> None:
    sessions = [
        training(
            TrainingType.OBJECTIONS, objection_responses={"too busy": "It takes twenty minutes."}
        ),
        training(TrainingType.OBJECTIONS, objection_responses={"Too busy": "Only 20 minutes."}),
    ]
    # What analysed calls counted (docs/learning.md): the older answer 8 good of 12, the newer
    # 2 of 12.
    counts = {
        learning.variant_id(text): {
            "calls": 12,
            "good": good,
            "objection": "too busy",
            "text": text,
        }
        for text, good in (("It takes twenty minutes.", 8), ("Only 20 minutes.", 2))
    }
    metrics = {"learning": {"calls": 24, "good": 10, "answers": counts}}
    learnt = agent(status=AgentStatus.OPTIMIZING, performance_metrics=metrics)
    profile = build_agent_profile(learnt, sessions, "Bravo")
    assert profile.objection_answers == {"too busy": "It takes twenty minutes."}
    assert build_system_prompt(build_agent_profile(learnt, sessions, "Bravo")) == (
        build_system_prompt(profile)
    )
    # Not optimizing: the newest answer, whatever the counts.
    active = agent(status=AgentStatus.ACTIVE, performance_metrics=metrics)
    assert build_agent_profile(active, sessions, "Bravo").objection_answers == {
        "too busy": "Only 20 minutes."
    }
