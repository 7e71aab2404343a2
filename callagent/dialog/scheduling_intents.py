"""The scheduling pass: a callback or an appointment the caller asks for, heard without the model.

docs/dialog.md "The scheduling pass" has the table of what each pattern catches and what it
must leave alone.

A small model often answers "call me back tomorrow after three" in prose and writes no action
line (measured with the ``ci`` model, SmolLM2-135M, docs/dialog.md): the caller is promised a
callback nobody makes. This pass reads the caller's words on every turn, beside the rule
backstop (:mod:`callagent.dialog.intents`), and finds

* a **callback request** - the caller asks *the agent* to call *them* ("call me back", "ring us
  back", "try me again", "give me a call on Friday", "can you call later?");
* an **appointment** the caller asks for or agrees to - a demo, a visit, a meeting, a survey, …
  named by the caller ("yes, a demo next Tuesday at two", "book me in for Thursday morning",
  "let's do the survey on the 10th") or proposed by the agent in its last words and accepted
  ("sure, Tuesday at two works").

It says nothing about *when*: the time is resolved by :mod:`callagent.dialog.when` through the
call's ``ActionSink`` (the customer's zone and calling window), and the conversation decides
what to do with a request that has no time (it asks). The patterns name who does what to whom,
so the words of a request in another meaning are left alone: someone else calling ("my husband
will call you back"), a refusal ("don't call me back"), the past ("I called you back
yesterday"), a question about the agent's plans ("when would you call back?").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

SchedulingKind = Literal["callback", "appointment"]


@dataclass(frozen=True, slots=True)
class SchedulingMatch:
    """A scheduling request found in one caller turn."""

    what: SchedulingKind
    kind: str = ""
    """For an appointment: what is booked ("demo", "visit", …; "appointment" when unnamed)."""
    matched: str = ""
    """The words that matched (for the log at DEBUG)."""
    needs_time: bool = False
    """Only an acceptance of the agent's proposal: without a time in the caller's words it is
    no request of its own (a bare "yes" is the model's to answer)."""


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{a})" for a in alternatives), re.IGNORECASE)


_ME: Final = r"(?:me|us)"
_VERB: Final = r"(?:call|ring|phone|buzz)"
# Words that say a time follows (the time itself is when.py's to read).
_WHEN_WORD: Final = (
    r"(?:back|again|later|tomorrow|tonight|on|at|next|this|in|after|around|about|by|before|"
    r"some ?time|another time|some other time|monday|tuesday|wednesday|thursday|friday|"
    r"saturday|sunday|first thing|early|tomorrow|the day after)"
)
_PLEASE: Final = r"(?:(?:please|just|maybe|perhaps|kindly|then) )*"

_CALLBACK = _rx(
    # "call me back", "ring us back", "buzz me back later"
    rf"\b{_VERB} {_ME} back\b",
    # "call me tomorrow", "call us on Friday", "phone me again next week"
    rf"\b{_VERB} {_ME} {_WHEN_WORD}\b",
    # "try me again", "try us tomorrow", "try me back later"
    rf"\btry {_ME} (?:again|back|later|tomorrow|on|at|next|in|after|another|some)\b",
    # "give me a call", "give us a ring on Monday"
    rf"\bgive {_ME} (?:a )?(?:call|ring|buzz|bell|shout|tinkle)\b",
    # "can you call later?", "could you ring back tomorrow", "would you try again on Monday"
    rf"\b(?:can|could|would|will) you {_PLEASE}(?:call|ring|phone|try)(?: (?:back|again))? "
    rf"{_WHEN_WORD}\b",
    # "call back tomorrow" said as an instruction: at the start of a clause
    rf"(?:^|[.!?;,:]\s*|\b(?:so|then|but|and|please|just|maybe) ){_VERB} back\b",
    # "you can call me back …", "better to call tomorrow" are covered by the first forms.
)

_KIND_WORDS: Final = (
    r"demo(?:nstration)?|appointment|meeting|visit|site visit|home visit|survey|consultation|"
    r"viewing|tour|assessment|inspection|estimate|quote|fitting|installation|session|interview|"
    r"test drive|trial"
)
_KIND: Final = rf"(?:{_KIND_WORDS})s?"
_DET: Final = (
    r"(?:a|an|the|that|this|my|our|your|one|another) "
    r"(?:free |quick |short |online |video |phone |in-person |home |site )?"
)
_AGREE: Final = (
    r"(?:yes|yeah|yep|yup|sure|ok(?:ay)?|alright|all right|fine|great|perfect|lovely|absolutely|"
    r"definitely|sounds good|that works|that'?s fine|go on then|why not|let'?s do (?:it|that))"
)

