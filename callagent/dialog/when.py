"""Times said on the phone: words → an aware datetime in the customer's zone, and back.

``resolve_when("tomorrow after three", now=..., tz=..., window=...)`` gives tomorrow 15:00 in
the customer's zone, moved into the calling window when the words land outside it;
``spoken(result.at, now=..., tz=...)`` gives "tomorrow at 3 pm" for the agent to confirm aloud.

dateparser computes the calendar (weekday names, month names with the year rolled forward,
"tomorrow", "in 2 weeks", …); the rules here cover what it gets wrong or does not know on a
phone line: clock times said in words ("half past four", "three thirty"), an hour without am or
pm, parts of the day, "the 10th" (dateparser reads it as a month), "next week", "end of the
month", corrections ("at three — actually make it four"), and the DST and calling-window rules.
Every rule is listed in docs/dialog.md; the table test in tests/data/time_expressions.tsv pins
each one to a minute. Everything here is pure and synchronous: no I/O, no clock of its own.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dateparser
import phonenumbers
from phonenumbers import timezone as phone_timezone

__all__ = [
    "CallingWindow",
    "NoCallingTime",
    "WhenResult",
    "customer_time_zone",
    "localize",
    "phone_time_zones",
    "resolve_when",
    "spoken",
]

_MIDNIGHT = dt.time(0)
_MONDAY_TO_SATURDAY = frozenset(range(6))
# How far ahead a calling window is searched for an open minute: two weeks covers any weekly
# pattern of open days.
_SEARCH_DAYS = 15


class NoCallingTime(ValueError):
    """The calling window and the agent's hours never overlap: no time can be offered."""


