"""The learning loop (docs/learning.md): what each analysed call teaches the agent, and which
trained objection answer its prompt carries because of it.

After the post-call analysis has settled a call's outcome (``call_analysis.apply_analysis``),
:func:`record_call` counts the call once, in the same transaction, into the agent's
``performance_metrics["learning"]``:

* per **objection answer** the agent gave - found by matching the agent's transcript turns
  against the trained answer texts (:func:`match_answers`), deterministic, no model;
* per **opener** - the agent's first words on the call (greeting or outbound opening), with the
  customer's name and the call's purpose replaced by placeholders;
* per **call time** - the local hour of day and weekday the call started (the customer's time
  zone, else the agent's);

each as ``calls`` and ``good`` (a good outcome, :data:`GOOD_OUTCOMES`). What was counted is
kept on the call (``analysis["learning"]``), so counting is safe on retry (a call already
counted is not counted again) and can be moved when a CRM later replaces the analysis's
outcome (:func:`relabel`).

:func:`choose_answer` is the choice the profile builder makes among the answers trained for one
objection; :func:`insights` is what the dashboard shows. Both read only the counts, so the
system prompt stays byte-stable until a count changes the choice (DESIGN.md, prefix cache).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from callagent.store.models import AIAgent, CallSession
from callagent.store.states import CallOutcome

# --- what counts as good ------------------------------------------------------------------

GOOD_OUTCOMES: Final = frozenset(
    {
        CallOutcome.CONVERTED,
        CallOutcome.DEMO_SCHEDULED,
        CallOutcome.CALLBACK_REQUESTED,
        CallOutcome.INTERESTED,
    }
)
"""The caller moved towards a sale: bought, agreed a meeting, asked to be called back, or
showed interest."""
NOT_GOOD_OUTCOMES: Final = frozenset(
    {CallOutcome.NOT_INTERESTED, CallOutcome.DO_NOT_CALL, CallOutcome.ANSWERED}
)
"""The caller heard the agent and it came to nothing: declined, asked not to be called, or the
conversation ended without any step forward."""
# Not counted at all: transferred (a person took over, what followed is theirs), wrong_number
# and voicemail (the right person never heard the agent), and the unreached outcomes.

MIN_SAMPLE: Final = 10
"""Calls an answer (or an opener, an hour, a weekday) needs before its rate is judged."""
PRIOR_CALLS: Final = 10
"""Strength of the prior, in calls: a rate is smoothed as if it had started with this many
calls at the agent's overall good rate (a Beta prior; docs/learning.md)."""
MAX_OPENERS: Final = 20
"""Distinct openers kept; a new one beyond this replaces the least-used."""
METRICS_KEY: Final = "learning"
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def good_outcome(outcome: CallOutcome | None) -> bool | None:
    """Whether ``outcome`` counts as good (True), not good (False) or is not counted (None)."""
    if outcome in GOOD_OUTCOMES:
        return True
    if outcome in NOT_GOOD_OUTCOMES:
        return False
    return None


# --- the trained answers ----------------------------------------------------------------


@dataclass(frozen=True)
class AnswerVariant:
    """One trained answer to one objection."""

    objection: str
    """The objection as trained (whitespace collapsed)."""
    text: str
    """The answer as trained (whitespace collapsed)."""

    @property
    def id(self) -> str:
        """A stable id of the answer text: its counts are kept under it."""
        return variant_id(self.text)


def variant_id(answer: str) -> str:
    """The id an answer's counts are kept under: the same text (ignoring case and spacing)
    is the same answer, whichever session taught it."""
    canonical = " ".join(answer.lower().split())
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def objection_name(name: str) -> str:
    """An objection's identity: lower case, whitespace collapsed."""
    return " ".join(name.lower().split())


def answer_variants(
    sessions: Iterable[Mapping[str, Any]],
) -> dict[str, list[AnswerVariant]]:
    """The answers trained per objection, from each session's ``objection_responses``
    (sessions oldest first): oldest answer first; an answer taught again moves to the end."""
    variants: dict[str, list[AnswerVariant]] = {}
    for responses in sessions:
        for name, answer in sorted((responses or {}).items()):
            key, text = objection_name(name), " ".join(str(answer).split())
            if not key or not text:
                continue
            variant = AnswerVariant(objection=" ".join(name.split()), text=text)
            kept = [v for v in variants.get(key, []) if v.id != variant.id]
            variants[key] = [*kept, variant]
    return variants


