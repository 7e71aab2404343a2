"""Concurrent calls' replies: the in-process model (calls queue) against llama-server's slots.

For 1, 2 and 4 simultaneous streams it prints, per stream, the time to the first token and the
decode speed (tokens/s from the first to the last token), p50 / p95 over all streams of all
rounds, for:

* ``in-process`` — one llama-cpp-python ``Llama`` as ``serve`` runs it today: one worker
  thread, so the second call's reply starts when the first one's ends;
* ``server`` — llama-server (``scripts/build_llama_server.py``) with as many slots as streams
  and continuous batching, reached over HTTP like ``[llm] server = "local"``;
* ``2 nodes`` — two client processes (two callagent nodes) sharing one server, each with half
  the streams.

Every stream is a different caller question after the same agent's system prompt (the built-in
demo agent's, as a call has it), each prefix warmed first as ``serve`` does. Threads: the LLM's
count of a call node (``models.llm_threads``, 1 by default) for both, unless ``--threads``.

Run: ``.venv/bin/python bench/bench_llm_server.py [--profile default] [--rounds 5]``
(``--client URL N`` is the child mode of the two-node run). Results: docs/models.md, "LLM server".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.dialog.llm import ChatMessage, LanguageModel, LlamaCppLanguageModel, LlamaSettings
from callagent.dialog.prompt import build_system_prompt
from callagent.inference.llama_server import LlamaServer, LlamaServerSettings, find_binary
from callagent.inference.openai_llm import OpenAIChatLanguageModel, OpenAIChatSettings
from callagent.modelfiles import resolve_profile

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = (
    "Hi, who is this and why are you calling me?",
    "How much does it cost per month?",
    "Can you call me back tomorrow at three?",
    "Is there a contract, or can I cancel any time?",
    "What exactly do you offer?",
    "I'm busy right now, what is this about?",
    "Do you have anything cheaper?",
    "Sounds interesting, how do I sign up?",
)


@dataclass
class Stream:
    """One reply's figures."""

    first_token_s: float
    tokens: int
    tokens_per_s: float | None
    total_s: float = 0.0
    round: int = 0


def _messages(system: str, index: int) -> list[ChatMessage]:
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": QUESTIONS[index % len(QUESTIONS)]},
    ]


async def one_stream(model: LanguageModel, messages: list[ChatMessage]) -> Stream:
    """Time one reply from the request to its last token."""
    started = time.perf_counter()
    first = last = None
    tokens = 0
    async for delta in model.stream(messages):
        if not delta:
            continue
        last = time.perf_counter()
        if first is None:
            first = last
        tokens += 1
    if first is None or last is None:
        raise RuntimeError("an empty reply")
    rate = (tokens - 1) / (last - first) if tokens > 1 and last > first else None
    return Stream(first - started, tokens, rate, last - started)


async def rounds(
    model: LanguageModel, system: str, streams: int, count: int, offset: int = 0
) -> list[Stream]:
    """``count`` rounds of ``streams`` simultaneous replies."""
    results: list[Stream] = []
    for r in range(count):
        batch = [
            one_stream(model, _messages(system, offset + r * streams + i)) for i in range(streams)
        ]
        for stream in await asyncio.gather(*batch):
            stream.round = r
            results.append(stream)
    return results


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def row(name: str, streams: int, results: list[Stream]) -> str:
    """One table row: first token p50/p95 (ms), tokens/s per stream p50/p5, all streams'
    tokens per second of wall time (a round lasts until its last reply ends), tokens."""
    first = [s.first_token_s * 1000 for s in results]
    rates = [s.tokens_per_s for s in results if s.tokens_per_s is not None]
    mean_tokens = statistics.fmean(s.tokens for s in results)
    walls: dict[int, float] = {}
    for s in results:
        walls[s.round] = max(walls.get(s.round, 0.0), s.total_s)
    throughput = sum(s.tokens for s in results) / sum(walls.values())
    return (
        f"| {name} | {streams} | {percentile(first, 0.5):.0f} / {percentile(first, 0.95):.0f} | "
        f"{percentile(rates, 0.5):.1f} / {percentile(rates, 0.05):.1f} | "
        f"{throughput:.1f} | {mean_tokens:.0f} | {os.getloadavg()[0]:.1f} |"
    )


