"""A routed call speaks with its agent's voice (docs/models.md, "Voices"): two clients' agents,
one that chose the female voice and one that kept the default, answer over a real AudioSocket
connection with the real voices of the ``ci`` models, and the greeting on the line has each
voice's pitch."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from callagent.modelfiles import ModelProfile, installed_voices
from callagent.store.db import Database
from callagent.store.schemas import AgentUpdate
from callagent.store.services import agents
from callagent.telephony.asterisk.loopback_caller import simulate_call
from callagent.telephony.asterisk.server import AudioSocketConnection, AudioSocketServer
from callagent.telephony.call_runner import CallReport, CallRunner, VoiceEngines
from callagent.telephony.routing import CallRouter, ProfileCache
from callagent.voice_pipeline.clock import MonotonicClock
from callagent.voice_pipeline.tts import PiperTextToSpeech, VoiceFiles, VoiceLibrary

from fakes.routing_rig import CALLER, FALLBACK, Tenant, make_tenant
from helpers import store_fixtures
from helpers.fakes import FakeLanguageModel, FakeSpeechToText
from helpers.pitch import median_pitch_hz

pytestmark = [pytest.mark.real_models, pytest.mark.timeout(120)]

MODELS = Path(__file__).resolve().parents[2] / "models"


class AsSip:
    """An AudioSocket connection dressed as a direct-SIP call, so it names the number dialled
    (the SIP endpoint itself is tested with real peers in tests/telephony/sip)."""

    def __init__(self, connection: AudioSocketConnection, dialed: str, caller: str) -> None:
        self._connection = connection
        self.dialed = dialed
        self.caller = caller

    def __getattr__(self, name: str) -> object:
        return getattr(self._connection, name)


@pytest.fixture
def sqlite_url() -> str:
    return store_fixtures.migrated_url("sqlite")


async def test_a_routed_call_speaks_with_the_voice_its_agent_chose(
    ci_models: ModelProfile, sqlite_url: str
) -> None:
    db = Database(sqlite_url)
    try:
        hana = await make_tenant(db, "Hana", "Harbor Insurance")
        jon = await make_tenant(db, "Jon", "Juniper Roofing")
        await agents.update_agent(db, hana.client_id, AgentUpdate(voice_model="en_US-heart-hibari"))
        clock = MonotonicClock()
        default = PiperTextToSpeech(ci_models.tts_model, ci_models.tts_config)
        catalog = installed_voices(MODELS, "ci")
        library = VoiceLibrary(
            [
                VoiceFiles(v.name, v.engine, v.model_path, v.config_path, v.aliases)
                for v in catalog.voices
            ],
            default,
            default_name=catalog.default,
        )
        engines = VoiceEngines(
            FakeSpeechToText(clock, []),  # type: ignore[arg-type]
            default,
            FakeLanguageModel(clock, []),  # type: ignore[arg-type]
            voices=library,
        )
        reports: list[CallReport] = []
        router = CallRouter(db, ProfileCache(db), fallback=FALLBACK)
        runner = CallRunner(
            engines, FALLBACK, clock, on_call_finished=reports.append, router=router
        )
        dialled: dict[uuid.UUID, Tenant] = {}

        async def handler(connection: AudioSocketConnection) -> None:
            tenant = dialled[connection.call_id]
            await runner(AsSip(connection, tenant.did, CALLER))  # type: ignore[arg-type]

        pitch: dict[str, float] = {}
        async with AudioSocketServer(handler, "127.0.0.1", 0, clock=clock) as server:
            for tenant in (hana, jon, hana):
                call_id = uuid.uuid4()
                dialled[call_id] = tenant
                # The caller listens to the greeting and hangs up.
                result = await simulate_call(
                    "127.0.0.1", server.port, [], call_id=call_id, final_wait_s=0.5
                )
                pitch[tenant.agent_name] = median_pitch_hz(result.agent_pcm, 8000)
    finally:
        await db.dispose()
    assert [r.log.agent_lines[0].startswith("Hello, this is") for r in reports] == [True] * 3
    # Hana's agent chose the female voice (~200 Hz), Jon's kept joe (~100 Hz).
    assert pitch["Hana"] > 170, pitch
    assert pitch["Jon"] < 150, pitch
    assert library.loads == 1  # the second call of Hana's agent found the voice loaded