_APPOINTMENT = _rx(
    # "yes, a demo next Tuesday at two", "sure, the visit on Friday"
    rf"^\W*{_AGREE}\b[^.?!]{{0,40}}?\b{_DET}?(?P<k1>{_KIND})\b",
    # "book me in for Thursday morning", "put us down for a visit", "sign me up for the demo"
    rf"\b(?:book|put|pencil|sign|schedule|fit|squeeze) {_ME}(?: (?:in|down|up))?"
    rf"(?: for(?: {_DET}(?P<k2>{_KIND})\b)?)?",
    # "book a demo", "schedule the survey", "set up a meeting", "arrange a visit"
    rf"\b(?:book|schedule|set up|arrange|organi[sz]e|make|fix|plan) {_DET}(?P<k3>{_KIND})\b",
    # "let's do the survey on the 10th", "let's have a meeting", "let's go with the demo"
    rf"\blet'?s (?:do|have|book|schedule|set up|arrange|go (?:with|for)|make it) "
    rf"{_DET}?(?P<k4>{_KIND})\b",
    # "I'd like a demo", "we'd love to have a visit", "I want to book a meeting"
    r"\b(?:i|we)(?:'d| would)? (?:like|love|want|need|prefer|take)(?: to (?:have|book|get|"
    rf"schedule|do|see|arrange|set up))? {_DET}(?P<k5>{_KIND})\b",
    # "can we do the demo on Monday?", "could I book a visit for Friday"
    r"\b(?:can|could|shall|should|may) (?:we|i|you) (?:do|have|book|schedule|set up|arrange|"
    rf"get) {_DET}(?P<k6>{_KIND})\b",
    # "the demo on Tuesday works", "Friday suits me for the visit"
    rf"\b(?P<k7>{_KIND})\b[^.?!]{{0,40}}\b(?:works|suits|is fine|is good|sounds good)\b",
    rf"\b(?:works|suits (?:me|us)|is fine|is good) for {_DET}(?P<k8>{_KIND})\b",
)

# The agent offered one in its last words: "Would you like a free demo?"
_OFFER = _rx(
    rf"\b(?:would|shall|should|can|could|may|do) (?:you|we|i)\b[^.?!]{{0,50}}\b(?P<k9>{_KIND})\b",
    rf"\b(?:how about|what about|fancy|interested in)\b[^.?!]{{0,30}}\b(?P<k10>{_KIND})\b",
    rf"\b(?P<k11>{_KIND})\b[^.?!]{{0,60}}\?",
)
# The caller accepts it: a yes, or "… works / suits me".
_ACCEPT = _rx(
    rf"^\W*{_AGREE}\b",
    r"\b(?:works|work for (?:me|us)|suits (?:me|us)|is fine|is good|sounds good|is perfect)\b",
    r"^\W*(?:let'?s (?:say|do|make it)|how about|what about|make it)\b",
)

# --- the guards: who does what ---------------------------------------------------------------