def localize(naive: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """``naive`` local wall time as an aware datetime in ``tz``, deterministic at DST changes.

    A wall time in a spring-forward gap (02:30 on the night clocks jump from 02:00 to 03:00)
    does not exist: it is shifted forward by the gap (→ 03:30 after the change). A wall time
    that happens twice at fall-back (01:30 when clocks go from 02:00 back to 01:00) is the
    first one (``fold=0``, still on summer time).
    """
    aware = naive.replace(tzinfo=tz, fold=0)
    # zoneinfo gives a gap time the offset from before the change (PEP 495); the round trip
    # through UTC lands on the real instant, the gap's length later on the wall clock.
    return aware.astimezone(dt.UTC).astimezone(tz)


def _at(day: dt.date, time: dt.time, tz: ZoneInfo) -> dt.datetime:
    return localize(dt.datetime.combine(day, time), tz)


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """When the agent may call a customer: the legal calling window in the customer's local
    time (``start``–``end`` on ``days``, Monday = 0) and, if given, the agent's working hours in
    the agent's own zone. Both hold for a minute to be open.

    ``end`` is exclusive; ``end = 00:00`` means the end of the day. The agent's hours may run
    overnight (an end before the start), as in ``store.services.calls.within_working_hours``.
    The defaults, 08:00–21:00 Monday to Saturday, are the common legal limits for sales calls
    (e.g. the US TCPA's 8 am–9 pm called-party time); a client sets its own.
    """

    start: dt.time = dt.time(8)
    end: dt.time = dt.time(21)
    days: frozenset[int] = _MONDAY_TO_SATURDAY
    agent_hours: tuple[dt.time, dt.time] | None = None
    agent_zone: ZoneInfo | None = None

    def __post_init__(self) -> None:
        if not self.days or not self.days <= frozenset(range(7)):
            raise ValueError("days must be a non-empty set of weekdays 0 (Monday) to 6")
        if self.end != _MIDNIGHT and self.end <= self.start:
            raise ValueError("the calling window must end after it starts")
        if (self.agent_hours is None) != (self.agent_zone is None):
            raise ValueError("agent_hours and agent_zone go together")
        if self.agent_hours is not None and self.agent_hours[0] == self.agent_hours[1]:
            raise ValueError("the agent's hours must end at another time than they start")

    @classmethod
    def always(cls) -> CallingWindow:
        """Every minute of every day (for tests and for internal calls with no limits)."""
        return cls(start=_MIDNIGHT, end=_MIDNIGHT, days=frozenset(range(7)))

    def allows(self, moment: dt.datetime, tz: ZoneInfo) -> bool:
        """Whether ``moment`` is open for a call to a customer in ``tz``."""
        local = moment.astimezone(tz)
        if local.weekday() not in self.days:
            return False
        clock = local.time().replace(tzinfo=None)
        if clock < self.start or (self.end != _MIDNIGHT and clock >= self.end):
            return False
        if self.agent_hours is None or self.agent_zone is None:
            return True
        agent_clock = moment.astimezone(self.agent_zone).time().replace(tzinfo=None)
        begin, finish = self.agent_hours
        if begin < finish:
            return begin <= agent_clock < finish
        return agent_clock >= begin or agent_clock < finish

    def next_open(self, moment: dt.datetime, tz: ZoneInfo) -> dt.datetime:
        """``moment`` itself when it is open, else the first open minute after it (in ``tz``).

        The open minutes are the intersection of daily intervals, so the first one after a
        closed moment is where one of those intervals begins: each candidate start is tried.
        Raises NoCallingTime when nothing opens within two weeks.
        """
        if self.allows(moment, tz):
            return moment.astimezone(tz)
        local_day = moment.astimezone(tz).date()
        candidates = [
            _at(local_day + dt.timedelta(days=i), self.start, tz) for i in range(_SEARCH_DAYS)
        ]
        if self.agent_hours is not None and self.agent_zone is not None:
            agent_day = moment.astimezone(self.agent_zone).date()
            candidates += [
                _at(agent_day + dt.timedelta(days=i), self.agent_hours[0], self.agent_zone)
                for i in range(-1, _SEARCH_DAYS)
            ]
        for candidate in sorted(c for c in candidates if c > moment):
            if self.allows(candidate, tz):
                return candidate.astimezone(tz)
        raise NoCallingTime("the calling window and the agent's hours never overlap")

    def opening_on(self, day: dt.date, tz: ZoneInfo) -> dt.datetime | None:
        """The first open minute of local ``day``, or None when ``day`` is closed."""
        first = self.next_open(_at(day, _MIDNIGHT, tz), tz)
        return first if first.date() == day else None


@dataclass(frozen=True, slots=True)
class WhenResult:
    """A resolved time.

    ``at`` is when to call, aware, in the customer's zone, inside the window. ``requested``
    is what the words said; ``moved`` is True when the window moved it (the agent should say
    so and offer ``at``). ``time_said`` is False when the caller named only a day and the
    clock time is the default (the agent may ask "what time suits you?").
    """

    at: dt.datetime
    requested: dt.datetime
    moved: bool
    time_said: bool


# --- What was said, one segment at a time ----------------------------------------------------

_DateRule = Literal["today", "weekday", "day_of_month", "other"]


@dataclass(slots=True)
class _Said:
    """What one stretch of words said. Later stretches override the fields they set."""

    date: dt.date | None = None
    date_rule: _DateRule = "other"
    clock: tuple[int, int] | None = None  # as said: hour 0–23 (1–12 when meridiem is open)
    meridiem: Literal["am", "pm"] | None = None
    shift_min: int = 0  # "before five" is 16:00
    part: str | None = None  # a named part of the day, see _PARTS
    first_thing: bool = False
    exact: dt.datetime | None = None  # an instant, from "in 20 minutes"
    negated: bool = False

    def has_time_of_day(self) -> bool:
        return self.clock is not None or self.part is not None or self.first_thing

    def is_empty(self) -> bool:
        return self.date is None and self.exact is None and not self.has_time_of_day()


# A named part of the day: its clock time, and whether an hour said with it is am or pm.
_PARTS: dict[str, tuple[dt.time, Literal["am", "pm"] | None]] = {
    "morning": (dt.time(10), "am"),
    "late morning": (dt.time(11), "am"),
    "noon": (dt.time(12), None),
    "lunchtime": (dt.time(12, 30), None),
    "after lunch": (dt.time(13, 30), "pm"),
    "early afternoon": (dt.time(13), "pm"),
    "afternoon": (dt.time(15), "pm"),
    "late afternoon": (dt.time(16), "pm"),
    "end of day": (dt.time(17), "pm"),
    "evening": (dt.time(18), "pm"),
    "early evening": (dt.time(17), "pm"),
    "late evening": (dt.time(20), "pm"),
    "tonight": (dt.time(19), "pm"),
    "midnight": (dt.time(0), None),
}
_PART_WORDS = re.compile(
    r"\b(?:(?P<mod>early|late)\s+(?:in\s+the\s+)?)?"
    r"(?P<part>morning|afternoon|evening|tonight|night|noon|midday|midnight|"
    r"after\s+lunch|lunch\s*time|lunch|end\s+of\s+(?:the\s+)?(?:day|business)|"
    r"close\s+of\s+business)\b"
)

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = tuple(name.lower() for name in calendar.month_name[1:])
_WEEKDAY = "(?:" + "|".join(_WEEKDAYS) + ")"
_MONTH = "(?:" + "|".join(_MONTHS) + ")"

# --- Words to digits -------------------------------------------------------------------------

# fmt: off
_CARDINAL_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)
_ORDINAL_WORDS = (
    "zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
    "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
    "sixteenth", "seventeenth", "eighteenth", "nineteenth",
)
# fmt: on
_CARDINALS = {word: n for n, word in enumerate(_CARDINAL_WORDS)}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50}
_ORDINALS = {word: n for n, word in enumerate(_ORDINAL_WORDS)}
_ORDINALS |= {"twentieth": 20, "thirtieth": 30}
# "first" and "second" are ordinary words too ("first thing", "give me a second"): they count
# as a day only after one of these.
_ORDINAL_CUES = {"the", "of", "twenty", "thirty", *_MONTHS}


