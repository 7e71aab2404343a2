"""What the agent is told about the person on the line: the customer record and the call, as one
system message after the agent's byte-stable prompt (docs/telephony.md, "Routing")."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.dialog.conversation import Conversation
from callagent.dialog.customer_context import customer_context
from callagent.store.schemas import CustomerView
from callagent.store.states import CallOutcome, InterestLevel
from callagent.voice_pipeline.clock import FakeClock

from helpers.fakes import FakeLanguageModel

NOW = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)


def customer(**changes: Any) -> CustomerView:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "phone_number": "+14155550123",
        "name": "",
        "email": "",
        "company": "",
        "timezone": None,
        "interest_level": InterestLevel.COLD,
        "call_preference_time": "",
        "total_calls": 1,
        "answered_calls": 0,
        "total_talk_time_s": 0.0,
        "last_call_at": None,
        "last_outcome": None,
        "conversation_notes": "",
        "preferences": {},
        "objections": [],
        "do_not_call": False,
        "converted": False,
        "created_at": NOW,
        "updated_at": NOW,
    }
    fields.update(changes)
    return CustomerView(**fields)


def test_the_customer_context_says_what_the_record_knows() -> None:
    known = customer(
        name="Maria Lopez",
        company="Lopez Bakery",
        interest_level=InterestLevel.WARM,
        call_preference_time="mornings",
        total_calls=3,
        last_outcome=CallOutcome.CALLBACK_REQUESTED,
        conversation_notes="Wants a quote for the shop roof.",
        preferences={"contact_method": "email"},
        objections=["too expensive"],
    )
    text = customer_context(
        known, direction="outbound", purpose="follow up on the quote", call_context={"quote": 42}
    )
    for expected in (
        "You placed this call",
        "Reason for this call: follow up on the quote.",
        "quote: 42",
        "Name: Maria Lopez; company: Lopez Bakery.",
        "Calls with them so far: 3; last outcome: callback requested.",
        "Interest level: warm.",
        "Prefers to be called: mornings.",
        "Notes: Wants a quote for the shop roof.",
        "contact method: email",
        "Objections they raised before: too expensive.",
    ):
        assert expected in text
    new = customer_context(customer(), direction="inbound")
    assert "The customer called you." in new
    assert "ask for it politely" in new
    assert "first call" in new
    assert "no customer record" in customer_context(None, direction="inbound")


async def test_the_context_goes_after_the_stable_system_prompt() -> None:
    llm = FakeLanguageModel(FakeClock(), ["Sure."], first_token_delay_s=0, token_delay_s=0)
    context = customer_context(customer(name="Maria"), direction="inbound")
    conversation = Conversation(DEFAULT_AGENT, llm, context=context)
    plain = Conversation(DEFAULT_AGENT, llm)
    messages = conversation.messages_for("Hi")
    assert messages[0] == plain.messages_for("Hi")[0]  # the cached prefix is untouched
    assert messages[1] == {"role": "system", "content": context}
    assert messages[-1] == {"role": "user", "content": "Hi"}
    assert len(plain.messages_for("Hi")) == 2


async def test_a_campaigns_script_reaches_the_call_after_the_stable_prompt_whole() -> None:
    # A campaign's script override travels in the call's context (docs/campaigns.md): its own
    # line, not clipped to a context item's 120 characters, and never in the system prompt.
    script = (
        "Open with the spring renewal: customers who renew before 31 March keep last year's "
        "price and get the 10 % loyalty discount; ask whether they want the quote by e-mail."
    )
    llm = FakeLanguageModel(FakeClock(), ["Sure."], first_token_delay_s=0, token_delay_s=0)
    context = customer_context(
        customer(name="Maria"),
        direction="outbound",
        purpose="your home insurance",
        call_context={"campaign": "Spring renewals", "script": script},
    )
    assert f"Script for this call (follow it): {script}" in context
    assert "Call context: campaign: Spring renewals." in context
    conversation = Conversation(DEFAULT_AGENT, llm, context=context)
    plain = Conversation(DEFAULT_AGENT, llm)
    messages = conversation.messages_for("Hello?")
    assert messages[0] == plain.messages_for("Hello?")[0]
    assert script not in messages[0]["content"]
    assert script in messages[1]["content"]
