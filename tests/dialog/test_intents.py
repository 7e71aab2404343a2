"""The rule backstop on tables of what callers say: what each rule must catch and what it must
leave alone (docs/dialog.md "The rule backstop")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callagent.dialog.intents import (
    Intent,
    detect,
    is_farewell,
    is_lone_bye,
    is_yes,
    match_objection,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "intents.json"

DO_NOT_CALL = [
    "Please take me off your list.",
    "Take my number off your calling list.",
    "Stop calling me, I'm not interested.",
    "Stop calling me!",
    "Please stop calling.",
    "You need to stop calling me.",
    "Don't ever call me again.",
    "Don't call me again.",
    "Do not contact us anymore.",
    "Never call this number again.",
    "Don't call me.",
    "Remove me from your list.",
    "Please remove my number.",
    "Lose my number.",
    "No more calls please.",
    "I don't want any more calls from you.",
    "I want to stop getting calls from you",
    "Put me on your do not call list.",
    "I'm on the do not call list, you know.",
    "Unsubscribe me.",
    "Leave me alone!",
    # Buried mid-sentence.
    "Yeah so anyway the thing is I'm really busy with work and the kids and honestly I'd "
    "rather you didn't call this number again, okay?",
    "Honestly I'm fine with my current setup and, uh, please remove my number from your "
    "calling list, thanks.",
    "Look, I appreciate it, but don't call me again, I'm not going to switch.",
    # Polite.
    "I'd appreciate it if you didn't call me again.",
    "I would be grateful if you did not contact me anymore.",
]

NOT_DO_NOT_CALL = [
    "I don't want to stop calling my mom, she gets lonely, but the bills are high.",
    "I don't want to stop calling my mom.",
    "Don't call me before noon.",
    "Don't call me, I'll call you.",
    "Can you call me again tomorrow?",
    "Call me anytime.",
    "Why do you keep calling my husband?",
    "My neighbour stopped calling me.",
    "My neighbour keeps calling me about solar, is that you guys?",
    "Who will call me back if I have a problem after the installation?",
    "Are you on the do not call list?",
    "Do you call people on weekends?",
    "I'll never stop calling my bank about their fees.",
    "Honestly it doesn't sound like something we need.",
    "My husband can drop me off at the garage tomorrow.",
    "Sorry, you lose me there, what does the warranty cover?",
    "I'd appreciate it if you didn't call me before noon.",
]

AI_QUESTIONS = [
    "Wait, are you a robot?",
    "Is this an automated call?",
    "Am I talking to a real person?",
    "Are you human?",
    "Are you an AI?",
    "You're a bot, aren't you?",
    "This sounds like a recording.",
    "Is this a real person?",
]

NOT_AI_QUESTIONS = [
    "Are you open on Saturdays?",
    "Is this the solar company?",
    "I'm a real estate agent.",
]

TRANSFER_REQUESTS = [
    "Can I talk to a real person please?",
    "Can I talk to a person?",
    "Put me through to your manager.",
    "I want to speak to a human.",
    "Let me talk to a person.",
    "Give me a human!",
    "Get me your supervisor right now!",
    "Would it be possible to speak with someone from your team?",
    "Could I please speak to a representative?",
    "Transfer me.",
    "A real person, please.",
]

NOT_TRANSFER_REQUESTS = [
    "I'll speak to my wife about it.",
    "I need to talk to someone at home first.",
    "Am I talking to a real person?",
    "My manager decides these things.",
]

ABUSE = [
    "Fuck off.",
    "You stupid bot.",
    "Shut up.",
    "You're an idiot.",
    "Go to hell.",
]

NOT_ABUSE = [
    "That's a stupid question, sorry, I mean how much does it cost?",
    "The bloody weather ruined my roof.",
]

FAREWELLS = [
    "That's all I needed, thanks, bye.",
    "Okay, goodbye.",
    "Okay, thanks. Bye!",
    "I have to go.",
    "Nothing else, thanks.",
    "Have a nice day.",
]

NOT_FAREWELLS = [
    "Bye - oh wait, how much is it?",
    "That's all fine but I still want to know the price.",
    "You have to go through the paperwork first.",
    "Is that all?",
    "Hi.",
]


def intents(text: str) -> set[Intent]:
    return {match.intent for match in detect(text)}


@pytest.mark.parametrize("text", DO_NOT_CALL)
def test_every_do_not_call_request_is_caught(text: str) -> None:
    assert Intent.DO_NOT_CALL in intents(text)


@pytest.mark.parametrize("text", NOT_DO_NOT_CALL)
def test_calling_words_that_are_no_do_not_call_request_are_left_alone(text: str) -> None:
    assert Intent.DO_NOT_CALL not in intents(text)


@pytest.mark.parametrize("text", AI_QUESTIONS)
def test_are_you_a_robot_is_caught(text: str) -> None:
    assert Intent.AI_QUESTION in intents(text)


@pytest.mark.parametrize("text", NOT_AI_QUESTIONS)
def test_other_questions_about_the_agent_are_left_alone(text: str) -> None:
    assert Intent.AI_QUESTION not in intents(text)


@pytest.mark.parametrize("text", TRANSFER_REQUESTS)
def test_a_request_for_a_person_is_caught_polite_or_angry(text: str) -> None:
    assert Intent.TRANSFER_REQUEST in intents(text)


@pytest.mark.parametrize("text", NOT_TRANSFER_REQUESTS)
def test_talking_to_someone_else_is_no_transfer_request(text: str) -> None:
    assert Intent.TRANSFER_REQUEST not in intents(text)


@pytest.mark.parametrize("text", ABUSE)
def test_abuse_is_caught(text: str) -> None:
    assert Intent.ABUSE in intents(text)


@pytest.mark.parametrize("text", NOT_ABUSE)
def test_a_rude_word_not_aimed_at_the_agent_is_no_abuse(text: str) -> None:
    assert Intent.ABUSE not in intents(text)


@pytest.mark.parametrize("text", FAREWELLS)
def test_the_callers_goodbye_is_caught(text: str) -> None:
    assert is_farewell(text)
    assert Intent.FAREWELL in intents(text)


@pytest.mark.parametrize("text", NOT_FAREWELLS)
def test_no_goodbye_is_heard_where_there_is_none(text: str) -> None:
    assert not is_farewell(text)


def test_a_lone_bye_is_told_apart_and_so_is_a_yes() -> None:
    assert is_lone_bye("Bye.")
    assert is_lone_bye(" goodbye! ")
    assert not is_lone_bye("Okay, bye.")
    assert is_yes("Yes, please.")
    assert is_yes("yeah")
    assert not is_yes("No, I said hi.")


def test_the_labelled_set_has_every_do_not_call_caught_and_no_false_one() -> None:
    """tests/data/intents.json (shared with bench/bench_actions.py): do-not-call recall is
    100 % on its labelled cases, tuning and holdout alike, with no false positive."""
    utterances = json.loads(DATA.read_text())["utterances"]
    wanted = [u for u in utterances if u["expect"] == "set_do_not_call"]
    assert {u["split"] for u in wanted} == {"tune", "holdout"}
    missed = [u["id"] for u in wanted if Intent.DO_NOT_CALL not in intents(u["text"])]
    assert missed == []
    others = [u for u in utterances if u["expect"] != "set_do_not_call"]
    false = [u["id"] for u in others if Intent.DO_NOT_CALL in intents(u["text"])]
    assert false == []


@pytest.mark.parametrize(
    "text",
    [
        "Bye there.",  # "Hi there." as Whisper tiny.en heard it
        "Bye, this is Jo from number twelve.",
        "Goodbye to the old bills, that's what I want.",
    ],
)
def test_a_bye_followed_by_more_than_closing_words_is_no_goodbye(text: str) -> None:
    assert not is_farewell(text)
    assert Intent.FAREWELL not in intents(text)


@pytest.mark.parametrize(
    "text", ["Goodbye and thanks for your help.", "Bye for now.", "Okay bye, take care!"]
)
def test_a_goodbye_with_closing_words_after_it_is_still_one(text: str) -> None:
    assert is_farewell(text)


@pytest.mark.parametrize(
    "text",
    ["You're not a real person, are you?", "You aren't human.", "Is this a real person?"],
)
def test_more_ways_of_asking_whether_the_agent_is_human_are_caught(text: str) -> None:
    assert Intent.AI_QUESTION in intents(text)


OBJECTIONS = ["too expensive", "price too high", "not interested", "need to think"]


@pytest.mark.parametrize(
    ("text", "objection"),
    [
        ("That's way too expensive for us.", "too expensive"),
        ("Honestly the price is just too high.", "price too high"),
        ("I'm not interested, thanks.", "not interested"),
        ("Let me see, I need to think about it.", "need to think"),
        ("Isn't that too expensive?", None),  # a question: the model answers it
        ("How much is the price?", None),
        ("I'm interested in the battery.", None),
        ("We think it looks good.", None),
    ],
)
def test_a_trained_objection_is_recognised_in_the_callers_words(
    text: str, objection: str | None
) -> None:
    assert match_objection(text, OBJECTIONS) == objection