def _suffix(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _words_to_digits(text: str) -> str:
    words = text.split()
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if word in _TENS and nxt in _CARDINALS and 0 < _CARDINALS[nxt] < 10:
            out.append(str(_TENS[word] + _CARDINALS[nxt]))
            i += 2
            continue
        if word in _TENS and nxt in _ORDINALS and 0 < _ORDINALS[nxt] < 10:
            n = _TENS[word] + _ORDINALS[nxt]
            out.append(f"{n}{_suffix(n)}")
            i += 2
            continue
        if word in _TENS:
            out.append(str(_TENS[word]))
        elif word in _CARDINALS:
            out.append(str(_CARDINALS[word]))
        elif word in _ORDINALS and (
            word not in ("first", "second") or (out and out[-1] in _ORDINAL_CUES)
        ):
            n = _ORDINALS[word]
            out.append(f"{n}{_suffix(n)}")
        else:
            out.append(word)
        i += 1
    return " ".join(out)


# Phrases rewritten before anything is matched, in order.
_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"[\u2019`]", "'"),
        (r"\b([ap])\.\s?m\b\.?", r"\1m"),
        (r"[\u2013\u2014]|--|\.\.\.", ","),
        (r"(?<=[a-z])-(?=[a-z])", " "),
        (r"[!?;]", ","),
        (r"\.(?!\d)", ","),
        (r"\bo'? ?clock\b", "oclock"),
        (r"\bfirst thing\b", "firstthing"),
        (r"\bearly (?:in the )?morning\b", "firstthing"),
        (r"\bas early as (?:possible|you can)\b", "firstthing"),
    )
)
# After the words became digits.
_DIGIT_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"(\d)\s*([ap])\s?m\b", r"\1 \2m"),
        (r"\b12 (noon|midnight)\b", r"\1"),
        (r"\b(\d{1,2}) oh (\d)\b", r"\1:0\2"),
        (r"\b(\d{1,2}) hundred(?: hours)?\b", r"\1:00"),
        (r"\b(?:no|not) later than\b", "before"),
        (r"\bnot (?:before|earlier than)\b|\bno earlier than\b", "after"),
        (r"\bnot after\b", "before"),
        (r"\bbetween (\S+) and \S+", r"at \1"),
        (r"\bfrom (\d{1,2}(?::\d\d)?(?: [ap]m)?) (?:to|till|until|til) \S+", r"at \1"),
        (r"\b(?:an|a|1) hours? and a half\b|\b1 and a half hours?\b", "90 minutes"),
        (r"\b(\d+) and a half hours?\b", r"\1.5 hours"),
        (r"\bhalf (?:an|a) hour\b|\bhalf hour\b", "30 minutes"),
        (r"\b(?:a )?quarter (?:of )?(?:an )?hour\b", "15 minutes"),
        (r"\b(?:a )?couple(?: of)?\b", "2"),
        (r"\ba few (minutes|mins)\b", r"5 \1"),
        (r"\ba few\b", "3"),
        (r"\ba fortnight\b", "2 weeks"),
        (r"\b(?:an|a) (minute|hour|day|week|month)\b", r"1 \1"),
        (
            r"\b(\d+) (minutes?|mins?|hours?|hrs?|days?|weeks?|months?) from (?:now|today)\b",
            r"in \1 \2",
        ),
        (r"\b(\d+) weeks? today\b", r"in \1 weeks"),
    )
)

