"""The rule backstop: what the caller asks that no language model may talk the agent out of.

docs/dialog.md "The rule backstop" has the table of what each rule catches and what it must not.

Rules run on every caller turn, on the transcript, before and independently of the language
model, and take microseconds. They catch the intents where a miss is a legal or trust problem:

* **do-not-call** ("take me off your list", "don't call me again", "stop calling") - the number
  goes on the do-not-call list at once and the agent confirms and ends the call;
* **"are you a robot?"** - the agent says truthfully that it is an AI assistant, never denies;
* **a person** ("can I talk to a human / a manager") - the call is handed to a person;
* **abuse** - the agent sets a boundary once, then ends the call;
* **the caller ends the call** ("okay, bye") - the agent says its goodbye and hangs up.

A caller's words can contain the words of a rule without meaning it ("I don't want to stop
calling my mom", "am I speaking to a real person?" is no transfer request), so each pattern
names who does what to whom. The labelled cases are in ``tests/dialog/test_intents.py`` and
``tests/data/intents.json``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final


class Intent(enum.StrEnum):
    """What a rule recognised in the caller's words."""

    DO_NOT_CALL = "do_not_call"
    AI_QUESTION = "ai_question"
    TRANSFER_REQUEST = "transfer_request"
    ABUSE = "abuse"
    FAREWELL = "farewell"


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{a})" for a in alternatives), re.IGNORECASE)


# Who is meant: the caller themselves, their number, their household or business.
_ME = r"(?:me|us|my (?:number|phone|cell|mobile|line)|this (?:number|phone|line)|here)"
_CALL = r"(?:call(?:ing)?|ring(?:ing)?|phon(?:e|ing)|contact(?:ing)?|bother(?:ing)?)"
_LIST = r"(?:list|lists|database|system|records?|register|files?)"
_NOT = r"(?:don'?t|do not|never|stop|quit|no need to)"
_AGAIN = r"(?:again|any ?more|ever again)"
_MY_DETAILS = r"(?:me|my (?:number|name|details|info\w*|phone number)|this number)"
_OK = r"(?:ok(?:ay)?|please|thanks?|thank you|got it|understand)"
_YOU_WOULD_NOT = r"(?:didn'?t|did not|wouldn'?t|would not|don'?t|do not|not|never|stopped)"

_DO_NOT_CALL = _rx(
    # "take me off your list", "take my number off the calling list"
    rf"\btake {_ME} off\b[^.?!]{{0,30}}\b{_LIST}\b",
    rf"\btake {_ME} off (?:of )?(?:your|the) (?:calling |call |contact )?{_LIST}\b",
    # "remove me / my number (from your list)"
    # ("drop me off at the garage", "you lose me there" are other verbs: the phrasal "off"/"at"
    # and a following "there"/"here" rule them out)
    rf"\b(?:remove|delete|erase|lose|drop) {_MY_DETAILS}\b(?!\s+(?:off|at|there|here|a line)\b)",
    # "don't (ever) call me again", "never call here again", "do not contact us anymore"
    rf"\b{_NOT}\s+(?:ever\s+)?{_CALL}\s+{_ME}\s+{_AGAIN}\b",
    rf"\bnever\s+(?:ever\s+)?{_CALL}\s+{_ME}\b",
    rf"\bdon'?t\s+(?:you\s+)?ever\s+{_CALL}\s+{_ME}\b",
    # "don't call me." / "don't call me, okay" (the clause ends there: "don't call me before
    # noon" is a preference, not a refusal)
    rf"\b(?:don'?t|do not)\s+{_CALL}\s+{_ME}\s*(?:[.!]|$|,\s*{_OK}\b)",
    # "stop calling (me)" - but not "I don't want to stop calling my mom"
    rf"(?<!to )(?<!n't )(?<!not )\b(?:stop|quit|cease)\s+{_CALL}(?:\s+{_ME}\b|\s*(?:[.!,]|$))",
    rf"\b(?:stop|quit|cease)\s+{_CALL}\s+{_ME}\b",
    # "I'd rather you didn't call (this number) again"
    rf"\b(?:rather|prefer(?:red)?|want|wish|like)\s+(?:it\s+if\s+)?you\s+{_YOU_WOULD_NOT}\s+"
    rf"(?:\w+\s+)?{_CALL}\b",
    # "I'd be grateful / I'd appreciate it if you didn't call me again" - again, or the clause
    # ends there ("… if you didn't call me before noon" is a preference)
    rf"\b(?:grateful|thankful|appreciate(?:\s+it)?|happier|glad|better)\s+if\s+you\s+"
    rf"{_YOU_WOULD_NOT}\s+(?:\w+\s+)?{_CALL}\s+{_ME}\s*(?:{_AGAIN}\b|[.!]|$)",
    # "I don't want (any more) calls", "no more calls"
    r"\b(?:no more|don'?t want (?:any(?: ?more)?|these|your|more)|stop (?:the|these|your)) "
    r"(?:phone )?calls\b",
    r"\bdon'?t want to (?:be called|get (?:any )?(?:more )?calls|hear from you)\b",
    r"\bstop (?:getting|receiving) (?:these |your |any |the )?(?:phone )?calls\b",
    # "put me on your do-not-call list", "unsubscribe me", "opt me out"
    r"\b(?:put|add|place) (?:me|my number|us)\b[^.?!]{0,20}\bdo[- ]?not[- ]?call\b",
    r"\bdo[- ]?not[- ]?call (?:list|register|registry)\b(?![^.?!]{0,30}\?)",
    r"\bunsubscribe\b",
    r"\bopt (?:me |us )?out\b",
    r"\bleave (?:me|us) alone\b",
)

