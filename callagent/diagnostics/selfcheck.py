"""The engine self-check: each model does one small real job in a child process.

A native library that traps takes its process down with it; in ``callagent serve`` that would be
every call and the API (docs/install.md). So the check runs :mod:`.probe` once per engine in a
subprocess and turns what happened — a result, a Python error, a signal, a hang — into a verdict
that names the engine, the cause and what to do. ``make run`` runs it after installing and, when
llama.cpp died from a signal, rebuilds llama-cpp-python one instruction-set level lower, once
(``scripts/self_check.sh``).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callagent.diagnostics.probe import PROBE_SENTENCE
from callagent.modelfiles import ModelProfile

PROBE_TIMEOUT_S = 300.0
"""Loading a 1 GB model from a cold disk and generating a few tokens takes seconds; a probe
still running after five minutes is stuck."""

REBUILD_ADVICE = (
    "rebuild llama-cpp-python for a safer instruction-set level with "
    "`.venv/bin/python scripts/build_llama.py step-down` (`make run` does this once by itself); "
    "`scripts/build_llama.py show` lists what this CPU offers"
)


class EngineCheckError(RuntimeError):
    """An engine cannot run here; the message says which, why and what to do."""


@dataclass(frozen=True)
class EngineCheck:
    """The verdict on one engine."""

    engine: str
    """``llm``, ``tts`` or ``stt``."""
    ok: bool
    detail: str
    """What happened, in one line."""
    advice: str = ""
    """What to do about it; empty when ``ok``."""
    crashed: bool = False
    """The child died from a signal (a native crash, e.g. SIGILL)."""
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    """The probe's own report (e.g. the llama.cpp build's ``system_info``)."""


ENGINE_NAMES = {"llm": "llama.cpp (LLM)", "tts": "Piper (TTS)", "stt": "faster-whisper (STT)"}


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def run_probe(
    engine: str, arguments: Sequence[str], *, python: str = sys.executable, timeout: float
) -> EngineCheck:
    """Run one probe child and judge its exit."""
    command = [python, "-m", "callagent.diagnostics.probe", engine, *arguments]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return EngineCheck(
            engine,
            False,
            f"{ENGINE_NAMES[engine]} did not finish within {timeout:.0f} s",
            "the machine may be overloaded or out of memory; run `callagent doctor` when idle",
            seconds=timeout,
        )
    seconds = time.perf_counter() - started
    if done.returncode < 0:
        name = _signal_name(done.returncode)
        cause = {
            "SIGILL": "illegal instruction: the build uses an instruction this CPU (or VM) "
            "cannot run",
            "SIGKILL": "killed, most often by the kernel when memory ran out",
        }.get(name, "a native crash")
        advice = (
            REBUILD_ADVICE
            if engine == "llm" and name != "SIGKILL"
            else "reinstall with `make install`, then run `callagent doctor` and report its output"
        )
        return EngineCheck(
            engine,
            False,
            f"{ENGINE_NAMES[engine]} died with {name} ({cause})",
            advice,
            crashed=True,
            seconds=seconds,
        )
    lines = done.stdout.strip().splitlines()
    try:
        report: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    except ValueError:
        report = {}
    if done.returncode != 0 or not report.get("ok"):
        error = report.get("error") or (done.stderr.strip().splitlines() or ["no output"])[-1]
        return EngineCheck(
            engine,
            False,
            f"{ENGINE_NAMES[engine]} failed: {error}",
            "check the model files with `callagent models verify`; reinstall with `make install`",
            seconds=seconds,
            data=report,
        )
    return EngineCheck(engine, True, _summary(engine, report), seconds=seconds, data=report)


def _summary(engine: str, report: dict[str, Any]) -> str:
    if engine == "llm":
        return f"generated {report.get('text', '')!r}"
    if engine == "tts":
        return f"spoke {report.get('seconds_of_audio')} s of audio"
    return f"heard {report.get('text', '')!r}"


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def check_transcript(check: EngineCheck) -> EngineCheck:
    """Whisper must have heard at least half the words Piper said: a model that loads but
    transcribes garbage is not working either."""
    if not check.ok:
        return check
    expected = _words(PROBE_SENTENCE)
    heard = _words(str(check.data.get("text", "")))
    if len(expected & heard) * 2 >= len(expected):
        return check
    return EngineCheck(
        "stt",
        False,
        f"faster-whisper heard {check.data.get('text', '')!r} for {PROBE_SENTENCE!r}",
        "check the model files with `callagent models verify`",
        seconds=check.seconds,
        data=check.data,
    )


def self_check(
    profile: ModelProfile,
    *,
    llm_threads: int = 1,
    engines: Sequence[str] = ("llm", "tts", "stt"),
    python: str = sys.executable,
    timeout: float = PROBE_TIMEOUT_S,
) -> list[EngineCheck]:
    """Check each engine of ``profile`` in its own process; Whisper transcribes Piper's speech
    (silence when Piper failed, which then only proves Whisper runs)."""
    results: list[EngineCheck] = []
    with tempfile.TemporaryDirectory(prefix="callagent-selfcheck-") as scratch:
        speech = Path(scratch) / "probe.wav"
        for engine in engines:
            if engine == "llm":
                arguments = ["--model", str(profile.llm_path), "--threads", str(llm_threads)]
            elif engine == "tts":
                arguments = ["--model", str(profile.tts_model), "--config", str(profile.tts_config)]
                arguments += ["--out", str(speech)]
            else:
                arguments = ["--model", str(profile.stt_dir)]
                if speech.is_file():
                    arguments += ["--audio", str(speech)]
            check = run_probe(engine, arguments, python=python, timeout=timeout)
            if engine == "stt" and speech.is_file():
                check = check_transcript(check)
            results.append(check)
    return results


def require_llm_runs(model: Path, *, threads: int = 1, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise :class:`EngineCheckError` unless llama.cpp generates with ``model`` in a child.

    ``callagent serve`` calls this before it loads the model into its own process, where a
    build that traps would take every call and the API down on the first reply.
    """
    check = run_probe("llm", ["--model", str(model), "--threads", str(threads)], timeout=timeout)
    if not check.ok:
        raise EngineCheckError(f"{check.detail}; {check.advice}")