# Where one stretch ends and a correction or an alternative begins: the last one said wins.
_SEGMENT_BREAK = re.compile(
    r",|\b(?:actually|no wait|wait|or rather|rather|i mean|sorry|scratch that|make it|"
    r"or better|better yet|instead|but|or|no)\b"
)


def _normalise(text: str) -> str:
    text = " ".join(text.lower().split())
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    text = _words_to_digits(text.replace(",", " , "))
    for pattern, replacement in _DIGIT_REWRITES:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


# --- Dates -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    now: dt.datetime  # aware, in the customer's zone, to the minute
    tz: ZoneInfo
    window: CallingWindow

    @property
    def today(self) -> dt.date:
        return self.now.date()


def _group(match: re.Match[str], name: str) -> str | None:
    value = match.groupdict().get(name)
    return value if value is not None else match.groupdict().get(name + "2")


class _Unify:
    """Lets handlers read ``match["day"]`` whichever alternative of a pattern matched."""

    def __init__(self, match: re.Match[str]) -> None:
        self._match = match

    def __getitem__(self, name: str) -> str | None:
        return _group(self._match, name)


def _dateparser(phrase: str, ctx: _Context) -> dt.datetime | None:
    """dateparser on one date phrase, relative to the customer's local wall time.

    Only the calendar date, or the length of a duration, is taken from its answer: the local
    time is then built with zoneinfo by ``localize``, so the DST rule stays ours (dateparser's
    own RETURN_AS_TIMEZONE_AWARE path localises with pytz and has no such rule).
    """
    return dateparser.parse(
        phrase,
        languages=["en"],
        settings={
            "PREFER_DATES_FROM": "future",
            "RELATIVE_BASE": ctx.now.replace(tzinfo=None),
            "RETURN_AS_TIMEZONE_AWARE": False,
        },
    )


def _next_monday(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=7 - day.weekday())


def _end_of_month(ctx: _Context, months_ahead: int) -> dt.date:
    """The last open weekday of the month (this one, or the next once it is past)."""
    year, month = ctx.today.year, ctx.today.month
    for _ in range(months_ahead):
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    for _ in range(3):
        last = calendar.monthrange(year, month)[1]
        for day in range(last, 0, -1):
            candidate = dt.date(year, month, day)
            if candidate.weekday() in ctx.window.days and candidate >= ctx.today:
                return candidate
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return ctx.today


def _day_of_month(day: int, ctx: _Context) -> dt.date | None:
    """The next date with this day of the month, today included."""
    year, month = ctx.today.year, ctx.today.month
    for _ in range(13):
        if day <= calendar.monthrange(year, month)[1]:
            candidate = dt.date(year, month, day)
            if candidate >= ctx.today:
                return candidate
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


_DateHandler = Callable[["_Unify", _Context, _Said], bool]


def _on_duration(match: _Unify, ctx: _Context, said: _Said) -> bool:
    amount, unit = match["n"], match["unit"]
    unit = {"min": "minute", "mins": "minutes", "hr": "hour", "hrs": "hours"}.get(unit, unit)
    parsed = _dateparser(f"in {amount} {unit}", ctx)
    if parsed is None:
        return False
    if unit.startswith(("minute", "hour")):
        # Elapsed time: "in an hour" at 01:30 on a fall-back night is 01:30 again, an hour
        # later, not the wall clock plus one.
        said.exact = ctx.now.astimezone(dt.UTC) + (parsed - ctx.now.replace(tzinfo=None))
    else:
        said.date = parsed.date()
    return True


def _on_weeks_from(match: _Unify, ctx: _Context, said: _Said) -> bool:
    base = ctx.today if match["base"] == "today" else None
    if match["base"] == "tomorrow":
        base = ctx.today + dt.timedelta(days=1)
    elif base is None:
        parsed = _dateparser(match["base"], ctx)
        if parsed is None:
            return False
        base = parsed.date()
    said.date = base + dt.timedelta(weeks=int(match["n"]))
    return True


def _on_end_of_month(match: _Unify, ctx: _Context, said: _Said) -> bool:
    said.date = _end_of_month(ctx, 1 if match["next"] else 0)
    return True


def _on_end_of_week(match: _Unify, ctx: _Context, said: _Said) -> bool:
    # The working week ends on Friday; on a weekend it is the coming one.
    offset = 4 - ctx.today.weekday()
    said.date = ctx.today + dt.timedelta(days=offset if offset >= 0 else offset + 7)
    if match["next"]:
        said.date += dt.timedelta(weeks=1)
    return True


