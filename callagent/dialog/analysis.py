"""Post-call analysis: the language model reads a finished call and answers one JSON object
(docs/analysis.md).

* :data:`ANALYSIS_SCHEMA` is the JSON schema the answer must follow. The local model is held
  to it while it generates - llama.cpp turns the schema into a grammar, so the answer is
  always well-formed JSON with the listed keys, enums and lengths - and the answer is then
  validated strictly (:func:`parse_analysis`: msgspec, unknown keys refused, every bound
  checked) into the store's :class:`~callagent.store.services.call_analysis.CallAnalysis`.
* :func:`analysis_messages` builds the request from the call: who called whom and why, when
  (so "tomorrow" can be read), what was done live, and the transcript, clipped to fit.
* :func:`analyse_call` runs it: an answer that fails validation is asked for once more, then
  the analysis fails with the reasons (the call keeps what it has). The in-call rule backstop
  (``dialog/intents.py``) reads the caller's turns too: a do-not-call request the model missed
  still makes the outcome ``do_not_call``.
* :class:`LlamaJsonModel` is the model: a second ``Llama`` on the same GGUF file, on a thread of
  its own at the lowest CPU priority, so the live calls' model keeps its prompt cache and the
  live calls keep the CPU (docs/models.md, "Notes for the engines"; the figures in
  docs/analysis.md). It can be stopped between tokens when a call starts.
* :func:`resolve_callback_time` turns the callback time the caller said into a time in their
  zone with :mod:`callagent.dialog.when`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import threading
import time
import zoneinfo
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, get_args

import msgspec

from callagent.dialog.llm import ChatMessage
from callagent.store.errors import NUL_REASON
from callagent.store.services.call_analysis import (
    PROBABILITIES,
    ActionTaken,
    AnalysedOutcome,
    CallAnalysis,
    CallForAnalysis,
)

log = logging.getLogger(__name__)

# The schema's enums are the store's own literals: one list of outcomes and actions.
_OUTCOMES: Final = get_args(AnalysedOutcome)
_ACTIONS: Final = get_args(ActionTaken)


def _text(max_length: int, min_length: int = 0) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length, "maxLength": max_length}


def _phrases() -> dict[str, Any]:
    # Non-empty items: the ci model was seen answering ``"objections": [""]``.
    return {"type": "array", "items": _text(60, min_length=1), "maxItems": 5}


#: The answer's JSON schema, in the order the model writes it: the summary first, so what it
#: decides after is grounded in what it has just written. Strings are bounded, tighter than
#: the store's limits: the grammar stops a runaway string (the ci model was seen repeating
#: "no, no, no, …" until its token budget ran out), and the longest answer the schema allows
#: (about 1,900 characters) fits in ``JsonModelSettings.max_tokens``.
ANALYSIS_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "summary": _text(400, min_length=1),
        "asked_not_to_call": {"type": "boolean"},
        "wrong_person": {"type": "boolean"},
        "bought": {"type": "boolean"},
        "meeting_agreed": {"type": "boolean"},
        "declined": {"type": "boolean"},
        "outcome": {"enum": list(_OUTCOMES)},
        "sentiment": {"enum": ["positive", "neutral", "negative"]},
        "interest_level": {"enum": ["cold", "warm", "hot"]},
        "objections": _phrases(),
        "pain_points": _phrases(),
        "decision_maker": {"enum": ["yes", "no", "unknown"]},
        "budget": _text(80),
        "callback_requested": {"type": "boolean"},
        "callback_time": _text(80),
        "preferred_call_time": _text(80),
        "next_action": _text(120),
        "probability": {"enum": list(PROBABILITIES)},
        "estimated_value": {"type": "integer"},
        "actions_taken": {"type": "array", "items": {"enum": list(_ACTIONS)}, "maxItems": 7},
    },
    "required": [
        "summary",
        "asked_not_to_call",
        "wrong_person",
        "bought",
        "meeting_agreed",
        "declined",
        "outcome",
        "sentiment",
        "interest_level",
        "objections",
        "pain_points",
        "decision_maker",
        "budget",
        "callback_requested",
        "callback_time",
        "preferred_call_time",
        "next_action",
        "probability",
        "estimated_value",
        "actions_taken",
    ],
    "additionalProperties": False,
}

SYSTEM_PROMPT: Final = """\
You analyse a finished phone call between an AI sales agent and a customer, for the business's \
customer records. Read the transcript and answer with one JSON object. Use only what was said \
in the call; never invent names, prices, dates or facts. Write short plain English.

