"""``callagent serve``.

The wiring of :func:`callagent.app.serve.start_telephony` runs in-process on scripted models
against the AMI simulator: AMI, the call placer, routing, persistence and recording retention
from the settings (docs/telephony.md, "``callagent serve``"). The real command runs as a user
runs it - a subprocess on the ``ci`` models (``real_models``), stopped with SIGTERM - once in the
embedded mode and once with Asterisk configured, and once killed with SIGKILL mid-call and
started again (docs/telephony.md, "After a crash").
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import signal
import socket
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import soundfile

from callagent.api.app import create_app
from callagent.api.state import ApiState
from callagent.app.serve import FinishedCalls, start_telephony
from callagent.settings import Settings, load_settings
from callagent.store.db import Database
from callagent.store.errors import NotFound
from callagent.store.models import utcnow
from callagent.store.schemas import TranscriptTurn
from callagent.store.services import call_state, calls
from callagent.store.services import telephony as telephony_store
from callagent.store.services.recovery import INTERRUPTED
from callagent.store.states import CallStatus
from callagent.telephony.asterisk.config import render_asterisk_config
from callagent.telephony.asterisk.loopback_caller import rms, simulate_call
from callagent.telephony.call_runner import CallReport, VoiceEngines
from callagent.telephony.outbound import NoTelephonyPlacer
from callagent.telephony.recording import CallRecorder
from callagent.telephony.recovery import GONE_FROM_ASTERISK
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
    return store_fixtures.own_migrated_url("sqlite")


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


@pytest.mark.timeout(20)
async def test_audiosocket_listens_apart_from_http_with_its_own_uuid_deadline(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Opening the API (``network.host``) leaves AudioSocket on ``network.audiosocket_bind``;
    without AMI every AudioSocket call is taken (the embedded mode), which is said at start;
    a peer that sends no call id is dropped after ``network.audiosocket_uuid_timeout_s``."""
    settings = load_settings(
        environ={
            "CALLAGENT_HOST": "0.0.0.0",
            "CALLAGENT_AUDIOSOCKET_PORT": "0",
            "CALLAGENT_AUDIOSOCKET_UUID_TIMEOUT_S": "0.5",
            "CALLAGENT_RECORDINGS": "false",
        }
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
        assert telephony.server.host == "127.0.0.1"
        assert telephony.status()["audiosocket"] == f"127.0.0.1:{telephony.server.port}"
        assert any("takes every call" in r.getMessage() for r in caplog.records)
        reader, writer = await asyncio.open_connection("127.0.0.1", telephony.server.port)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 3) == b""  # closed by the server
        assert 0.4 < time.monotonic() - started < 2.0
        writer.close()
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
        # As a real Asterisk on the default dialplan (c(slin16)) would: 16 kHz both ways.
        result = await simulate_call(
            "127.0.0.1",
            audio_port,
            [],
            sample_rate=16_000,
            max_wait_for_agent_s=20,
            final_wait_s=0.5,
        )
        assert result.error is None, result.error
        assert rms(result.agent_pcm) > 100  # the agent greeted the caller
        # `make run` opens onto a working dashboard: the fresh database has no user, so the
        # start printed a one-time set-up link, and it makes a sign-in (docs/dashboard.md).
        await set_up_through_the_printed_link(server, http_port)
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(server.communicate(), 30)
    assert server.returncode == 0, output.decode()[-3000:]


