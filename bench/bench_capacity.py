"""How many calls at once a node can carry: 1, 2, 4 and 8 simultaneous simulated calls against
what ``callagent serve`` runs, on the real models (docs/telephony.md "Capacity").

The node is :func:`callagent.app.serve.start_telephony` from the settings - the same composition
``serve`` runs, with whatever engines, workers or LLM server the settings give it - on a fresh
SQLite database, its AudioSocket listener on a free loopback port taking any call (no AMI to
announce them), no SIP, no post-call analysis, no scheduler. Admission control is on as in
``serve`` (``routing.max_active_calls``; ``--no-admission`` lifts it to N so every call is
served and the figures show what N calls cost).

The callers run in a process of their own, as Asterisk would: a stall of the node's event loop
then shows as a gap on the wire rather than being hidden by a caller that stalled with it. Each
is the loopback caller (``loopback_caller.py``: UUID first, an unbroken 20 ms frame stream also
while silent, waits for the agent's answer before its next turn) speaking Debian flite voices
over a µ-law line; on every ``--barge-every``-th turn it talks over the agent after 0.8 s of
agent speech (the first such turn falls on the greeting). Everything is measured on the caller's
side, from the two-channel call timeline and the arrival time of each agent frame:

* voice to voice: end of the caller's speech -> start of the agent's next stretch of speech;
* unanswered: caller turns after which the agent said nothing before the caller went on
  (``--patience`` s) or hung up;
* barge-in stop: onset of the caller's speech over the agent -> end of the agent's speech;
* pacing: gap p99 between two agent frames and the most frames that arrived in any 100 ms;
* busy: calls that heard only the busy prompt and were hung up (checked against the node's own
  refused count);
* CPU: of the node's process and its children (engine workers, an LLM server it started), not
  of the callers, as a share of one core over the run.

    .venv/bin/python bench/bench_capacity.py --models ci --calls 1,2,4,8
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from bench_latency import CALLER_LINES, cpu_model, percentile  # noqa: E402

from callagent.app.audio_files import read_caller_audio  # noqa: E402
from callagent.app.components import prepare  # noqa: E402
from callagent.app.llm_server import close_llm  # noqa: E402
from callagent.app.serve import start_telephony  # noqa: E402
from callagent.dialog.agent_profile import AgentProfile  # noqa: E402
from callagent.settings import Settings, load_settings  # noqa: E402
from callagent.store.db import Database  # noqa: E402
from callagent.telephony.admission import BusyPrompt  # noqa: E402
from callagent.telephony.asterisk.loopback_caller import (  # noqa: E402
    DEFAULT_SPEECH_RMS,
    Interruption,
    LoopbackCallResult,
    simulate_call,
)
from callagent.telephony.call_runner import VoiceEngines  # noqa: E402

from helpers.voices import flite_phone_wav  # noqa: E402

VOICES = ["slt", "awb", "rms", "kal16"]
FRAME_S = 0.02
BARGE_AFTER_S = 0.8
"""The caller talks over the agent once it has heard this much of the agent's answer."""
CALLER_PAUSE_S = 0.7
"""Quiet inside one caller utterance (flite's pauses at commas are shorter): longer is two."""
AGENT_PAUSE_S = 0.3
"""Quiet that ends a stretch of agent speech (the chunks of one answer follow closer)."""


# --- the callers' process -------------------------------------------------------------------


def _call_all(
    port: int,
    scripts: list[list[bytes | Interruption]],
    rate: int,
    stagger_s: float,
    patience_s: float,
) -> list[LoopbackCallResult | str]:
    """Run in the callers' process: every call at once, started ``stagger_s`` apart."""

    async def one(index: int) -> LoopbackCallResult | str:
        await asyncio.sleep(index * stagger_s)
        try:
            return await simulate_call(
                "127.0.0.1",
                port,
                scripts[index],
                sample_rate=rate,
                max_wait_for_agent_s=patience_s,
            )
        except (OSError, TimeoutError) as exc:  # counted, not fatal: the node refused a connect
            return f"could not connect: {exc!r}"

    async def everyone() -> list[LoopbackCallResult | str]:
        return await asyncio.gather(*(one(i) for i in range(len(scripts))))

    return asyncio.run(everyone())


# --- what the caller heard ------------------------------------------------------------------


