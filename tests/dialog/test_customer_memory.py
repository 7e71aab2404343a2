"""What earlier calls learnt, in the next call's context: newest first, bounded
(docs/analysis.md, "Memory across calls")."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from callagent.dialog.customer_context import MEMORY_CHARS, customer_context, memory_line
from callagent.store.schemas import CustomerView
from callagent.store.states import InterestLevel

NOW = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)

NEWEST = {
    "date": "2026-03-04",
    "outcome": "callback_requested",
    "summary": "Likes the offer but finds it expensive.",
    "next_action": "Call back Tuesday with a financing quote",
    "budget": "about 10,000 dollars",
    "pain_points": ["high electricity bills"],
    "decision_maker": "no",
}
OLDER = {"date": "2026-02-01", "outcome": "interested", "summary": "Asked about prices."}


def customer(memory: list[Any]) -> CustomerView:
    return CustomerView(
        id=uuid.uuid4(),
        phone_number="+14155550123",
        name="Jane Doe",
        email="",
        company="",
        timezone=None,
        interest_level=InterestLevel.WARM,
        call_preference_time="Tuesday afternoons",
        total_calls=2,
        answered_calls=1,
        total_talk_time_s=60.0,
        last_call_at=NOW,
        last_outcome=None,
        conversation_notes="",
        preferences={},
        objections=["too expensive"],
        do_not_call=False,
        converted=False,
        created_at=NOW,
        updated_at=NOW,
        conversation_memory=memory,
    )


def test_the_newest_call_comes_first_with_what_was_agreed() -> None:
    line = memory_line([OLDER, NEWEST])
    assert line == (
        "Earlier calls (newest first): 2026-03-04, callback requested: Likes the offer but "
        "finds it expensive. Agreed next step: Call back Tuesday with a financing quote; "
        "budget: about 10,000 dollars; pain points: high electricity bills; someone else "
        "decides. | 2026-02-01, interested: Asked about prices."
    )
    context = customer_context(customer([OLDER, NEWEST]), direction="outbound")
    assert f"- {line}" in context
    assert "- Prefers to be called: Tuesday afternoons." in context


def test_the_memory_line_is_bounded() -> None:
    long = {**NEWEST, "summary": "word " * 200}
    many = [{**OLDER, "summary": f"Call {i}: " + "detail " * 10} for i in range(20)]
    for memory in ([long], [*many, NEWEST], many):
        line = memory_line(memory)
        assert 0 < len(line) <= MEMORY_CHARS
    # Older calls come whole or not at all.
    assert all(part.endswith(".") for part in memory_line(many).split(" | ")[1:])


def test_no_memory_no_line() -> None:
    assert memory_line([]) == ""
    assert memory_line([{"date": "2026-03-04"}, "junk"]) == ""
    assert "Earlier calls" not in customer_context(customer([]), direction="inbound")