# --- which answer the agent gave ---------------------------------------------------------

MATCH_MIN_SHARE: Final = 0.5
"""Share of an answer's content words the agent's turn must contain to count as that answer."""
MATCH_MIN_WORDS: Final = 3
"""…and at least this many of them (all of them for a shorter answer)."""
_STEM: Final = 5
_WORD = re.compile(r"[a-z0-9]+")
# Words that say nothing about which answer was given.
# fmt: off
_STOPWORDS: Final = frozenset((
    "a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at",
    "be", "because", "been", "before", "being", "but", "by", "can", "could", "did", "do", "does",
    "doing", "don", "for", "from", "had", "has", "have", "having", "he", "her", "here", "hers",
    "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "me", "more", "most",
    "my", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our",
    "ours", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that",
    "the", "their", "theirs", "them", "then", "there", "these", "they", "this", "those", "through",
    "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where",
    "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours",
    "yourself", "ll", "re", "ve", "s", "t", "d", "m", "okay", "ok", "sure", "well", "yes",
    "really",
))
# fmt: on


def _stems(text: str) -> frozenset[str]:
    # Content words cut to their first five letters: "financing" and "finance" agree, which is
    # most of how a model rephrases a trained answer without a stemmer.
    return frozenset(word[:_STEM] for word in _WORD.findall(text.lower()) if word not in _STOPWORDS)


def _match(answer: frozenset[str], turn: frozenset[str]) -> tuple[float, int] | None:
    """(share, shared words) when ``turn`` contains enough of ``answer``, else None."""
    if not answer:
        return None
    shared = len(answer & turn)
    share = shared / len(answer)
    if share < MATCH_MIN_SHARE or shared < min(MATCH_MIN_WORDS, len(answer)):
        return None
    return share, shared


def match_answers(
    agent_turns: Sequence[str], variants: Mapping[str, Sequence[AnswerVariant]]
) -> list[AnswerVariant]:
    """The trained answers the agent gave in ``agent_turns``: per objection, the answer whose
    content words its turns contained best (see :data:`MATCH_MIN_SHARE`). When two answers of
    one objection match equally well, neither is counted: the call cannot tell them apart."""
    turns = [_stems(turn) for turn in agent_turns if turn.strip()]
    found: list[AnswerVariant] = []
    for key in sorted(variants):
        scored: list[tuple[tuple[float, int], AnswerVariant]] = []
        for variant in variants[key]:
            words = _stems(variant.text)
            best = max((m for turn in turns if (m := _match(words, turn))), default=None)
            if best is not None:
                scored.append((best, variant))
        scored.sort(key=lambda item: item[0], reverse=True)
        if scored and (len(scored) == 1 or scored[0][0] > scored[1][0]):
            found.append(scored[0][1])
    return found


# --- openers and call times -------------------------------------------------------------

_OPENER_CHARS: Final = 200


def opener_key(first_turn: str, *, customer_name: str = "", purpose: str = "") -> str:
    """The opener of a call, as a key: the agent's first words with the customer's name (as a
    whole word) replaced by ``{customer}`` and the call's purpose where the outbound opening
    says it ("calling about <purpose>", "calling to <purpose>": its first sentence, as
    ``AgentProfile.outbound_greeting_text`` puts it) by ``{reason}``, so the same opening on
    calls to different people about different things is one opener. The purpose is replaced
    only there: a short one ("Solar") may also be a word of the company's name."""
    text = " ".join(first_turn.split())
    reason = " ".join(purpose.split())
    for stop in (". ", "! ", "? "):
        reason = reason.split(stop, 1)[0]
    reason = reason.rstrip(" .!?;:,")
    if reason:
        said = re.compile(r"(calling (?:about|to) )" + re.escape(reason), re.IGNORECASE)
        text = said.sub(lambda m: m.group(1) + "{reason}", text)
    name = " ".join(customer_name.split())
    if len(name) >= 2:
        whole = re.compile(r"(?<!\w)" + re.escape(name) + r"(?!\w)", re.IGNORECASE)
        text = whole.sub("{customer}", text)
    return text[:_OPENER_CHARS]


def call_time(started_at: dt.datetime, timezone: str) -> tuple[int, str]:
    """(hour 0-23, weekday ``mon``…``sun``) of ``started_at`` in ``timezone`` (UTC when the
    zone is unknown)."""
    try:
        zone: dt.tzinfo = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = dt.UTC
    local = started_at.astimezone(zone)
    return local.hour, WEEKDAYS[local.weekday()]


