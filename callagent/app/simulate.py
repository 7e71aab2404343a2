"""``callagent call --simulate``: one whole call against an in-process AudioSocket server.

The caller is :func:`~callagent.telephony.asterisk.loopback_caller.simulate_call`, a client that
behaves like Asterisk, playing recordings; the agent runs on the real models and pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from callagent.app.audio_files import read_caller_audio, write_wav
from callagent.app.components import pipeline_settings, prepare
from callagent.dialog.agent_profile import AgentProfile
from callagent.settings import Settings
from callagent.telephony.asterisk.loopback_caller import Interruption, simulate_call
from callagent.telephony.asterisk.server import AudioSocketServer
from callagent.telephony.call_runner import CallReport, CallRunner, VoiceEngines
from callagent.voice_pipeline.clock import MonotonicClock


async def run_simulated_call(
    settings: Settings,
    utterances: Sequence[bytes | Interruption],
    *,
    sample_rate: int = 8000,
    engines: VoiceEngines | None = None,
    profile: AgentProfile | None = None,
) -> tuple[CallReport, Any]:
    """One whole call through a real TCP AudioSocket connection to an in-process server, with
    a client that behaves like Asterisk. ``utterances`` are PCM at ``sample_rate``, one per
    caller turn."""
    if engines is None or profile is None:
        engines, profile = await prepare(settings)
    reports: list[CallReport] = []
    clock = MonotonicClock()
    runner = CallRunner(
        engines,
        profile,
        clock,
        pipeline_settings(settings),
        on_call_finished=reports.append,
    )
    # The loopback caller plays Asterisk with a dialplan that fixes ``sample_rate``.
    async with AudioSocketServer(
        runner, "127.0.0.1", 0, clock=clock, sample_rate=sample_rate
    ) as server:
        result = await simulate_call("127.0.0.1", server.port, utterances, sample_rate=sample_rate)
    # Closing the server waited for the call handler, so the report is complete.
    (report,) = reports
    return report, result


def print_call(report: CallReport) -> None:
    """The call as a transcript with each turn's latency figures, for a person to read."""
    data = report.to_json()
    if data["greeting"]:
        print(f"agent : {data['greeting']}")
    for turn in data["turns"]:
        print(f"caller: {turn['caller_text']}")
        cut = " [interrupted]" if turn["interrupted"] else ""
        print(f"agent : {turn['agent_text']}{cut}")
        latency = ", ".join(f"{k} {v:.0f}" for k, v in turn["latency_ms"].items() if v is not None)
        print(f"        ({latency} ms)")
    for action in data["actions"]:
        details = ", ".join(f"{k}={v}" for k, v in action.items() if k not in ("type", "source"))
        print(f"action: {action['type']} ({action['source']}){': ' + details if details else ''}")
    print(f"barge-ins: {data['barge_ins']}, call length {data['duration_s']} s")


async def run_call(
    settings: Settings,
    callers: Sequence[Path],
    *,
    rate: int,
    out: Path | None = None,
    recording: Path | None = None,
    as_json: bool = False,
) -> int:
    """Play ``callers`` (audio files, one per caller turn) at wire rate ``rate`` to the agent;
    write the agent's audio to ``out`` and the call to ``recording`` (caller left, agent
    right); print the call as text or one JSON object. Returns the exit code."""
    utterances = [read_caller_audio(path, rate) for path in callers]
    report, result = await run_simulated_call(settings, utterances, sample_rate=rate)
    if out:
        write_wav(out, result.agent_pcm, result.sample_rate)
    if recording:
        result.write_wav(recording)
    if as_json:
        print(json.dumps({**report.to_json(), "hung_up_by": result.hung_up_by}))
    else:
        print_call(report)
    return 0