# The caller is the one calling: "I don't want to stop calling my mom".
_CALLER_CALLS = _rx(rf"\bI\b[^.?!,]{{0,25}}\b(?:stop|quit)\s+{_CALL}\s+(?!{_ME}\b)")

_MACHINE = r"(?:robot|bot|machine|computer|ai|a\.?i\.?|recording|chat ?bot)"
_JUST = r"(?:an? |even |actually |really |just )*"
_AI_QUESTION = _rx(
    rf"\bare you {_JUST}(?:{_MACHINE}|artificial|automated|real|human|person|program|"
    r"(?:real|live) (?:person|human))\b",
    # "you're not a real person, are you?", "you aren't human"
    r"\byou(?:'re| are|\s+aren'?t)(?: not)? (?:an? )?(?:real|human|person|live person)\b",
    r"\b(?:is|are) (?:this|you) (?:even )?(?:a )?(?:real|live) (?:person|human|people)\b",
    rf"\bis (?:this|that|it) {_JUST}(?:{_MACHINE}|automated|recorded|real person|human|"
    r"live person)\b",
    r"\b(?:am i|are we) (?:talking|speaking|chatting) (?:to|with) (?:an? |the |some )?"
    rf"(?:{_MACHINE}|real person|human|person|live person)\b",
    rf"\byou(?:'re| are) (?:an? |just )*{_MACHINE}\b",
    rf"\b(?:you|this) (?:sound|sounds) (?:like )?(?:an? )?(?:{_MACHINE}|automated)\b",
)

_PERSON = (
    r"(?:(?:an? |the |your |some )?(?:real |live |actual )?(?:person|human(?: being)?|manager|"
    r"supervisor|operator|representative|rep|boss|agent|colleague)|someone (?:real|in charge|"
    r"from (?:your|the) (?:team|company|office))|somebody (?:real|in charge)|a real one)"
)
_TALK = r"(?:talk|speak|chat) (?:to|with)"
_TRANSFER_REQUEST = _rx(
    rf"\b(?:can|could|may|let|would|will) (?:i|me|you let me) (?:please )?{_TALK} {_PERSON}\b",
    rf"\b(?:want|need|like|wanna|have) to {_TALK} {_PERSON}\b",
    r"\b(?:put|get|transfer|connect|pass|patch|send) (?:me )?(?:through |over |on )?"
    rf"(?:to|with) {_PERSON}\b",
    rf"\b(?:get|give|find) me {_PERSON}\b",
    r"\btransfer me\b",
    rf"^\W*(?:{_PERSON})(?:,? please)?\W*$",
    rf"\bis there {_PERSON} (?:i can|to) (?:talk|speak)\b",
    rf"\bpossible to {_TALK} {_PERSON}\b",
)

_CURSE = r"(?:stupid|dumb|fucking|useless|bloody)"
_INSULT = r"(?:idiot|moron|bitch|asshole|bastard|dickhead|piece of (?:shit|crap)|imbecile|cunt)"
_ABUSE = _rx(
    r"\bf+u+c+k+(?:ing?)?\s+(?:you|off|this|that|u)\b",
    r"\b(?:screw|damn) you\b",
    r"\bgo to hell\b",
    r"\bpiss off\b",
    r"\bshut (?:the f\w* )?up\b",
    rf"\b(?:you(?:'re| are)?|{_CURSE})\s+(?:an? )?(?:{_CURSE} )*{_INSULT}\b",
    rf"\b{_CURSE} (?:\w+ )?(?:bot|robot|machine)\b",
    r"\b(?:bitch|asshole|bastard|dickhead|cunt)\b",
)

