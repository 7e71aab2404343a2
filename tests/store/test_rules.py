"""Pure rules of the store: transition tables, the training rubric, phone numbers, ids."""

from __future__ import annotations

import pytest

from callagent.store import training as rubric
from callagent.store.errors import IllegalTransition, ValidationFailed
from callagent.store.ids import new_id
from callagent.store.phone import normalize_phone
from callagent.store.services.agents import advance_status
from callagent.store.states import (
    AGENT_TRANSITIONS,
    CALL_TRANSITIONS,
    CALLBACK_TRANSITIONS,
    INTEREST_TRANSITIONS,
    OPPORTUNITY_TRANSITIONS,
    AgentStatus,
    CallbackStatus,
    CallStatus,
    InterestLevel,
    OpportunityStage,
    TrainingType,
    check_transition,
)
from callagent.store.training import TrainingMaterial


@pytest.mark.parametrize(
    "table",
    [AGENT_TRANSITIONS, CALL_TRANSITIONS, CALLBACK_TRANSITIONS, INTEREST_TRANSITIONS,
     OPPORTUNITY_TRANSITIONS],
)  # fmt: skip
def test_tables_cover_every_state(table: dict) -> None:  # type: ignore[type-arg]
    states = set(type(next(iter(table))))
    assert set(table) == states
    for targets in table.values():
        assert targets <= states


def test_illegal_transitions_raise() -> None:
    assert check_transition(CallStatus.QUEUED, CallStatus.DIALING) == CallStatus.DIALING
    for current, target in [
        (CallStatus.COMPLETED, CallStatus.IN_PROGRESS),
        (CallStatus.QUEUED, CallStatus.COMPLETED),
        (CallbackStatus.COMPLETED, CallbackStatus.SCHEDULED),
        (CallbackStatus.CANCELLED, CallbackStatus.CANCELLED),
        (InterestLevel.CONVERTED, InterestLevel.HOT),
        (OpportunityStage.CLOSED_LOST, OpportunityStage.PROPOSAL),
        (AgentStatus.ACTIVE, AgentStatus.TRAINING),
    ]:
        with pytest.raises(IllegalTransition, match="cannot change"):
            check_transition(current, target)


def test_agent_status_walks_forward_only() -> None:
    assert advance_status(AgentStatus.TRAINING, AgentStatus.ACTIVE) == AgentStatus.ACTIVE
    assert advance_status(AgentStatus.OPTIMIZING, AgentStatus.ACTIVE) == AgentStatus.OPTIMIZING


def test_rubric_is_deterministic_and_capped() -> None:
    sessions = [
        TrainingMaterial(TrainingType.SCRIPT, content="w " * 1000),
        TrainingMaterial(
            TrainingType.PRODUCT,
            product_details={"features": ["a"], "pricing": "", "benefits": []},
            objection_responses={"Price": "x", "price ": "y", "time": ""},
            sales_techniques=["A", "a", "b"],
        ),
        TrainingMaterial(TrainingType.GOALS, content="one two three four five six"),
    ]
    coverage = rubric.score(sessions)
    assert coverage == {
        "script": 25,
        "product": 5,
        "objections": 4,  # "Price" and "price " are one; an empty answer does not count
        "company": 0,
        "goals": 1,
        "techniques": 6,
    }
    assert rubric.score(reversed(sessions)) == coverage
    assert rubric.level(coverage) == 41
    assert rubric.status_for_level(19) == AgentStatus.TRAINING
    assert rubric.status_for_level(20) == AgentStatus.LEARNING
    assert rubric.status_for_level(80) == AgentStatus.ACTIVE
    assert sum(rubric.AREA_POINTS.values()) == 100
    assert rubric.next_steps(coverage)[0].startswith("add answers to common objections")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 415 555 0123", "+14155550123"),
        ("+1 (415) 555-0123", "+14155550123"),
        ("0044 20 7946 0958", "+442079460958"),
        ("+49 30 901820", "+4930901820"),
    ],
)
def test_phone_numbers_normalise_to_e164(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw", ["4155550123", "+1 415", "hello", "+999 1234567", "", "+1" + "5" * 20]
)
def test_invalid_phone_numbers_name_the_field(raw: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize_phone(raw, field="phone_number")
    assert caught.value.field == "phone_number"
    assert caught.value.reason


def test_ids_are_time_ordered_and_unique() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {i.version for i in ids} == {7}
