"""What post-call analysis costs a live call on the same machine (docs/analysis.md, "The model").

The analysis runs on a second ``Llama`` (``LlamaJsonModel``) on its own thread; the live call's
model (``LlamaCppLanguageModel``, the agent's system prompt in its prefix cache) answers caller
turns meanwhile. Measured, with the chosen profile:

* memory: the process's proportional set size (Pss) and private memory after loading the live
  model, and after loading the analysis model and running one analysis - the weights are one
  memory-mapped file, so the second instance should add only its context and buffers;
* a live turn's first token (warm prefix) and decode rate: alone; while analyses run without
  pause on a thread at ``nice`` 19 (what ships); and at ``nice`` 0;
* the alternative of one shared ``Llama`` with its state saved and restored around each
  analysis: the size of the state and the time to save and restore it - besides which the
  live turns would wait for the whole analysis on the one worker thread.

Each section prints the share of the machine's CPU other processes used meanwhile (the machine
is shared). Run: ``.venv/bin/python bench/bench_analysis_load.py --profile default``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from bench_models import Contention, wait_idle  # noqa: E402

from callagent.dialog.agent_profile import DEFAULT_AGENT  # noqa: E402
from callagent.dialog.analysis import (  # noqa: E402
    JsonModelSettings,
    LlamaJsonModel,
    analyse_call,
)
from callagent.dialog.conversation import Conversation  # noqa: E402
from callagent.dialog.llm import LlamaCppLanguageModel, LlamaSettings  # noqa: E402
from callagent.dialog.prompt import build_system_prompt  # noqa: E402
from callagent.modelfiles import resolve_profile  # noqa: E402

from helpers.labelled_calls import load_all  # noqa: E402

QUESTIONS = (
    "How much does a solar system cost?",
    "Do you offer financing?",
    "How long does the installation take?",
    "What warranty do the panels have?",
    "Can you call me back next week?",
    "Is my roof suitable for solar panels?",
)


def memory_mb() -> tuple[float, float]:
    """(Pss, private) of this process in MB, from /proc/self/smaps_rollup."""
    fields: dict[str, int] = {}
    with open("/proc/self/smaps_rollup", encoding="ascii") as rollup:
        for line in rollup:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1])
    private = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return fields.get("Pss", 0) / 1024, private / 1024


async def live_turns(llm: LlamaCppLanguageModel, turns: int) -> tuple[list[float], list[float]]:
    """``turns`` caller turns on the warm prefix: first-token ms and decode tokens/s each."""
    firsts, rates = [], []
    for index in range(turns):
        messages = Conversation(DEFAULT_AGENT, llm).messages_for(QUESTIONS[index % len(QUESTIONS)])
        started = time.perf_counter()
        first = None
        count = 0
        async with contextlib.aclosing(llm.stream(messages)) as deltas:
            async for _ in deltas:
                count += 1
                if first is None:
                    first = time.perf_counter()
        end = time.perf_counter()
        assert first is not None
        firsts.append((first - started) * 1000)
        if count > 1 and end > first:
            rates.append((count - 1) / (end - first))
    return firsts, rates


def show(name: str, firsts: list[float], rates: list[float]) -> None:
    print(
        f"  {name}: first token median {statistics.median(firsts):.0f} ms "
        f"(max {max(firsts):.0f}), decode median {statistics.median(rates):.1f} tok/s"
    )


async def with_analyses(
    llm: LlamaCppLanguageModel, analysis: LlamaJsonModel, turns: int
) -> tuple[list[float], list[float], int]:
    """Live turns while the analysis model analyses without pause."""
    stop = threading.Event()
    done = 0
    call = load_all()[0].call

    async def analyse_forever() -> None:
        nonlocal done
        while not stop.is_set():
            await analyse_call(analysis, call, should_stop=stop.is_set)
            done += 1

    background = asyncio.create_task(analyse_forever())
    await asyncio.sleep(3.0)  # the analysis is past its prompt and generating
    try:
        firsts, rates = await live_turns(llm, turns)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await background
    return firsts, rates, done


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument(
        "--wait-idle", type=float, default=120.0, help="wait up to this long for a quiet CPU"
    )
    args = parser.parse_args()
    paths = resolve_profile(args.profile, REPO / "models")
    print(f"profile {args.profile}: {paths.llm_model}, live model and analysis on 1 thread each")
    base_pss, base_private = memory_mb()
    llm = LlamaCppLanguageModel(paths.llm_path, LlamaSettings(max_tokens=48))
    await llm.warm_up(build_system_prompt(DEFAULT_AGENT))
    live_pss, live_private = memory_mb()
    print(
        f"memory: live model loaded and warm: Pss {live_pss - base_pss:.0f} MB, "
        f"private {live_private - base_private:.0f} MB"
    )

    wait_idle(args.wait_idle)
    with Contention():
        firsts, rates = await live_turns(llm, args.turns)
        show("live turns alone", firsts, rates)

    results = {}
    for nice in (19, 0):
        analysis = LlamaJsonModel(paths.llm_path, JsonModelSettings(nice=nice))
        await analysis.load()
        if nice == 19:
            await analyse_call(analysis, load_all()[0].call)
            pss, private = memory_mb()
            print(
                f"memory: + analysis model after one analysis: Pss +{pss - live_pss:.0f} MB, "
                f"private +{private - live_private:.0f} MB"
            )
        wait_idle(args.wait_idle)
        with Contention():
            firsts, rates, done = await with_analyses(llm, analysis, args.turns)
            show(f"live turns during analyses at nice {nice} ({done} analyses)", firsts, rates)
        results[nice] = statistics.median(firsts)
        await analysis.close()

    wait_idle(args.wait_idle)
    with Contention():
        firsts, rates = await live_turns(llm, args.turns)
        show("live turns after the analyses (prefix cache kept)", firsts, rates)

    # The alternative: one Llama, its state saved and restored around each analysis.
    llama = llm._llama  # the live instance, warm
    started = time.perf_counter()
    state = llama.save_state()
    saved = time.perf_counter() - started
    started = time.perf_counter()
    llama.load_state(state)
    restored = time.perf_counter() - started
    print(
        f"save/restore alternative: state of the warm live model {state.llama_state_size / 1e6:.0f}"
        f" MB, save {saved * 1000:.0f} ms, restore {restored * 1000:.0f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