Fields:
- summary: one to three sentences: what the customer wanted or said, and what was agreed. No \
dates, times or numbers that were not said in the call.
- asked_not_to_call: true if the customer asked not to be called again or to be removed from \
the calling list.
- wrong_person: true if the agent reached the wrong person or a wrong number.
- bought: true only if the customer bought, signed up or ordered during this call. Agreeing to \
a demo, a meeting, a callback or to receive information is not buying.
- meeting_agreed: true if the customer agreed to a demo, meeting or appointment on a day or at \
a time.
- declined: true if the customer turned the offer down.
- outcome, the one that fits best: do_not_call, wrong_number, voicemail (an answering \
machine, nobody talked), transferred (handed over to a person), converted (bought), \
demo_scheduled (a demo or meeting agreed), callback_requested (asked to be called back), \
interested (interested, nothing fixed yet), not_interested (declined), answered (none of \
these).
- sentiment: the customer's mood: positive, neutral or negative.
- interest_level: cold (no interest), warm (some interest) or hot (ready to buy or meet).
- objections: the customer's objections in a few words each ("too expensive", "no time"); \
[] if none.
- pain_points: problems the customer mentioned ("high energy bills"); [] if none.
- decision_maker: yes if the customer decides, no if someone else does, unknown if not said.
- budget: what the customer said they can or want to spend, not the prices the agent quoted; \
"" if nothing.
- callback_requested: true only if the customer asked to be called back.
- callback_time: when they asked to be called back, in the customer's own words with the day \
and the time as they said them, not turned into a date; "" if not said.
- preferred_call_time: when they like to be called in general, in their words; "" if not \
said.
- next_action: the business's next step, in a few words.
- probability: the chance of a sale, 0 to 100 in steps of 10.
- estimated_value: the deal's value in whole currency units if a price or budget was said, \
else 0.
- actions_taken: what the agent did on the call: schedule_callback, book_appointment, \
set_do_not_call, transfer, send_information, set_interest, end_call; [] if none."""

MAX_TRANSCRIPT_CHARS: Final = 6000
"""About 1,500 tokens: with the instructions and the answer the request fits a 4,096-token
context. A longer call keeps its first turns and as many of its last as fit."""
_HEAD_TURNS: Final = 2
_SPEAKERS: Final = {"agent": "Agent", "caller": "Customer"}


def transcript_text(turns: list[tuple[str, str]], max_chars: int = MAX_TRANSCRIPT_CHARS) -> str:
    """The transcript as ``Agent: …`` / ``Customer: …`` lines, at most ``max_chars``: the first
    turns (the introduction) and the newest ones that fit, with a marker where turns were
    left out."""
    lines = [
        f"{_SPEAKERS.get(speaker, 'Agent')}: {' '.join(text.split())}"
        for speaker, text in turns
        if text.strip()
    ]
    if sum(len(line) + 1 for line in lines) <= max_chars:
        return "\n".join(lines)
    head = [line[: max_chars // 4] for line in lines[:_HEAD_TURNS]]
    budget = max_chars - sum(len(line) + 1 for line in head) - 40
    tail: list[str] = []
    for line in reversed(lines[_HEAD_TURNS:]):
        if len(line) + 1 > budget:
            break
        tail.insert(0, line)
        budget -= len(line) + 1
    left_out = len(lines) - len(head) - len(tail)
    return "\n".join([*head, f"[… {left_out} turns left out …]", *tail])


def analysis_messages(call: CallForAnalysis) -> list[ChatMessage]:
    """The request for one call: the instructions (byte-stable), then the call: who called
    whom and why, what was done live, the transcript. Not its date: callback times are the
    customer's words, resolved against the call's time afterwards (:func:`resolve_callback_time`);
    the default model, given the date, wrote it into summaries as if it had been said (measured
    on the labelled calls, docs/analysis.md)."""
    who = call.customer_name or "the customer"
    company = f" of {call.company}" if call.company else ""
    if call.direction == "inbound":
        facts = [f"{who} called {call.agent_name}{company}."]
    else:
        facts = [f"{call.agent_name}{company} called {who}."]
    if call.purpose.strip():
        facts.append(f"Reason for the call: {' '.join(call.purpose.split())[:300]}.")
    if call.transferred_to:
        facts.append("During the call the customer was handed over to a person.")
    if call.do_not_call:
        facts.append("The customer is on the do-not-call list.")
    transcript = transcript_text(call.transcript) or "(nothing was said)"
    user = "\n".join(facts) + "\n\nTranscript:\n" + transcript + "\n\nAnswer with the JSON object."
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


_RAW_BREAKS: Final = str.maketrans({"\n": " ", "\r": " ", "\t": " "})


class AnalysisInvalid(ValueError):
    """The model's answer is not a valid analysis; the reason says why."""


