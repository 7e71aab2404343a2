"""The analytics figures (store/services/analytics.py) on rows: days in the agent's zone,
test calls only in the latency, percentiles by linear interpolation, bad latency JSON
skipped."""

from __future__ import annotations

import datetime as dt

import pytest

from callagent.store.services.analytics import percentile, summarize, voice_to_voice
from callagent.store.states import CallOutcome, CallType


def test_percentiles_interpolate_between_ranks_like_numpy() -> None:
    assert percentile([], 0.5) is None
    assert percentile([42.0], 0.95) == 42.0
    assert percentile([500, 700, 1000, 3000], 0.5) == 850
    assert percentile([500, 700, 1000, 3000], 0.95) == pytest.approx(2700)
    assert percentile([3000, 500, 1000, 700], 0.0) == 500


def test_voice_to_voice_skips_turns_without_a_figure_and_junk() -> None:
    latency = {
        "turns": [
            {"voice_to_voice": None},
            {"voice_to_voice": 900},
            {"voice_to_voice": "fast"},
            {"voice_to_voice": True},
            {"voice_to_voice": -1},
            "not a turn",
            {"voice_to_voice": 1100.5},
        ]
    }
    assert voice_to_voice(latency) == [900.0, 1100.5]
    assert voice_to_voice({}) == []
    assert voice_to_voice(None) == []
    assert voice_to_voice({"turns": "x"}) == []


def test_days_are_the_agents_and_test_calls_count_only_in_the_latency() -> None:
    # 23:30 UTC on 2 March is already 3 March in Berlin.
    late = dt.datetime(2026, 3, 2, 23, 30, tzinfo=dt.UTC)
    rows = [
        (late, CallType.OUTBOUND, CallOutcome.CONVERTED, {"turns": [{"voice_to_voice": 800}]}),
        (late, CallType.OUTBOUND, CallOutcome.BUSY, {}),
        (late, CallType.TEST, None, {"turns": [{"voice_to_voice": 1200}]}),
        (late, CallType.INBOUND, None, {}),  # still in progress: a call, no outcome
    ]
    figures = summarize(
        rows, first=dt.date(2026, 3, 2), last=dt.date(2026, 3, 3), timezone="Europe/Berlin"
    )
    before, day = figures.days
    assert before.calls == 0
    assert before.v2v_p50_ms is None
    assert (day.calls, day.reached, day.converted, day.conversion_rate) == (3, 1, 1, 1.0)
    assert (day.turns, day.v2v_p50_ms) == (2, 1000.0)
    assert figures.outcomes == {"busy": 1, "converted": 1}
    assert figures.conversion_rate == 1.0
    utc = summarize(rows, first=dt.date(2026, 3, 3), last=dt.date(2026, 3, 3), timezone="UTC")
    assert utc.calls == 0  # in UTC they were on 2 March, outside the window
