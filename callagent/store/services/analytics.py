"""Figures per day for the dashboard's analytics page (docs/dashboard.md, "Analytics"), and
the outcomes of campaigns' calls for its campaigns page.

The day series read the client's calls created in the window, newest first, at most
:data:`MAX_CALLS` of them, so the work is bounded whatever the size of the table (a window
that holds more calls says so: ``truncated``). Days are calendar days in the agent's time
zone, as every time on the dashboard is.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Final
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import func, select

from callagent.store.db import Database
from callagent.store.models import CallSession, CampaignContact
from callagent.store.states import UNREACHED_OUTCOMES, CallOutcome, CallType

MAX_CALLS: Final = 20_000
"""The most calls one analytics page reads (newest first)."""
WINDOWS: Final = (7, 14, 30, 90)
"""The windows the page offers, in days."""


class Day(msgspec.Struct, frozen=True, kw_only=True):
    """One calendar day's figures. ``reached``: calls with an outcome where someone answered
    (everything but no answer, busy, voicemail and failed); ``conversion_rate`` = converted /
    reached, None without a reached call; the voice-to-voice figures are over every measured
    answer of the day's calls, in milliseconds, None without one."""

    day: dt.date
    calls: int
    reached: int
    converted: int
    conversion_rate: float | None
    turns: int
    v2v_p50_ms: float | None
    v2v_p95_ms: float | None


class Analytics(msgspec.Struct, frozen=True, kw_only=True):
    """The analytics of one window: a row per day (oldest first, days without calls
    included) and the outcome mix over the whole window."""

    days: list[Day]
    outcomes: dict[str, int]
    """Calls per outcome in the window (calls still without an outcome are not counted)."""
    calls: int
    reached: int
    converted: int
    conversion_rate: float | None
    turns: int
    v2v_p50_ms: float | None
    v2v_p95_ms: float | None
    timezone: str
    truncated: bool
    """The window held more than :data:`MAX_CALLS` calls: only the newest were read."""


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` percentile of ``values`` by linear interpolation between the two
    nearest ranks (numpy's default method), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def voice_to_voice(latency: Any) -> list[float]:
    """The voice-to-voice figures (ms) of a call's stored latency (``{"turns": [{...}]}``, as
    the call journal writes it); turns without one (the greeting, an interrupted answer)
    are skipped, and so is anything that is not a number."""
    turns = latency.get("turns") if isinstance(latency, dict) else None
    found = []
    for turn in turns if isinstance(turns, list) else []:
        value = turn.get("voice_to_voice") if isinstance(turn, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            found.append(float(value))
    return found


def _reached(outcome: CallOutcome | None) -> bool:
    return outcome is not None and outcome not in UNREACHED_OUTCOMES


def _rate(converted: int, reached: int) -> float | None:
    return round(converted / reached, 4) if reached else None


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def summarize(
    rows: Iterable[tuple[dt.datetime, CallType, CallOutcome | None, Any]],
    *,
    first: dt.date,
    last: dt.date,
    timezone: str,
    truncated: bool = False,
) -> Analytics:
    """The figures of ``rows`` (created_at, call type, outcome, latency) for each day from
    ``first`` to ``last`` in ``timezone``. Test calls from the browser phone are not business:
    they count only in the latency figures, which measure the machine."""
    zone = _zone(timezone)
    calls: Counter[dt.date] = Counter()
    reached: Counter[dt.date] = Counter()
    converted: Counter[dt.date] = Counter()
    outcomes: Counter[str] = Counter()
    latencies: dict[dt.date, list[float]] = {}
    for created_at, call_type, outcome, latency in rows:
        day = created_at.astimezone(zone).date()
        if not first <= day <= last:
            continue
        latencies.setdefault(day, []).extend(voice_to_voice(latency))
        if call_type == CallType.TEST:
            continue
        calls[day] += 1
        if outcome is not None:
            outcomes[outcome.value] += 1
        if _reached(outcome):
            reached[day] += 1
        if outcome == CallOutcome.CONVERTED:
            converted[day] += 1
    days = []
    day = first
    while day <= last:
        measured = latencies.get(day, [])
        days.append(
            Day(
                day=day,
                calls=calls[day],
                reached=reached[day],
                converted=converted[day],
                conversion_rate=_rate(converted[day], reached[day]),
                turns=len(measured),
                v2v_p50_ms=percentile(measured, 0.5),
                v2v_p95_ms=percentile(measured, 0.95),
            )
        )
        day += dt.timedelta(days=1)
    every = [value for values in latencies.values() for value in values]
    total_reached, total_converted = sum(reached.values()), sum(converted.values())
    return Analytics(
        days=days,
        outcomes=dict(sorted(outcomes.items(), key=lambda item: (-item[1], item[0]))),
        calls=sum(calls.values()),
        reached=total_reached,
        converted=total_converted,
        conversion_rate=_rate(total_converted, total_reached),
        turns=len(every),
        v2v_p50_ms=percentile(every, 0.5),
        v2v_p95_ms=percentile(every, 0.95),
        timezone=timezone,
        truncated=truncated,
    )


async def analytics(
    db: Database, client_id: uuid.UUID, now: dt.datetime, *, days: int, timezone: str
) -> Analytics:
    """The client's figures for the ``days`` calendar days up to today (in ``timezone``)."""
    zone = _zone(timezone)
    last = now.astimezone(zone).date()
    first = last - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(first, dt.time(), zone).astimezone(dt.UTC)
    async with db.read() as session:
        rows = (
            await session.execute(
                select(
                    CallSession.created_at,
                    CallSession.call_type,
                    CallSession.outcome,
                    CallSession.latency,
                )
                .where(CallSession.client_id == client_id, CallSession.created_at >= since)
                .order_by(CallSession.created_at.desc())
                .limit(MAX_CALLS + 1)
            )
        ).all()
    truncated = len(rows) > MAX_CALLS
    return summarize(
        (tuple(row) for row in rows[:MAX_CALLS]),
        first=first,
        last=last,
        timezone=timezone,
        truncated=truncated,
    )


async def campaign_outcomes(
    db: Database, client_id: uuid.UUID, campaign_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """For each campaign, its contacts counted by the outcome of their latest call (a contact
    whose call has no outcome yet counts as ``in progress``; contacts never dialled are not
    counted). One grouped query for all of ``campaign_ids``."""
    if not campaign_ids:
        return {}
    async with db.read() as session:
        rows = (
            await session.execute(
                select(CampaignContact.campaign_id, CallSession.outcome, func.count())
                .join(CallSession, CallSession.id == CampaignContact.last_call_id)
                .where(
                    CampaignContact.client_id == client_id,
                    CallSession.client_id == client_id,
                    CampaignContact.campaign_id.in_(list(campaign_ids)),
                )
                .group_by(CampaignContact.campaign_id, CallSession.outcome)
            )
        ).all()
    found: dict[uuid.UUID, dict[str, int]] = {}
    for campaign_id, outcome, count in rows:
        key = outcome.value if outcome is not None else "in_progress"
        found.setdefault(campaign_id, {})[key] = int(count)
    return {
        campaign_id: dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
        for campaign_id, counts in found.items()
    }
