"""What the agent can do during a call, and how it is read out of the language model's text.

docs/dialog.md "In-call actions" has the design and the measurements behind it.

An :class:`Action` is something the agent does during the call, not something it says: end the
call, schedule a callback, book an appointment, put the caller on the do-not-call list, hand
the call to a person, send information, note the caller's interest. Actions come from two
places: the rule backstop (:mod:`callagent.dialog.intents`, which cannot be talked around) and
the language model, which writes them as a compact line in its reply::

    ACTION: schedule_callback(when="tomorrow after three", reason="busy now")
    Sure, I'll call you back tomorrow after three.

:class:`ActionTextFilter` takes such a reply apart while it streams: the caller hears only the
words, never the action syntax (the text chunker and the voice only ever see what the filter
lets through), and the actions are collected on the side. The filter holds text back only
from where action syntax may begin - a word that could start ``ACTION:``, a ``name(`` call, a
``snake_case`` word, a ``{`` - so ordinary speech passes at once.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, Protocol
from zoneinfo import ZoneInfo

from callagent.dialog.when import CallingWindow, NoCallingTime, resolve_when, spoken

ActionSource = Literal["rule", "model"]


class ActionKind(enum.StrEnum):
    """The actions the agent may take during a call."""

    END_CALL = "end_call"
    SCHEDULE_CALLBACK = "schedule_callback"
    BOOK_APPOINTMENT = "book_appointment"
    SET_DO_NOT_CALL = "set_do_not_call"
    TRANSFER = "transfer"
    SEND_INFORMATION = "send_information"
    SET_INTEREST = "set_interest"


#: Each action's arguments in positional order (``schedule_callback("tomorrow", "busy")``).
PARAMETERS: Final[Mapping[ActionKind, tuple[str, ...]]] = {
    ActionKind.END_CALL: (),
    ActionKind.SCHEDULE_CALLBACK: ("when", "reason"),
    ActionKind.BOOK_APPOINTMENT: ("when", "kind"),
    ActionKind.SET_DO_NOT_CALL: (),
    ActionKind.TRANSFER: ("target",),
    ActionKind.SEND_INFORMATION: ("channel",),
    ActionKind.SET_INTEREST: ("level",),
}

INTEREST_LEVELS: Final = ("cold", "warm", "hot")
"""What the agent may set; ``converted`` is the client's to record (``call-outcome``)."""
CHANNELS: Final = ("email", "sms", "post")
MAX_ARGUMENT_CHARS: Final = 200
"""Arguments come from the model, which repeats the caller's words: bounded like any peer input
(DESIGN.md practice 2)."""


@dataclass(frozen=True, slots=True)
class Action:
    """One decision of the agent, with the arguments its kind takes (empty when not given)."""

    kind: ActionKind
    arguments: tuple[tuple[str, str], ...] = ()
    source: ActionSource = "model"
    at: dt.datetime | None = None
    """A callback's or appointment's time, resolved from ``when`` (aware, customer's zone)."""
    skipped: str = ""
    """Why the action was not carried out ("" - it is): e.g. the call's purpose does not allow
    it (``dialog/purposes.py``). A skipped action is only recorded."""

    @classmethod
    def make(
        cls,
        kind: ActionKind,
        arguments: Mapping[str, str] | None = None,
        source: ActionSource = "model",
    ) -> Action:
        """An action with its arguments cleaned (see :func:`normalise_arguments`)."""
        return cls(kind, normalise_arguments(kind, arguments or {}), source)

    def get(self, name: str, default: str = "") -> str:
        """The argument ``name``, or ``default``."""
        return dict(self.arguments).get(name, default)

    @property
    def ends_call(self) -> bool:
        """Whether the call ends once the agent has said what goes with the action."""
        return self.kind in (ActionKind.END_CALL, ActionKind.SET_DO_NOT_CALL, ActionKind.TRANSFER)

    def resolved(self, at: dt.datetime) -> Action:
        """This action with its time resolved."""
        return replace(self, at=at)

    def to_record(self) -> dict[str, Any]:
        """The JSON shape of one entry of a call's ``actions_taken`` (the executor adds when
        it was taken and what came of it)."""
        record: dict[str, Any] = {"type": self.kind.value, "source": self.source}
        record.update(self.arguments)
        if self.at is not None:
            record["at"] = self.at.isoformat()
        if self.skipped:
            record["skipped"] = self.skipped
        return record

    def skip(self, why: str) -> Action:
        """This action, not to be carried out, with why."""
        return replace(self, skipped=why)

    def __str__(self) -> str:
        args = ", ".join(f'{k}="{v}"' for k, v in self.arguments)
        return f"{self.kind.value}({args})"


