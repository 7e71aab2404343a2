"""What the process hop costs: each engine in-process vs. in its worker process
(docs/inference.md "Measured overhead").

Loads the profile's engines twice - in this process (``load_engines``) and in supervised worker
processes (``start_worker_engines``) - and times, alternating the two so both see the same
machine load: a request without inference (the bare hop), STT of a caller utterance, the LLM's
first token of a reply to a warmed prompt, and the TTS's first audio chunk of a clause. Prints
p50/p95 of each, and of the difference per pair (worker minus in-process).

    .venv/bin/python bench/bench_workers.py --models ci --runs 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from callagent.app.components import load_engines  # noqa: E402
from callagent.app.worker_engines import start_worker_engines  # noqa: E402
from callagent.settings import ModelSettings  # noqa: E402
from callagent.telephony.call_runner import VoiceEngines  # noqa: E402
from callagent.voice_pipeline.audio import resample  # noqa: E402

SYSTEM = "You are a friendly receptionist for a bicycle shop. Answer in one short sentence."
QUESTION = "Hello, can you tell me when you are open on Saturdays?"
CLAUSE = "Thanks for calling Kestrel Bikes, how can I help you today?"


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, by linear interpolation."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def stt_time(engines: VoiceEngines, pcm: bytes) -> float:
    started = time.perf_counter()
    await engines.stt.transcribe(pcm, 8000)
    return time.perf_counter() - started


async def first_token(engines: VoiceEngines) -> float:
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": QUESTION},
    ]
    started = time.perf_counter()
    async with contextlib.aclosing(engines.llm.stream(messages)) as deltas:  # type: ignore[arg-type]
        async for _ in deltas:
            break
    return time.perf_counter() - started


async def first_audio(engines: VoiceEngines) -> float:
    started = time.perf_counter()
    async with contextlib.aclosing(engines.tts.synthesize(CLAUSE)) as chunks:
        async for _ in chunks:
            break
    return time.perf_counter() - started


async def round_trip(engines: VoiceEngines) -> float:
    """A request with no inference: the TTS worker names its default voice's rate (in-process
    the same lookup is a function call)."""
    started = time.perf_counter()
    if engines.pool is not None:
        await engines.pool.workers["tts"].call({"op": "voice", "voice": ""})
    else:
        await engines.tts_for("")
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="ci", help="model profile (ci, default)")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = ModelSettings(profile=args.models, models_dir=str(REPO / "models"))
    local = await asyncio.to_thread(load_engines, settings)
    workers = await start_worker_engines(settings)
    assert workers.pool is not None
    try:
        # A caller utterance: the TTS speaking the question, on an 8 kHz line.
        speech = b"".join([c async for c in local.tts.synthesize(QUESTION)])
        utterance = resample(speech, local.tts.sample_rate, 8000)
        for engines in (local, workers):
            await engines.llm.warm_up(SYSTEM)
        stages: dict[str, Callable[[VoiceEngines], Awaitable[float]]] = {
            "round_trip": round_trip,
            "stt": lambda e: stt_time(e, utterance),
            "llm_first_token": first_token,
            "tts_first_audio": first_audio,
        }
        times: dict[str, dict[str, list[float]]] = {
            stage: {"in-process": [], "worker": []} for stage in stages
        }
        for run in range(args.runs + 1):
            for stage, measure in stages.items():
                # Alternate which goes first, so neither always follows the other's load.
                order = [("in-process", local), ("worker", workers)]
                if run % 2:
                    order.reverse()
                for name, engines in order:
                    seconds = await measure(engines)
                    if run:  # run 0 warms caches and threads
                        times[stage][name].append(seconds * 1000)
    finally:
        await workers.pool.close()
    print(
        f"bench_workers: profile {args.models}, {args.runs} runs per stage; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(f"{'stage':<16}{'in-process p50/p95':>22}{'worker p50/p95':>20}{'added p50/p95':>18}")
    for stage, by in times.items():
        local_ms, worker_ms = by["in-process"], by["worker"]
        added = [w - i for w, i in zip(worker_ms, local_ms, strict=True)]
        print(
            f"{stage:<16}"
            f"{percentile(local_ms, 0.5):>11.1f} /{percentile(local_ms, 0.95):>7.1f} ms"
            f"{percentile(worker_ms, 0.5):>9.1f} /{percentile(worker_ms, 0.95):>7.1f} ms"
            f"{percentile(added, 0.5):>8.1f} /{percentile(added, 0.95):>7.1f} ms"
        )
    print(
        "ratio worker/in-process p50: "
        + ", ".join(
            f"{stage} {statistics.median(by['worker']) / statistics.median(by['in-process']):.2f}"
            for stage, by in times.items()
            if stage != "round_trip"
        )
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