# --- what one call adds ------------------------------------------------------------------


@dataclass(frozen=True)
class CallObservation:
    """What one call is counted under."""

    answers: tuple[AnswerVariant, ...] = ()
    opener: str = ""
    direction: str = ""
    hour: int | None = None
    weekday: str | None = None

    def to_record(self) -> dict[str, Any]:
        """JSON for ``call_sessions.analysis["learning"]``."""
        return {
            "answers": [
                {"objection": a.objection, "variant": a.id, "text": a.text} for a in self.answers
            ],
            "opener": self.opener,
            "direction": self.direction,
            "hour": self.hour,
            "weekday": self.weekday,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> CallObservation:
        """The observation :meth:`to_record` wrote."""
        return cls(
            answers=tuple(
                AnswerVariant(objection=str(a["objection"]), text=str(a["text"]))
                for a in record.get("answers") or []
            ),
            opener=str(record.get("opener") or ""),
            direction=str(record.get("direction") or ""),
            hour=record.get("hour"),
            weekday=record.get("weekday"),
        )


def observe(
    transcript: Sequence[Mapping[str, Any]],
    trained: Iterable[Mapping[str, Any]],
    *,
    inbound: bool,
    started_at: dt.datetime | None,
    timezone: str,
    customer_name: str = "",
    purpose: str = "",
    known_openers: Iterable[str] = (),
) -> CallObservation:
    """What a call with ``transcript`` (turns as stored: ``speaker``, ``text``,
    ``interrupted``) is counted under; ``trained`` are the agent's sessions'
    ``objection_responses``, oldest first. A first turn the caller cut short counts as the
    known opener it begins (``known_openers``), or as no opener."""
    agent_turns = [
        turn for turn in transcript if turn.get("speaker") == "agent" and str(turn.get("text", ""))
    ]
    answers = match_answers([str(t["text"]) for t in agent_turns], answer_variants(trained))
    opener = ""
    if agent_turns:
        first = agent_turns[0]
        opener = opener_key(str(first["text"]), customer_name=customer_name, purpose=purpose)
        if first.get("interrupted"):
            whole = sorted(k for k in known_openers if k.startswith(opener) and len(opener) >= 10)
            opener = whole[0] if whole else ""
    hour, weekday = call_time(started_at, timezone) if started_at else (None, None)
    return CallObservation(
        answers=tuple(answers),
        opener=opener,
        direction="inbound" if inbound else "outbound",
        hour=hour,
        weekday=weekday,
    )


def _bump(table: dict[str, Any], key: str, good: bool, delta: int, **extra: Any) -> None:
    entry = table.setdefault(key, {"calls": 0, "good": 0, **extra})
    entry["calls"] = max(0, entry["calls"] + delta)
    if good:
        entry["good"] = max(0, entry["good"] + delta)
    entry["good"] = min(entry["good"], entry["calls"])


def count(
    metrics: Mapping[str, Any], observation: CallObservation, good: bool, delta: int = 1
) -> dict[str, Any]:
    """``metrics`` (an agent's ``performance_metrics``) with one call added (``delta`` 1) or
    taken away (-1), as a new dict (JSON columns are not change-tracked in place)."""
    metrics = copy.deepcopy(dict(metrics))
    learning = metrics.setdefault(METRICS_KEY, {})
    learning["calls"] = max(0, learning.get("calls", 0) + delta)
    learning["good"] = max(0, learning.get("good", 0) + (delta if good else 0))
    answers = learning.setdefault("answers", {})
    for answer in observation.answers:
        _bump(answers, answer.id, good, delta, objection=answer.objection, text=answer.text[:300])
    if observation.opener:
        openers = learning.setdefault("openers", {})
        if delta > 0 and observation.opener not in openers and len(openers) >= MAX_OPENERS:
            least = min(openers, key=lambda key: (openers[key]["calls"], key))
            del openers[least]
        if delta > 0 or observation.opener in openers:
            _bump(openers, observation.opener, good, delta, direction=observation.direction)
    if observation.hour is not None:
        _bump(learning.setdefault("hours", {}), f"{observation.hour:02d}", good, delta)
    if observation.weekday is not None:
        _bump(learning.setdefault("weekdays", {}), observation.weekday, good, delta)
    return metrics


def record_call(agent: AIAgent, call: CallSession, observation: CallObservation) -> dict[str, Any]:
    """Count ``call`` (its outcome as it stands now) into ``agent``'s learning counts, in the
    caller's transaction, and keep what was counted on the call (``analysis["learning"]``).
    A call already counted is left as it is: safe on retry. Returns the call's record."""
    analysis = dict(call.analysis or {})
    if isinstance(analysis.get(METRICS_KEY), dict):
        return analysis[METRICS_KEY]
    good = good_outcome(call.outcome)
    record = {
        **observation.to_record(),
        "outcome": call.outcome.value if call.outcome else None,
        "counted": good is not None,
        "good": bool(good),
    }
    if good is not None:
        agent.performance_metrics = count(agent.performance_metrics or {}, observation, good)
    analysis[METRICS_KEY] = record
    call.analysis = analysis
    return record


def relabel(agent: AIAgent, call: CallSession, outcome: CallOutcome | None) -> None:
    """The call's outcome is now ``outcome`` (a CRM replaced the analysis's reading): move its
    learning counts from what was counted to what the new outcome says, in the caller's
    transaction. A call that was never counted stays uncounted."""
    analysis = copy.deepcopy(dict(call.analysis or {}))
    record = analysis.get(METRICS_KEY)
    if not isinstance(record, dict):
        return
    observation = CallObservation.from_record(record)
    metrics = agent.performance_metrics or {}
    if record.get("counted"):
        metrics = count(metrics, observation, bool(record.get("good")), -1)
    good = good_outcome(outcome)
    if good is not None:
        metrics = count(metrics, observation, good)
    agent.performance_metrics = metrics
    record.update(
        outcome=outcome.value if outcome else None, counted=good is not None, good=bool(good)
    )
    call.analysis = analysis


# --- the choice ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """Calls and good outcomes of one answer, opener or call time, and its smoothed rate."""

    calls: int
    good: int
    score: float
    """The posterior mean good rate: ``(good + PRIOR_CALLS * prior) / (calls +
    PRIOR_CALLS)``."""

    @property
    def judged(self) -> bool:
        """Whether there are enough calls (:data:`MIN_SAMPLE`) to judge it."""
        return self.calls >= MIN_SAMPLE

    @property
    def rate(self) -> float:
        """The raw good rate."""
        return self.good / self.calls if self.calls else 0.0


def prior_rate(metrics: Mapping[str, Any]) -> float:
    """The agent's good rate over every counted call: where every rate starts from (½ before
    any call is counted)."""
    learning = metrics.get(METRICS_KEY) or {}
    calls, good = learning.get("calls", 0), learning.get("good", 0)
    return (good + 1) / (calls + 2)


def rate_of(entry: Mapping[str, Any] | None, prior: float) -> Rate:
    """The :class:`Rate` of one counts entry (absent: no calls)."""
    calls = int((entry or {}).get("calls", 0))
    good = int((entry or {}).get("good", 0))
    return Rate(calls=calls, good=good, score=(good + PRIOR_CALLS * prior) / (calls + PRIOR_CALLS))


def choose_answer(
    variants: Sequence[AnswerVariant], metrics: Mapping[str, Any], *, learning: bool
) -> AnswerVariant:
    """Which of the answers trained for one objection (oldest first) the agent uses.

    Without learning (the agent is not ``optimizing``), or before any answer is judged: the
    newest, as taught. With learning: an answer with fewer than :data:`MIN_SAMPLE` counted
    calls is tried first (the newest such one), so each is judged on a fair number of calls
    and the prompt changes only when a trial ends; then the answer with the best smoothed
    rate (:class:`Rate`), the newer on a tie. Pure: the same counts give the same choice."""
    newest = variants[-1]
    if not learning or len(variants) == 1:
        return newest
    answers = (metrics.get(METRICS_KEY) or {}).get("answers") or {}
    prior = prior_rate(metrics)
    rates = [rate_of(answers.get(v.id), prior) for v in variants]
    untried = [index for index, rate in enumerate(rates) if not rate.judged]
    if untried:
        return variants[untried[-1]]
    best = max(range(len(variants)), key=lambda index: (rates[index].score, index))
    return variants[best]


# --- what the dashboard shows --------------------------------------------------------------


@dataclass(frozen=True)
class LearningInsight:
    """One thing the counts say (the dashboard's ``Insight``)."""

    kind: str
    message: str
    data: dict[str, Any]


def _pct(rate: float) -> str:
    return f"{rate:.0%}"


def _ranked(table: Mapping[str, Any], prior: float) -> list[tuple[str, Rate]]:
    """The judged entries of ``table``, best smoothed rate first (ties by key)."""
    rated = [(key, rate_of(entry, prior)) for key, entry in table.items()]
    judged = [(key, rate) for key, rate in rated if rate.judged]
    return sorted(judged, key=lambda item: (-item[1].score, item[0]))


def _rate_data(rate: Rate) -> dict[str, Any]:
    return {
        "calls": rate.calls,
        "good": rate.good,
        "rate": round(rate.rate, 4),
        "score": round(rate.score, 4),
    }


def insights(metrics: Mapping[str, Any], *, learning: bool) -> list[LearningInsight]:
    """What the learning counts say: the loop's state, the best answer per objection, the best
    call times, the best opener. Only entries with :data:`MIN_SAMPLE` calls are ranked."""
    counts = metrics.get(METRICS_KEY) or {}
    if not counts.get("calls"):
        return []
    prior = prior_rate(metrics)
    state = "on: the agent uses the best answers" if learning else "off until it is optimizing"
    found = [
        LearningInsight(
            kind="learning",
            message=f"{counts['calls']} analysed calls counted, {counts.get('good', 0)} with "
            f"a good outcome; learning is {state}",
            data={
                "learning": learning,
                "calls": counts["calls"],
                "good": counts.get("good", 0),
                "min_sample": MIN_SAMPLE,
                "prior_calls": PRIOR_CALLS,
            },
        )
    ]
    by_objection: dict[str, dict[str, Any]] = {}
    for variant, entry in sorted((counts.get("answers") or {}).items()):
        by_objection.setdefault(objection_name(entry.get("objection", "")), {})[variant] = entry
    ranked_objections = sorted(
        by_objection.items(), key=lambda item: (-sum(e["calls"] for e in item[1].values()), item[0])
    )
    for name, entries in ranked_objections[:5]:
        ranked = _ranked(entries, prior)
        if not ranked:
            continue
        best_id, best = ranked[0]
        text = entries[best_id].get("text", "")
        others = "; ".join(
            f"another answer {_pct(rate.rate)} of {rate.calls}" for _, rate in ranked[1:3]
        )
        found.append(
            LearningInsight(
                kind="best_answer",
                message=f"'{name}': \"{text[:80]}\" was followed by a good outcome on "
                f"{best.good} of {best.calls} calls ({_pct(best.rate)})"
                + (f"; {others}" if others else ""),
                data={
                    "objection": name,
                    "answers": [
                        {"variant": key, "text": entries[key].get("text", ""), **_rate_data(rate)}
                        for key, rate in ranked
                    ],
                },
            )
        )
    hours = _ranked(counts.get("hours") or {}, prior)
    weekdays = _ranked(counts.get("weekdays") or {}, prior)
    if hours or weekdays:
        parts = []
        if hours:
            hour, rate = hours[0]
            parts.append(f"{hour}:00-{int(hour) + 1:02d}:00 ({_pct(rate.rate)} of {rate.calls})")
        if weekdays:
            day, rate = weekdays[0]
            parts.append(f"{day} ({_pct(rate.rate)} of {rate.calls})")
        found.append(
            LearningInsight(
                kind="best_call_time",
                message="calls went best at " + " and on ".join(parts) + ", local time",
                data={
                    "hours": [{"hour": int(k), **_rate_data(r)} for k, r in hours],
                    "weekdays": [{"weekday": k, **_rate_data(r)} for k, r in weekdays],
                },
            )
        )
    openers = counts.get("openers") or {}
    ranked_openers = _ranked(openers, prior)
    if ranked_openers:
        opener, rate = ranked_openers[0]
        found.append(
            LearningInsight(
                kind="best_opener",
                message=f'the opener "{opener[:80]}" was followed by a good outcome on '
                f"{rate.good} of {rate.calls} calls ({_pct(rate.rate)})",
                data={
                    "openers": [
                        {
                            "opener": key,
                            "direction": openers[key].get("direction", ""),
                            **_rate_data(r),
                        }
                        for key, r in ranked_openers
                    ]
                },
            )
        )
    return found
