"""Kill an engine's worker process mid-call (docs/inference.md "When a worker dies"): real
worker processes with the ``ci`` models, real calls over AudioSocket TCP from the loopback
caller, stored in SQLite.

The LLM worker is SIGKILLed while it streams a reply, then the TTS worker while it speaks one:
each time the caller hears the apology rendered at start, the call is hung up and stored failed
with the engine named; the worker comes back, and the next call is answered.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import numpy as np
import pytest

from callagent.app.audio_files import read_caller_audio
from callagent.inference.engines import start_worker_engines
from callagent.settings import ModelSettings
from callagent.store.db import Database
from callagent.store.schemas import CallDetail
from callagent.store.services import calls
from callagent.store.states import CallStatus
from callagent.telephony.admission import BusyPrompt
from callagent.telephony.asterisk.loopback_caller import LoopbackCallResult, simulate_call
from callagent.telephony.asterisk.server import AudioSocketConnection, AudioSocketServer
from callagent.telephony.call_journal import CallJournals
from callagent.telephony.call_runner import CallReport, CallRunner
from callagent.telephony.routing import CallRouter, ProfileCache
from callagent.voice_pipeline.clock import MonotonicClock

from fakes.routing_rig import CALLER, FALLBACK, make_tenant
from helpers import store_fixtures
from helpers.voices import flite_available, flite_phone_wav

pytestmark = [
    pytest.mark.real_models,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not flite_available() and not os.environ.get("CI"),
        reason="needs Debian's flite (make test installs it)",
    ),
]

REPO = Path(__file__).resolve().parents[2]
APOLOGY = "Sorry, something went wrong on our side. Goodbye."


class AsSip:
    """An AudioSocket connection that names the number dialled, so the router finds the
    tenant's agent and stores the call (as tests/telephony/test_call_runner_voice.py does)."""

    def __init__(self, connection: AudioSocketConnection, dialed: str) -> None:
        self._connection = connection
        self.dialed = dialed
        self.caller = CALLER

    def __getattr__(self, name: str) -> object:
        return getattr(self._connection, name)


async def kill_when_busy(pool: object, engine: str, op: str, after: str | None = None) -> int:
    """SIGKILL ``engine``'s worker as soon as it has an ``op`` request in flight (once the LLM
    streams the reply, when ``after`` is "llm"); returns the killed pid. Polls: nothing here
    is timed."""
    workers = pool.workers  # type: ignore[attr-defined]
    if after is not None:
        while "stream" not in workers[after].in_flight():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
    while op not in workers[engine].in_flight():  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    pid = workers[engine].pid
    os.kill(pid, signal.SIGKILL)
    return pid


async def final(db: Database, client_id: uuid.UUID, call_id: uuid.UUID) -> CallDetail:
    """The stored call once the call runner has written its end (it does so as the line
    closes, so the caller may be done a moment before)."""
    while True:
        stored = await calls.get_call(db, client_id, call_id)
        if stored.status in (CallStatus.FAILED, CallStatus.COMPLETED):
            return stored
        await asyncio.sleep(0.05)


def frames_heard(agent_pcm: bytes, prompt: bytes) -> tuple[int, int]:
    """How many of the prompt's voiced 20 ms frames arrived on the line, byte for byte, and
    how many there are."""
    frames = [prompt[i : i + 320] for i in range(0, len(prompt) - 319, 320)]
    voiced = [f for f in frames if np.abs(np.frombuffer(f, "<i2")).mean() > 300]
    return sum(f in agent_pcm for f in voiced), len(voiced)


@pytest.fixture
def sqlite_url() -> str:
    return store_fixtures.migrated_url("sqlite")


async def test_a_killed_worker_ends_only_its_calls_and_the_next_call_is_answered(
    tmp_path: Path, sqlite_url: str
) -> None:
    words = read_caller_audio(
        flite_phone_wav(
            "Hello, can you tell me your opening hours please?", tmp_path / "c.wav", voice="rms"
        ),
        8000,
    )
    db = Database(sqlite_url)
    engines = await start_worker_engines(
        ModelSettings(profile="ci", models_dir=str(REPO / "models"))
    )
    pool = engines.pool
    assert pool is not None
    try:
        tenant = await make_tenant(db, "Kim", "Kestrel Bikes")
        clock = MonotonicClock()
        apology = BusyPrompt(engines.tts, APOLOGY)
        await apology.prepare()
        journals = CallJournals(db)
        reports: list[CallReport] = []
        runner = CallRunner(
            engines,
            FALLBACK,
            clock,
            on_call_finished=reports.append,
            router=CallRouter(db, ProfileCache(db), fallback=FALLBACK),
            journals=journals,
            apology=apology,
        )

        async def handler(connection: AudioSocketConnection) -> None:
            await runner(AsSip(connection, tenant.did))  # type: ignore[arg-type]

        async def call(kill: str | None = None) -> tuple[LoopbackCallResult, int | None]:
            killer = None
            if kill is not None:
                # While it serves the caller's turn: the LLM streaming the reply, the TTS
                # speaking it (not the greeting, which comes before the LLM streams).
                if kill == "llm":
                    killing = kill_when_busy(pool, "llm", "stream")
                else:
                    killing = kill_when_busy(pool, "tts", "synthesize", after="llm")
                killer = asyncio.create_task(killing)
            try:
                result = await simulate_call(
                    "127.0.0.1", server.port, [words], final_wait_s=1.0, max_wait_for_agent_s=120
                )
            finally:
                if killer is not None and not killer.done():
                    killer.cancel()
            pid = await killer if killer is not None and not killer.cancelled() else None
            return result, pid

        async with AudioSocketServer(handler, "127.0.0.1", 0, clock=clock) as server:
            spoken = await apology.audio(8000)
            outcomes = {}
            for engine in ("llm", "tts"):
                result, killed = await call(kill=engine)
                assert killed is not None
                heard, voiced = frames_heard(result.agent_pcm, spoken)
                assert voiced > 20
                assert heard == voiced, f"{engine}: {heard} of {voiced} apology frames heard"
                assert result.hung_up_by == "agent"
                stored = await final(db, tenant.client_id, result.call_id)
                outcomes[engine] = (stored.status, stored.failure_reason)
                while pool.workers[engine].state != "ready":  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                assert pool.workers[engine].pid != killed
            # After both restarts the next call is answered as usual.
            result, _ = await call()
            answered = await final(db, tenant.client_id, result.call_id)
        await journals.close()
    finally:
        await pool.close()
        await db.dispose()
    assert outcomes == {
        "llm": (CallStatus.FAILED, "engine crashed: llm (worker killed by SIGKILL)"),
        "tts": (CallStatus.FAILED, "engine crashed: tts (worker killed by SIGKILL)"),
    }
    assert answered.status == CallStatus.COMPLETED
    assert reports[-1].log.turns
    assert reports[-1].log.turns[0].agent_text
    assert {name: w.restarts for name, w in pool.workers.items()} == {
        "stt": 0,
        "llm": 1,
        "tts": 1,
    }
