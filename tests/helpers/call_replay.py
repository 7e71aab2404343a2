"""A labelled call (``tests/data/calls``) replayed through the product's ``Conversation``:
the caller's turns are the labelled ones, the agent's whatever the model and the rule backstop
say; the in-call actions taken, scored against the call's ``in_call`` labels. Used by
``tests/dialog/test_evaluation_slice.py`` and ``bench/bench_evaluation.py``."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import zoneinfo
from dataclasses import dataclass, field

from callagent.dialog.actions import Action, ActionKind, ActionLog
from callagent.dialog.agent_profile import AgentProfile
from callagent.dialog.analysis import customer_zone
from callagent.dialog.conversation import Conversation
from callagent.dialog.customer_context import customer_context
from callagent.dialog.intents import Intent, detect
from callagent.dialog.llm import LanguageModel
from callagent.dialog.when import CallingWindow

from helpers.labelled_calls import LabelledCall


@dataclass
class InCallRun:
    """What the agent did on one replayed call."""

    dnc: bool = False
    transfer: bool = False
    callback_at: dt.datetime | None = None
    appointment_at: dt.datetime | None = None
    ai_rule: bool = False
    said: list[tuple[str, str]] = field(default_factory=list)
    """(caller, agent) per turn replayed."""
    actions: list[Action] = field(default_factory=list)
    """Every action taken, in order, with its source (``rule`` or ``model``)."""
    seconds: float = 0.0


def _profile(labelled: LabelledCall) -> AgentProfile:
    call = labelled.call
    return AgentProfile(
        name=call.agent_name,
        company=call.company,
        purpose=call.purpose or "answer questions and help the caller",
    )


def rules_only(labelled: LabelledCall) -> InCallRun:
    """The rule backstop alone on every caller turn (``dialog/intents.py``): what the agent
    does whatever the model says."""
    run = InCallRun()
    for speaker, text in labelled.call.transcript:
        if speaker != "caller" or not text.strip():
            continue
        found = {m.intent for m in detect(text)}
        run.dnc |= Intent.DO_NOT_CALL in found
        run.transfer |= Intent.TRANSFER_REQUEST in found
        run.ai_rule |= Intent.AI_QUESTION in found
    return run


async def replay(
    llm: LanguageModel, labelled: LabelledCall, max_turns: int | None = None
) -> InCallRun:
    """``labelled``'s caller turns, in order, to a ``Conversation`` on ``llm``; the actions it
    took. A turn is said at its share of the call's length (``started_at`` .. ``ended_at``);
    the replay stops when the agent ends the call, or after ``max_turns`` caller turns."""
    call = labelled.call
    run = InCallRun()
    turns = [text for speaker, text in call.transcript if speaker == "caller" and text.strip()]
    turns = turns[:max_turns]
    if not turns or call.started_at is None:
        return run
    end = call.ended_at or call.started_at
    step = (end - call.started_at) / (len(turns) + 1)
    clock = [call.started_at]
    sink = ActionLog(
        can_transfer=True,
        tz=customer_zone(call),
        window=CallingWindow(
            agent_hours=call.working_hours, agent_zone=zoneinfo.ZoneInfo(call.agent_timezone)
        ),
        now=lambda: clock[0],
    )
    first = call.transcript[0]
    greeting = first[1] if first[0] == "agent" else None
    conversation = Conversation(
        _profile(labelled),
        llm,
        context=customer_context(None, direction=call.direction, purpose=call.purpose),
        greeting=greeting,
        actions=sink,
    )
    if greeting is not None:
        conversation.commit_turn("", greeting, False)
    started = time.perf_counter()
    for number, text in enumerate(turns, start=1):
        clock[0] = call.started_at + step * number
        run.ai_rule |= any(m.intent is Intent.AI_QUESTION for m in detect(text))
        async with contextlib.aclosing(conversation.reply(text)) as pieces:
            said = "".join([piece async for piece in pieces])
        conversation.commit_turn(text, " ".join(said.split()), False)
        run.said.append((text, said))
        if conversation.end_call_requested:
            break
    run.seconds = time.perf_counter() - started
    run.actions = list(sink.taken)
    for action in sink.taken:
        if action.kind is ActionKind.SET_DO_NOT_CALL:
            run.dnc = True
        elif action.kind is ActionKind.TRANSFER:
            run.transfer = True
        elif action.kind is ActionKind.SCHEDULE_CALLBACK and action.at is not None:
            run.callback_at = action.at.astimezone(dt.UTC)  # the later one wins
        elif action.kind is ActionKind.BOOK_APPOINTMENT and action.at is not None:
            run.appointment_at = action.at.astimezone(dt.UTC)
    return run


def _minute(at: dt.datetime | None) -> dt.datetime | None:
    return None if at is None else at.replace(second=0, microsecond=0)


def incall_scores(labelled: LabelledCall, run: InCallRun) -> dict[str, bool | None]:
    """Per in-call field: right, wrong, or None (not scored on this call)."""
    want = labelled.in_call
    timed = want.callback_at is not None or want.appointment_at is not None
    return {
        "dnc": run.dnc == want.do_not_call,
        "transfer": run.transfer == want.transfer,
        # The labelled time, to the minute, taken as the right kind of action.
        "time": (
            _minute(run.callback_at) == _minute(want.callback_at)
            and _minute(run.appointment_at) == _minute(want.appointment_at)
            if timed
            else None
        ),
        # A callback or appointment on a call that asked for none.
        "no_spurious_time": (
            None if timed else run.callback_at is None and run.appointment_at is None
        ),
        "ai_rule": run.ai_rule if want.ai_question else None,
    }
