"""End-of-turn policy: when has the caller finished speaking?

Kept apart from the VAD so the policy can change (or become a model) without touching speech
detection, and so tests drive it with an injected clock (DESIGN.md practice 6).

A fixed pause cannot tell "Do you install solar panels?" from "my number is 555…": the first
wants an answer at once, the second must not be cut off. So when the caller pauses, the
pipeline transcribes the turn so far (the early transcription it starts anyway, which then
becomes the turn's transcript when nothing follows: no second STT run) and hands the words to
the policy. :func:`judge_words` sorts them into *complete* (a question, a short answer, a
finished sentence), *incomplete* (a trailing "and", "um", "to", a number being dictated) or
*unsure*, and the pause that ends the turn follows: short, long, or the default
(docs/pipeline.md "End of turn"; the figures in bench/bench_turn_end.py).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class WordsSay(enum.Enum):
    """What the words of the turn so far say about whether it is over."""

    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    UNSURE = "unsure"


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """How long a pause ends the caller's turn, and the longest turn we wait for.

    With ``use_words`` the pause depends on the words of the turn so far: ``complete_silence_s``
    after a question or a finished sentence, ``incomplete_silence_s`` after a trailing
    conjunction, a filler or a number being dictated, ``end_silence_s`` otherwise. Until the
    words are known the turn stays open (the answer needs them anyway) for at most
    ``incomplete_silence_s``. Without ``use_words`` every pause is ``end_silence_s`` long.

    With ``speculate`` the answer starts on the words of a pause before the pause has ended
    the turn; nothing of it is heard unless the turn then ends (docs/pipeline.md "Speculative
    reply").
    """

    end_silence_s: float = 0.45
    max_turn_s: float = 30.0
    use_words: bool = True
    complete_silence_s: float = 0.25
    incomplete_silence_s: float = 1.5
    speculate: bool = False

    def __post_init__(self) -> None:
        for name in ("end_silence_s", "complete_silence_s", "incomplete_silence_s", "max_turn_s"):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")


# --- the words -----------------------------------------------------------------------------
#
# General English, not a call's script: words after which a sentence cannot end (conjunctions,
# prepositions, articles and possessives, verbs that need what follows), hesitation sounds, and
# answers that are whole turns on their own. Whisper ends almost every segment with a full stop,
# finished or not (seen on tiny.en with flite voices), so a full stop alone proves little: the
# last word decides first.

_CONJUNCTIONS = frozenset(
    [
        "and",
        "but",
        "or",
        "nor",
        "so",
        "because",
        "cause",
        "cos",
        "if",
        "when",
        "whether",
        "while",
        "although",
        "though",
        "unless",
        "until",
        "than",
        "since",
        "as",
        "where",
        "whereas",
        "plus",
    ]
)
_PREPOSITIONS = frozenset(
    [
        "to",
        "of",
        "for",
        "with",
        "at",
        "in",
        "on",
        "from",
        "by",
        "about",
        "into",
        "onto",
        "like",
        "after",
        "before",
        "between",
        "around",
        "through",
        "without",
        "during",
        "against",
        "toward",
        "towards",
        "via",
        "per",
    ]
)
_DETERMINERS = frozenset(
    [
        "a",
        "an",
        "the",
        "my",
        "your",
        "our",
        "their",
        "his",
        "her",
        "its",
        "this",
        "these",
        "those",
        "some",
        "any",
        "every",
        "each",
        "another",
        "which",
        "what",
        "whose",
    ]
)
# Subjects, copulas and verbs that expect a complement: "I was thinking", "my number is",
# "I want", "we're looking".
_EXPECTING = frozenset(
    [
        "i",
        "we",
        "i'm",
        "we're",
        "you're",
        "they're",
        "it's",
        "that's",
        "there's",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "want",
        "wanted",
        "wanna",
        "need",
        "needed",
        "gonna",
        "going",
        "trying",
        "hoping",
        "thinking",
        "wondering",
        "looking",
        "calling",
        "wanting",
        "planning",
        "asking",
    ]
)
_FILLERS = frozenset(
    ["um", "umm", "uh", "uhh", "uhm", "er", "erm", "ah", "hmm", "hm", "mm", "mhm", "eh"]
)
_WH_WORDS = frozenset(["who", "what", "where", "which", "when", "how", "whom", "whose", "why"])
# "I think so", "I hope so": a whole answer, not a trailing "so".
_SO_ANSWERS = frozenset(["think", "hope", "guess", "suppose", "believe"])
# Words that are a whole turn on their own (after fillers), or end one.
_ANSWERS = frozenset(
    [
        "yes",
        "yeah",
        "yep",
        "yup",
        "no",
        "nope",
        "nah",
        "sure",
        "okay",
        "ok",
        "right",
        "correct",
        "exactly",
        "absolutely",
        "definitely",
        "perfect",
        "great",
        "fine",
        "alright",
        "thanks",
        "bye",
        "goodbye",
        "hello",
        "hi",
        "please",
    ]
)
_ANSWER_PHRASES = frozenset(
    {
        "thank you",
        "of course",
        "not really",
        "no thanks",
        "no thank you",
        "yes please",
        "sounds good",
        "that's right",
        "that's fine",
        "all right",
        "go ahead",
    }
)
# Number words a caller dictates digits with, and words that announce a dictated number.
_NUMBER_WORDS = frozenset(
    [
        "zero",
        "oh",
        "o",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "hundred",
        "thousand",
        "double",
        "triple",
    ]
)
_NUMBER_CONTEXT = frozenset(
    [
        "number",
        "phone",
        "cell",
        "mobile",
        "zip",
        "postcode",
        "code",
        "account",
        "card",
        "digits",
        "extension",
        "reference",
        "order",
        "policy",
        "pin",
    ]
)
# Complete phone numbers and the like: 7 (local), 10 (US with area code), 11 (with a 1).
_COMPLETE_DIGIT_COUNTS = frozenset({7, 10, 11})

_WORD = re.compile(r"[a-z0-9']+")
_TRAILING_DIGITS = re.compile(r"(?:\d[\d\s.-]*)$")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def _trailing_digit_count(text: str) -> int:
    """Digits at the end of ``text``, across the spaces and dashes a caller's groups leave."""
    match = _TRAILING_DIGITS.search(text.rstrip(" .?!,"))
    return sum(c.isdigit() for c in match.group()) if match else 0


def judge_words(text: str) -> WordsSay:
    """Whether a (partial) transcript reads as a finished turn.

    Incomplete wins over complete: a trailing "and" after a question mark Whisper guessed is
    still an unfinished clause.
    """
    stripped = text.strip()
    words = _words(stripped)
    if not words:
        # Speech without words: a hesitation sound Whisper left out ("um", "hmm").
        return WordsSay.INCOMPLETE
    last = words[-1]
    if stripped.endswith(("...", "…", "-", "—", ",", ";", ":")):
        return WordsSay.INCOMPLETE
    if last == "so" and len(words) >= 2 and words[-2] in _SO_ANSWERS:
        pass
    elif last in _FILLERS or last in _CONJUNCTIONS:
        return WordsSay.INCOMPLETE
    if stripped.endswith(("?", "!")) and (
        words[0] in _WH_WORDS or (last not in _PREPOSITIONS and last not in _DETERMINERS)
    ):
        # A wh-question may end on its preposition ("Where are you calling from?"); a yes/no
        # question may not ("Is there a discount for?" is Whisper guessing the mark).
        return WordsSay.COMPLETE
    if last in _PREPOSITIONS or last in _DETERMINERS or last in _EXPECTING:
        return WordsSay.INCOMPLETE
    digits = _trailing_digit_count(stripped)
    dictating = bool(_NUMBER_CONTEXT.intersection(words))
    if digits and digits not in _COMPLETE_DIGIT_COUNTS and (dictating or digits >= 3):
        return WordsSay.INCOMPLETE
    spoken = 0  # digits said as words at the end: "oh seven seven, double four"
    for word in reversed(words):
        if word not in _NUMBER_WORDS:
            break
        spoken += 1
    if spoken and spoken not in _COMPLETE_DIGIT_COUNTS and (dictating or spoken >= 2):
        return WordsSay.INCOMPLETE
    content = [w for w in words if w not in _FILLERS]
    if not content:
        return WordsSay.INCOMPLETE  # only "um": the caller is still looking for words
    short_answer = content[0] in _ANSWERS or any(
        " ".join(content[:n]) in _ANSWER_PHRASES for n in (2, 3)
    )
    if len(content) <= 3 and short_answer:
        return WordsSay.COMPLETE
    if stripped.endswith(".") and len(content) >= 3:
        return WordsSay.COMPLETE
    return WordsSay.UNSURE


class EndOfTurnPolicy:
    """Decides the end of a caller turn from speech start/end times, the words so far and the
    clock.

    The pipeline calls :meth:`speech_started` and :meth:`speech_ended` from the VAD's events,
    :meth:`words_heard` when the transcript of the turn so far is ready, and asks
    :meth:`turn_complete` on every frame.
    """

    def __init__(self, settings: TurnSettings | None = None) -> None:
        self.settings = settings or TurnSettings()
        self._turn_started: float | None = None
        self._speech_ended: float | None = None
        self._speaking = False
        self._words: WordsSay | None = None  # for the current pause, once heard
        self._text: str | None = None

    @property
    def turn_open(self) -> bool:
        """True while a caller turn has begun and not yet been closed."""
        return self._turn_started is not None

    @property
    def words(self) -> WordsSay | None:
        """What the words of the current pause said, once they are known."""
        return self._words

    @property
    def text(self) -> str | None:
        """The transcript the current pause was judged on, once it is known."""
        return self._text

    def speech_started(self, onset: float) -> None:
        """The caller started (or resumed) speaking."""
        if self._turn_started is None:
            self._turn_started = onset
        self._speaking = True
        self._speech_ended = None
        self._words = None
        self._text = None

    def speech_ended(self, end: float) -> None:
        """The caller stopped speaking at ``end``."""
        self._speaking = False
        self._speech_ended = end
        self._words = None
        self._text = None

    def words_heard(
        self, text: str | None, speech_end: float, judged: WordsSay | None = None
    ) -> WordsSay | None:
        """The transcript of the turn up to the pause that began at ``speech_end`` is ready
        (``None``: transcription failed, fall back to the default pause).

        ``judged`` replaces :func:`judge_words` with another judge's verdict (the benchmark
        compares an audio model this way). A transcript of an earlier pause - the caller has
        spoken since - is ignored. Returns the judgement, or None when it was ignored.
        """
        if self._speaking or self._speech_ended is None or self._speech_ended != speech_end:
            return None
        self._text = text
        if judged is not None:
            self._words = judged
        else:
            self._words = WordsSay.UNSURE if text is None else judge_words(text)
        return self._words

    def pause_needed(self) -> float:
        """How long the current pause must last to end the turn, as far as is known now."""
        s = self.settings
        if not s.use_words:
            return s.end_silence_s
        if self._words is None:
            # Waiting for the words costs nothing: the answer needs them anyway. Waiting
            # longer than the longest pause would, though.
            return max(s.incomplete_silence_s, s.end_silence_s)
        return {
            WordsSay.COMPLETE: s.complete_silence_s,
            WordsSay.INCOMPLETE: s.incomplete_silence_s,
            WordsSay.UNSURE: s.end_silence_s,
        }[self._words]

    def turn_complete(self, now: float) -> bool:
        """True once the pause after the caller's speech is long enough (or the turn too long)."""
        if self._turn_started is None:
            return False
        if now - self._turn_started >= self.settings.max_turn_s:
            return True
        return (
            not self._speaking
            and self._speech_ended is not None
            and now - self._speech_ended >= self.pause_needed()
        )

    @property
    def speech_end(self) -> float | None:
        """When the caller's last speech ended, if it has."""
        return self._speech_ended

    def reset(self) -> None:
        """Start waiting for a new turn."""
        self._turn_started = None
        self._speech_ended = None
        self._speaking = False
        self._words = None
        self._text = None
