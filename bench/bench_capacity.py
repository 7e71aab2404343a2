"""How many calls at once a node can carry: voice-to-voice latency and outbound pacing with N
simultaneous calls on the real models (docs/telephony.md "Capacity").

N callers, each behaving like Asterisk over a real TCP AudioSocket connection and speaking
Debian's flite over a µ-law line, call one in-process server at once (their starts 1 s apart);
no admission control, so every call is served. Prints p50/p95 of voice-to-voice latency over
all turns and p50/p99 of the gap between two agent frames on the wire (20 ms when paced), the
figures ``routing.max_active_calls`` is chosen from.

    .venv/bin/python bench/bench_capacity.py --models default --calls 2
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from bench_latency import CALLER_LINES, cpu_model, percentile  # noqa: E402

from callagent.app.audio_files import read_caller_audio  # noqa: E402
from callagent.app.components import pipeline_settings, prepare  # noqa: E402
from callagent.settings import load_settings  # noqa: E402
from callagent.telephony.asterisk.loopback_caller import simulate_call  # noqa: E402
from callagent.telephony.asterisk.server import AudioSocketServer  # noqa: E402
from callagent.telephony.call_runner import CallReport, CallRunner  # noqa: E402
from callagent.telephony.metrics import CallMetrics  # noqa: E402
from callagent.voice_pipeline.clock import MonotonicClock  # noqa: E402

from helpers.voices import flite_phone_wav  # noqa: E402

VOICES = ["slt", "awb", "rms", "kal16"]


class GapRecorder(CallMetrics):
    """The node's metrics, keeping every outbound frame gap as well."""

    def __init__(self) -> None:
        super().__init__()
        self.gaps: list[float] = []

    def frame_gap(self, seconds: float) -> None:
        super().frame_gap(seconds)
        self.gaps.append(seconds)


async def run(profile: str, calls: int, turns: int) -> None:
    settings = load_settings(
        overrides={("models", "profile"): profile, ("models", "models_dir"): REPO / "models"}
    )
    engines, agent = await prepare(settings)
    metrics = GapRecorder()
    reports: list[CallReport] = []
    clock = MonotonicClock()
    runner = CallRunner(
        engines,
        agent,
        clock,
        pipeline_settings(settings),
        on_call_finished=reports.append,
        metrics=metrics,
    )
    with tempfile.TemporaryDirectory() as folder:
        scripts = [
            [
                read_caller_audio(
                    flite_phone_wav(
                        line,
                        Path(folder) / f"call{c}_line{i}.wav",
                        voice=VOICES[(c + i) % len(VOICES)],
                    ),
                    8000,
                )
                for i, line in enumerate(CALLER_LINES[:turns])
            ]
            for c in range(calls)
        ]
        async with AudioSocketServer(runner, "127.0.0.1", 0, clock=clock) as server:

            async def caller(index: int) -> None:
                await asyncio.sleep(index * 1.0)
                await simulate_call(
                    "127.0.0.1", server.port, scripts[index], clock=clock, max_wait_for_agent_s=60
                )

            await asyncio.gather(*(caller(i) for i in range(calls)))
    v2v = [
        value
        for report in reports
        for turn in report.log.turns
        if (value := turn.latency_ms()["voice_to_voice"]) is not None
    ]
    gaps_ms = [gap * 1000 for gap in metrics.gaps]
    late = sum(1 for gap in metrics.gaps if gap > 0.04)
    print(
        f"profile {profile}: {calls} calls at once, {len(v2v)} turns, {cpu_model()}, "
        f"{os.cpu_count()} cores"
    )
    if v2v:
        print(f"voice to voice  p50 {percentile(v2v, 50):.0f} ms  p95 {percentile(v2v, 95):.0f} ms")
    if gaps_ms:
        print(
            f"frame gap       p50 {percentile(gaps_ms, 50):.1f} ms  "
            f"p99 {percentile(gaps_ms, 99):.1f} ms  late (>40 ms) {late} of {len(gaps_ms)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="ci")
    parser.add_argument("--calls", type=int, default=2, help="simultaneous calls")
    parser.add_argument("--turns", type=int, default=5, help="caller turns per call (1-5)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args.models, args.calls, max(1, min(args.turns, len(CALLER_LINES)))))


if __name__ == "__main__":
    main()
