"""Finished calls to analyse, an analysis to apply, and an empty database per test for the job
queue (docs/analysis.md).

The job queue takes *any* client's due job, so tests that claim jobs get a database of their
own (:func:`own_database`): jobs other tests leave behind in the shared one would be claimed
too.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from callagent.store.db import Database
from callagent.store.schemas import StartCall, TranscriptTurn
from callagent.store.services import call_state, calls, telephony
from callagent.store.services.call_analysis import CallAnalysis
from callagent.store.services.call_state import CallUpdate
from callagent.store.states import CallStatus

from helpers.store_data import number
from helpers.store_fixtures import fresh_url

#: Wednesday 2026-03-04 10:00 UTC, inside the default working hours.
START = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)
TALK = dt.timedelta(seconds=60)


@pytest.fixture
async def own_db(backend: str) -> AsyncIterator[Database]:
    """A migrated database of this test's own, on ``backend``."""
    database = Database(fresh_url(backend))
    await database.migrate()
    yield database
    await database.dispose()


def turns(*lines: str, at: dt.datetime = START) -> list[TranscriptTurn]:
    """Transcript turns from ``"agent: …"`` / ``"caller: …"`` lines."""
    out = []
    for index, line in enumerate(lines):
        speaker, text = line.split(": ", 1)
        out.append(
            TranscriptTurn(
                speaker=speaker, text=text, at=at + dt.timedelta(seconds=5 * (index + 1))
            )
        )
    return out


async def finished_call(
    db: Database,
    client_id: uuid.UUID,
    lines: tuple[str, ...] = ("agent: Hello, this is Alex.", "caller: Hi, tell me more."),
    *,
    at: dt.datetime = START,
    phone: str | None = None,
    purpose: str = "",
    status: CallStatus = CallStatus.COMPLETED,
) -> uuid.UUID:
    """A call start-call placed at ``at``, answered, talked through and ended ``TALK`` later
    through the one writer of call state, as a real call is (this queues its analysis)."""
    data = StartCall(phone_number=phone or number(), ignore_working_hours=True, purpose=purpose)
    prepared = await calls.prepare_call(db, client_id, data, at)
    call_id = prepared.call_id
    await calls.record_placement(
        db, client_id, call_id, placed=True, reason="", telephony_call_id="t", now=at
    )
    answered = at + dt.timedelta(seconds=5)
    await call_state.apply_call_update(
        db, client_id, call_id, CallUpdate(status=CallStatus.IN_PROGRESS), answered
    )
    if lines:
        await call_state.append_turns(db, client_id, call_id, turns(*lines, at=answered))
    await call_state.apply_call_update(db, client_id, call_id, CallUpdate(status=status), at + TALK)
    return call_id


async def finished_browser_call(
    db: Database,
    client_id: uuid.UUID,
    lines: tuple[str, ...] = ("agent: Hello, this is Alex.", "caller: I'll take it, sign me up."),
    *,
    at: dt.datetime = START,
) -> uuid.UUID:
    """A call from the dashboard's browser phone (call type ``test``), opened by the store as
    the call router opens it, talked through and ended ``TALK`` later like :func:`finished_call`
    (this queues its analysis)."""
    call_id = uuid.uuid4()
    opened = await telephony.open_test_call(db, call_id=call_id, client_id=client_id, now=at)
    assert opened is not None
    assert opened.call_id == call_id
    if lines:
        await call_state.append_turns(db, client_id, call_id, turns(*lines, at=at))
    await call_state.apply_call_update(
        db, client_id, call_id, CallUpdate(status=CallStatus.COMPLETED), at + TALK
    )
    return call_id


def analysis(**changes: Any) -> CallAnalysis:
    """A valid analysis: an interested caller who wants a callback; ``changes`` override."""
    fields: dict[str, Any] = {
        "summary": "The caller likes the solar offer but finds it expensive; call back Tuesday.",
        "asked_not_to_call": False,
        "wrong_person": False,
        "bought": False,
        "meeting_agreed": False,
        "declined": False,
        "outcome": "callback_requested",
        "sentiment": "positive",
        "interest_level": "warm",
        "objections": ["too expensive"],
        "pain_points": ["high electricity bills"],
        "decision_maker": "yes",
        "budget": "about 10,000 dollars",
        "callback_requested": True,
        "callback_time": "Tuesday afternoon",
        "preferred_call_time": "Tuesday afternoons",
        "next_action": "Call back Tuesday afternoon with a financing quote",
        "probability": 40,
        "estimated_value": 12000,
        "actions_taken": ["schedule_callback"],
    }
    fields.update(changes)
    return msgspec.convert(fields, CallAnalysis)  # validated, as a parsed answer is


def answer(**changes: Any) -> str:
    """The JSON text of :func:`analysis` (``changes`` applied), as a model would answer."""
    return msgspec.json.encode(analysis(**changes)).decode()


class ScriptedJsonModel:
    """A ``JsonModel`` that answers from a script, in order (the last answer repeats), after
    ``delay_s``; it records each request. A scripted fake of ``LlamaJsonModel``: the real one
    answers under the schema's grammar, so its text is JSON with the schema's keys - the fake
    may answer anything, to test the validation."""

    name = "scripted"

    def __init__(self, answers: list[str], delay_s: float = 0.0) -> None:
        self.answers = list(answers)
        self.delay_s = delay_s
        self.requests: list[tuple[list[Any], int]] = []
        self.closed = False

    async def complete_json(
        self,
        messages: list[Any],
        schema: dict[str, Any],
        *,
        attempt: int = 1,
        should_stop: Any = None,
    ) -> str:
        self.requests.append((list(messages), attempt))
        if self.delay_s:
            import asyncio

            await asyncio.sleep(self.delay_s)
        if should_stop is not None and should_stop():
            from callagent.dialog.analysis import Preempted

            raise Preempted("a call started")
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    async def close(self) -> None:
        self.closed = True
