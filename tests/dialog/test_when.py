"""Spoken time expressions (callagent/dialog/when.py, docs/dialog.md "Times said on the phone").

The table test reads tests/data/time_expressions.tsv: every expression is resolved in three zones
(one with US DST dates, one with EU dates, one southern-hemisphere) on five Fridays, each just
before a DST change in one of them, and must land on the exact local minute. The ``tune`` rows
shaped the rules; the ``held_out`` rows never did, and their failures are kept as strict xfails
so the held-out figure in docs/dialog.md stays honest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callagent.dialog.when import (
    CallingWindow,
    NoCallingTime,
    customer_time_zone,
    localize,
    phone_time_zones,
    resolve_when,
    spoken,
)

DATA = Path(__file__).resolve().parents[1] / "data"
# The table (tune and held-out rows, written before the rules) and a second held-out set
# written after them, in caller-transcript style (blind rows).
TABLES = (DATA / "time_expressions.tsv", DATA / "time_expressions_blind.tsv")
ZONES = ("America/New_York", "Europe/Berlin", "Australia/Sydney")
# The Friday before each DST change of 2026 (the change itself is on the Sunday): the table's
# Monday-and-later answers sit on the other side of it. `now` is 11:30 local on each.
EDGES = {
    "us_spring": dt.date(2026, 3, 6),  # New York: 8 March, 02:00 → 03:00
    "eu_spring": dt.date(2026, 3, 27),  # Berlin: 29 March, 02:00 → 03:00
    "au_spring": dt.date(2026, 10, 2),  # Sydney: 4 October, 02:00 → 03:00
    "eu_fall": dt.date(2026, 10, 23),  # Berlin: 25 October, 03:00 → 02:00
    "us_fall": dt.date(2026, 10, 30),  # New York: 1 November, 02:00 → 01:00
}
NOW_CLOCK = dt.time(11, 30)
TABLE_WINDOW = CallingWindow(start=dt.time(8), end=dt.time(21), days=frozenset(range(6)))

# Held-out and blind rows that fail, with the reason, found when their figure was taken after
# tuning had ended. Keyed by expression; they are reported in docs/dialog.md, not tuned away.
HELD_OUT_FAILURES: dict[str, str] = {
    "Call me back in about an hour.": "a hedge inside a duration ('in about N') is not read: None",
    "Wednesday afternoon, around 2 or 3": "'2 or 3' is read as a correction, the last wins: 15:00",
    "How about the first Monday of next month?": "'the first' is read as the 1st of the month",
    "I'll be home by six": "'by six' is read as a deadline (17:00), not as 'from six on'",
    "Could you try me again Tuesday week?": "British 'Tuesday week' is read as the coming Tuesday",
}


@dataclass(frozen=True)
class Row:
    number: int
    split: str
    expression: str
    expected: str
    moved: bool

    def expected_local(self, edge: str) -> str | None:
        """The expected local minute as "YYYY-MM-DD HH:MM", or None."""
        if self.expected == "none":
            return None
        if self.expected.startswith("+"):
            days, clock = self.expected[1:].split()
            day = EDGES[edge] + dt.timedelta(days=int(days))
            return f"{day.isoformat()} {clock}"
        per_edge = dict(item.strip().split("=") for item in self.expected.split(";"))
        return per_edge[edge]


def load_table(path: Path) -> list[Row]:
    rows: list[Row] = []
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    header = lines[0].split("\t")
    assert header == ["split", "expression", "expected", "moved"]
    for number, line in enumerate(lines[1:], start=1):
        split, expression, expected, moved = line.split("\t")
        assert split in ("tune", "held_out", "blind")
        assert moved in ("yes", "no")
        rows.append(Row(number, split, expression, expected, moved == "yes"))
    return rows


ROWS = [row for table in TABLES for row in load_table(table)]


def table_cases() -> list[object]:
    cases: list[object] = []
    for row in ROWS:
        marks = []
        if row.split != "tune" and row.expression in HELD_OUT_FAILURES:
            marks.append(pytest.mark.xfail(strict=True, reason=HELD_OUT_FAILURES[row.expression]))
        for zone in ZONES:
            for edge in EDGES:
                case_id = f"{row.split}-{row.number:02d}-{zone.split('/')[1]}-{edge}"
                cases.append(pytest.param(row, zone, edge, id=case_id, marks=marks))
    return cases


def friday_now(zone: str, edge: str) -> dt.datetime:
    return localize(dt.datetime.combine(EDGES[edge], NOW_CLOCK), ZoneInfo(zone))


def test_the_table_has_enough_expressions_and_a_third_kept_out_of_tuning() -> None:
    first = load_table(TABLES[0])
    assert len(first) >= 40
    assert len([row for row in first if row.split == "held_out"]) * 3 == len(first)
    untuned = {row.expression for row in ROWS if row.split != "tune"}
    assert set(HELD_OUT_FAILURES) <= untuned


@pytest.mark.parametrize(("row", "zone", "edge"), table_cases())
def test_table(row: Row, zone: str, edge: str) -> None:
    tz = ZoneInfo(zone)
    now = friday_now(zone, edge)
    result = resolve_when(row.expression, now=now, tz=tz, window=TABLE_WINDOW)
    expected = row.expected_local(edge)
    if expected is None:
        assert result is None, f"{row.expression!r} → {result}"
        return
    assert result is not None, f"{row.expression!r} not understood"
    assert f"{result.at:%Y-%m-%d %H:%M}" == expected, row.expression
    # The same instant as that wall time in the zone (its offset after any DST change).
    wanted = localize(dt.datetime.fromisoformat(expected), tz)
    assert result.at == wanted
    assert result.at.utcoffset() == wanted.utcoffset()
    assert result.at.tzinfo == tz
    assert result.moved is row.moved, row.expression


# --- DST -----------------------------------------------------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SYDNEY = ZoneInfo("Australia/Sydney")
KOLKATA = ZoneInfo("Asia/Kolkata")
ALWAYS = CallingWindow.always()


@pytest.mark.parametrize(
    ("tz", "naive", "expected", "offset_h"),
    [
        # spring-forward gap: shifted forward by the gap
        (NEW_YORK, "2026-03-08 02:30", "2026-03-08 03:30", -4),
        (BERLIN, "2026-03-29 02:30", "2026-03-29 03:30", 2),
        (SYDNEY, "2026-10-04 02:15", "2026-10-04 03:15", 11),
        # fall-back repeat: the first of the two (still summer time)
        (NEW_YORK, "2026-11-01 01:30", "2026-11-01 01:30", -4),
        (BERLIN, "2026-10-25 02:30", "2026-10-25 02:30", 2),
        (SYDNEY, "2026-04-05 02:30", "2026-04-05 02:30", 11),
        # ordinary times are untouched
        (NEW_YORK, "2026-03-08 04:00", "2026-03-08 04:00", -4),
        (KOLKATA, "2026-03-08 02:30", "2026-03-08 02:30", 5.5),
    ],
)
def test_localize_is_deterministic_at_dst_changes(
    tz: ZoneInfo, naive: str, expected: str, offset_h: float
) -> None:
    local = localize(dt.datetime.fromisoformat(naive), tz)
    assert f"{local:%Y-%m-%d %H:%M}" == expected
    assert local.utcoffset() == dt.timedelta(hours=offset_h)


@pytest.mark.parametrize(
    ("tz", "now", "text", "expected", "offset_h"),
    [
        # a wall time in the gap, said the evening before: an hour later
        (NEW_YORK, "2026-03-07 20:00", "tomorrow at 2:30 am", "2026-03-08 03:30", -4),
        (BERLIN, "2026-03-28 20:00", "tomorrow at 2:30 am", "2026-03-29 03:30", 2),
        # a wall time that happens twice: the first
        (NEW_YORK, "2026-10-31 20:00", "tomorrow at 1:30 am", "2026-11-01 01:30", -4),
        (BERLIN, "2026-10-24 20:00", "tomorrow at 2:30 am", "2026-10-25 02:30", 2),
        # durations are elapsed time: an hour after 01:10 summer time is 01:10 winter time
        (NEW_YORK, "2026-11-01 01:10", "in an hour", "2026-11-01 01:10", -5),
        (NEW_YORK, "2026-03-08 01:45", "in 30 minutes", "2026-03-08 03:15", -4),
        (BERLIN, "2026-10-25 02:20", "in twenty minutes", "2026-10-25 02:40", 2),
        # a day said across the change keeps its wall time
        (NEW_YORK, "2026-03-07 10:00", "Monday at 9", "2026-03-09 09:00", -4),
        (SYDNEY, "2026-04-04 10:00", "Monday at 9", "2026-04-06 09:00", 10),
    ],
)
def test_resolving_across_dst_changes(
    tz: ZoneInfo, now: str, text: str, expected: str, offset_h: int
) -> None:
    result = resolve_when(
        text, now=localize(dt.datetime.fromisoformat(now), tz), tz=tz, window=ALWAYS
    )
    assert result is not None
    assert f"{result.at:%Y-%m-%d %H:%M}" == expected
    assert result.at.utcoffset() == dt.timedelta(hours=offset_h)
    assert not result.moved


def test_the_calling_window_opens_on_the_local_clock_after_a_dst_change() -> None:
    now = localize(dt.datetime(2026, 3, 7, 22, 0), NEW_YORK)  # Saturday night
    result = resolve_when("in an hour", now=now, tz=NEW_YORK, window=TABLE_WINDOW)
    assert result is not None
    assert result.moved
    assert f"{result.at:%Y-%m-%d %H:%M %z}" == "2026-03-09 08:00 -0400"


# --- The calling window ----------------------------------------------------------------------


def test_weekdays_only_moves_a_saturday_to_monday() -> None:
    window = CallingWindow(days=frozenset(range(5)))
    now = localize(dt.datetime(2026, 3, 6, 11, 30), NEW_YORK)
    result = resolve_when("tomorrow at 3", now=now, tz=NEW_YORK, window=window)
    assert result is not None
    assert result.moved
    assert f"{result.requested:%a %H:%M}" == "Sat 15:00"
    assert f"{result.at:%a %Y-%m-%d %H:%M}" == "Mon 2026-03-09 08:00"


def test_the_agent_hours_in_the_agents_zone_narrow_the_customers_window() -> None:
    # An agent in New York working 9–17 and a customer in Berlin: 15:00–21:00 Berlin time.
    window = CallingWindow(agent_hours=(dt.time(9), dt.time(17)), agent_zone=NEW_YORK)
    now = localize(dt.datetime(2026, 1, 14, 11, 30), BERLIN)  # Wednesday
    morning = resolve_when("tomorrow morning", now=now, tz=BERLIN, window=window)
    assert morning is not None
    assert morning.moved
    assert f"{morning.at:%Y-%m-%d %H:%M}" == "2026-01-15 15:00"
    evening = resolve_when("tomorrow at 6 pm", now=now, tz=BERLIN, window=window)
    assert evening is not None
    assert not evening.moved
    late = resolve_when("tomorrow at 9 pm", now=now, tz=BERLIN, window=window)
    assert late is not None
    assert f"{late.at:%Y-%m-%d %H:%M}" == "2026-01-16 15:00"


def test_overnight_agent_hours() -> None:
    # A night-shift agent (22:00–06:00 in Kolkata) can call New York in the morning there.
    window = CallingWindow(agent_hours=(dt.time(22), dt.time(6)), agent_zone=KOLKATA)
    now = localize(dt.datetime(2026, 1, 14, 7, 0), NEW_YORK)
    assert window.allows(localize(dt.datetime(2026, 1, 14, 12, 0), NEW_YORK), NEW_YORK)
    assert not window.allows(localize(dt.datetime(2026, 1, 14, 20, 0), NEW_YORK), NEW_YORK)
    evening = resolve_when("this evening", now=now, tz=NEW_YORK, window=window)
    assert evening is not None
    # 18:00 New York is 04:30 in Kolkata, inside the agent's night, and legal in New York.
    assert not evening.moved
    assert f"{evening.at:%Y-%m-%d %H:%M}" == "2026-01-14 18:00"
    # 10:00 New York is 20:30 in Kolkata: the agent starts at 22:00 there, 11:30 here.
    morning = resolve_when("this morning", now=now, tz=NEW_YORK, window=window)
    assert morning is not None
    assert morning.moved
    assert f"{morning.at:%Y-%m-%d %H:%M}" == "2026-01-14 11:30"
    assert not window.allows(localize(dt.datetime(2026, 1, 14, 20, 31), NEW_YORK), NEW_YORK)


def test_a_window_that_never_opens_is_an_error() -> None:
    # 9–17 in Sydney is 23:00–07:00 in Berlin (January): no legal minute in Berlin.
    window = CallingWindow(agent_hours=(dt.time(9), dt.time(17)), agent_zone=SYDNEY)
    now = localize(dt.datetime(2026, 1, 14, 11, 30), BERLIN)
    with pytest.raises(NoCallingTime):
        resolve_when("tomorrow at 3", now=now, tz=BERLIN, window=window)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"days": frozenset()},
        {"days": frozenset({7})},
        {"start": dt.time(21), "end": dt.time(8)},
        {"agent_hours": (dt.time(9), dt.time(17))},
        {"agent_hours": (dt.time(9), dt.time(9)), "agent_zone": NEW_YORK},
    ],
)
def test_bad_windows_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"."):
        CallingWindow(**kwargs)  # type: ignore[arg-type]


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        resolve_when("tomorrow", now=dt.datetime(2026, 3, 6, 11, 30), tz=NEW_YORK)


def test_a_day_without_a_time_says_so() -> None:
    now = friday_now("America/New_York", "us_spring")
    day_only = resolve_when("Wednesday", now=now, tz=NEW_YORK)
    assert day_only is not None
    assert not day_only.time_said
    with_time = resolve_when("Wednesday at 2", now=now, tz=NEW_YORK)
    assert with_time is not None
    assert with_time.time_said


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Call me back tomorrow after 3 p.m.", "2026-03-07 15:00"),
        ("TOMORROW AT 3PM", "2026-03-07 15:00"),
        ("Tomorrow at 3 o'clock.", "2026-03-07 15:00"),
        ("tomorrow at 15:00", "2026-03-07 15:00"),
        ("tomorrow at three fifteen", "2026-03-07 15:15"),
        ("tomorrow at twenty-five past four", "2026-03-07 16:25"),
        ("Tuesday at 3 — actually, Wednesday", "2026-03-11 15:00"),
        ("Tuesday at three. Sorry, make that Thursday at four.", "2026-03-12 16:00"),
        ("a week from Monday", "2026-03-16 10:00"),
        ("not before 3 tomorrow", "2026-03-07 15:00"),
        ("between 2 and 4 on Monday", "2026-03-09 14:00"),
        ("next week on Thursday", "2026-03-12 10:00"),
        ("this weekend", "2026-03-07 10:00"),
        ("March the 31st at 11", "2026-03-31 11:00"),
        ("in a fortnight", "2026-03-20 10:00"),
        ("tomorrow at 12 noon", "2026-03-07 12:00"),
    ],
)
def test_more_spoken_forms(text: str, expected: str) -> None:
    now = friday_now("America/New_York", "us_spring")
    result = resolve_when(text, now=now, tz=NEW_YORK)
    assert result is not None, text
    assert f"{result.at:%Y-%m-%d %H:%M}" == expected, text


@pytest.mark.parametrize("text", ["", "   ", "yes", "I don't know", "give me a second"])
def test_no_time_is_none(text: str) -> None:
    now = friday_now("America/New_York", "us_spring")
    assert resolve_when(text, now=now, tz=NEW_YORK) is None


# --- Saying it back --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-03-06 16:30", "today at 4:30 pm"),
        ("2026-03-07 15:00", "tomorrow at 3 pm"),
        ("2026-03-10 14:00", "Tuesday the 10th at 2 pm"),
        ("2026-03-08 12:00", "Sunday the 8th at noon"),
        ("2026-03-21 09:05", "Saturday the 21st at 9:05 am"),
        ("2026-03-22 10:00", "Sunday the 22nd at 10 am"),
        ("2026-03-23 10:00", "Monday the 23rd at 10 am"),
        ("2026-03-11 00:00", "Wednesday the 11th at midnight"),
        ("2026-04-01 10:00", "Wednesday the 1st of April at 10 am"),
        ("2027-03-01 10:00", "Monday the 1st of March next year at 10 am"),
    ],
)
def test_spoken(local: str, expected: str) -> None:
    now = friday_now("America/New_York", "us_spring")
    at = localize(dt.datetime.fromisoformat(local), NEW_YORK)
    assert spoken(at, now=now, tz=NEW_YORK) == expected


def test_spoken_reads_the_customers_clock() -> None:
    # 23:30 in New York is already tomorrow morning in Berlin.
    now = localize(dt.datetime(2026, 1, 14, 23, 30), NEW_YORK)
    at = localize(dt.datetime(2026, 1, 15, 9, 0), BERLIN)
    assert spoken(at, now=now, tz=BERLIN) == "today at 9 am"
    assert spoken(at, now=now, tz=NEW_YORK) == "tomorrow at 3 am"


def test_resolve_then_say() -> None:
    now = friday_now("America/New_York", "us_spring")
    result = resolve_when("yes, a demo next Tuesday at two", now=now, tz=NEW_YORK)
    assert result is not None
    assert spoken(result.at, now=now, tz=NEW_YORK) == "Tuesday the 10th at 2 pm"


# --- The customer's zone ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "stored", "fallback", "expected"),
    [
        ("+12125551234", "Europe/Berlin", "America/Chicago", "Europe/Berlin"),  # record wins
        ("+12125551234", None, "Europe/Berlin", "America/New_York"),  # one zone for the number
        ("+12125551234", "Mars/Olympus", "Europe/Berlin", "America/New_York"),  # bad record
        ("+12125551234", "", "Europe/Berlin", "America/New_York"),
        ("+4930123456", None, "America/New_York", "Europe/Berlin"),
        ("004930123456", None, "America/New_York", "Europe/Berlin"),  # 00 prefix
        ("+61212345678", None, "Europe/Berlin", "Australia/Sydney"),
        # toll-free: 42 zones; the agent's is one of them
        ("+18005551234", None, "America/Chicago", "America/Chicago"),
        # ... and when it is not, the first of phonenumbers' (alphabetical) list
        ("+18005551234", None, "Europe/Berlin", "America/Adak"),
        ("+61412345678", None, "Australia/Perth", "Australia/Perth"),  # mobile: all of it
        ("+15555555555", None, "Europe/Berlin", "Europe/Berlin"),  # no zone known
        ("2125551234", None, "Europe/Berlin", "Europe/Berlin"),  # not international
        ("not a number", None, "Europe/Berlin", "Europe/Berlin"),
    ],
)
def test_customer_time_zone(phone: str, stored: str | None, fallback: str, expected: str) -> None:
    assert customer_time_zone(phone, stored, fallback) == ZoneInfo(expected)


def test_phone_time_zones_lists_every_candidate() -> None:
    assert phone_time_zones("+12125551234") == ("America/New_York",)
    assert "America/New_York" in phone_time_zones("+18005551234")
    assert phone_time_zones("+15555555555") == ()


def test_an_unknown_fallback_zone_is_an_error() -> None:
    with pytest.raises(ValueError, match="Nowhere"):
        customer_time_zone("+15555555555", None, "Nowhere/Land")
