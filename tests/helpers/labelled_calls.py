"""The labelled calls of ``tests/data/calls/`` (their format: its README.md): loading them as
the analysis reads a stored call, and scoring an analysis and the in-call actions against
their labels. Used by ``tests/dialog/test_analysis.py``,
``tests/dialog/test_evaluation_slice.py``, ``bench/bench_analysis.py`` and
``bench/bench_evaluation.py``."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callagent.store.services.call_analysis import CallAnalysis, CallForAnalysis
from callagent.store.states import CallOutcome

CALLS = Path(__file__).resolve().parents[1] / "data" / "calls"

FIELDS = (
    "outcome",
    "sentiment",
    "interest_level",
    "decision_maker",
    "callback_requested",
    "callback_at",
    "objections",
    "budget_mentioned",
    "estimated_value",
    "do_not_call",
    "summary_numbers",
    "summary_faithful",
)

PURPOSE_KINDS = (
    "sales_outreach",
    "follow_up",
    "customer_support",
    "appointment_booking",
    "renewal_reminder",
)


@dataclass(frozen=True)
class InCallLabels:
    """What the agent should do during the call (the in-call actions, docs/dialog.md)."""

    do_not_call: bool
    transfer: bool
    callback_at: dt.datetime | None
    """A scheduled callback's time (UTC), or None: no callback."""
    appointment_at: dt.datetime | None
    """A booked appointment's time (UTC), or None: no appointment."""
    ai_question: bool
    """The caller asks whether they talk to a machine (the rule backstop answers it)."""


@dataclass(frozen=True)
class LabelledCall:
    """One labelled call."""

    name: str
    split: str
    call: CallForAnalysis
    expected: dict[str, Any]
    purpose_kind: str
    in_call: InCallLabels


