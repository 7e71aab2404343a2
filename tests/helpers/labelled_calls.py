"""The labelled calls of ``tests/data/calls/`` (their format: its README.md): loading them as
the analysis reads a stored call, and scoring an analysis against their labels. Used by
``tests/dialog/test_analysis.py`` and ``bench/bench_analysis.py``."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callagent.store.services.call_analysis import CallAnalysis, CallForAnalysis

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
)


@dataclass(frozen=True)
class LabelledCall:
    """One labelled call."""

    name: str
    split: str
    call: CallForAnalysis
    expected: dict[str, Any]


def _time(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def load(path: Path) -> LabelledCall:
    """One file of ``tests/data/calls``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    facts = data["call"]
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
        live_outcome=None,
        transferred_to=facts["transferred_to"],
        do_not_call=facts["do_not_call"],
    )
    return LabelledCall(name=data["id"], split=data["split"], call=call, expected=data["expected"])


def load_all() -> list[LabelledCall]:
    """Every labelled call, in file order."""
    return [load(path) for path in sorted(CALLS.glob("*.json"))]


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


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
    return got