def parse_analysis(text: str) -> CallAnalysis:
    """The model's answer, validated strictly: JSON, exactly the schema's keys, every type,
    enum and bound; no NUL in any text (PostgreSQL stores none); a summary with words in it.
    Raises AnalysisInvalid.

    One thing is mended first: raw line breaks and tabs become spaces. Between tokens they are
    JSON whitespace anyway; inside a string JSON forbids them, but llama.cpp's grammar was seen
    letting a raw newline through (the ci model, ``"summary": "…: \n"``), and a space says the
    same."""
    text = text.translate(_RAW_BREAKS)
    try:
        result = msgspec.json.decode(text.strip().encode(), type=CallAnalysis, strict=True)
    except msgspec.ValidationError as error:
        raise AnalysisInvalid(f"does not match the schema: {error}") from None
    except msgspec.DecodeError as error:
        raise AnalysisInvalid(f"not JSON: {error}") from None
    if "\x00" in text or "\\u0000" in text:
        raise AnalysisInvalid(f"a text {NUL_REASON}")
    if not result.summary.strip():
        raise AnalysisInvalid("the summary is empty")
    if result.probability not in PROBABILITIES:
        raise AnalysisInvalid(f"probability {result.probability} is not a multiple of 10")
    return _tidy(result)


def _tidy(result: CallAnalysis) -> CallAnalysis:
    """Whitespace trimmed, empty and repeated phrases dropped, a callback time only with a
    callback request."""

    def phrases(items: list[str]) -> list[str]:
        kept = [" ".join(item.split()) for item in items]
        return list(dict.fromkeys(item for item in kept if item))

    return msgspec.structs.replace(
        result,
        summary=" ".join(result.summary.split()),
        objections=phrases(result.objections),
        pain_points=phrases(result.pain_points),
        budget=result.budget.strip(),
        callback_time=result.callback_time.strip() if result.callback_requested else "",
        preferred_call_time=result.preferred_call_time.strip(),
        next_action=" ".join(result.next_action.split()),
        actions_taken=list(dict.fromkeys(result.actions_taken)),
    )


# --- the model -------------------------------------------------------------------------------


class Preempted(Exception):
    """Generation stopped because a live call needs the machine; the job is tried again."""


class JsonModel(Protocol):
    """A chat model that answers under a JSON schema."""

    @property
    def name(self) -> str:
        """The model, for the record (e.g. its file name)."""
        ...

    async def complete_json(
        self,
        messages: list[ChatMessage],
        schema: dict[str, Any],
        *,
        attempt: int = 1,
        should_stop: Callable[[], bool] | None = None,
    ) -> str:
        """The answer's text. ``attempt`` > 1 asks for a different sample than before;
        ``should_stop`` is polled while generating: when it says so, Preempted is raised."""
        ...

    async def close(self) -> None:
        """Free the model."""
        ...


@dataclass(frozen=True, slots=True)
class JsonModelSettings:
    """llama.cpp options for the analysis model.

    One thread at the lowest priority (``nice`` 19): on 2 cores the live calls' LLM, STT and
    TTS come first (docs/models.md: llama.cpp with 2 threads collapses when another process
    computes). A 4,096-token context holds the instructions, a clipped transcript and the
    answer. A low temperature keeps answers close to the transcript; a retry samples with
    another seed.
    """

    n_ctx: int = 4096
    n_threads: int = 1
    max_tokens: int = 1200
    temperature: float = 0.2
    top_p: float = 0.9
    repeat_penalty: float = 1.05
    seed: int = 11
    nice: int = 19