def _on_next_week_day(match: _Unify, ctx: _Context, said: _Said) -> bool:
    said.date = _next_monday(ctx.today) + dt.timedelta(days=_WEEKDAYS.index(match["day"]))
    return True


def _on_next_week(match: _Unify, ctx: _Context, said: _Said) -> bool:
    said.date = _next_monday(ctx.today)
    return True


def _on_weekend(match: _Unify, ctx: _Context, said: _Said) -> bool:
    offset = 5 - ctx.today.weekday()
    said.date = ctx.today + dt.timedelta(days=max(offset, 0))
    said.date_rule = "weekday"
    return True


def _on_month_day(match: _Unify, ctx: _Context, said: _Said) -> bool:
    parsed = _dateparser(f"{match['month']} {int(match['day'])}", ctx)
    if parsed is None:
        return False
    said.date = parsed.date()
    if said.date < ctx.today:  # dateparser keeps today's year for a date earlier this year
        said.date = said.date.replace(year=said.date.year + 1)
    said.date_rule = "day_of_month"
    return True


def _on_ordinal_day(match: _Unify, ctx: _Context, said: _Said) -> bool:
    # dateparser reads "the 8th" as August: a lone ordinal on the phone is a day of the month.
    day = _day_of_month(int(match["day"]), ctx)
    if day is None:
        return False
    said.date, said.date_rule = day, "day_of_month"
    return True


def _on_relative_day(match: _Unify, ctx: _Context, said: _Said) -> bool:
    word = match["word"]
    if word in ("today", "tonight", "this"):
        said.date, said.date_rule = ctx.today, "today"
        return True
    parsed = _dateparser(word, ctx)  # "tomorrow", "day after tomorrow"
    if parsed is None:
        return False
    said.date = parsed.date()
    return True


def _on_weekday(match: _Unify, ctx: _Context, said: _Said) -> bool:
    day = match["day"]
    if _WEEKDAYS.index(day) == ctx.today.weekday() and not match["next"]:
        # "Friday at four" said on a Friday is today; past times move a week on (below).
        said.date, said.date_rule = ctx.today, "weekday"
        return True
    # dateparser: the first such day after today, also for "next Friday" (said on a Tuesday,
    # that is three days on; the agent confirms the date aloud, so the caller can correct it).
    parsed = _dateparser(day, ctx)
    if parsed is None:
        return False
    said.date = parsed.date()
    return True


_UNIT = r"(?P<unit>minutes?|mins?|hours?|hrs?|days?|weeks?|months?)"
# Date phrases, most specific first; a later, less specific one does not override an earlier.
_DATE_PATTERNS: tuple[tuple[re.Pattern[str], _DateHandler], ...] = tuple(
    (re.compile(pattern), handler)
    for pattern, handler in (
        (r"\bin (?P<n>\d+(?:\.\d+)?) " + _UNIT + r"\b", _on_duration),
        (
            r"\b(?P<n>\d+) weeks? from (?:(?:this|next) )?"
            r"(?P<base>today|tomorrow|" + _WEEKDAY + r")\b",
            _on_weeks_from,
        ),
        (
            r"\b(?:the )?(?:end|last day) of (?:the |this |(?P<next>next) )?month\b",
            _on_end_of_month,
        ),
        (r"\b(?:the )?end of (?:the |this |(?P<next>next) )?week\b", _on_end_of_week),
        (
            r"\b(?:the )?(?P<day>\d{1,2})(?:st|nd|rd|th)? (?:of )?(?P<month>" + _MONTH + r")\b"
            r"|\b(?P<month2>" + _MONTH + r") (?:the )?(?P<day2>\d{1,2})(?:st|nd|rd|th)?\b",
            _on_month_day,
        ),
        (r"\b(?:on )?the (?P<day>\d{1,2})(?:st|nd|rd|th)\b", _on_ordinal_day),
        (
            r"\bnext week(?: on)? (?P<day>" + _WEEKDAY + r")\b"
            r"|\b(?P<day2>" + _WEEKDAY + r") (?:of )?next week\b",
            _on_next_week_day,
        ),
        (r"\b(?:(?:early|beginning of|start of) )?(?:the )?next week\b", _on_next_week),
        (r"\b(?:this |the )?weekend\b", _on_weekend),
        (
            r"\b(?P<word>(?:the )?day after tomorrow|tomorrow|today|tonight|"
            r"this(?= (?:morning|afternoon|evening)))\b",
            _on_relative_day,
        ),
        (
            r"\b(?:(?P<next>next|following)|this coming|coming|this|on)?\s*"
            r"(?P<day>" + _WEEKDAY + r")s?\b",
            _on_weekday,
        ),
    )
)