def chat(base_url: str) -> OpenAIChatLanguageModel:
    """The client ``[llm] server = "local"`` builds, with the in-process sampling settings."""
    sampling = LlamaSettings()
    return OpenAIChatLanguageModel(
        OpenAIChatSettings(
            base_url=base_url,
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            repeat_penalty=sampling.repeat_penalty,
            seed=sampling.seed,
            read_timeout_s=300.0,
        )
    )


async def client_main(base_url: str, streams: int, count: int, offset: int) -> None:
    """Child mode: one node's share of the streams, as JSON on stdout."""
    model = chat(base_url)
    system = build_system_prompt(DEFAULT_AGENT)
    await model.warm_up(system)
    results = await rounds(model, system, streams, count, offset)
    await model.aclose()
    print(json.dumps([s.__dict__ for s in results]))


async def two_nodes(base_url: str, streams: int, count: int) -> list[Stream]:
    """Two client processes, ``streams // 2`` each, started together."""
    share = max(1, streams // 2)
    command = [sys.executable, __file__, "--client", base_url, str(share), "--rounds", str(count)]
    children = [
        await asyncio.create_subprocess_exec(
            *command, "--offset", str(n * 100), stdout=subprocess.PIPE
        )
        for n in range(2)
    ]
    outputs = await asyncio.gather(*(c.communicate() for c in children))
    results: list[Stream] = []
    for out, _ in outputs:
        results += [Stream(**s) for s in json.loads(out.decode().strip().splitlines()[-1])]
    return results


async def main_async(args: argparse.Namespace) -> None:
    """The benchmark."""
    profile = resolve_profile(args.profile, Path(args.models_dir))
    system = build_system_prompt(DEFAULT_AGENT)
    concurrency = [int(n) for n in args.streams.split(",")]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(
        f"model: {profile.llm_model}; threads {args.threads}, server batch threads "
        f"{args.threads_batch or os.cpu_count()}; rounds {args.rounds}"
    )
    print(f"load average at start: {os.getloadavg()}")
    print()
    print(
        "| LLM | streams | first token ms p50 / p95 | tokens/s per stream p50 / p5 "
        "| tokens/s all streams | tokens per reply | load |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    if "in-process" in args.modes:
        local = LlamaCppLanguageModel(profile.llm_path, LlamaSettings(n_threads=args.threads))
        await local.warm_up(system)
        for n in concurrency:
            print(row("in-process (queued)", n, await rounds(local, system, n, args.rounds)))
        del local
    for n in concurrency:
        if not {"server", "nodes"} & set(args.modes):
            break
        server = LlamaServer(
            LlamaServerSettings(
                binary=find_binary(args.server_binary),
                model_path=profile.llm_path,
                parallel=max(n, 1),
                threads=args.threads,
                threads_batch=args.threads_batch,
            )
        )
        await server.start()
        try:
            if "server" in args.modes:
                model = chat(server.base_url)
                await model.warm_up(system)
                print(
                    row(f"llama-server, {n} slots", n, await rounds(model, system, n, args.rounds))
                )
                await model.aclose()
            if "nodes" in args.modes and n >= 2:
                results = await two_nodes(server.base_url, n, args.rounds)
                print(row(f"llama-server, {n} slots, 2 nodes", n, results))
        finally:
            await server.close()
    print()
    print(f"load average at end: {os.getloadavg()}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--models-dir", default=str(REPO / "models"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--threads-batch", type=int, default=0, help="the server's batch threads (0: every core)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--streams", default="1,2,4")
    parser.add_argument("--modes", default="in-process,server,nodes")
    parser.add_argument("--server-binary", default="")
    parser.add_argument("--client", nargs=2, metavar=("URL", "STREAMS"))
    parser.add_argument("--offset", type=int, default=0)
    args = parser.parse_args(argv)
    args.modes = args.modes.split(",")
    if args.client:
        asyncio.run(client_main(args.client[0], int(args.client[1]), args.rounds, args.offset))
        return 0
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