async def set_up_through_the_printed_link(server: asyncio.subprocess.Process, port: int) -> None:
    """Read serve's output up to the set-up link, open it, create the business and user."""
    assert server.stdout is not None
    link = ""
    async with asyncio.timeout(10):
        while not link:
            line = (await server.stdout.readline()).decode()
            assert line, "serve printed no set-up link"
            found = re.search(r"http://\S+/dashboard/setup\?token=\S+", line)
            link = found.group(0) if found else ""
    assert link.startswith(f"http://127.0.0.1:{port}/")
    async with httpx.AsyncClient(timeout=10) as browser:
        home = await browser.get(f"http://127.0.0.1:{port}/", follow_redirects=True)
        assert "Nobody can sign in yet" in home.text  # the login page says where the link is
        token = link.split("token=", 1)[1]
        form = await browser.get(link)
        assert form.status_code == 200, form.text
        password = "a long enough password"
        done = await browser.post(
            f"http://127.0.0.1:{port}/dashboard/setup",
            data={
                "token": token,
                "business_name": "Sunny Roofs",
                "email": "owner@sunny.example",
                "password": password,
                "password_again": password,
            },
        )
        assert done.status_code == 200, done.text
        overview = await browser.get(f"http://127.0.0.1:{port}/dashboard/")
        assert overview.status_code == 200
        assert "owner@sunny.example" in overview.text
        assert (await browser.get(link)).status_code == 403  # spent


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
            # Details only for a caller with an API key; a probe without one gets "ok" alone.
            assert await wait_for_health(http_port, server, deadline_s=120) == {"status": "ok"}
            health = await wait_for_health(http_port, server, headers=tenant.headers)
            assert health["audiosocket"] == f"127.0.0.1:{audio_port}"
            deadline = time.monotonic() + 10
            while health["ami"] != "connected" and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                health = await wait_for_health(http_port, server, headers=tenant.headers)
            assert health["ami"] == "connected"
            # Each engine in a worker process of its own (docs/inference.md), all ready.
            engines = health["engines"]
            assert isinstance(engines, dict)
            assert {name: e["state"] for name, e in engines.items()} == dict.fromkeys(
                ("stt", "llm", "tts"), "ready"
            )
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
    port: int,
    server: asyncio.subprocess.Process,
    deadline_s: float = 90,
    headers: dict[str, str] | None = None,
) -> dict[str, object]:
    """Poll ``GET /health`` until the server answers (model loading takes seconds); with an
    API key in ``headers`` the answer has the details."""

    def get() -> dict[str, object]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers=headers or {})
        with urllib.request.urlopen(request, timeout=2) as response:
            return dict(json.loads(response.read()))

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and server.returncode is None:
        try:
            return await asyncio.to_thread(get)
        except OSError:
            await asyncio.sleep(0.5)
    raise AssertionError(f"no health answer; server exit code {server.returncode}")


async def fresh_sqlite() -> str:
    """A database of the test's own: crash recovery sweeps every client's calls."""
    url = store_fixtures.fresh_url("sqlite")
    database = Database(url)
    await database.migrate()
    await database.dispose()
    return url


@pytest.mark.timeout(30)
async def test_start_telephony_settles_a_call_a_crash_left_live_and_repairs_its_recording(
    tmp_path: Path,
) -> None:
    """docs/telephony.md, "After a crash": the sweep runs at start-up, in the background."""
    recordings = tmp_path / "recordings"
    db = Database(await fresh_sqlite())
    tenant = await make_tenant(db, "Alma", "Alpha Roofing")
    answered = utcnow() - dt.timedelta(minutes=3)
    call = await telephony_store.open_inbound_call(
        db, call_id=uuid.uuid4(), did=tenant.did, caller=CALLER, channel="PJSIP/t-1", now=answered
    )
    assert call is not None
    assert call.call_id is not None
    last_word = answered + dt.timedelta(seconds=40)
    said = TranscriptTurn(speaker="caller", text="Hello?", at=last_word)
    await call_state.append_turns(db, tenant.client_id, call.call_id, [said], now=last_word)
    left = killed_recording(recordings, call.call_id, seconds=2.5)
    settings = load_settings(
        environ={
            "CALLAGENT_AUDIOSOCKET_PORT": "0",
            "CALLAGENT_RECORDINGS_DIR": str(recordings),
            "CALLAGENT_RECOVERY_STALE_AFTER_S": "60",
            "CALLAGENT_RECOVERY_HEARTBEAT_INTERVAL_S": "1",
        }
    )
    clock = MonotonicClock()
    engines = VoiceEngines(
        FakeSpeechToText(clock, []),  # type: ignore[arg-type]
        FakeTextToSpeech(clock),  # type: ignore[arg-type]
        FakeLanguageModel(clock, []),  # type: ignore[arg-type]
    )
    telephony = await start_telephony(settings, db, engines, FALLBACK, clock=clock)
    try:
        detail = await calls.get_call(db, tenant.client_id, call.call_id)
        async with asyncio.timeout(10):
            while detail.status == CallStatus.IN_PROGRESS:
                await asyncio.sleep(0.05)
                detail = await calls.get_call(db, tenant.client_id, call.call_id)
    finally:
        await telephony.close()
        await db.dispose()
    assert (detail.status, detail.failure_reason) == (CallStatus.FAILED, INTERRUPTED)
    assert (detail.ended_at, detail.duration_s) == (last_word, 40.0)
    assert detail.recording_ref == left.name
    audio, rate = soundfile.read(left, dtype="int16")
    assert (rate, audio.shape[1]) == (16000, 2)
    assert len(audio) > 2 * 16000  # everything that reached the disk, past the last header sync


