"""``callagent serve``.

The wiring of :func:`callagent.app.serve.start_telephony` runs in-process on scripted models
against the AMI simulator: AMI, the call placer, routing, persistence and recording retention
from the settings (docs/telephony.md, "``callagent serve``"). The real command runs as a user
runs it - a subprocess on the ``ci`` models (``real_models``), stopped with SIGTERM - once in the
embedded mode and once with Asterisk configured.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import httpx
import pytest

from callagent.api.app import create_app
from callagent.api.state import ApiState
from callagent.app.serve import start_telephony
from callagent.settings import Settings, load_settings
from callagent.store.db import Database
from callagent.store.services import calls
from callagent.store.states import CallStatus
from callagent.telephony.asterisk.config import render_asterisk_config
from callagent.telephony.asterisk.loopback_caller import rms, simulate_call
from callagent.telephony.call_runner import VoiceEngines
from callagent.telephony.outbound import NoTelephonyPlacer
from callagent.voice_pipeline.clock import MonotonicClock

from fakes.ami_simulator import AmiSimulator, Callee
from fakes.routing_rig import CALLER, FALLBACK, SECRET, make_tenant, number
from helpers import store_fixtures
from helpers.audio import voice
from helpers.fakes import FakeLanguageModel, FakeSpeechToText, FakeTextToSpeech

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def telephony_env(audiosocket_port: int, did: str, recordings: Path) -> dict[str, str]:
    return {
        "CALLAGENT_AMI_SECRET": SECRET,
        "CALLAGENT_TRUNK_HOST": "sip.example.net",
        "CALLAGENT_TRUNK_USERNAME": "u1",
        "CALLAGENT_TRUNK_PASSWORD": "p1",
        "CALLAGENT_DIDS": did,
        "CALLAGENT_AUDIOSOCKET_PORT": str(audiosocket_port),
        "CALLAGENT_RECORDINGS_DIR": str(recordings),
        "CALLAGENT_RECORDING_RETENTION_DAYS": "30",
    }


def simulator_for(settings: Settings, callees: dict[str, Callee]) -> AmiSimulator:
    files = render_asterisk_config(
        settings.asterisk, audiosocket_port=settings.network.audiosocket_port
    )
    return AmiSimulator(
        manager_conf=files["manager.conf"],
        extensions_conf=files["extensions.conf"],
        callees=callees,
    )


def old_recording(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4()}.wav"
    path.write_bytes(b"RIFF")
    past = time.time() - 60 * 86400
    os.utime(path, (past, past))
    return path


@pytest.fixture
def sqlite_url() -> str:
    return store_fixtures.migrated_url("sqlite")


@pytest.mark.timeout(40)
async def test_start_telephony_wires_ami_routing_persistence_and_retention(
    sqlite_url: str, tmp_path: Path
) -> None:
    did, phone = number(), number()
    recordings = tmp_path / "recordings"
    expired = old_recording(recordings)
    env = telephony_env(free_port(), did, recordings)
    sim = simulator_for(
        load_settings(environ=env),
        {phone: Callee(utterances=(voice(0.5, 16000),), pause_after_agent_s=0.3)},
    )
    clock = MonotonicClock()
    engines = VoiceEngines(
        FakeSpeechToText(clock, ["Hello?", "Sure."]),  # type: ignore[arg-type]
        FakeTextToSpeech(clock, seconds_per_word=0.05),  # type: ignore[arg-type]
        FakeLanguageModel(clock, ["Hi there.", "Great."]),  # type: ignore[arg-type]
    )
    db = Database(sqlite_url)
    async with sim:
        settings = load_settings(environ={**env, "CALLAGENT_AMI_PORT": str(sim.port)})
        tenant = await make_tenant(db, "Alma", "Alpha Roofing", did)
        telephony = await start_telephony(settings, db, engines, FALLBACK, clock=clock)
        try:
            assert telephony.ami is not None
            await telephony.ami.wait_connected(3)
            async with asyncio.timeout(5):
                while expired.exists():  # retention ran at start  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            inbound = await sim.inbound_call(did, CALLER, (voice(0.5, 16000),))
            app = create_app(lambda: {}, ApiState(db, placer=telephony.placer))
            transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # ASGI typing differs
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as api:
                response = await api.post(
                    "/api/agents/ai/start-call/",
                    json={"phone_number": phone, "ignore_working_hours": True},
                    headers=tenant.headers,
                )
            assert response.status_code == 201, response.text
            outbound_id = uuid.UUID(response.json()["call_id"])
            async with asyncio.timeout(10):
                while len(telephony.finished) < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            status = telephony.status()
        finally:
            await telephony.close()
    assert inbound.call_id is not None
    for call_id in (inbound.call_id, outbound_id):
        detail = await calls.get_call(db, tenant.client_id, call_id)
        assert detail.status == CallStatus.COMPLETED
        assert detail.recording_ref == f"{call_id}.wav"
        assert (recordings / detail.recording_ref).exists()
        assert [t.speaker for t in detail.transcript] == ["agent", "caller", "agent"]
    await db.dispose()
    assert status["ami"] == "connected"
    assert status["calls_finished"] == 2
    assert status["recordings"] == str(recordings)


@pytest.mark.timeout(20)
async def test_without_ami_start_call_says_no_telephony(sqlite_url: str, tmp_path: Path) -> None:
    settings = load_settings(
        environ={"CALLAGENT_AUDIOSOCKET_PORT": "0", "CALLAGENT_RECORDINGS": "false"}
    )
    clock = MonotonicClock()
    engines = VoiceEngines(
        FakeSpeechToText(clock, []),  # type: ignore[arg-type]
        FakeTextToSpeech(clock),  # type: ignore[arg-type]
        FakeLanguageModel(clock, []),  # type: ignore[arg-type]
    )
    db = Database(sqlite_url)
    telephony = await start_telephony(settings, db, engines, FALLBACK)
    try:
        assert isinstance(telephony.placer, NoTelephonyPlacer)
        assert (telephony.ami, telephony.sip, telephony.recordings) == (None, None, None)
        assert telephony.status()["ami"] is None
    finally:
        await telephony.close()
        await db.dispose()


@pytest.mark.real_models
async def test_serve_answers_health_checks_and_audiosocket_calls_then_stops_cleanly(
    tmp_path: Path,
) -> None:
    http_port, audio_port = free_port(), free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callagent.cli",
        "serve",
        "--http-port",
        str(http_port),
        "--audiosocket-port",
        str(audio_port),
        cwd=tmp_path,  # nothing may depend on the current folder but the models
        env={
            "CALLAGENT_MODELS_DIR": str(REPO / "models"),
            "CALLAGENT_MODELS": "ci",
            "CALLAGENT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/db.sqlite",
            "PATH": "/usr/bin:/bin",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        health = await wait_for_health(http_port, server)
        assert health["status"] == "ok"
        result = await simulate_call(
            "127.0.0.1", audio_port, [], max_wait_for_agent_s=20, final_wait_s=0.5
        )
        assert rms(result.agent_pcm) > 100  # the agent greeted the caller
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(server.communicate(), 30)
    assert server.returncode == 0, output.decode()[-3000:]


@pytest.mark.real_models
@pytest.mark.timeout(180)
async def test_serve_with_asterisk_configured_answers_a_clients_number_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    """The real command, real ``ci`` models, the AMI simulator as Asterisk, SIGTERM to stop."""
    did = number()
    http_port, audio_port = free_port(), free_port()
    database_url = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    env = telephony_env(audio_port, did, tmp_path / "recordings")
    sim = simulator_for(load_settings(environ=env), {})
    db = Database(database_url)
    await db.migrate()
    tenant = await make_tenant(db, "Alma", "Alpha Roofing", did)
    async with sim:
        server = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "callagent.cli",
            "serve",
            "--http-port",
            str(http_port),
            cwd=tmp_path,
            env={
                **env,
                "CALLAGENT_AMI_PORT": str(sim.port),
                "CALLAGENT_MODELS_DIR": str(REPO / "models"),
                "CALLAGENT_MODELS": "ci",
                "CALLAGENT_DATABASE_URL": database_url,
                "PATH": "/usr/bin:/bin",
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            health = await wait_for_health(http_port, server, deadline_s=120)
            assert health["audiosocket"] == f"127.0.0.1:{audio_port}"
            deadline = time.monotonic() + 10
            while health["ami"] != "connected" and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                health = await wait_for_health(http_port, server, deadline_s=120)
            assert health["ami"] == "connected"
            channel = await sim.inbound_call(did, CALLER, (), final_wait_s=1.0)
            assert channel.call_id is not None
            detail = None
            async with asyncio.timeout(30):
                while detail is None or detail.status != CallStatus.COMPLETED:
                    await asyncio.sleep(0.2)
                    detail = await calls.get_call(db, tenant.client_id, channel.call_id)
        finally:
            if server.returncode is None:
                server.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(server.communicate(), 60)
    assert server.returncode == 0, output.decode()[-3000:]
    # Read again: the serve process drained the call's last writes before it exited.
    detail = await calls.get_call(db, tenant.client_id, channel.call_id)
    await db.dispose()
    assert detail.transcript[0].text.startswith("Hello, this is Alma from Alpha Roofing.")
    assert detail.recording_ref == f"{channel.call_id}.wav"


async def wait_for_health(
    port: int, server: asyncio.subprocess.Process, deadline_s: float = 90
) -> dict[str, object]:
    """Poll ``GET /health`` until the server answers (model loading takes seconds)."""

    def get() -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return dict(json.loads(response.read()))

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and server.returncode is None:
        try:
            return await asyncio.to_thread(get)
        except OSError:
            await asyncio.sleep(0.5)
    raise AssertionError(f"no health answer; server exit code {server.returncode}")
