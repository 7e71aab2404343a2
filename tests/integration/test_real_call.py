"""Whole calls on the real models of the ``ci`` profile, over a real TCP AudioSocket connection
to an in-process server, with a client that behaves like Asterisk (docs/pipeline.md, "Tests")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from callagent.app.audio_files import read_caller_audio
from callagent.app.components import prepare
from callagent.app.simulate import run_simulated_call
from callagent.settings import Settings, load_settings
from callagent.telephony.asterisk.loopback_caller import Interruption
from callagent.telephony.call_runner import VoiceEngines
from callagent.voice_pipeline.stt import WhisperSpeechToText

from helpers.audio import rms
from helpers.voices import flite_available, flite_phone_wav, word_set

pytestmark = [
    pytest.mark.real_models,
    # In CI the test command installs flite: there a missing flite must fail, not skip.
    pytest.mark.skipif(
        not flite_available() and not os.environ.get("CI"),
        reason="needs Debian's flite (make test installs it)",
    ),
]

REPO = Path(__file__).resolve().parents[2]
QUESTION = "Hi, I am thinking about solar panels for my roof. How much would that cost?"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(
        environ={},
        overrides={("models", "profile"): "ci", ("models", "models_dir"): REPO / "models"},
    )


@pytest.fixture(scope="module")
def loaded(settings: Settings) -> tuple[VoiceEngines, object]:
    import asyncio

    return asyncio.run(prepare(settings))


async def test_a_whole_call_is_understood_and_answered_in_intelligible_speech(
    tmp_path: Path, settings: Settings, loaded: tuple[VoiceEngines, object]
) -> None:
    engines, profile = loaded
    caller = read_caller_audio(flite_phone_wav(QUESTION, tmp_path / "caller.wav"), 8000)
    report, result = await run_simulated_call(
        settings,
        [caller],
        engines=engines,
        profile=profile,  # type: ignore[arg-type]
    )
    data = report.to_json()
    assert data["greeting"] == profile.greeting_text()  # type: ignore[attr-defined]
    assert len(data["turns"]) >= 1, data
    turn = data["turns"][0]
    # The caller's words come out in the transcript.
    assert {"solar", "panels", "roof", "cost"} <= word_set(turn["caller_text"]), turn
    assert turn["agent_text"].strip()
    latency = turn["latency_ms"]
    assert latency["voice_to_voice"] is not None
    assert latency["voice_to_voice"] > 0
    # The agent's audio, transcribed back, is the English it logged.
    assert isinstance(engines.stt, WhisperSpeechToText)
    heard = await engines.stt.transcribe(result.agent_pcm, result.sample_rate)
    said = data["greeting"] + " " + " ".join(t["agent_text"] for t in data["turns"])
    overlap = len(word_set(heard.text) & word_set(said)) / len(word_set(said))
    assert overlap >= 0.6, (heard.text, said)
    assert result.agent_max_lead_s <= 0.06  # paced: never more than a frame or two ahead


async def test_goodbye_ends_the_call_from_the_agent_side(
    tmp_path: Path, settings: Settings, loaded: tuple[VoiceEngines, object]
) -> None:
    engines, profile = loaded
    caller = read_caller_audio(
        flite_phone_wav("Okay, thank you. Goodbye!", tmp_path / "bye.wav", voice="awb"), 8000
    )
    report, result = await run_simulated_call(
        settings,
        [caller],
        engines=engines,
        profile=profile,  # type: ignore[arg-type]
    )
    assert result.hung_up_by == "agent"
    assert report.to_json()["turns"][-1]["agent_text"] == profile.goodbye  # type: ignore[attr-defined]


def test_cli_simulates_a_call_on_a_recording_it_has_never_seen(tmp_path: Path) -> None:
    caller = flite_phone_wav(
        "Good morning. Do you also install batteries for storing energy?",
        tmp_path / "never_seen.wav",
        voice="rms",
    )
    out = tmp_path / "agent.wav"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "callagent.cli",
            "call",
            "--simulate",
            str(caller),
            "--out",
            str(out),
            "--json",
            "--models",
            "ci",
            "--models-dir",
            str(REPO / "models"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    data = json.loads(completed.stdout)
    assert {"install", "batteries"} <= word_set(data["turns"][0]["caller_text"])
    assert set(data["turns"][0]["latency_ms"]) >= {
        "stt",
        "llm_first_token",
        "tts_first_audio",
        "voice_to_voice",
    }
    assert isinstance(data["barge_ins"], int)
    assert out.stat().st_size > 8000 * 2  # over a second of agent audio


async def test_caller_barging_in_stops_the_agent_within_150_ms(
    tmp_path: Path, settings: Settings, loaded: tuple[VoiceEngines, object]
) -> None:
    engines, profile = loaded
    question = read_caller_audio(
        flite_phone_wav(
            "Please tell me everything about your company and your solar panels.",
            tmp_path / "q.wav",
        ),
        8000,
    )
    cut_in = read_caller_audio(
        flite_phone_wav("Sorry, just tell me the price.", tmp_path / "cut.wav", voice="awb"),
        8000,
    )
    report, result = await run_simulated_call(
        settings,
        [question, Interruption(cut_in, after_agent_speech_s=1.0)],
        engines=engines,
        profile=profile,  # type: ignore[arg-type]
    )
    data = report.to_json()
    assert data["barge_ins"] >= 1, data
    assert all(stop_ms <= 150 for stop_ms in data["barge_in_stop_ms"]), data
    interrupted = [turn for turn in data["turns"] if turn["interrupted"]]
    assert interrupted, data
    # The history holds what the caller heard: a cut-off reply, and the caller's cut-in.
    assert {"price"} <= word_set(data["turns"][-1]["caller_text"]), data
    # On the wire, as the caller hears it: the agent goes quiet soon after the cut-in starts.
    caller_loud = loud_ticks(result.caller_pcm)
    agent_loud = loud_ticks(result.agent_pcm)
    cut_in_start = next(t for t in caller_loud if t - 1 not in caller_loud and t > 100)
    agent_stop = cut_in_start
    while agent_stop + 1 in agent_loud:
        agent_stop += 1
    assert (agent_stop - cut_in_start) * 20 <= 200


def loud_ticks(pcm: bytes) -> set[int]:
    """Indexes of the 20 ms frames (8 kHz) that carry sound."""
    return {i // 320 for i in range(0, len(pcm) - 319, 320) if rms(pcm[i : i + 320]) > 0.01}