def _loud(pcm: bytes, rate: int) -> np.ndarray:
    """Per 20 ms frame: whether it carries speech (the loopback caller's own threshold)."""
    size = rate * 2 // 50
    samples = np.frombuffer(pcm[: len(pcm) // size * size], dtype="<i2")
    frames = samples.reshape(-1, size // 2).astype(np.float64)
    return np.sqrt((frames * frames).mean(axis=1)) >= DEFAULT_SPEECH_RMS


def _runs(loud: np.ndarray, bridge_s: float) -> list[tuple[float, float]]:
    """(start s, end s) of each stretch of speech, bridging quiet shorter than ``bridge_s``."""
    runs: list[tuple[float, float]] = []
    for index in np.flatnonzero(loud):
        start, end = index * FRAME_S, (index + 1) * FRAME_S
        if runs and start - runs[-1][1] < bridge_s:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


@dataclass
class CallFigures:
    """What one call sounded like from the caller's side."""

    refused: bool = False
    """The node turned the call away (at capacity)."""
    heard_busy: bool = False
    """The caller heard the whole busy prompt and then the agent hung up."""
    voice_to_voice_ms: list[float] = field(default_factory=list)
    unanswered: int = 0
    barge_in_stop_ms: list[float] = field(default_factory=list)
    barge_ins_missed: int = 0
    """Interruptions that found the agent already quiet (nothing to stop)."""
    gaps_ms: list[float] = field(default_factory=list)
    max_frames_per_100ms: int = 0
    greeting_ms: float | None = None
    hung_up_by: str = ""

    def describe(self) -> str:
        """The call's figures on one line, for a person to read."""
        if self.refused:
            return f"refused, busy prompt {'heard' if self.heard_busy else 'NOT heard'}"
        v2v = ", ".join(f"{v:.0f}" for v in self.voice_to_voice_ms)
        stops = ", ".join(f"{v:.0f}" for v in self.barge_in_stop_ms)
        greeting = "-" if self.greeting_ms is None else f"{self.greeting_ms:.0f}"
        return (
            f"greeting at {greeting} ms, voice to voice [{v2v}] ms, {self.unanswered} "
            f"unanswered, barge-in stops [{stops}] ms ({self.barge_ins_missed} missed), "
            f"{self.hung_up_by} hung up"
        )


def speech_span_s(pcm: bytes, rate: int) -> float:
    """Seconds from the first to the last frame of speech in ``pcm``."""
    runs = _runs(_loud(pcm, rate), AGENT_PAUSE_S)
    return runs[-1][1] - runs[0][0] if runs else 0.0


def call_figures(
    result: LoopbackCallResult,
    interrupting: Sequence[bool],
    *,
    refused: bool = False,
    busy_span_s: float = 0.0,
) -> CallFigures:
    """Measure one call from its timeline; ``interrupting[k]``: the k-th turn talks over.
    A call the node ``refused`` is checked for the busy prompt (``busy_span_s`` long) alone."""
    figures = CallFigures(refused=refused, hung_up_by=result.hung_up_by)
    caller = _runs(_loud(result.caller_pcm, result.sample_rate), CALLER_PAUSE_S)
    agent = _runs(_loud(result.agent_pcm, result.sample_rate), AGENT_PAUSE_S)
    end_of_call = len(result.agent_pcm) / (result.sample_rate * 2)
    if agent:
        figures.greeting_ms = agent[0][0] * 1000
    arrivals = result.agent_arrivals_s
    figures.gaps_ms = [(b - a) * 1000 for a, b in itertools.pairwise(arrivals)]
    # The most frames in any 100 ms: for each frame, those that arrived less than 100 ms after.
    times = np.asarray(arrivals)
    if times.size:
        counts = np.searchsorted(times, times + 0.1 - 1e-9, side="left") - np.arange(times.size)
        figures.max_frames_per_100ms = int(counts.max())
    if refused:
        # Heard the prompt from its first word to its last (the caller may have talked over
        # it: it goes on), then the hang-up.
        span = agent[-1][1] - agent[0][0] if agent else 0.0
        figures.heard_busy = result.hung_up_by == "agent" and abs(span - busy_span_s) < 0.5
        return figures
    for k, (start, end) in enumerate(caller):
        if k < len(interrupting) and interrupting[k]:
            speaking = [run for run in agent if run[0] <= start < run[1] + FRAME_S]
            if speaking:
                figures.barge_in_stop_ms.append(max(0.0, speaking[0][1] - start) * 1000)
            else:
                figures.barge_ins_missed += 1
        until = caller[k + 1][0] if k + 1 < len(caller) else end_of_call
        answers = [a_start for a_start, _ in agent if end < a_start < until]
        if answers:
            figures.voice_to_voice_ms.append((answers[0] - end) * 1000)
        else:
            figures.unanswered += 1
    return figures


# --- the node's CPU -------------------------------------------------------------------------


def _cpu_seconds(root: int, exclude: set[int]) -> float:
    """User + system CPU seconds of ``root`` and its live descendants, outside ``exclude``."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks
    total = 0.0
    for pid in used:
        node = pid
        while node not in (root, 0, 1) and node in parents and node not in exclude:
            node = parents[node]
        if node == root and pid not in exclude:
            total += used[pid]
    return total


# --- one round of N calls ---------------------------------------------------------------------


def node_settings(base: Settings, folder: Path, capacity: int | None) -> Settings:
    """``base`` for a bench node: fresh database and recordings in ``folder``, loopback, any
    caller taken, nothing running beside the calls."""
    import msgspec

    replace = msgspec.structs.replace
    return replace(
        base,
        database=replace(base.database, url=f"sqlite+aiosqlite:///{folder / 'bench.db'}"),
        network=replace(
            base.network,
            audiosocket_bind="127.0.0.1",
            audiosocket_port=0,
            audiosocket_accept="any",
        ),
        recording=replace(base.recording, folder=str(folder / "recordings")),
        sip=replace(base.sip, enabled=False),
        analysis=replace(base.analysis, enabled=False),
        scheduler=replace(base.scheduler, enabled=False),
        asterisk=replace(base.asterisk, ami_secret=""),
        routing=(
            base.routing if capacity is None else replace(base.routing, max_active_calls=capacity)
        ),
    )


@dataclass
class Round:
    """The figures of N simultaneous calls."""

    calls: int
    capacity: int
    calls_figures: list[CallFigures]
    failed: list[str]
    refused_by_node: int
    node_v2v_ms: list[float]
    node_gaps_ms: list[float]
    node_stages_ms: dict[str, list[float]]
    """Each turn stage's durations as the node recorded them (where the time goes)."""
    cpu_percent: float
    wall_s: float
    load: tuple[float, float, float]

    def row(self) -> str:
        """One line of the table (see :data:`HEADER`)."""
        served = [f for f in self.calls_figures if not f.refused]
        v2v = [v for f in served for v in f.voice_to_voice_ms]
        stops = [v for f in served for v in f.barge_in_stop_ms]
        # Pacing over every call: the busy prompt is paced like an answer.
        gaps = [v for f in self.calls_figures for v in f.gaps_ms]
        busy = sum(1 for f in self.calls_figures if f.heard_busy)
        cells = [
            f"{self.calls:>2}",
            f"{self.capacity:>3}",
            f"{len(served):>3}",
            f"{busy:>2}/{self.refused_by_node:<2}",
            f"{len(v2v):>5}",
            _p(v2v, 50),
            _p(v2v, 95),
            _p(self.node_v2v_ms, 50),
            f"{sum(f.unanswered for f in served):>5}",
            f"{len(stops):>2}+{sum(f.barge_ins_missed for f in served)}",
            _p(stops, 50),
            _p(stops, 95),
            _p(gaps, 99, "{:>6.1f}"),
            _p(self.node_gaps_ms, 99, "{:>6.1f}"),
            f"{max((f.max_frames_per_100ms for f in self.calls_figures), default=0):>5}",
            f"{self.cpu_percent:>5.0f}",
            f"{self.load[0]:>5.2f}",
        ]
        return " ".join(cells) + (f"  {len(self.failed)} failed" if self.failed else "")


HEADER = (
    " N cap srv bs/rf turns v2v50 v2v95  nd50 unans bi+m stp50 stp95  gap99 ngap99 f/100  cpu%"
    "  load"
)
"""N calls, capacity, calls served, busy prompts heard / calls the node refused, answered turns,
voice-to-voice p50/p95 ms as the callers heard it and p50 as the node logged it, unanswered
turns, barge-ins measured + missed (the agent was already quiet), barge-in stop p50/p95 ms,
frame gap p99 ms on the callers' side and as the node wrote them, most frames in 100 ms, CPU %
of one core, 1-minute load at the end."""


def _p(values: list[float], p: float, fmt: str = "{:>5.0f}") -> str:
    return fmt.format(percentile(values, p)) if values else f"{'-':>{len(fmt.format(0))}}"


async def run_round(
    settings: Settings,
    engines: VoiceEngines,
    profile: AgentProfile,
    scripts: list[list[bytes | Interruption]],
    interrupting: list[list[bool]],
    *,
    capacity: int | None,
    stagger_s: float,
    patience_s: float,
    callers: ProcessPoolExecutor,
    caller_pid: int,
) -> Round:
    """N = ``len(scripts)`` calls at once against a fresh node."""
    with tempfile.TemporaryDirectory() as folder:
        node = node_settings(settings, Path(folder), capacity)
        database = Database(node.database.url)
        await database.migrate()
        telephony = await start_telephony(node, database, engines, profile)
        rate = node.asterisk.audiosocket_sample_rate()
        # The prompt a refused caller must hear, rendered as the node renders it.
        prompt = BusyPrompt(engines.tts, node.routing.busy_message)
        busy_span_s = speech_span_s(await prompt.audio(rate), rate)
        # Which calls the node itself turned away, to check each heard the prompt.
        refused_ids: set[uuid.UUID] = set()
        admission = telephony.admission
        if admission is not None:
            admit = admission.admit

            def counting_admit(call_id: uuid.UUID, via: str) -> bool:
                taken = admit(call_id, via)
                if not taken:
                    refused_ids.add(call_id)
                return taken

            admission.admit = counting_admit  # type: ignore[method-assign]
        # The gaps as the node wrote the frames, to tell its bursts from the callers' late reads.
        node_gaps: list[float] = []
        metrics = telephony.metrics
        if metrics is not None:
            observe = metrics.frame_gap

            def recording_gap(seconds: float) -> None:
                node_gaps.append(seconds * 1000)
                observe(seconds)

            metrics.frame_gap = recording_gap  # type: ignore[method-assign]
        try:
            me = os.getpid()
            cpu0, t0 = _cpu_seconds(me, {caller_pid}), time.monotonic()
            results = await asyncio.get_running_loop().run_in_executor(
                callers,
                _call_all,
                telephony.server.port,
                scripts,
                rate,
                stagger_s,
                patience_s,
            )
            cpu1, t1 = _cpu_seconds(me, {caller_pid}), time.monotonic()
        finally:
            await telephony.close()
            await database.dispose()
        # The node's own voice-to-voice (its turn records), to cross-check the caller's.
        stages: dict[str, list[float]] = {}
        for report in telephony.finished:
            for turn in report.log.turns:
                for stage, value in turn.latency_ms().items():
                    if value is not None:
                        stages.setdefault(stage, []).append(value)
        node_v2v = stages.get("voice_to_voice", [])
    failed = [
        r if isinstance(r, str) else f"call {r.call_id}: {r.error}"
        for r in results
        if isinstance(r, str) or r.error
    ]
    figures = [
        call_figures(
            result,
            interrupting[i],
            refused=result.call_id in refused_ids,
            busy_span_s=busy_span_s,
        )
        for i, result in enumerate(results)
        if not isinstance(result, str) and not result.error
    ]
    return Round(
        calls=len(scripts),
        capacity=node.routing.max_active_calls,
        calls_figures=figures,
        failed=failed,
        refused_by_node=len(refused_ids),
        node_v2v_ms=node_v2v,
        node_gaps_ms=node_gaps,
        node_stages_ms=stages,
        cpu_percent=(cpu1 - cpu0) / (t1 - t0) * 100,
        wall_s=t1 - t0,
        load=os.getloadavg(),
    )


def caller_scripts(
    calls: int, turns: int, barge_every: int, folder: Path, rate: int
) -> tuple[list[list[bytes | Interruption]], list[list[bool]]]:
    """Each call's turns (flite voices over a µ-law line, at the dialplan's ``rate`` as Asterisk
    would pass them on) and which of them talk over the agent."""
    scripts: list[list[bytes | Interruption]] = []
    interrupting: list[list[bool]] = []
    for c in range(calls):
        script: list[bytes | Interruption] = []
        flags: list[bool] = []
        for i, line in enumerate(CALLER_LINES[:turns]):
            voice = VOICES[(c + i) % len(VOICES)]
            wav = Path(folder) / f"{voice}_line{i}.wav"
            if not wav.exists():
                flite_phone_wav(line, wav, voice=voice)
            pcm = read_caller_audio(wav, rate)
            barge = barge_every > 0 and (c + i) % barge_every == barge_every - 1
            script.append(Interruption(pcm, after_agent_speech_s=BARGE_AFTER_S) if barge else pcm)
            flags.append(barge)
        scripts.append(script)
        interrupting.append(flags)
    return scripts, interrupting


async def run(args: argparse.Namespace) -> None:
    overrides: dict[tuple[str, str], object] = {
        ("models", "profile"): args.models,
        ("models", "models_dir"): REPO / "models",
    }
    settings = load_settings(config_file=args.config, overrides=overrides)
    # As serve loads them: in worker processes unless models.workers is off, the LLM in-process
    # or a llama-server ([llm] server), and closed as serve closes them.
    engines, profile = await prepare(settings, workers=settings.models.workers)
    try:
        await run_all(args, settings, engines, profile)
    finally:
        if engines.pool is not None:
            await engines.pool.close()
        await close_llm(engines.llm)


async def run_all(
    args: argparse.Namespace, settings: Settings, engines: VoiceEngines, profile: AgentProfile
) -> None:
    """Every round of the bench, on engines loaded once."""
    workers = engines.pool is not None
    counts = [int(n) for n in args.calls.split(",")]
    print(
        f"profile {args.models}, {cpu_model()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f} at start, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(
        f"{args.turns} turns per call, barge-in on every {args.barge_every}th, calls "
        f"{args.stagger}s apart, admission {'off (capacity = N)' if args.no_admission else 'on'}"
        f", engines {'in worker processes' if workers else 'in-process'}, LLM "
        f"{settings.llm.endpoint or settings.llm.server}"
    )
    # The rate the dialplan gives AudioSocket (asterisk.audiosocket_format): the line is µ-law
    # at 8 kHz whatever it is, Asterisk converts.
    rate = settings.asterisk.audiosocket_sample_rate()
    print(HEADER)
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as folder, ProcessPoolExecutor(1, mp_context=spawn) as pool:
        caller_pid = pool.submit(os.getpid).result()
        for n in counts:
            scripts, interrupting = caller_scripts(
                n, args.turns, args.barge_every, Path(folder), rate
            )
            result = await run_round(
                settings,
                engines,
                profile,
                scripts,
                interrupting,
                capacity=n if args.no_admission else None,
                stagger_s=args.stagger,
                patience_s=args.patience,
                callers=pool,
                caller_pid=caller_pid,
            )
            print(result.row(), flush=True)
            if args.verbose:
                for index, call in enumerate(result.calls_figures):
                    print(f"   call {index}: {call.describe()}")
            if args.verbose:
                print(
                    "   node stages p50 ms: "
                    + ", ".join(
                        f"{k} {percentile(v, 50):.0f}" for k, v in result.node_stages_ms.items()
                    )
                )
            for reason in result.failed:
                print(f"   {reason}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="ci", help="model profile (ci, default)")
    parser.add_argument("--config", type=Path, default=None, help="a callagent config file")
    parser.add_argument("--calls", default="1,2,4,8", help="simultaneous calls per round")
    parser.add_argument("--turns", type=int, default=4, help="caller turns per call (1-5)")
    parser.add_argument("--barge-every", type=int, default=3, help="every k-th turn talks over")
    parser.add_argument("--stagger", type=float, default=0.5, help="seconds between call starts")
    parser.add_argument(
        "--patience", type=float, default=30.0, help="seconds a caller waits for an answer"
    )
    parser.add_argument(
        "--no-admission",
        action="store_true",
        help="capacity = N: serve every call (what N calls cost) instead of turning some away",
    )
    parser.add_argument("--verbose", action="store_true", help="print every call's figures")
    args = parser.parse_args()
    args.turns = max(1, min(args.turns, len(CALLER_LINES)))
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
