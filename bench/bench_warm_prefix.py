"""What warming a call's prefix during the greeting saves its first reply (docs/pipeline.md
"Warm prefix").

A call's requests start with the agent's byte-stable system prompt and then the call's
customer context (``Conversation.messages_for``). ``callagent serve`` warms the agent's prompt
once at start and ``ProfileCache`` when an agent changes, but the context is new in every call,
and one llama.cpp cache is shared by all calls: whatever ran before the call (another call's
turn) is what is cached. Each round here:

* ``cold``: another agent's request ran last, then the call's first reply - nothing in common;
* ``agent``: the agent's own prompt is cached (the best case before this change: warmed at
  start, no other call in between), then the first reply, which pays for context + caller;
* ``prepared``: another agent's request ran last, then ``Conversation.prepare()`` (what the
  pipeline runs while the greeting plays), then the first reply.

Prints the first-token time of the first reply, p50 / p95 per case, and how long ``prepare``
took (it must fit in the greeting: ~4-6 s of speech with the AI disclosure). The model runs on
one thread, as in a call; the machine is shared, so each section prints the CPU other processes
took. Run: ``.venv/bin/python bench/bench_warm_prefix.py --profile default --rounds 8``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from bench_models import Contention, wait_idle  # noqa: E402
from bench_purpose_prompts import OTHER_AGENT  # noqa: E402

from callagent.dialog.agent_profile import DEFAULT_AGENT  # noqa: E402
from callagent.dialog.conversation import Conversation  # noqa: E402
from callagent.dialog.llm import LlamaCppLanguageModel, LlamaSettings  # noqa: E402
from callagent.dialog.prompt import build_system_prompt  # noqa: E402
from callagent.modelfiles import resolve_profile  # noqa: E402

# Invented customers, in the shape customer_context() writes (docs/telephony.md "Routing").
NAMES = ["Maria Lopez", "Tom Becker", "Aisha Khan", "Luca Rossi", "Mei Chen", "Sam Okafor"]
FIRST_TURN = "Hi, yes, I got your message about the solar panels. What is this about?"


def context(index: int) -> str:
    name = NAMES[index % len(NAMES)]
    return (
        "About this call: you are calling the customer back about solar panels for their home.\n"
        f"The customer: {name}; prefers mornings; interest: warm; called {index + 2} times, "
        "last outcome: callback requested.\n"
        "Notes from earlier calls: wants a quote for a south-facing roof of about 40 square "
        "metres; asked whether the survey is free; worried about the price; prefers e-mail.\n"
        "Objections raised before: too expensive; not sure the roof is strong enough."
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def first_token_ms(llm: LlamaCppLanguageModel, conversation: Conversation) -> float:
    messages = conversation.messages_for(FIRST_TURN)
    started = time.perf_counter()
    async with contextlib.aclosing(llm.stream(messages)) as deltas:
        async for _ in deltas:
            break
    return (time.perf_counter() - started) * 1000


async def run(profile_name: str, rounds: int, idle_wait: float) -> None:
    profile = resolve_profile(profile_name, REPO / "models")
    llm = LlamaCppLanguageModel(profile.llm_path, LlamaSettings(n_threads=1))
    tokenize = llm._llama.tokenize  # the model's own tokenizer
    prompt = build_system_prompt(DEFAULT_AGENT)
    print(
        f"profile {profile_name}: agent prompt {len(tokenize(prompt.encode()))} tokens, "
        f"context {len(tokenize(context(0).encode()))} tokens, "
        f"caller turn {len(tokenize(FIRST_TURN.encode()))} tokens"
    )
    wait_idle(idle_wait)
    results: dict[str, list[float]] = {"cold": [], "agent": [], "prepared": []}
    prepare_ms: list[float] = []
    other = Conversation(OTHER_AGENT, llm)
    with Contention():
        for index in range(rounds):
            # cold: another agent's call was the last request
            await first_token_ms(llm, other)
            results["cold"].append(
                await first_token_ms(llm, Conversation(DEFAULT_AGENT, llm, context=context(index)))
            )
            # agent: the agent's prompt warmed (at start, no call in between)
            await llm.warm_up(prompt)
            results["agent"].append(
                await first_token_ms(llm, Conversation(DEFAULT_AGENT, llm, context=context(index)))
            )
            # prepared: another call ran last; this call's prefix warmed during its greeting
            await first_token_ms(llm, other)
            call = Conversation(DEFAULT_AGENT, llm, context=context(index))
            started = time.perf_counter()
            await call.prepare()
            prepare_ms.append((time.perf_counter() - started) * 1000)
            results["prepared"].append(await first_token_ms(llm, call))
            print(  # as it goes: on a loaded machine a round takes minutes
                f"  round {index + 1}: "
                + ", ".join(f"{name} {values[-1]:.0f} ms" for name, values in results.items())
                + f", prepare {prepare_ms[-1]:.0f} ms",
                flush=True,
            )
    for name, values in results.items():
        print(
            f"  first reply's first token, {name:>8}: p50 {statistics.median(values):6.0f} ms"
            f"  p95 {percentile(values, 0.95):6.0f} ms  (n={len(values)})"
        )
    print(
        f"  prepare() during the greeting:      p50 {statistics.median(prepare_ms):6.0f} ms"
        f"  p95 {percentile(prepare_ms, 0.95):6.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--idle-wait", type=float, default=20.0, help="s to wait for quiet")
    args = parser.parse_args()
    asyncio.run(run(args.profile, args.rounds, args.idle_wait))


if __name__ == "__main__":
    main()
