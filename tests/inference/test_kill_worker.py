"""Kill engine workers mid-call (docs/inference.md "When a worker dies"): real worker
processes with the ``ci`` models, real calls over AudioSocket TCP from the loopback caller,
stored in SQLite.

While the agent answers the caller's turn - the LLM streaming the reply, the TTS speaking its
first clause - both workers are SIGKILLed: the caller hears the apology rendered at start, the
call is hung up and stored failed with the engine named; both workers come back, and the next
call is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import signal
import uuid
from pathlib import Path

import numpy as np
import pytest

from callagent.app.audio_files import read_caller_audio
from callagent.app.worker_engines import start_worker_engines, worker_specs
from callagent.inference.supervisor import EnginePool
from callagent.settings import ModelSettings
from callagent.store.db import Database
from callagent.store.schemas import AgentSetup, CallDetail
from callagent.store.services import agents, calls, clients
from callagent.store.states import CallStatus
from callagent.telephony.admission import BusyPrompt
from callagent.telephony.asterisk.loopback_caller import simulate_call
from callagent.telephony.asterisk.server import AudioSocketConnection, AudioSocketServer
from callagent.telephony.call_journal import CallJournals
from callagent.telephony.call_runner import CallReport, CallRunner
from callagent.telephony.routing import CallRouter, ProfileCache
from callagent.voice_pipeline.clock import MonotonicClock

from fakes.routing_rig import CALLER, FALLBACK, number
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


async def kill_mid_reply(pool: EnginePool) -> dict[str, int]:
    """SIGKILL the TTS and the LLM workers once the LLM streams the reply and the TTS speaks
    it (not the greeting, which comes before the LLM streams); returns the killed pids. Polls:
    nothing here is timed."""
    workers = pool.workers
    while "stream" not in workers["llm"].in_flight():  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    while "synthesize" not in workers["tts"].in_flight():  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    killed = {name: workers[name].pid for name in ("tts", "llm")}
    for pid in killed.values():
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    return killed  # type: ignore[return-value]


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
    settings = ModelSettings(profile="ci", models_dir=str(REPO / "models"))
    specs = worker_specs(settings)
    # Short replies: the second call plays its answer out in real time before it ends.
    llm = specs["llm"]
    specs["llm"] = dataclasses.replace(llm, kwargs={**llm.kwargs, "max_tokens": 16})
    engines = await start_worker_engines(settings, specs)
    pool = engines.pool
    assert pool is not None
    try:
        # An agent without training text: a short system prompt keeps the ci LLM quick.
        client = await clients.create_client(db, "Kestrel Bikes (client)")
        did = number()
        await agents.setup_agent(
            db,
            client.client_id,
            AgentSetup(
                agent_name="Kim",
                business_info={"company_name": "Kestrel Bikes"},
                phone_numbers=[did],
            ),
        )
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
            await runner(AsSip(connection, did))  # type: ignore[arg-type]

        async with AudioSocketServer(handler, "127.0.0.1", 0, clock=clock) as server:
            spoken = await apology.audio(8000)
            killer = asyncio.create_task(kill_mid_reply(pool))
            try:
                broken = await simulate_call(
                    "127.0.0.1", server.port, [words], final_wait_s=1.0, max_wait_for_agent_s=120
                )
            finally:
                if not killer.done():
                    killer.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await killer
            assert not killer.cancelled(), "the call ended before the TTS spoke the reply"
            killed = killer.result()
            heard, voiced = frames_heard(broken.agent_pcm, spoken)
            failed = await final(db, client.client_id, broken.call_id)
            for name in ("llm", "tts"):
                while pool.workers[name].state != "ready":  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                assert pool.workers[name].pid != killed[name]
            # After the restarts the next call is answered as usual.
            answered_call = await simulate_call(
                "127.0.0.1", server.port, [words], final_wait_s=1.0, max_wait_for_agent_s=120
            )
            answered = await final(db, client.client_id, answered_call.call_id)
        await journals.close()
    finally:
        await pool.close()
        await db.dispose()
    assert voiced > 20
    assert heard == voiced, f"{heard} of {voiced} voiced apology frames heard"
    assert broken.hung_up_by == "agent"
    assert failed.status == CallStatus.FAILED
    # Whichever of the two requests in flight failed first names the engine.
    assert re.fullmatch(
        r"engine crashed: (llm|tts) \(worker killed by SIGKILL\)", failed.failure_reason
    )
    assert answered.status == CallStatus.COMPLETED
    assert answered.failure_reason == ""
    assert reports[-1].log.turns
    assert reports[-1].log.turns[0].agent_text
    assert {name: w.restarts for name, w in pool.workers.items()} == {
        "stt": 0,
        "llm": 1,
        "tts": 1,
    }
