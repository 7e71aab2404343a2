"""The transition tables that guard every status change (docs/api.md, "Transition tables")."""

from __future__ import annotations

import pytest

from callagent.store.errors import IllegalTransition
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
    check_transition,
)


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
