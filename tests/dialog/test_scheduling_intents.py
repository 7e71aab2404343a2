"""The scheduling pass on tables of what callers say: the callbacks and appointments it must
hear, and the same words in other meanings it must leave alone (docs/dialog.md "The
scheduling pass"). The sentences are everyday English written for this table, not taken from
the labelled evaluation sets under tests/data."""

from __future__ import annotations

import pytest

from callagent.dialog.scheduling_intents import detect_scheduling

CALLBACKS = [
    "I'm busy right now. Call me back tomorrow after three.",
    "call me back tomorrow after 3",
    "Could you call me back on Friday?",
    "Can you call me back in an hour, I'm driving.",
    "Ring me back next week.",
    "Please ring us back tomorrow morning.",
    "Try me again tomorrow.",
    "try us again on Monday please",
    "Give me a call on Friday.",
    "Give us a ring next Tuesday afternoon.",
    "Can you call later?",
    "Could you call tomorrow instead?",
    "Would you ring back after lunch tomorrow?",
    "Call me tomorrow at ten.",
    "Phone me on Thursday.",
    "I'm in a meeting, call me back at four.",
    "I'm not home now call me back at 5",
    "Just call back tomorrow.",
    "Now's not great, so call back on Monday.",
    "I'd like you to call me back next week.",
    "Can you call me again tomorrow?",
    "Yeah, you can call me back around two.",
]

NOT_CALLBACKS = [
    # Someone else calls.
    "My husband will call you back.",
    "He'll call me back tomorrow.",
    "I'll call you back tomorrow.",
    "I'll call back tomorrow.",
    "I can ring you back later.",
    "My daughter usually calls me on Sundays.",
    "They call me every Friday.",
    # A refusal.
    "Don't call me back.",
    "Please don't call me back tomorrow.",
    "There's no need to call me back.",
    "I don't want you to call me back.",
    "Never call me back.",
    "Don't call me before noon.",
    # The past.
    "I called you back yesterday.",
    "You were supposed to call me back yesterday.",
    "Somebody called me last week about this.",
    # A question about the agent's plans, not a request.
    "When would you call back?",
    "When can you call me back?",
    "Why do you call me at dinner time?",
    "Did you call me back?",
    # The words without a request.
    "Call me Dave.",
    "What do you call that?",
    "It's a callback service?",
    "I'm interested in solar panels for my house.",
]

APPOINTMENTS = [
    ("Yes, a demo next Tuesday at two.", "demo"),
    ("yes a demo next tuesday at 2", "demo"),
    ("Book me in for Thursday morning.", "appointment"),
    ("Let's do the survey on the 10th.", "survey"),
    ("Sure, the visit on Friday works.", "visit"),
    ("Can we do the demo on Monday?", "demo"),
    ("I'd like to book a demonstration for next week.", "demo"),
    ("I want a home visit on Saturday morning.", "visit"),
    ("Could you schedule a meeting for Wednesday at eleven?", "meeting"),
    ("Put us down for a consultation next Monday.", "consultation"),
    ("Okay, let's set up the meeting for tomorrow at four.", "meeting"),
    ("Thursday suits me for the inspection.", "inspection"),
]

NOT_APPOINTMENTS = [
    "I don't want a demo.",
    "No demo, thanks.",
    "My wife booked a visit for Friday.",
    "Someone from your company made an appointment last week.",
    "When is the demo?",
    "What's the survey about?",
    "I had a meeting yesterday.",
    "We already had a visit two days ago.",
]


@pytest.mark.parametrize("text", CALLBACKS)
def test_a_callback_request_is_heard(text: str) -> None:
    match = detect_scheduling(text)
    assert match is not None
    assert match.what == "callback", match


@pytest.mark.parametrize("text", NOT_CALLBACKS)
def test_the_words_of_a_callback_in_another_meaning_are_left_alone(text: str) -> None:
    assert detect_scheduling(text) is None


@pytest.mark.parametrize(("text", "kind"), APPOINTMENTS)
def test_an_appointment_the_caller_names_is_heard_with_its_kind(text: str, kind: str) -> None:
    match = detect_scheduling(text)
    assert match is not None
    assert match.what == "appointment", match
    assert match.kind == kind
    assert not match.needs_time


@pytest.mark.parametrize("text", NOT_APPOINTMENTS)
def test_the_words_of_an_appointment_in_another_meaning_are_left_alone(text: str) -> None:
    assert detect_scheduling(text) is None


@pytest.mark.parametrize(
    ("offer", "answer"),
    [
        ("Would you like a free demo of the system?", "Sure, Tuesday at two works."),
        ("Can I book you a home visit from one of our advisors?", "Yes please, Friday morning."),
        ("How about a short survey visit next week?", "That works for me, Wednesday at ten."),
    ],
)
def test_accepting_the_agents_offer_is_an_appointment_that_needs_a_time(
    offer: str, answer: str
) -> None:
    match = detect_scheduling(answer, agent_said=offer)
    assert match is not None
    assert match.what == "appointment", match
    assert match.needs_time
    # The same words without the offer are nothing to book.
    assert detect_scheduling(answer) is None


@pytest.mark.parametrize(
    ("offer", "answer"),
    [
        ("Would you like a free demo of the system?", "No, not really."),
        ("Would you like a free demo of the system?", "Nope, Tuesday doesn't work at all."),
        ("Our panels last 25 years.", "Okay, sounds good."),
        ("Would you like a free demo?", "My wife will book it on Friday."),
    ],
)
def test_no_offer_or_no_acceptance_is_no_appointment(offer: str, answer: str) -> None:
    assert detect_scheduling(answer, agent_said=offer) is None
