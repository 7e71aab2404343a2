"""The training rubric (docs/api.md, "Training rubric"): deterministic, order-free, capped."""

from __future__ import annotations

from callagent.store import training as rubric
from callagent.store.states import AgentStatus, TrainingType
from callagent.store.training import TrainingMaterial


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