# --- Clock times ------------------------------------------------------------------------------

_AFTER_CLOCK_MERIDIEM = re.compile(r"^\s*(?P<m>am|pm)\b")
_NOT_A_TIME_AFTER = r"(?!\s*(?:st|nd|rd|th|minutes?|mins?|hours?|hrs?|days?|weeks?|months?)\b)"
_MINUTE_WORDS = {"quarter": 15, "half": 30}
# Each pattern gives: h (hour said), and m (minutes), or mw/mn with rel ("quarter to"), or
# hh ("half nine"), or a cue word before a bare hour ("before five").
_CLOCK_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern)
    for pattern in (
        # "half past four", "quarter to five", "quarter after ten", "quarter of five"
        r"\b(?:a )?(?P<mw>quarter|half)\s+(?P<rel>past|after|to|till|til|of)\s+(?P<h>\d{1,2})\b",
        # "10 past 2", "20 to 3", "7 minutes past 4"
        r"\b(?P<mn>5|10|15|20|25|\d{1,2}(?= minutes?))(?: minutes?)?\s+"
        r"(?P<rel>past|to|till|til)\s+(?P<h>\d{1,2})\b",
        # "3:30", "15:00", "3 30" (from "three thirty")
        r"\b(?P<h>\d{1,2})(?::| )(?P<m>[0-5]\d)\b" + _NOT_A_TIME_AFTER,
        # "half nine" (British: 9:30)
        r"\bhalf (?P<hh>\d{1,2})\b" + _NOT_A_TIME_AFTER,
        # "4 oclock", "4 pm"
        r"\b(?P<h>\d{1,2})\s*(?=oclock|am\b|pm\b)",
        # "at 4", "after 6", "before 5", "tomorrow 9", "make it 4" (a segment of its own)
        r"(?:\b(?P<cue>at|after|before|around|about|by|until|till|say|for)|⟨d⟩|^)"
        r"\s*(?P<h>\d{1,2})\b(?![:.]\d)" + _NOT_A_TIME_AFTER,
    )
)


def _clock_from(match: re.Match[str]) -> tuple[int, int, int] | None:
    """(hour, minute, shift in minutes) from one clock pattern's match, or None."""
    groups = {k: v for k, v in match.groupdict().items() if v is not None}
    if "hh" in groups:
        return (int(groups["hh"]), 30, 0) if int(groups["hh"]) <= 12 else None
    hour = int(groups["h"])
    if hour > 23:
        return None
    rel = groups.get("rel")
    if rel is not None:
        minutes = _MINUTE_WORDS[groups["mw"]] if "mw" in groups else int(groups["mn"])
        if groups.get("mw") == "half" and rel != "past":
            return None
        if rel in ("past", "after"):
            return hour, minutes, 0
        return (hour - 1 if hour > 1 else 12), 60 - minutes, 0
    if "m" in groups:
        return hour, int(groups["m"]), 0
    # "before five": an hour earlier, so the call comes before the time said
    shift = -60 if groups.get("cue") in ("before", "by", "until", "till") else 0
    return hour, 0, shift


def _blank(text: str, match: re.Match[str], fill: str = " ") -> str:
    """``text`` with ``match`` replaced by ``fill`` (padded, so later positions stay put)."""
    start, end = match.span()
    return text[:start] + fill.ljust(end - start) + text[end:]


_PART_ALIASES = {
    "night": "tonight",
    "midday": "noon",
    "lunch time": "lunchtime",
    "lunch": "lunchtime",
    "close of business": "end of day",
    "end of business": "end of day",
    "end of the business": "end of day",
    "end of the day": "end of day",
}


# --- One segment --------------------------------------------------------------------------------


