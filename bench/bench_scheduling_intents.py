"""Measure what the scheduling pass costs a caller turn (docs/dialog.md "The scheduling pass").

Two figures, in microseconds, p50 and p95 over many repetitions of a fixed set of everyday
caller turns (written here, not the labelled evaluation sets):

* ``detect`` - ``scheduling_intents.detect_scheduling`` alone, on every turn, with the agent's
  last words; this is what every caller turn pays;
* ``detect+resolve`` - on the turns it matches, the pass plus resolving the time in the
  customer's zone and calling window (``actions.resolve_spoken``: ``dialog/when.py`` and
  dateparser) - what a turn that asks for a callback or an appointment pays in all.

Run: ``.venv/bin/python bench/bench_scheduling_intents.py [--rounds 200]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from zoneinfo import ZoneInfo

from callagent.dialog.actions import resolve_spoken
from callagent.dialog.scheduling_intents import detect_scheduling

AGENT = "We install solar panels. Would you like a free demo at your house?"
TURNS = [
    "Hi, I'm interested in solar panels for my house.",
    "How much does it cost for a three bedroom house?",
    "I'm busy right now. Call me back tomorrow after three.",
    "Yes, a demo next Tuesday at two.",
    "My husband will call you back.",
    "Sure, Thursday at eleven works.",
    "Don't call me back.",
    "Can you call later?",
    "What kind of warranty do you give on the inverter and the panels themselves?",
    "Let's do the survey on the 10th.",
    "Okay, that sounds interesting, tell me more about the financing options.",
    "When would you call back?",
]
NOW = dt.datetime(2026, 11, 30, 15, 0, tzinfo=dt.UTC)
ZONE = ZoneInfo("America/New_York")


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p95 of ``samples``."""
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def main() -> None:
    """Run the bench and print p50/p95 per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    detect_us: list[float] = []
    full_us: list[float] = []
    matched = 0
    for _ in range(args.rounds):
        for turn in TURNS:
            start = time.perf_counter()
            match = detect_scheduling(turn, AGENT)
            detect_us.append((time.perf_counter() - start) * 1e6)
            if match is None:
                continue
            resolve_spoken(turn, now=NOW, tz=ZONE)
            full_us.append((time.perf_counter() - start) * 1e6)
            matched += 1
    print(f"turns: {len(TURNS)} x {args.rounds} rounds; matched {matched // args.rounds} per round")
    for name, samples in (("detect", detect_us), ("detect+resolve", full_us)):
        p50, p95 = percentiles(samples)
        print(f"{name:>15}: p50 {p50:8.1f} us   p95 {p95:8.1f} us   (n={len(samples)})")


if __name__ == "__main__":
    main()
