"""What a call purpose costs the first reply of a call (docs/dialog.md "Call purposes").

A call with a purpose uses the agent's general prompt followed by the purpose's sentences; the
general prompt is what ``ProfileCache`` warms when it builds the agent's profile, and llama.cpp
keeps the longest common prefix of the last request. So a call of any purpose should find most
of its prompt evaluated. For the chosen profile this prints:

* tokens: the general prompt, and what each purpose adds after it;
* the first token of a call's first reply, p50 / p95 over ``--rounds``, when the previous
  request was: the same purpose's (``same``), another purpose's (``switch``: the general
  prompt is the common prefix), another agent's (``cold``: nothing in common but the chat
  template's first tokens).

The model runs on one thread, as in a call. The machine is shared: each section prints the
share of CPU other processes took. Run:
``.venv/bin/python bench/bench_purpose_prompts.py --profile default --rounds 10``.
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

import msgspec  # noqa: E402
from bench_models import Contention, wait_idle  # noqa: E402

from callagent.dialog.agent_profile import DEFAULT_AGENT  # noqa: E402
from callagent.dialog.conversation import Conversation  # noqa: E402
from callagent.dialog.llm import LlamaCppLanguageModel, LlamaSettings  # noqa: E402
from callagent.dialog.prompt import build_system_prompt  # noqa: E402
from callagent.dialog.purposes import CallPurpose  # noqa: E402
from callagent.modelfiles import resolve_profile  # noqa: E402

OTHER_AGENT = msgspec.structs.replace(
    DEFAULT_AGENT,
    name="Robin",
    company="Northwind Dental",
    purpose="book check-ups and answer questions about the practice",
    script="Greet the patient, ask what they need, and offer the next free appointment.",
    product_facts=["A check-up takes 30 minutes.", "The practice opens at 8 am."],
    objection_answers={},
    goals=["Book a check-up."],
)
PURPOSES = list(CallPurpose)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def first_token_ms(llm: LlamaCppLanguageModel, conversation: Conversation) -> float:
    messages = conversation.messages_for("Hello, who is this?")
    started = time.perf_counter()
    async with contextlib.aclosing(llm.stream(messages)) as deltas:
        async for _ in deltas:
            break
    return (time.perf_counter() - started) * 1000


async def run(profile_name: str, rounds: int, idle_wait: float) -> None:
    profile = resolve_profile(profile_name, REPO / "models")
    llm = LlamaCppLanguageModel(profile.llm_path, LlamaSettings(n_threads=1))
    tokenize = llm._llama.tokenize  # the model's own tokenizer
    general = len(tokenize(build_system_prompt(DEFAULT_AGENT).encode()))
    print(f"profile {profile_name}: general prompt {general} tokens")
    for purpose in PURPOSES:
        added = len(tokenize(build_system_prompt(DEFAULT_AGENT, purpose).encode())) - general
        print(f"  {purpose.value}: +{added} tokens")
    wait_idle(idle_wait)
    results: dict[str, list[float]] = {"same": [], "switch": [], "cold": []}
    with Contention():
        for index in range(rounds):
            purpose = PURPOSES[index % len(PURPOSES)]
            other = PURPOSES[(index + 1) % len(PURPOSES)]
            call = Conversation(DEFAULT_AGENT, llm, purpose=purpose)
            # cold: the previous request was another agent's
            await first_token_ms(llm, Conversation(OTHER_AGENT, llm))
            results["cold"].append(await first_token_ms(llm, call))
            # same: the previous request was this purpose's
            results["same"].append(await first_token_ms(llm, call))
            # switch: the previous request was another purpose's of the same agent
            await first_token_ms(llm, Conversation(DEFAULT_AGENT, llm, purpose=other))
            results["switch"].append(await first_token_ms(llm, call))
    for name, values in results.items():
        print(
            f"  first token, previous request {name:>6}: p50 {statistics.median(values):6.0f} ms"
            f"  p95 {percentile(values, 0.95):6.0f} ms  (n={len(values)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--idle-wait", type=float, default=30.0, help="s to wait for quiet")
    args = parser.parse_args()
    asyncio.run(run(args.profile, args.rounds, args.idle_wait))


if __name__ == "__main__":
    main()
