"""Voice-to-voice latency of whole simulated calls on the real models (results in docs/models.md).

Each call goes through a real TCP AudioSocket connection to an in-process server, with a
caller that behaves like Asterisk and speaks with Debian's flite over a µ-law line. Prints
p50/p95 of every stage of the turn and of voice-to-voice latency.

    .venv/bin/python bench/bench_latency.py --models ci --calls 2

``--callers turn-ends`` has the callers say the labelled turns of tests/data/turn_ends instead
(mid-turn pauses of 0.5-1.2 s; five per call, in order), and ``--speculate on|off`` sets
``turn_taking.speculate``: with it the bench also prints how many speculative answers were
started, used and dropped (docs/pipeline.md "Speculative reply").
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "data" / "turn_ends"))

from callagent.app.audio_files import read_caller_audio  # noqa: E402
from callagent.app.components import prepare  # noqa: E402
from callagent.app.simulate import run_simulated_call  # noqa: E402
from callagent.settings import load_settings  # noqa: E402

from helpers.voices import flite_phone_wav  # noqa: E402

CALLER_LINES = [
    "Hello, I saw your advert about solar panels. Can you tell me more?",
    "How long does the installation take?",
    "What warranty do the panels come with?",
    "Do I need to be at home for the survey?",
    "Is there any way to pay monthly instead?",
]
STAGES = ["end_of_turn", "stt", "llm_first_token", "tts_first_audio", "wire", "voice_to_voice"]


class Speculations(logging.Handler):
    """Counts the pipeline's speculative answers from its log (used, dropped)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.used = 0
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.used += message.startswith("speculative answer used")
        self.dropped += message.startswith("speculative answer dropped")


def cpu_model() -> str:
    """The processor's model name, as Linux reports it."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank on the sorted values)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[rank]


async def run(
    profile: str,
    calls: int,
    llm_threads: int | None,
    verbose: bool,
    callers: str = "questions",
    speculate: str | None = None,
) -> None:
    overrides: dict[tuple[str, str], object] = {
        ("models", "profile"): profile,
        ("models", "models_dir"): REPO / "models",
    }
    if llm_threads:
        overrides[("models", "llm_threads")] = llm_threads
    if speculate is not None:
        overrides[("turn_taking", "speculate")] = speculate == "on"
    counter = Speculations()
    pipeline_log = logging.getLogger("callagent.voice_pipeline.pipeline")
    pipeline_log.addHandler(counter)
    pipeline_log.setLevel(logging.INFO)
    settings = load_settings(overrides=overrides)
    engines, agent = await prepare(settings)
    figures: dict[str, list[float]] = {stage: [] for stage in STAGES}
    barge_ins = 0
    with tempfile.TemporaryDirectory() as folder:
        voices = ["slt", "awb", "rms", "kal16"]
        utterances = [
            read_caller_audio(
                flite_phone_wav(line, Path(folder) / f"line{i}.wav", voice=voices[i % len(voices)]),
                8000,
            )
            for i, line in enumerate(CALLER_LINES)
        ]
        if callers == "turn-ends":
            from generate import load_turns

            labelled = [turn.pcm for turn in load_turns()]
        for call in range(calls):
            if callers == "turn-ends":
                utterances = [labelled[(call * 5 + i) % len(labelled)] for i in range(5)]
            report, _result = await run_simulated_call(
                settings, utterances, engines=engines, profile=agent
            )
            barge_ins += len(report.log.barge_ins)
            for turn in report.log.turns:
                if verbose:
                    print(turn.caller_text, "->", turn.agent_text, turn.latency_ms())
                for stage, value in turn.latency_ms().items():
                    if value is not None:
                        figures[stage].append(value)
    print(
        f"profile {profile}: {len(figures['voice_to_voice'])} turns in {calls} calls "
        f"({barge_ins} barge-ins), {cpu_model()}, {os.cpu_count()} cores, callers: {callers}, "
        f"speculate: {settings.turn_taking.speculate}"
    )
    if settings.turn_taking.speculate:
        print(f"speculative answers: {counter.used} used, {counter.dropped} dropped")
    print(f"{'stage':<18}{'p50 ms':>10}{'p95 ms':>10}")
    for stage in STAGES:
        values = figures[stage]
        if values:
            print(f"{stage:<18}{percentile(values, 50):>10.0f}{percentile(values, 95):>10.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="ci")
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--llm-threads", type=int, default=None)
    parser.add_argument("--verbose", action="store_true", help="print every turn")
    parser.add_argument("--callers", choices=["questions", "turn-ends"], default="questions")
    parser.add_argument("--speculate", choices=["on", "off"], default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(
        run(
            args.models,
            args.calls,
            args.llm_threads,
            args.verbose,
            args.callers,
            args.speculate,
        )
    )


if __name__ == "__main__":
    main()
