"""A slice of the labelled calls (``tests/data/calls``, ``tune`` split only) replayed through
the agent with the ``ci`` model: the rule backstop's cases - a do-not-call request, a request
for a person, "are you a robot?" - must be acted on by the rules whatever the tiny model says,
and look-alikes must not be (docs/evaluation.md; the full figures come from
``bench/bench_evaluation.py``)."""

from __future__ import annotations

import pytest

from callagent.dialog.actions import ActionKind
from callagent.dialog.llm import LlamaCppLanguageModel, LlamaSettings
from callagent.modelfiles import ModelProfile

from helpers.call_replay import replay, rules_only
from helpers.labelled_calls import CALLS, LabelledCall, load

# The calls' files by what the rules must do. Only ``tune`` calls: a held-out call in a test
# that must pass would be tuned on.
DO_NOT_CALL = [
    "02_do_not_call_mid_sentence",
    "51_dnc_buried_elderly_mother",
    "63_dnc_angry_how_did_you_get",
    "36_dnc_polite_fixed_income",
]
TRANSFER = ["06_transfer_angry"]
AI_QUESTION = ["31_real_person_question_dublin", "68_recording_or_person_toronto"]
# Said "stop calling", "don't call" or "robot" without asking not to be called.
NOT_DO_NOT_CALL = [
    "38_technician_stop_calling_early",
    "77_dont_call_it_a_discount",
    "48_abuse_bloody_robot",
]
# Labelled cases the rules miss today (bench/bench_evaluation.py, docs/evaluation.md "Failing
# cases"): strict, so a rule that learns them turns the test red until the mark goes.
RULES_MISS = {
    "13_transfer_polite_billing": "'would it be possible to speak with someone in billing'",
    "40_transfer_to_usual_advisor": "'could you put me through to her'",
    "58_transfer_angry_on_hold": "'I want a real damn person, put me through'",
    "81_transfer_invoice_department_non_native": "'can you give me to somebody from the ...'",
}


def _call(name: str) -> LabelledCall:
    labelled = load(CALLS / f"{name}.json")
    assert labelled.split == "tune", f"{name} is held out: keep it out of tests"
    return labelled


@pytest.fixture(scope="module")
def ci_llm(ci_models: ModelProfile) -> LlamaCppLanguageModel:
    # Short replies: only the rules' decisions are asserted, the model's words are not.
    return LlamaCppLanguageModel(ci_models.llm_path, LlamaSettings(max_tokens=16))


def _by_rule(actions: list, kind: ActionKind) -> bool:
    return any(a.kind is kind and a.source == "rule" for a in actions)


@pytest.mark.real_models
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("name", "kind"),
    [(name, "dnc") for name in DO_NOT_CALL] + [(name, "transfer") for name in TRANSFER],
)
async def test_the_rules_act_on_the_callers_request(
    ci_llm: LlamaCppLanguageModel, name: str, kind: str
) -> None:
    labelled = _call(name)
    run = await replay(ci_llm, labelled)
    want = ActionKind.SET_DO_NOT_CALL if kind == "dnc" else ActionKind.TRANSFER
    assert (labelled.in_call.do_not_call, labelled.in_call.transfer) == (
        kind == "dnc",
        kind == "transfer",
    )
    assert _by_rule(run.actions, want), f"{name}: {[str(a) for a in run.actions]} {run.said}"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=f"the rules miss {why}"))
        for name, why in RULES_MISS.items()
    ],
)
def test_requests_the_rules_miss(name: str) -> None:
    # The rules read each caller turn alone: no model is needed to see what they miss.
    labelled = _call(name)
    heard = rules_only(labelled)
    assert heard.dnc if labelled.in_call.do_not_call else heard.transfer


@pytest.mark.real_models
@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", AI_QUESTION)
async def test_are_you_a_robot_is_answered_by_the_rules(
    ci_llm: LlamaCppLanguageModel, name: str
) -> None:
    labelled = _call(name)
    run = await replay(ci_llm, labelled, max_turns=1)  # the question is the caller's first turn
    assert labelled.in_call.ai_question
    assert run.ai_rule
    asked, answer = run.said[0]
    assert "AI" in answer, f"{asked!r} was answered {answer!r}"
    assert not _by_rule(run.actions, ActionKind.SET_DO_NOT_CALL)


@pytest.mark.parametrize("name", NOT_DO_NOT_CALL)
def test_look_alikes_do_not_set_do_not_call(name: str) -> None:
    # The rules read each caller turn alone, so no model is needed to see what they do.
    labelled = _call(name)
    assert not labelled.in_call.do_not_call
    assert not rules_only(labelled).dnc