def normalise_arguments(
    kind: ActionKind, arguments: Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    """Keep the arguments ``kind`` takes, as bounded single-line text; interest levels and
    channels are folded onto their known values (an unknown one is dropped)."""
    cleaned: list[tuple[str, str]] = []
    for name in PARAMETERS[kind]:
        value = " ".join(str(arguments.get(name, "")).split())[:MAX_ARGUMENT_CHARS]
        if name == "level":
            value = _fold(value, INTEREST_LEVELS, {"high": "hot", "medium": "warm", "low": "cold"})
        elif name == "channel":
            value = _fold(value, CHANNELS, {"e-mail": "email", "mail": "email", "text": "sms"})
        if value:
            cleaned.append((name, value))
    return tuple(cleaned)


def _fold(value: str, known: tuple[str, ...], aliases: Mapping[str, str]) -> str:
    word = value.strip().lower()
    word = aliases.get(word, word)
    return word if word in known else ""


@dataclass(frozen=True, slots=True)
class ResolvedTime:
    """A time the caller said, resolved: when, and how the agent says it back."""

    at: dt.datetime
    spoken: str
    """E.g. "Tuesday the 8th at 2 pm" (``dialog.when.spoken``)."""
    moved: bool = False
    """The calling window moved it away from what was said."""


class ActionSink(Protocol):
    """Where the dialog's actions go: the call's executor (``telephony/call_actions.py``).

    :meth:`take` must not block: it records the action and queues what the action does (a
    store write, a hand-over at the end of the call).
    """

    @property
    def can_transfer(self) -> bool:
        """Whether a hand-over to a person is possible on this call."""
        ...

    def resolve_time(self, said: str) -> ResolvedTime | None:
        """The time ``said`` means for this customer, in their zone and calling window; None
        when it is not understood."""
        ...

    def take(self, action: Action) -> None:
        """Carry out ``action`` (or start to); called the moment the agent decides it."""
        ...


# --- the compact action line ---------------------------------------------------------------------

_NAMES = "|".join(kind.value for kind in ActionKind)
_CALL = re.compile(rf"\b({_NAMES})\s*\(", re.IGNORECASE)
_MARKER = re.compile(r"\bACTIONS?\s*:", re.IGNORECASE)
_SNAKE = re.compile(r"\b[A-Za-z]+_[A-Za-z_]+\b")
_ARGUMENT = re.compile(
    r"""\s*(?:(\w+)\s*[=:]\s*)?("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^,()]*?)\s*(?:,|$)""",
    re.DOTALL,
)
_WORDS_AFTER_MARKER = frozenset({*(kind.value for kind in ActionKind), "none"})
_MAX_HELD_CHARS: Final = 300
"""Action syntax longer than this is not action syntax: it is dropped, unparsed."""


def parse_call(name: str, argument_text: str, source: ActionSource = "model") -> Action | None:
    """The action of ``name(argument_text)``, or None for a name that is no action.

    Arguments may be named (``when="Friday"``, also ``when: Friday``) or positional, quoted or
    not; unknown names are ignored.
    """
    try:
        kind = ActionKind(name.strip().lower())
    except ValueError:
        return None
    order = PARAMETERS[kind]
    values: dict[str, str] = {}
    position = 0
    text = argument_text.strip()
    while text:
        match = _ARGUMENT.match(text)
        if match is None or match.end() == 0:
            break
        key, raw = match.group(1), match.group(2).strip()
        if raw[:1] in ("'", '"'):
            # Quoted; a reply cut off mid-argument leaves the closing quote out.
            raw = raw[1:-1] if len(raw) >= 2 and raw[-1] == raw[0] else raw[1:]
        if key is None:
            if position < len(order):
                values.setdefault(order[position], raw)
            position += 1
        else:
            values[key.lower()] = raw
        text = text[match.end() :]
    return Action.make(kind, values, source)


def parse_actions(text: str) -> list[Action]:
    """Every action written in ``text`` (an action line, or a whole reply)."""
    actions: list[Action] = []
    for match in _CALL.finditer(text):
        close = _closing_paren(text, match.end())
        inner = text[match.end() : close if close is not None else len(text)]
        action = parse_call(match.group(1), inner)
        if action is not None:
            actions.append(action)
    if not actions:
        # A bare name after the marker: "ACTION: end_call".
        for match in re.finditer(rf"\b({_NAMES})\b", text, re.IGNORECASE):
            action = parse_call(match.group(1), "")
            if action is not None:
                actions.append(action)
    return actions


def _closing_paren(text: str, start: int) -> int | None:
    """Index of the ``)`` that closes a call whose arguments start at ``start`` (quotes
    respected), or None when it has not arrived yet."""
    quote = ""
    escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'" and (index == start or not text[index - 1].isalnum()):
            quote = char
        elif char == ")":
            return index
    return None


@dataclass
class ActionTextFilter:
    """Splits a streamed reply into what the caller hears and the actions it carries.

    :meth:`push` takes each text delta and returns the text that is safe to speak now;
    :meth:`flush` returns the rest at the end of the reply. ``actions`` collects what was
    parsed out. What looks like action syntax but is none (an unknown ``snake_case`` word, a
    ``{...}`` object) is dropped too: it would only be read out as noise.
    """

    actions: list[Action] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    """The syntax taken out of the reply, for the log and the tests."""
    _buffer: str = ""
    _after_syntax: bool = False

    def push(self, delta: str) -> str:
        """Add a delta; the text that can be spoken now."""
        self._buffer += delta
        return "".join(self._drain(final=False))

    def flush(self) -> str:
        """The end of the reply: whatever is left, with any action syntax removed."""
        return "".join(self._drain(final=True))

    def _drain(self, *, final: bool) -> Iterator[str]:
        while self._buffer:
            if self._after_syntax:
                # The space or newline after an action line is not the start of speech.
                self._buffer = self._buffer.lstrip()
                if not self._buffer:
                    return
                self._after_syntax = False
            start = _syntax_start(self._buffer)
            if start is None:
                if final:
                    yield self._buffer
                    self._buffer = ""
                    return
                # The last word may still grow into "ACTION:" or "end_call(": keep it back.
                # The text chunker waits for the space after a word anyway, so this costs no
                # time before the caller hears anything.
                keep = _partial_word_start(self._buffer)
                if keep > 0:
                    yield self._buffer[:keep]
                    self._buffer = self._buffer[keep:]
                return
            if start > 0:
                yield self._buffer[:start]
                self._buffer = self._buffer[start:]
            end = _syntax_end(self._buffer, final=final)
            if end is None:
                if len(self._buffer) <= _MAX_HELD_CHARS:
                    return  # wait for more
                end = len(self._buffer)
            syntax, self._buffer = self._buffer[:end], self._buffer[end:]
            self.removed.append(syntax)
            self.actions.extend(parse_actions(syntax))
            self._after_syntax = True


def _syntax_start(text: str) -> int | None:
    """Where the first piece of action syntax in ``text`` begins, if any."""
    starts = [
        match.start()
        for match in (_MARKER.search(text), _CALL.search(text), _SNAKE.search(text))
        if match is not None
    ]
    brace = text.find("{")
    if brace >= 0:
        starts.append(brace)
    return min(starts) if starts else None


def _partial_word_start(text: str) -> int:
    """Index from which ``text``'s last word may still become action syntax."""
    index = len(text)
    while index > 0 and (text[index - 1].isalnum() or text[index - 1] in "_"):
        index -= 1
    return index


def _syntax_end(text: str, *, final: bool) -> int | None:
    """Where the action syntax at the start of ``text`` ends (None: not yet known)."""
    if text.startswith("{"):
        close = text.find("}")
        return close + 1 if close >= 0 else (len(text) if final else None)
    marker = _MARKER.match(text)
    if marker is not None:
        rest = text[marker.end() :]
        stripped = rest.lstrip(" \t")
        offset = marker.end() + len(rest) - len(stripped)
        call = _CALL.match(stripped)
        if call is not None:
            close = _closing_paren(stripped, call.end())
            if close is None:
                return len(text) if final else None
            return _through_line_end(text, offset + close + 1)
        word = re.match(r"[A-Za-z_]+", stripped)
        if word is None:
            if not stripped and not final:
                return None  # the action's name is still to come
            return _through_line_end(text, offset)
        if word.end() == len(stripped) and not final:
            return None  # "ACTION: end_ca…"
        if word.group().lower() not in _WORDS_AFTER_MARKER:
            return offset  # "ACTION: Sure, …": only the marker goes
        return _through_line_end(text, offset + word.end())
    call = _CALL.match(text)
    if call is not None:
        close = _closing_paren(text, call.end())
        if close is None:
            return len(text) if final else None
        return _through_line_end(text, close + 1)
    snake = _SNAKE.match(text)
    if snake is not None:
        rest = text[snake.end() :]
        if rest.lstrip(" ").startswith("("):  # an unknown call: dropped whole
            close = _closing_paren(text, snake.end() + rest.index("(") + 1)
            if close is None:
                return len(text) if final else None
            return _through_line_end(text, close + 1)
        if not rest.strip() and not final:
            return None  # "end_call" may still be followed by its "("
        return snake.end()
    return len(text)


def _line_end(text: str, start: int, *, final: bool) -> int | None:
    newline = text.find("\n", start)
    if newline >= 0:
        return newline + 1
    return len(text) if final else None


def _through_line_end(text: str, end: int) -> int:
    """``end``, extended over trailing spaces and one newline (the action line's own)."""
    while end < len(text) and text[end] in " \t":
        end += 1
    if end < len(text) and text[end] == "\n":
        end += 1
    return end


ACTION_INSTRUCTIONS: Final = """\
Actions: when the caller asks for one of these, begin your reply with one line \
"ACTION: name(arguments)" and then say your answer. The actions:
schedule_callback(when, reason) - the caller wants to be called back at another time
book_appointment(when, kind) - the caller agrees to a demo, a survey or a meeting at a time
set_do_not_call() - the caller wants no more calls
transfer(target) - the caller wants to talk to a person
send_information(channel) - the caller wants information by email, sms or post
set_interest(level) - the caller shows how interested they are: cold, warm or hot
end_call() - the caller says goodbye
Write "when" in the caller's own words. Most replies need no action: then write no ACTION line. \
Never read an action out and never talk about it.
Example:
Caller: I'm busy, call me back tomorrow at ten.
You: ACTION: schedule_callback(when="tomorrow at ten", reason="busy")
Sure, I'll call you back tomorrow at ten."""
"""What the system prompt tells the model about actions (docs/dialog.md). Fixed text, so the
system prompt stays byte-stable (DESIGN.md "Known traps": the prefix cache); what a call's
purpose does not allow is said after it (``dialog/prompt.py``)."""


def resolve_spoken(
    said: str, *, now: dt.datetime, tz: ZoneInfo, window: CallingWindow | None = None
) -> ResolvedTime | None:
    """``said`` resolved with :func:`callagent.dialog.when.resolve_when` and put back into
    words with :func:`~callagent.dialog.when.spoken`; None when no time is understood or the
    calling window never opens."""
    try:
        result = resolve_when(said, now=now, tz=tz, window=window)
    except NoCallingTime:
        return None
    if result is None:
        return None
    return ResolvedTime(result.at, spoken(result.at, now=now, tz=tz), result.moved)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class ActionLog:
    """An :class:`ActionSink` that only keeps the actions: for a call nothing is stored for
    (the embedded mode without a database) and for tests."""

    can_transfer: bool = False
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    window: CallingWindow | None = None
    now: Callable[[], dt.datetime] = _utc_now
    taken: list[Action] = field(default_factory=list)

    def resolve_time(self, said: str) -> ResolvedTime | None:
        return resolve_spoken(said, now=self.now(), tz=self.tz, window=self.window)

    def take(self, action: Action) -> None:
        self.taken.append(action)