def _lower_priority(nice: int) -> None:
    """Run the calling thread (the executor's one worker) at a lower CPU priority. On Linux a
    thread has its own nice value (``setpriority`` with the thread's id); llama.cpp with one
    thread computes on the thread that calls it."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as error:
        log.warning("analysis thread: could not lower its priority: %s", error)


class LlamaJsonModel:
    """A second llama.cpp model on the same GGUF file as the live calls', for post-call
    analysis (the decision and its figures: docs/analysis.md, "The model").

    Why not the live calls' ``Llama``: it holds one KV cache, the agent's evaluated system
    prompt, which makes a caller's turn 10x faster (DESIGN.md "Known traps"); a 1,500-token
    analysis would evict it, and its one worker thread would make a live caller wait for the
    analysis. A second ``Llama`` maps the same file (the weights are shared through the page
    cache) and adds only its own context. It is loaded on first use, in its worker thread.
    """

    def __init__(
        self,
        model_path: Path,
        settings: JsonModelSettings | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.settings = settings or JsonModelSettings()
        self._llama: Any = None
        self._grammars: dict[str, Any] = {}
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="analysis-llm",
            initializer=_lower_priority,
            initargs=(self.settings.nice,),
        )

    @property
    def name(self) -> str:
        return self.model_path.name

    async def complete_json(
        self,
        messages: list[ChatMessage],
        schema: dict[str, Any],
        *,
        attempt: int = 1,
        should_stop: Callable[[], bool] | None = None,
    ) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._generate, list(messages), schema, attempt, should_stop
        )

    async def load(self) -> None:
        """Load the model now (else the first analysis does)."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._load)

    def _load(self) -> Any:
        if self._llama is None:
            from llama_cpp import Llama

            self._llama = Llama(
                model_path=str(self.model_path),
                n_ctx=self.settings.n_ctx,
                n_threads=self.settings.n_threads,
                n_threads_batch=self.settings.n_threads,
                seed=self.settings.seed,
                verbose=False,
            )
        return self._llama

    def _grammar(self, schema: dict[str, Any]) -> Any:
        key = msgspec.json.encode(schema).decode()
        if key not in self._grammars:
            from llama_cpp import LlamaGrammar

            self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]

    def _generate(
        self,
        messages: list[ChatMessage],
        schema: dict[str, Any],
        attempt: int,
        should_stop: Callable[[], bool] | None,
    ) -> str:
        llama = self._load()
        s = self.settings
        chunks: Iterator[Any] = llama.create_chat_completion(
            messages=messages,
            grammar=self._grammar(schema),
            stream=True,
            max_tokens=s.max_tokens,
            temperature=s.temperature if attempt == 1 else max(s.temperature, 0.6),
            top_p=s.top_p,
            repeat_penalty=s.repeat_penalty,
            seed=s.seed + attempt - 1,
        )
        parts: list[str] = []
        try:
            for chunk in chunks:
                if should_stop is not None and should_stop():
                    raise Preempted("a call started")
                content = chunk["choices"][0]["delta"].get("content")
                if content:
                    parts.append(content)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return "".join(parts)

    async def close(self) -> None:
        """Free the model (in its thread, after a run in progress)."""
        if self._own_executor:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._free)
            self._executor.shutdown(wait=False)  # type: ignore[attr-defined]

    def _free(self) -> None:
        if self._llama is not None:
            self._llama.close()
            self._llama = None


# --- one analysis ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalysisRun:
    """One call's analysis: the validated result, the raw answers and how long it took."""

    result: CallAnalysis
    answers: list[str]
    seconds: float
    backstop: str | None = None
    """The caller's words that made the rule backstop set the outcome, if it did."""


def decide_outcome(result: CallAnalysis) -> CallAnalysis:
    """The outcome from the facts the model answered, first true wins: wrong person, asked not
    to be called (only when the model's outcome says so too), voicemail and transferred as the
    model read them, bought, meeting agreed, callback asked for, declined; else the model's
    outcome unless its fact was answered false, then ``interested`` or ``answered`` by the
    interest level.

    Why: the default model picks one of ten outcomes badly (it answered ``converted`` for a
    demo booked and for a callback asked) but answers yes/no questions about one fact well
    (its ``callback_requested`` was right on every labelled call) - except
    ``asked_not_to_call``, which it also answered true for a caller who wanted a person and for
    a wrong number: a do-not-call needs both readings, and what the caller said is checked by
    the rule backstop anyway (:func:`backstop`). Figures: docs/analysis.md."""
    facts: list[tuple[bool, str]] = [
        (result.wrong_person, "wrong_number"),
        (result.asked_not_to_call and result.outcome == "do_not_call", "do_not_call"),
        (result.outcome in ("voicemail", "transferred"), result.outcome),
        (result.bought, "converted"),
        (result.meeting_agreed, "demo_scheduled"),
        (result.callback_requested, "callback_requested"),
        (result.declined, "not_interested"),
    ]
    outcome = next((name for true, name in facts if true), None)
    if outcome is None:
        # An outcome whose fact was answered false is not taken (not_interested is: turning
        # an offer down and having no interest are close enough).
        factual = {"do_not_call", "wrong_number", "converted", "demo_scheduled"}
        factual.add("callback_requested")
        if result.outcome not in factual:
            outcome = result.outcome
        else:
            outcome = "answered" if result.interest_level == "cold" else "interested"
    if outcome == result.outcome:
        return result
    return msgspec.structs.replace(result, outcome=outcome)  # type: ignore[arg-type]