# The caller ends the call. Small models are unreliable at noticing this, so a rule decides.
_FAREWELL = _rx(
    r"\bgood ?bye\b",
    r"\bbye(?: bye)?\b",
    r"\bhang(?:ing)? up\b",
    r"\bthat(?:'?s| is) all(?: i needed| for now| for today| from me)?\s*(?:[.!,]|$)",
    r"\btalk (?:to you )?later\b",
    r"\bhave a (?:good|nice|great|lovely) (?:day|evening|one|weekend|night)\b",
    r"\bI(?:'ve| have)?\s+(?:(?:got|have|need)\s+to|gotta)\s+go(?:\s+now)?\s*(?:[.!,]|$)",
    r"\bgotta go\s*(?:[.!,]|$)",
    r"\bnothing else(?:,? thanks?| thank you)?\s*(?:[.!,]|$)",
)
# Words that alone are no reason to end a call: Whisper tiny.en hears a synthetic caller's
# "Hi." as "Bye." (measured: flite's slt and kal voices through a µ-law line), so a lone
# "bye" before the conversation has begun is asked about, not obeyed (docs/dialog.md).
_LONE_BYE = re.compile(r"^\W*(?:good ?)?bye\W*$", re.IGNORECASE)
_CLOSING_TAIL_WORDS: Final = 6


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """One intent a rule found, with the words that matched (for the log at DEBUG)."""

    intent: Intent
    matched: str


_STOP_WORDS: Final = frozenset(
    re.findall(
        r"\S+",
        "a an the i i'm im it it's its is are was to of we you your my me that this just so "
        "and or but very really too",
    )
)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def match_objection(caller_text: str, objections: Iterable[str]) -> str | None:
    """The trained objection (its name as taught) the caller raises in this turn, or None.

    A turn raises an objection when it holds the objection's words in order ("that's too
    expensive for us" - "too expensive"), or, for a name of two or more words that carry
    meaning, all of those words ("the price is too high" - "price too high"). A question
    ("isn't that too expensive?") is left to the model, which may answer it differently;
    the first objection taught wins when several match.
    """
    if caller_text.strip().endswith("?"):
        return None
    said = _words(caller_text)
    text = f" {' '.join(said)} "
    for name in objections:
        key = _words(name)
        if not key:
            continue
        if f" {' '.join(key)} " in text:
            return name
        meaning = [word for word in key if word not in _STOP_WORDS]
        if len(meaning) >= 2 and all(word in said for word in meaning):
            return name
    return None


def detect(caller_text: str) -> list[RuleMatch]:
    """Every intent the rules find in one caller turn, most serious first."""
    text = " ".join(caller_text.split())
    found: list[RuleMatch] = []
    if match := _do_not_call(text):
        found.append(RuleMatch(Intent.DO_NOT_CALL, match))
    if match := _ABUSE.search(text):
        found.append(RuleMatch(Intent.ABUSE, match.group()))
    if match := _TRANSFER_REQUEST.search(text):
        found.append(RuleMatch(Intent.TRANSFER_REQUEST, match.group()))
    if match := _AI_QUESTION.search(text):
        found.append(RuleMatch(Intent.AI_QUESTION, match.group()))
    if is_farewell(text):
        found.append(RuleMatch(Intent.FAREWELL, text))
    return found


def _do_not_call(text: str) -> str | None:
    match = _DO_NOT_CALL.search(text)
    if match is None:
        return None
    if _CALLER_CALLS.search(text) and not _DO_NOT_CALL.search(_CALLER_CALLS.sub(" ", text)):
        return None  # only "I ... stop calling <someone else>" matched
    return match.group()


# What may follow a goodbye in the same breath ("goodbye and thanks for your help", "bye for
# now"). Anything else after it means the turn goes on: "Bye, this is Jo" and "Bye there" are
# how Whisper tiny.en hears a synthetic "Hi, this is Jo" and "Hi there" (docs/dialog.md).
_CLOSING_WORDS: Final = frozenset(
    re.findall(
        r"\S+",
        "and thanks thank you so much very really for your the help time now then take care "
        "see ya later cheers again all best bye goodbye okay ok alright talk soon have a good "
        "nice great lovely day evening weekend night one sir madam ma'am everyone folks mate",
    )
)


def is_farewell(caller_text: str) -> bool:
    """True when the caller is saying goodbye: a farewell among the last few words, and no
    question after it ("bye - oh wait, how much is it?" is not the end of the call) nor
    anything but closing words ("bye, this is Jo" is not a goodbye)."""
    text = caller_text.strip()
    if not text or text.endswith("?"):
        return False
    tail = " ".join(text.split()[-_CLOSING_TAIL_WORDS:])
    matches = list(_FAREWELL.finditer(tail))
    if not matches:
        return False
    after = re.findall(r"[A-Za-z']+", tail[matches[-1].end() :].lower())
    return all(word in _CLOSING_WORDS for word in after)


def is_lone_bye(caller_text: str) -> bool:
    """True when the turn is nothing but "bye" / "goodbye": possibly a misheard "hi"."""
    return _LONE_BYE.match(caller_text.strip()) is not None


_YES = re.compile(
    r"^\W*(?:yes|yeah|yep|yup|correct|right|sure|i did|that'?s right|please do)\b", re.IGNORECASE
)


def is_yes(caller_text: str) -> bool:
    """True when the turn starts with a plain yes."""
    return _YES.match(caller_text) is not None