def _time(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def load(path: Path) -> LabelledCall:
    """One file of ``tests/data/calls``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    facts = data["call"]
    if facts.get("purpose_kind") not in PURPOSE_KINDS:
        raise ValueError(
            f"{path.name}: purpose_kind {facts.get('purpose_kind')!r} is not one of {PURPOSE_KINDS}"
        )
    if data["split"] not in ("tune", "held_out"):
        raise ValueError(f"{path.name}: split {data['split']!r} is neither tune nor held_out")
    live = facts.get("live_outcome")
    in_call = data["in_call"]
    start, end = facts["working_hours"]
    call = CallForAnalysis(
        call_id=uuid.uuid5(uuid.NAMESPACE_URL, data["id"]),
        client_id=uuid.UUID(int=1),
        customer_id=uuid.UUID(int=2),
        direction=facts["direction"],
        purpose=facts["purpose"],
        company=facts["company"],
        agent_name=facts["agent_name"],
        customer_name=facts["customer_name"],
        phone_number=facts["phone_number"],
        customer_timezone=facts["customer_timezone"],
        agent_timezone=facts["agent_timezone"],
        working_hours=(dt.time.fromisoformat(start), dt.time.fromisoformat(end)),
        started_at=_time(facts["started_at"]),
        ended_at=_time(facts["ended_at"]),
        transcript=[(speaker, text) for speaker, text in data["transcript"]],
        live_outcome=CallOutcome(live) if live else None,
        transferred_to=facts["transferred_to"],
        do_not_call=facts["do_not_call"],
    )
    labels = InCallLabels(
        do_not_call=in_call["do_not_call"],
        transfer=in_call["transfer"],
        callback_at=_time(in_call["callback_at"]),
        appointment_at=_time(in_call["appointment_at"]),
        ai_question=in_call["ai_question"],
    )
    return LabelledCall(
        name=data["id"],
        split=data["split"],
        call=call,
        expected=data["expected"],
        purpose_kind=facts["purpose_kind"],
        in_call=labels,
    )


def load_all() -> list[LabelledCall]:
    """Every labelled call, in file order."""
    return [load(path) for path in sorted(CALLS.glob("*.json"))]


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
# Capitalised words a summary may use without the call saying them: sentence words, the
# roles, and the words the analysis is told to use (docs/analysis.md).
_ALLOWED_NAMES = frozenset(
    [
        "a",
        "an",
        "the",
        "i",
        "ai",
        "he",
        "she",
        "they",
        "it",
        "its",
        "his",
        "her",
        "their",
        "this",
        "that",
        "these",
        "those",
        "we",
        "you",
        "caller",
        "customer",
        "agent",
        "assistant",
        "call",
        "no",
        "yes",
        "not",
        "mr",
        "mrs",
        "ms",
        "dr",
        "ok",
        "okay",
    ]
)


def invented_facts(summary: str, labelled: LabelledCall) -> list[str]:
    """What a summary states that the call never said: numbers, month and weekday names, and
    capitalised words (names of people, companies, places) absent from the transcript and the
    call's facts. Empty: faithful. A heuristic, so its misses are listed by the bench for a
    person to read."""
    call = labelled.call
    source = " ".join(text for _, text in call.transcript)
    source += f" {call.purpose} {call.company} {call.agent_name} {call.customer_name}"
    words = {w.lower().strip("'") for w in _WORD.findall(source)}
    invented = sorted(_numbers(summary) - _numbers(source))
    for sentence in re.split(r"(?<=[.!?])\s+", summary):
        for position, word in enumerate(_WORD.findall(sentence)):
            plain = word.lower().strip("'")
            if plain.endswith("'s"):
                plain = plain[:-2]
            if plain in words or plain in _ALLOWED_NAMES:
                continue
            if plain in _MONTHS or plain in _DAYS or (position > 0 and word[0].isupper()):
                invented.append(word)
    return invented


def unanalysed_outcome(labelled: LabelledCall) -> str:
    """The outcome of a call the analysis does not read (nobody answered, or the caller said
    nothing, docs/analysis.md "The worker"): the phone system's, else ``answered``."""
    live = labelled.call.live_outcome
    return str(live) if live is not None else "answered"


def score(
    labelled: LabelledCall, result: CallAnalysis, callback_at: dt.datetime | None
) -> dict[str, bool]:
    """Each labelled field: whether the analysis got it right (fields without a label are
    left out). ``summary_numbers``: every number in the summary is in the call's text (no
    invented figures)."""
    want = labelled.expected
    got: dict[str, bool] = {}
    for name in ("outcome", "sentiment", "interest_level", "decision_maker"):
        if name in want:
            got[name] = str(getattr(result, name)) == want[name]
    if "callback_requested" in want:
        got["callback_requested"] = result.callback_requested == want["callback_requested"]
    if "callback_at" in want:
        expected_at = _time(want["callback_at"])
        got["callback_at"] = (
            callback_at is None
            if expected_at is None
            else callback_at is not None and callback_at.replace(second=0) == expected_at
        )
    if "objections" in want:
        said = " ".join(result.objections).lower()
        alternatives = want["objections"]
        if not alternatives:
            got["objections"] = not result.objections
        else:
            got["objections"] = all(any(k in said for k in keys) for keys in alternatives)
    if "budget_mentioned" in want:
        got["budget_mentioned"] = bool(result.budget.strip()) == want["budget_mentioned"]
    if "estimated_value" in want:
        value = want["estimated_value"]
        allowed = value if isinstance(value, list) else [value]
        got["estimated_value"] = result.estimated_value in allowed
    if "do_not_call" in want:
        got["do_not_call"] = (result.outcome == "do_not_call") == want["do_not_call"]
    source = " ".join(text for _, text in labelled.call.transcript)
    source += f" {labelled.call.purpose} {labelled.call.company}"
    got["summary_numbers"] = _numbers(result.summary) <= _numbers(source)
    got["summary_faithful"] = not invented_facts(result.summary, labelled)
    return got


def score_unanalysed(labelled: LabelledCall) -> dict[str, bool]:
    """The fields of a call the analysis does not read: its outcome is the phone system's
    (:func:`unanalysed_outcome`) and nothing is asked for."""
    want = labelled.expected
    outcome = unanalysed_outcome(labelled)
    got = {"outcome": outcome == want["outcome"]}
    if "callback_at" in want:
        got["callback_at"] = want["callback_at"] is None
    if "callback_requested" in want:
        got["callback_requested"] = not want["callback_requested"]
    if "do_not_call" in want:
        got["do_not_call"] = not want["do_not_call"]
    return got
