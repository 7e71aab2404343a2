"""Post-call analysis in the dialog: the JSON schema the model is held to, the strict parsing of
its answer, the request it gets, the retry of an invalid answer, the callback time - on scripted
answers - and the real ``ci`` model's answers on labelled calls (docs/analysis.md)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import typing
from typing import Any

import msgspec
import pytest

from callagent.dialog.analysis import (
    ANALYSIS_SCHEMA,
    MAX_TRANSCRIPT_CHARS,
    SYSTEM_PROMPT,
    AnalysisFailed,
    AnalysisInvalid,
    JsonModelSettings,
    LlamaJsonModel,
    analyse_call,
    analysis_messages,
    decide_outcome,
    parse_analysis,
    resolve_callback_time,
    transcript_text,
)
from callagent.modelfiles import ModelProfile
from callagent.store.services.call_analysis import PROBABILITIES, CallAnalysis

from helpers.analysis_data import ScriptedJsonModel, analysis, answer
from helpers.labelled_calls import CALLS, load, load_all

FIRST = load_all()[0]  # tomorrow after three, New York


def test_the_schema_is_the_stores_analysis_field_for_field() -> None:
    fields = msgspec.structs.fields(CallAnalysis)
    assert list(ANALYSIS_SCHEMA["properties"]) == [f.name for f in fields]
    assert ANALYSIS_SCHEMA["required"] == [f.name for f in fields]
    hints = typing.get_type_hints(CallAnalysis, include_extras=True)
    for name in ("outcome", "interest_level", "decision_maker"):
        assert ANALYSIS_SCHEMA["properties"][name]["enum"] == list(typing.get_args(hints[name]))
    actions = typing.get_args(typing.get_args(typing.get_args(hints["actions_taken"])[0])[0])
    assert ANALYSIS_SCHEMA["properties"]["actions_taken"]["items"]["enum"] == list(actions)
    assert ANALYSIS_SCHEMA["properties"]["probability"]["enum"] == list(PROBABILITIES)


def test_a_valid_answer_is_parsed_and_tidied() -> None:
    text = answer(
        summary="  Wants a   quote. ",
        objections=["too expensive", " too expensive", ""][:2],
        callback_requested=False,
        callback_time="Tuesday",
    )
    result = parse_analysis(text)
    assert result.summary == "Wants a quote."
    assert result.objections == ["too expensive"]
    assert result.callback_time == ""  # no callback request, no callback time


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.update(mood="happy"), "mood"),
        (lambda d: d.pop("summary"), "summary"),
        (lambda d: d.update(outcome="busy"), "outcome"),
        (lambda d: d.update(outcome="maybe"), "outcome"),
        (lambda d: d.update(sentiment="angry"), "sentiment"),
        (lambda d: d.update(summary="x" * 601), "summary"),
        (lambda d: d.update(summary="   "), "summary is empty"),
        (lambda d: d.update(objections=["a"] * 6), "objections"),
        (lambda d: d.update(probability=35), "multiple of 10"),
        (lambda d: d.update(probability=150), "probability"),
        (lambda d: d.update(estimated_value=-5), "estimated_value"),
        (lambda d: d.update(estimated_value=1.5), "estimated_value"),
        (lambda d: d.update(callback_requested="yes"), "callback_requested"),
        (lambda d: d.update(budget="ten\u0000thousand"), "NUL"),
    ],
)
def test_an_answer_off_the_schema_is_refused_with_its_reason(change: Any, reason: str) -> None:
    data = json.loads(answer())
    change(data)
    with pytest.raises(AnalysisInvalid, match=reason):
        parse_analysis(json.dumps(data))


def test_a_raw_line_break_in_a_text_becomes_a_space() -> None:
    """llama.cpp's grammar was seen letting a raw newline into a string (JSON forbids it)."""
    text = answer(summary="Wants a quote.").replace("Wants a quote.", "Wants\na quote.")
    assert parse_analysis("\n" + text + "\n").summary == "Wants a quote."


@pytest.mark.parametrize("text", ["", "not json", '{"summary": "cut off', "[1, 2]"])
def test_an_answer_that_is_not_a_json_object_is_refused(text: str) -> None:
    with pytest.raises(AnalysisInvalid):
        parse_analysis(text)


def test_the_request_carries_the_call_facts_and_the_transcript() -> None:
    call = dataclasses.replace(FIRST.call, transferred_to="sales", do_not_call=True)
    system, user = analysis_messages(call)
    assert system == {"role": "system", "content": SYSTEM_PROMPT}  # byte-stable
    text = user["content"]
    assert "Alex of Sunny Roofs called Jane Doe." in text
    assert "Reason for the call: solar panel offer." in text
    # Not the date: the model wrote it into summaries; callback times are resolved after.
    assert "2026" not in text
    assert "handed over to a person" in text
    assert "do-not-call list" in text
    assert "Customer: Could you call me back tomorrow after three? I'm home by then." in text
    assert text.index("Agent: Hi, this is Alex") < text.index("Customer: Yes, that's me.")


def test_a_long_transcript_keeps_its_start_and_its_newest_turns() -> None:
    turns = [("agent", "Hello, this is Alex."), ("caller", "Hi.")]
    turns += [("caller" if i % 2 else "agent", f"turn {i} " + "words " * 40) for i in range(200)]
    turns.append(("caller", "Call me back on Monday."))
    text = transcript_text(turns)
    assert len(text) <= MAX_TRANSCRIPT_CHARS
    lines = text.splitlines()
    assert lines[:2] == ["Agent: Hello, this is Alex.", "Customer: Hi."]
    assert lines[2].startswith("[… ")
    assert lines[2].endswith(" turns left out …]")
    assert lines[-1] == "Customer: Call me back on Monday."
    assert transcript_text(turns[:3]) == "\n".join(
        ["Agent: Hello, this is Alex.", "Customer: Hi.", "Agent: " + turns[2][1].strip()]
    )