def _parse_segment(segment: str, ctx: _Context) -> _Said:
    said = _Said()
    text = f" {segment.strip()} "
    if text.strip().startswith("not "):
        said.negated = True  # "not Monday, Tuesday": the negated stretch says nothing
        return said
    # Date phrases, most specific first: the first understood one is the date, and every
    # date phrase is cut out so its digits are not read as an hour.
    found = False
    for pattern, handler in _DATE_PATTERNS:
        for match in list(pattern.finditer(text)):
            if not found:
                found = handler(_Unify(match), ctx, said)
            if found:
                text = _blank(text, match, "⟨d⟩")
    if said.exact is not None:
        said.date = None
    # Named parts of the day, read on the whole segment ("at 8 tonight": pm, and today).
    for match in _PART_WORDS.finditer(segment):
        part = " ".join(match["part"].split())
        part = _PART_ALIASES.get(part, part)
        if match["mod"] and f"{match['mod']} {part}" in _PARTS:
            part = f"{match['mod']} {part}"
        said.part = part
        if part == "tonight" and said.date is None and said.exact is None:
            said.date, said.date_rule = ctx.today, "today"
    if "firstthing" in text:
        said.first_thing, said.part = True, None
    # Clock times, most specific pattern first; the last one said in the segment wins.
    best: tuple[int, tuple[int, int, int], re.Match[str]] | None = None
    for pattern in _CLOCK_PATTERNS:
        for match in list(pattern.finditer(text)):
            clock = _clock_from(match)
            if clock is None:
                continue
            if best is None or match.start() >= best[0]:
                best = (match.start(), clock, match)
            text = _blank(text, match)  # not read again by a looser pattern
    if best is not None:
        hour, minute, shift = best[1]
        said.clock, said.shift_min = (hour, minute), shift
        tail = best[2].string[best[2].end() :]
        after = _AFTER_CLOCK_MERIDIEM.match(tail)
        if after is not None:
            said.meridiem = "am" if after["m"] == "am" else "pm"
        if said.part == "noon":
            said.part = None
    return said


def _segments(text: str) -> list[str]:
    return [part for part in _SEGMENT_BREAK.split(text) if part and part.strip()]


def _merge(earlier: _Said, later: _Said) -> _Said:
    """``later`` corrects ``earlier``: each field it says replaces the earlier one."""
    if later.negated or later.is_empty():
        return earlier
    if later.exact is not None:
        return later
    merged = replace(earlier, exact=None) if earlier.exact is not None else replace(earlier)
    if later.date is not None:
        merged.date, merged.date_rule = later.date, later.date_rule
    if later.clock is not None or later.first_thing:
        merged.clock, merged.meridiem, merged.shift_min = (
            later.clock,
            later.meridiem,
            later.shift_min,
        )
        merged.first_thing = later.first_thing
        merged.part = later.part
    elif later.part is not None:
        # "at four, tomorrow afternoon": a part of the day alone keeps a clock that needs one
        if merged.clock is None or merged.meridiem is not None:
            merged.clock, merged.shift_min, merged.first_thing = None, 0, False
        merged.part = later.part
    return merged


# --- Putting it together --------------------------------------------------------------------------