# A refusal just before the request: "don't call me back", "no need to call me tomorrow",
# "I don't want a demo", "never book me in".
_NEGATION = re.compile(
    r"\b(?:don'?t|do not|doesn'?t|does not|didn'?t|did not|never|no need to|not|won'?t|"
    r"wouldn'?t|shouldn'?t|can'?t|cannot|no)\s+(?:(?:you|ever|even|need to|have to|want|"
    r"wanna|gonna|like|bother|please|to|me|us|a|an|the|any|really)\s+)*$",
    re.IGNORECASE,
)
# Someone other than the agent is the one to call: "my husband will call you back", "he'll
# call me tomorrow", "I can ring you back", "they usually call me on Fridays".
_SUBJECTS = r"he|she|they|it|someone|somebody|nobody|who|(?:my|his|her|our|their) \w+"
_OTHER_SUBJECT = re.compile(
    rf"\b(?:i|we|{_SUBJECTS})"
    r"(?:'ll|'d|'s)?(?:\s+(?:will|would|can|could|should|shall|may|might|must|usually|always|"
    r"often|sometimes|normally|also|just|then|to|gonna|going to|wants? to|needs? to|has to|"
    r"have to)){0,2}\s*$",
    re.IGNORECASE,
)
# For an appointment the caller may be the one to act ("I want to book a demo"); only a third
# party is someone else's ("my wife booked a visit").
_THIRD_PARTY = re.compile(rf"\b(?:{_SUBJECTS})(?:'ll|'d|'s)?(?:\s+\w+){{0,2}}\s*$", re.IGNORECASE)
# A question about the agent's plans or the past, not a request: "when would you call back?",
# "why did you call me?", "did you call me back?"
_QUESTION_START = re.compile(
    r"^\W*(?:when|what time|what day|why|how (?:come|often|many|much|long)|where|who|which|did|"
    r"didn'?t|have you|haven'?t you|has|had|was|were|is it true)\b",
    re.IGNORECASE,
)
# The past, said with the words: "I called you back yesterday", "you were supposed to call
# me back last week", "they booked a visit two days ago".
_PAST = re.compile(
    r"\b(?:yesterday|ago|last (?:night|week|month|year|time|monday|tuesday|wednesday|thursday|"
    r"friday|saturday|sunday)|earlier today|supposed to|was meant to)\b",
    re.IGNORECASE,
)
# Only the sentence that holds the request is read by the guards.
_SENTENCE = re.compile(r"[^.?!]+[.?!]*")
_CLAUSE_BREAK = re.compile(r"[,;:]|\b(?:and|but|so|because|cause|then)\b", re.IGNORECASE)


def _sentence_of(text: str, start: int) -> tuple[str, int]:
    """The sentence of ``text`` holding position ``start``, and where it begins."""
    for match in _SENTENCE.finditer(text):
        if match.start() <= start < match.end():
            return match.group(), match.start()
    return text, 0


def _guarded(text: str, start: int, *, caller_acts: bool = False) -> bool:
    """Whether the request at ``start`` is no request: refused, someone else's, past, or a
    question about the agent's plans. ``caller_acts``: the caller may be the subject (they
    book an appointment; only the agent calls back)."""
    sentence, offset = _sentence_of(text, start)
    before = sentence[: start - offset]
    # Only the clause the request is in says who does it ("I'm busy, call me back" is fine).
    clause = _CLAUSE_BREAK.split(before)[-1]
    subject = _THIRD_PARTY if caller_acts else _OTHER_SUBJECT
    if _NEGATION.search(clause) or subject.search(clause):
        return True
    if _QUESTION_START.match(sentence):
        return True
    return _PAST.search(sentence) is not None


def _kind(match: re.Match[str]) -> str:
    for name, value in match.groupdict().items():
        if name.startswith("k") and value:
            word = " ".join(value.lower().split())
            word = word[:-1] if word.endswith("s") and not word.endswith("ss") else word
            return "demo" if word == "demonstration" else word
    return "appointment"


def detect_scheduling(caller_text: str, agent_said: str = "") -> SchedulingMatch | None:
    """The callback or appointment the caller asks for in this turn, or None.

    ``agent_said`` is the agent's last words: an appointment it offered there ("would you like
    a demo?") and the caller accepts counts too, if the caller's words carry a time
    (:attr:`SchedulingMatch.needs_time`). An appointment wins over a callback in one turn ("book
    me a demo, call me back to confirm" books the demo).
    """
    text = " ".join(caller_text.split())
    if not text:
        return None
    for match in _APPOINTMENT.finditer(text):
        if not _guarded(text, match.start(), caller_acts=True):
            return SchedulingMatch("appointment", _kind(match), match.group())
    for match in _CALLBACK.finditer(text):
        # A clause-start "call back" may begin at the punctuation before it.
        start = match.start() + len(match.group()) - len(match.group().lstrip(" .!?;,:"))
        if not _guarded(text, start):
            return SchedulingMatch("callback", "", match.group().strip(" .!?;,:"))
    if agent_said:
        offer = _OFFER.search(" ".join(agent_said.split()))
        accept = _ACCEPT.search(text)
        refused = re.match(r"^\W*(?:no|nope|nah|not)\b", text, re.IGNORECASE)
        if (
            offer is not None
            and accept is not None
            and not refused
            and not _guarded(text, accept.start(), caller_acts=True)
        ):
            return SchedulingMatch("appointment", _kind(offer), accept.group(), True)
    return None