async def test_an_invalid_answer_is_asked_for_once_more() -> None:
    model = ScriptedJsonModel(['{"summary": "cut off', answer()])
    run = await analyse_call(model, FIRST.call)
    assert run.result == analysis()
    assert len(run.answers) == 2
    assert [attempt for _, attempt in model.requests] == [1, 2]


async def test_two_invalid_answers_fail_the_analysis_with_the_reasons() -> None:
    model = ScriptedJsonModel(['{"summary": "cut off', json.dumps({"summary": "x"})])
    with pytest.raises(AnalysisFailed) as failed:
        await analyse_call(model, FIRST.call)
    assert len(failed.value.reasons) == 2
    assert failed.value.reasons[0].startswith("not JSON")
    assert "does not match the schema" in failed.value.reasons[1]
    assert str(failed.value).startswith("invalid answer after 2 tries: ")


@pytest.mark.parametrize(
    ("facts", "model_says", "outcome"),
    [
        ({"asked_not_to_call": True, "bought": True}, "do_not_call", "do_not_call"),
        ({"asked_not_to_call": True}, "transferred", "transferred"),  # one reading is not enough
        ({"wrong_person": True}, "not_interested", "wrong_number"),
        ({"wrong_person": True, "asked_not_to_call": True}, "do_not_call", "wrong_number"),
        ({"meeting_agreed": True}, "transferred", "transferred"),  # done live: it was
        ({"bought": True, "meeting_agreed": True}, "interested", "converted"),
        ({"meeting_agreed": True, "callback_requested": True}, "converted", "demo_scheduled"),
        ({"callback_requested": True}, "converted", "callback_requested"),
        ({"declined": True}, "interested", "not_interested"),
        ({}, "converted", "interested"),  # bought was answered false
        ({"interest_level": "cold"}, "demo_scheduled", "answered"),
        ({}, "not_interested", "not_interested"),
        ({}, "voicemail", "voicemail"),
        ({}, "answered", "answered"),
    ],
)
def test_the_outcome_is_decided_from_the_facts(
    facts: dict[str, Any], model_says: str, outcome: str
) -> None:
    no = dict.fromkeys(
        ("asked_not_to_call", "wrong_person", "bought", "meeting_agreed", "declined"), False
    )
    result = analysis(**{**no, "callback_requested": False, **facts, "outcome": model_says})
    assert decide_outcome(result).outcome == outcome


async def test_a_do_not_call_request_the_model_missed_is_caught_by_the_rule_backstop() -> None:
    dnc = load(CALLS / "02_do_not_call_mid_sentence.json")
    model = ScriptedJsonModel([answer(outcome="not_interested", callback_requested=True)])
    run = await analyse_call(model, dnc.call)
    assert run.backstop is not None
    assert "do not call" in run.backstop
    assert (run.result.outcome, run.result.callback_requested) == ("do_not_call", False)
    assert run.result.interest_level == "cold"
    # A caller who never asked keeps the model's reading.
    kept = await analyse_call(ScriptedJsonModel([answer()]), FIRST.call)
    assert (kept.backstop, kept.result.outcome) == (None, "callback_requested")


def test_the_callback_time_is_read_in_the_customers_zone_as_of_the_call() -> None:
    # Said on Wednesday 4 March 2026 at 10:02 in New York (the number's zone).
    result = analysis(callback_requested=True, callback_time="tomorrow after three")
    at = resolve_callback_time(FIRST.call, result)
    assert at == dt.datetime(2026, 3, 5, 20, 0, tzinfo=dt.UTC)  # Thursday 15:00 EST
    # A zone on the customer record wins over the number's.
    berlin = dataclasses.replace(FIRST.call, customer_timezone="Europe/Berlin")
    assert resolve_callback_time(berlin, result) == dt.datetime(2026, 3, 5, 14, 0, tzinfo=dt.UTC)
    assert resolve_callback_time(FIRST.call, analysis(callback_time="whenever")) is None
    assert resolve_callback_time(FIRST.call, analysis(callback_requested=False)) is None


@pytest.mark.real_models
async def test_the_ci_model_answers_schema_valid_analyses(ci_models: ModelProfile) -> None:
    """The real llama.cpp path: the schema's grammar, the second model, the parsing. The ci
    model is far too small to be right (docs/analysis.md has the default model's figures);
    every answer must still be a valid analysis."""
    model = LlamaJsonModel(ci_models.llm_path, JsonModelSettings(max_tokens=500))
    try:
        for name in ("01_callback_tomorrow_after_three", "02_do_not_call_mid_sentence"):
            labelled = load(CALLS / f"{name}.json")
            run = await analyse_call(model, labelled.call)
            assert isinstance(run.result, CallAnalysis)
            assert run.result.summary
            assert set(msgspec.structs.asdict(run.result)) == set(ANALYSIS_SCHEMA["properties"])
    finally:
        await model.close()


@pytest.mark.real_models
async def test_the_analysis_model_stops_when_a_call_needs_the_machine(
    ci_models: ModelProfile,
) -> None:
    from callagent.dialog.analysis import Preempted

    model = LlamaJsonModel(ci_models.llm_path)
    try:
        with pytest.raises(Preempted):
            await analyse_call(model, FIRST.call, should_stop=lambda: True)
    finally:
        await model.close()