def killed_recording(folder: Path, call_id: uuid.UUID, seconds: float) -> Path:
    """The call's recording as a ``kill -9`` mid-call leaves it: what reached the disk."""
    recorder = CallRecorder(folder / "writing", call_id)
    frame = voice(0.02, 16000)
    for _ in range(round(seconds * 50)):
        recorder.caller_audio(frame, 16000)
        recorder.agent_audio(frame)
    left = folder / recorder.path.name
    left.write_bytes(recorder.path.read_bytes())
    recorder.close()
    return left


@pytest.mark.real_models
@pytest.mark.timeout(300)
async def test_after_kill_9_mid_call_the_restarted_server_settles_the_call_and_its_recording(
    tmp_path: Path,
) -> None:
    """The real command on the ``ci`` models, the AMI simulator as Asterisk: a caller is
    talking to the agent when the server gets SIGKILL; the server started again settles the call
    as interrupted and repairs its recording (docs/telephony.md, "After a crash")."""
    did = number()
    recordings = tmp_path / "recordings"
    database_url = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    env = {
        **telephony_env(free_port(), did, recordings),
        "CALLAGENT_MODELS_DIR": str(REPO / "models"),
        "CALLAGENT_MODELS": "ci",
        "CALLAGENT_STARTUP_CHECK": "false",
        "CALLAGENT_DATABASE_URL": database_url,
        "CALLAGENT_RECOVERY_HEARTBEAT_INTERVAL_S": "0.5",
        "CALLAGENT_RECOVERY_STALE_AFTER_S": "2",
        "CALLAGENT_RECOVERY_SWEEP_INTERVAL_S": "1",
        "PATH": "/usr/bin:/bin",
    }
    sim = simulator_for(load_settings(environ=env), {})
    db = Database(database_url)
    await db.migrate()
    tenant = await make_tenant(db, "Alma", "Alpha Roofing", did)
    async with sim:
        env["CALLAGENT_AMI_PORT"] = str(sim.port)
        first = await start_serve(env, tmp_path)
        try:
            await wait_for_ami(first, tenant.headers)
            # The caller listens to the greeting, then stays on the line in silence.
            caller = asyncio.create_task(
                sim.inbound_call(did, CALLER, (), final_wait_s=60, max_wait_for_agent_s=30)
            )
            call_id = await wait_for_call_id(sim, did)
            recording = recordings / f"{call_id}.wav"
            # Killed once the greeting is stored (it is written as it is spoken) and more than
            # three seconds of the call are recorded (16 kHz stereo: 64,000 bytes a second).
            async with asyncio.timeout(60):
                while not (  # noqa: ASYNC110 - another process writes both
                    recording.exists()
                    and recording.stat().st_size > 44 + 3 * 64_000
                    and await greeted(db, tenant.client_id, call_id)
                ):
                    await asyncio.sleep(0.1)
            first.server.kill()
            await first.server.wait()
            killed_at = utcnow()
        finally:
            await first.stop()
        await asyncio.wait_for(caller, 10)  # Asterisk's side: the AudioSocket leg died
        # Nothing ended the call: the killed process could not.
        stuck = await calls.get_call(db, tenant.client_id, call_id)
        assert (stuck.status, stuck.ended_at) == (CallStatus.IN_PROGRESS, None)

        second = await start_serve(env, tmp_path)
        try:
            detail = stuck
            async with asyncio.timeout(120):
                while detail.status == CallStatus.IN_PROGRESS:
                    await asyncio.sleep(0.2)
                    detail = await calls.get_call(db, tenant.client_id, call_id)
        finally:
            output = await second.stop()
        assert second.server.returncode == 0, output[-3000:]
    await db.dispose()
    assert detail.status == CallStatus.FAILED
    assert detail.failure_reason in (INTERRUPTED, INTERRUPTED + GONE_FROM_ASTERISK)
    assert detail.ended_at is not None
    assert stuck.started_at is not None
    assert stuck.started_at < detail.ended_at <= killed_at
    assert detail.transcript[0].text.startswith("Hello, this is Alma from Alpha Roofing.")
    assert detail.recording_ref == recording.name
    audio, rate = soundfile.read(recording, dtype="int16")
    assert (rate, audio.shape[1]) == (16000, 2)
    assert len(audio) / rate > 3.0
    assert rms(audio[:, 1].tobytes()) > 100  # the agent's side holds the greeting