def _clock_time(said: _Said) -> dt.time | None:
    """The 24-hour clock time said, with the phone rule for an hour without am or pm."""
    if said.clock is not None:
        hour, minute = said.clock
        meridiem = said.meridiem or (_PARTS[said.part][1] if said.part in _PARTS else None)
        if hour <= 12 and meridiem == "am":
            hour = 0 if hour == 12 else hour
        elif hour < 12 and meridiem == "pm":
            hour += 12
        elif 1 <= hour <= 7 and meridiem is None:
            # The phone rule: said without am or pm, 1:00–7:59 is the afternoon (nobody asks
            # for a call at 3 am) and 8:00–11:59 the morning; 12 is noon.
            hour += 12
        total = (hour * 60 + minute + said.shift_min) % (24 * 60)
        return dt.time(total // 60, total % 60)
    if said.part is not None:
        return _PARTS[said.part][0]
    return None


def _ceil_hour(moment: dt.datetime) -> dt.datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + dt.timedelta(hours=1)


def resolve_when(
    text: str,
    *,
    now: dt.datetime,
    tz: ZoneInfo,
    window: CallingWindow | None = None,
    default_time: dt.time = dt.time(10),
) -> WhenResult | None:
    """The time the caller means by ``text``, in zone ``tz``, inside ``window``.

    ``now`` must be aware (any zone; it is read in ``tz``). ``default_time`` is the clock time
    for a day said without one. Returns None when no time is understood or the time said has
    passed today ("this morning" at noon): the agent asks again. Raises NoCallingTime when the
    window never opens.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    window = window or CallingWindow()
    ctx = _Context(now=now.astimezone(tz).replace(second=0, microsecond=0), tz=tz, window=window)
    said = _Said()
    for segment in _segments(_normalise(text)):
        said = _merge(said, _parse_segment(segment, ctx))
    if said.is_empty():
        return None
    requested = _requested(said, ctx, default_time)
    if requested is None:
        return None
    at = window.next_open(requested, tz)
    time_said = said.exact is not None or said.has_time_of_day()
    return WhenResult(at=at, requested=requested, moved=at != requested, time_said=time_said)


def _requested(said: _Said, ctx: _Context, default_time: dt.time) -> dt.datetime | None:
    tz = ctx.tz
    if said.exact is not None:
        return said.exact.astimezone(tz).replace(second=0, microsecond=0)
    day = said.date if said.date is not None else ctx.today

    def build(on: dt.date) -> dt.datetime:
        if said.first_thing:
            opening = ctx.window.opening_on(on, tz)
            return opening if opening is not None else _at(on, ctx.window.start, tz)
        clock = _clock_time(said)
        return _at(on, clock if clock is not None else default_time, tz)

    moment = build(day)
    if moment > ctx.now:
        return moment
    if not said.has_time_of_day() and day == ctx.today:
        # "today" or "end of the week" on a Friday, with the default time gone: the next full
        # hour at least 30 minutes away.
        return _ceil_hour(ctx.now + dt.timedelta(minutes=30))
    if said.date is None:  # a time alone: today if still ahead, else tomorrow
        return build(ctx.today + dt.timedelta(days=1))
    if said.date_rule == "weekday":  # "Friday at nine" said on Friday at noon: next Friday
        return build(day + dt.timedelta(weeks=1))
    if said.date_rule == "day_of_month":
        later = _day_of_month(day.day, replace(ctx, now=ctx.now + dt.timedelta(days=1)))
        return build(later) if later is not None else None
    return None  # "this morning" said at noon: the agent asks again


# --- Saying it back ---------------------------------------------------------------------------


def _clock_words(local: dt.datetime) -> str:
    if local.hour == 12 and local.minute == 0:
        return "noon"
    if local.hour == 0 and local.minute == 0:
        return "midnight"
    hour = local.hour % 12 or 12
    meridiem = "am" if local.hour < 12 else "pm"
    if local.minute == 0:
        return f"{hour} {meridiem}"
    return f"{hour}:{local.minute:02d} {meridiem}"


def spoken(at: dt.datetime, *, now: dt.datetime, tz: ZoneInfo) -> str:
    """``at`` as the agent says it to a customer in ``tz`` at ``now``: "today at 4:30 pm",
    "tomorrow at 3 pm", "Tuesday the 8th at 2 pm", "Wednesday the 1st of April at noon"
    (the month is named when it is not the current one, and "next year" added a year on)."""
    local = at.astimezone(tz)
    today = now.astimezone(tz).date()
    days = (local.date() - today).days
    if days == 0:
        day = "today"
    elif days == 1:
        day = "tomorrow"
    else:
        day = f"{_WEEKDAYS[local.weekday()].capitalize()} the {local.day}{_suffix(local.day)}"
        if (local.year, local.month) != (today.year, today.month):
            day += f" of {calendar.month_name[local.month]}"
        if days > 300:
            day += " next year" if local.year == today.year + 1 else f" {local.year}"
    return f"{day} at {_clock_words(local)}"


# --- The customer's zone ------------------------------------------------------------------------


def phone_time_zones(phone: str) -> tuple[str, ...]:
    """The IANA zones phonenumbers' metadata gives for an international number (in its own,
    alphabetical order); empty for a number it cannot place or parse."""
    text = phone.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = phone_timezone.time_zones_for_number(number)
    return tuple(zone for zone in zones if _zone(zone) is not None)


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def customer_time_zone(phone: str, stored: str | None, fallback: str) -> ZoneInfo:
    """The customer's time zone: ``stored`` (the customer record's) when it names a zone, else
    the one zone of the phone number, else ``fallback`` (the agent's).

    A number spanning several zones (a US toll-free number, an Australian mobile) gives
    ``fallback`` when it is one of them — the business and its customer are likely in one
    region — otherwise the first of phonenumbers' list: deterministic, but a guess; callers
    that need certainty check ``phone_time_zones`` or ask the customer.
    """
    chosen = _zone(stored)
    if chosen is not None:
        return chosen
    zones = phone_time_zones(phone)
    if len(zones) > 1 and fallback in zones:
        zones = (fallback,)
    if zones:
        found = _zone(zones[0])
        if found is not None:
            return found
    default = _zone(fallback)
    if default is None:
        raise ValueError(f"unknown fallback time zone {fallback!r}")
    return default