def do_not_call_said(call: CallForAnalysis) -> str | None:
    """The caller's words that ask not to be called again, by the in-call rule backstop
    (``dialog/intents.py``); None when no caller turn does."""
    from callagent.dialog.intents import Intent, detect

    for speaker, text in call.transcript:
        if speaker != "caller":
            continue
        for match in detect(text):
            if match.intent == Intent.DO_NOT_CALL:
                return match.matched
    return None


def backstop(call: CallForAnalysis, result: CallAnalysis) -> tuple[CallAnalysis, str | None]:
    """A caller who asked not to be called again makes the outcome ``do_not_call``, whatever
    the model read (its recall must be 100 %, docs/analysis.md; the default model was seen
    summarising "asked to be taken off the list" and answering ``not_interested``): no
    callback, interest cold. Returns the result and the words that decided, if any."""
    said = do_not_call_said(call)
    if said is None or result.outcome == "do_not_call":
        return result, None
    changed = msgspec.structs.replace(
        result,
        asked_not_to_call=True,
        outcome="do_not_call",
        interest_level="cold",
        callback_requested=False,
        callback_time="",
        probability=0,
    )
    return changed, said


@dataclass
class AnalysisFailed(Exception):
    """Every answer the model gave was invalid; the call keeps its live data."""

    reasons: list[str]
    answers: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"invalid answer after {len(self.reasons)} tries: " + "; ".join(self.reasons)


async def analyse_call(
    model: JsonModel,
    call: CallForAnalysis,
    *,
    tries: int = 2,
    should_stop: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> AnalysisRun:
    """Analyse ``call``: an invalid answer is asked for again (``tries`` in all), then
    AnalysisFailed. Preempted passes through."""
    messages = analysis_messages(call)
    started = clock()
    answers: list[str] = []
    reasons: list[str] = []
    for attempt in range(1, tries + 1):
        answer = await model.complete_json(
            messages, ANALYSIS_SCHEMA, attempt=attempt, should_stop=should_stop
        )
        answers.append(answer)
        try:
            result = parse_analysis(answer)
        except AnalysisInvalid as error:
            reasons.append(str(error)[:300])
            log.warning("analysis of call %s: answer %d invalid: %s", call.call_id, attempt, error)
            continue
        result, said = backstop(call, decide_outcome(result))
        if said is not None:
            # The caller's words are personal data: only at DEBUG.
            log.info("analysis of call %s: do-not-call by the rule backstop", call.call_id)
            log.debug("do-not-call words: %r", said)
        return AnalysisRun(result=result, answers=answers, seconds=clock() - started, backstop=said)
    raise AnalysisFailed(reasons, answers)


# --- the callback time ------------------------------------------------------------------------


def customer_zone(call: CallForAnalysis) -> zoneinfo.ZoneInfo:
    """The customer's time zone: their record's, else their number's, else the agent's
    (``when.customer_time_zone``)."""
    from callagent.dialog.when import customer_time_zone

    return customer_time_zone(call.phone_number, call.customer_timezone, call.agent_timezone)


def resolve_callback_time(call: CallForAnalysis, result: CallAnalysis) -> dt.datetime | None:
    """The callback time the caller asked for, read as said during the call (``tomorrow`` is
    the day after the call) in the customer's zone and moved into the calling window and the
    agent's hours (``when.resolve_when``); None when there is none or it is not understood."""
    if not result.callback_requested or not result.callback_time.strip():
        return None
    from callagent.dialog.when import CallingWindow, NoCallingTime, resolve_when

    said_at = call.ended_at or call.started_at
    if said_at is None:
        return None
    window = CallingWindow(
        agent_hours=call.working_hours, agent_zone=zoneinfo.ZoneInfo(call.agent_timezone)
    )
    try:
        resolved = resolve_when(
            result.callback_time, now=said_at, tz=customer_zone(call), window=window
        )
    except (NoCallingTime, ValueError) as error:
        log.info("callback time %r not resolved: %s", result.callback_time, error)
        return None
    return None if resolved is None else resolved.at.astimezone(dt.UTC)