@dataclass
class Serve:
    """``callagent serve`` running as a subprocess."""

    server: asyncio.subprocess.Process
    http_port: int

    async def stop(self) -> str:
        """SIGTERM unless it already exited; its output."""
        if self.server.returncode is None:
            self.server.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(self.server.communicate(), 60)
        return output.decode()


async def start_serve(env: dict[str, str], folder: Path) -> Serve:
    """Start ``callagent serve`` and wait until it answers ``/health``."""
    http_port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callagent.cli",
        "serve",
        "--http-port",
        str(http_port),
        cwd=folder,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    serve = Serve(server, http_port)
    try:
        await wait_for_health(http_port, server, deadline_s=120)
    except BaseException:
        print(await serve.stop())
        raise
    return serve


async def greeted(db: Database, client_id: uuid.UUID, call_id: uuid.UUID) -> bool:
    """Whether the call session exists and holds the agent's greeting."""
    try:
        detail = await calls.get_call(db, client_id, call_id)
    except NotFound:
        return False
    return bool(detail.transcript)


async def wait_for_ami(serve: Serve, headers: dict[str, str]) -> None:
    """Until the server has logged in to AMI (``/health`` shows it to a caller with a key)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        health = await wait_for_health(serve.http_port, serve.server, headers=headers)
        if health.get("ami") == "connected":
            return
        await asyncio.sleep(0.2)
    raise AssertionError("callagent serve did not log in to AMI")


async def wait_for_call_id(sim: AmiSimulator, did: str) -> uuid.UUID:
    """The call id the simulated dialplan gave the call to ``did``."""
    async with asyncio.timeout(10):
        while True:
            for channel in sim.channels.values():
                if channel.variables.get("CALLAGENT_DID") == did and channel.call_id:
                    return channel.call_id
            await asyncio.sleep(0.02)


def test_the_webhook_worker_takes_the_webhooks_settings() -> None:
    """serve hands the ``webhooks`` section to the delivery worker (DESIGN.md practice 12)."""
    from callagent.app.serve import webhook_params

    settings = load_settings(
        environ={
            "CALLAGENT_WEBHOOKS_POLL_INTERVAL_S": "2",
            "CALLAGENT_WEBHOOKS_LEASE_S": "90",
            "CALLAGENT_WEBHOOKS_MAX_ATTEMPTS": "4",
            "CALLAGENT_WEBHOOKS_BACKOFF_BASE_S": "5",
            "CALLAGENT_WEBHOOKS_BACKOFF_MAX_S": "60",
            "CALLAGENT_WEBHOOKS_TIMEOUT_S": "3",
            "CALLAGENT_WEBHOOKS_RETENTION_DAYS": "9",
        }
    )
    params = webhook_params(settings)
    assert (params.poll_interval_s, params.lease_s, params.max_attempts) == (2.0, 90.0, 4)
    assert (params.backoff_base_s, params.backoff_max_s) == (5.0, 60.0)
    assert (params.timeout_s, params.retention_days) == (3.0, 9.0)


def test_a_long_running_node_keeps_only_its_latest_call_reports_but_counts_them_all() -> None:
    finished = FinishedCalls(keep=3)
    reports = [CallReport(call_id=uuid.uuid4()) for _ in range(5)]
    for report in reports:
        finished.append(report)
    assert finished.count == 5
    assert list(finished) == reports[-3:]
    assert len(finished) == 3
