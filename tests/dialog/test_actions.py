"""The action line: parsed out of a streamed reply, whatever the pieces, so the caller never
hears it (docs/dialog.md "In-call actions")."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from callagent.dialog.actions import (
    Action,
    ActionKind,
    ActionTextFilter,
    parse_actions,
    parse_call,
    resolve_spoken,
)

# (model output, what the caller hears, the actions) - outputs as the models were seen to
# write them (bench/bench_actions.py) and the ways a small model gets the format wrong.
CASES = [
    (
        'ACTION: schedule_callback(when="tomorrow after three", reason="busy")\n'
        "Sure, I'll call you back tomorrow after three.",
        "Sure, I'll call you back tomorrow after three.",
        ['schedule_callback(when="tomorrow after three", reason="busy")'],
    ),
    ("ACTION: set_do_not_call()", "", ["set_do_not_call()"]),
    ("ACTION: transfer(manager)", "", ['transfer(target="manager")']),
    ('ACTION: send_information(channel="text")', "", ['send_information(channel="sms")']),
    ("ACTION: none\nHow can I help?", "How can I help?", []),
    ("ACTION: end_call", "", ["end_call()"]),
    ("Sure! end_call() Bye.", "Sure! Bye.", ["end_call()"]),
    (
        'I will set_interest(level="hot") note that.',
        "I will note that.",
        ['set_interest(level="hot")'],
    ),
    (
        "Sure, I'll remove you from my list. ACTION: set_do_not_call()",
        "Sure, I'll remove you from my list. ",
        ["set_do_not_call()"],
    ),
    ('Okay {"action": "none"} fine.', "Okay fine.", []),
    ("ACTION: Sure, I can help.", "Sure, I can help.", []),
    (
        "book_appointment('Monday at ten', 'site survey') Great, see you Monday.",
        "Great, see you Monday.",
        ['book_appointment(when="Monday at ten", kind="site survey")'],
    ),
    ("We use some_internal_name for that.", "We use for that.", []),
    (
        "Plain text, with commas, and no action at all.",
        "Plain text, with commas, and no action at all.",
        [],
    ),
    ('ACTION: set_interest(level="lukewarm")', "", ["set_interest()"]),
]


@pytest.mark.parametrize(("output", "heard", "actions"), CASES)
@pytest.mark.parametrize("piece", [1, 2, 3, 7, 1000])
def test_the_caller_hears_the_words_and_the_actions_are_parsed_out(
    output: str, heard: str, actions: list[str], piece: int
) -> None:
    spoken = ActionTextFilter()
    said = "".join(spoken.push(output[i : i + piece]) for i in range(0, len(output), piece))
    said += spoken.flush()
    assert said == heard
    assert [str(action) for action in spoken.actions] == actions


def test_speech_is_let_through_at_once_and_only_a_possible_action_waits() -> None:
    spoken = ActionTextFilter()
    assert spoken.push("Sure, I can ") == "Sure, I can "
    assert spoken.push("hel") == ""  # the word may still grow
    assert spoken.push("p you. ACT") == "help you. "
    assert spoken.push("ION: end_call()") == ""
    assert spoken.flush() == ""
    assert [a.kind for a in spoken.actions] == [ActionKind.END_CALL]


def test_an_unclosed_action_is_dropped_at_the_end_of_the_reply() -> None:
    spoken = ActionTextFilter()
    assert spoken.push('Okay. schedule_callback(when="tomor') == "Okay. "
    assert spoken.flush() == ""
    assert [str(a) for a in spoken.actions] == ['schedule_callback(when="tomor")']


def test_arguments_are_bounded_and_unknown_ones_ignored() -> None:
    action = parse_call("schedule_callback", f'when="{"x" * 500}", colour="red"')
    assert action is not None
    assert len(action.get("when")) == 200
    assert action.get("colour") == ""
    assert parse_call("launch_missiles", "") is None
    assert parse_actions("nothing here") == []


def test_an_action_record_carries_its_resolved_time() -> None:
    at = dt.datetime(2026, 12, 8, 14, 0, tzinfo=ZoneInfo("America/New_York"))
    action = Action.make(ActionKind.BOOK_APPOINTMENT, {"when": "Tuesday at two", "kind": "demo"})
    assert action.resolved(at).to_record() == {
        "type": "book_appointment",
        "source": "model",
        "when": "Tuesday at two",
        "kind": "demo",
        "at": "2026-12-08T14:00:00-05:00",
    }


def test_a_time_is_resolved_in_the_customers_zone_and_said_back() -> None:
    zone = ZoneInfo("America/New_York")
    now = dt.datetime(2026, 12, 1, 10, 0, tzinfo=zone)
    resolved = resolve_spoken("Can you call me back tomorrow after three?", now=now, tz=zone)
    assert resolved is not None
    assert resolved.at == dt.datetime(2026, 12, 2, 15, 0, tzinfo=zone)
    assert resolved.spoken == "tomorrow at 3 pm"
    assert resolve_spoken("my neighbour's phone", now=now, tz=zone) is None
