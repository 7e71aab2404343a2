"""A node at capacity (docs/telephony.md "Capacity", docs/metrics.md).

On the real models of the ``ci`` profile, over real TCP AudioSocket connections from the
loopback caller (which behaves like Asterisk): a second call while the first is live hears the
busy prompt and is hung up, the first goes on as if alone, and ``GET /metrics`` then shows the
first call's turns. Through the AMI simulator and a real database (scripted models): the
refused call is stored, a callback offered, and start-call refused meanwhile."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from callagent.api.app import create_app
from callagent.api.state import ApiState
from callagent.app.audio_files import read_caller_audio
from callagent.app.components import pipeline_settings, prepare
from callagent.dialog.agent_profile import AgentProfile
from callagent.settings import Settings, load_settings
from callagent.store.db import Database
from callagent.store.models import WebhookEvent
from callagent.store.services import clients, webhooks
from callagent.store.services.webhooks import WebhookEndpointCreate
from callagent.store.states import CallOutcome, CallStatus
from callagent.telephony.admission import BusyPrompt, CallAdmission
from callagent.telephony.asterisk.loopback_caller import simulate_call
from callagent.telephony.asterisk.server import AudioSocketServer
from callagent.telephony.call_runner import CallReport, CallRunner, VoiceEngines
from callagent.telephony.metrics import STAGES, CallMetrics
from callagent.voice_pipeline.clock import MonotonicClock

from fakes.routing_rig import CALLER, make_tenant, number, routing_rig
from helpers.voices import flite_available, flite_phone_wav, word_set

# In CI the test command installs flite: there a missing flite must fail, not skip.
needs_flite = pytest.mark.skipif(
    not flite_available() and not os.environ.get("CI"),
    reason="needs Debian's flite (make test installs it)",
)

REPO = Path(__file__).resolve().parents[2]
QUESTION = "Hi, I am thinking about solar panels for my roof. How much would that cost?"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(
        environ={},
        overrides={
            ("models", "profile"): "ci",
            ("models", "models_dir"): REPO / "models",
            ("routing", "max_active_calls"): 1,
        },
    )


@pytest.fixture(scope="module")
def loaded(settings: Settings) -> tuple[VoiceEngines, AgentProfile]:
    return asyncio.run(prepare(settings))


def scraped(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.real_models
@needs_flite
async def test_a_call_beyond_capacity_hears_the_busy_prompt_while_the_live_call_goes_on(
    tmp_path: Path, settings: Settings, loaded: tuple[VoiceEngines, AgentProfile]
) -> None:
    engines, profile = loaded
    clock = MonotonicClock()
    admission = CallAdmission(settings.routing.max_active_calls)
    busy = BusyPrompt(engines.tts, settings.routing.busy_message)
    await busy.prepare()
    metrics = CallMetrics()
    metrics.watch_admission(admission)
    reports: list[CallReport] = []
    runner = CallRunner(
        engines,
        profile,
        clock,
        pipeline_settings(settings),
        on_call_finished=reports.append,
        admission=admission,
        busy=busy,
        metrics=metrics,
    )
    question = read_caller_audio(flite_phone_wav(QUESTION, tmp_path / "question.wav"), 8000)
    async with AudioSocketServer(runner, "127.0.0.1", 0, clock=clock, sample_rate=8000) as server:
        first = asyncio.create_task(
            simulate_call("127.0.0.1", server.port, [question], clock=clock, final_wait_s=2.0)
        )
        async with asyncio.timeout(30):
            while admission.active == 0:  # noqa: ASYNC110 - the runner's state, no event
                await asyncio.sleep(0.01)
        # The second caller says nothing and would wait 5 s after the agent fell silent: the
        # agent must end the call first.
        second = await simulate_call(
            "127.0.0.1",
            server.port,
            [],
            clock=clock,
            final_wait_s=5.0,
            max_wait_for_agent_s=30.0,
        )
        first_live_meanwhile = admission.active == 1 and not first.done()
        first_result = await first

    # The second call: the busy prompt, then the agent's hang-up (AudioSocket 0x00).
    assert second.hung_up_by == "agent"
    assert second.error is None
    heard = await engines.stt.transcribe(second.agent_pcm, second.sample_rate)
    assert "busy" in word_set(heard.text), heard.text
    assert admission.refused == {"audiosocket": 1}

    # The first call was live throughout and went on as if alone.
    assert first_live_meanwhile
    assert first_result.hung_up_by == "caller"
    assert first_result.error is None
    assert first_result.agent_max_lead_s <= 0.06  # still paced
    assert len(reports) == 1  # the refused call is no conversation
    report = reports[0]
    assert report.call_id == first_result.call_id
    assert report.log.turns, report.to_json()
    turn = report.log.turns[0]
    assert {"solar", "panels", "roof"} <= word_set(turn.caller_text), turn.caller_text
    assert turn.agent_text.strip()

    # GET /metrics, with an API key, as Prometheus scrapes it.
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'metrics.db'}")
    try:
        await db.migrate()
        ops = await clients.create_client(db, "Operations")
        app = create_app(lambda: {}, ApiState(db=db), metrics=metrics)
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # ASGI typing differs
        async with httpx.AsyncClient(transport=transport, base_url="http://callagent") as http:
            assert (await http.get("/metrics")).status_code == 401
            response = await http.get(
                "/metrics", headers={"Authorization": f"Bearer {ops.api_key}"}
            )
    finally:
        await db.dispose()
    assert response.status_code == 200
    got = scraped(response.text)
    turns = report.log.turns
    for stage in STAGES:
        reached = [t for t in turns if t.latency_ms()[stage] is not None]
        count = got[("callagent_turn_stage_seconds_count", (("stage", stage),))]
        assert count == len(reached), stage
        total = got[("callagent_turn_stage_seconds_sum", (("stage", stage),))]
        # A frame leaves on the next 20 ms tick: "wire" may round to nothing.
        assert total > 0 or stage == "wire", stage
    spoken = [t for t in turns if t.latency_ms()["voice_to_voice"] is not None]
    assert got[("callagent_voice_to_voice_seconds_count", ())] == len(spoken) >= 1
    assert got[("callagent_voice_to_voice_seconds_sum", ())] > 0
    assert got[("callagent_calls_total", (("outcome", "completed"),))] == 1
    assert got[("callagent_calls_total", (("outcome", "refused"),))] == 1
    assert got[("callagent_calls_refused_total", (("via", "audiosocket"),))] == 1
    assert got[("callagent_active_calls", ())] == 0
    assert got[("callagent_call_capacity", ())] == 1
    assert got[("callagent_outbound_frame_gap_seconds_count", ())] > 0


OTHER_CALLER = "+4917099999999"


async def test_a_refused_inbound_call_is_stored_as_busy_with_a_callback_offered(
    database_url: str, tmp_path: Path
) -> None:
    did = number()
    async with routing_rig(database_url, tmp_path / "recordings", dids=[did], capacity=1) as rig:
        assert rig.admission is not None
        tenant = await make_tenant(rig.db, "Alma", "Alpha Roofing", did)
        # A CRM that wants every event (none is sent: no delivery worker runs here).
        await webhooks.create_endpoint(
            rig.db,
            tenant.client_id,
            WebhookEndpointCreate(url="http://127.0.0.1:9/hook", event_types=["*"]),
        )
        # The first caller stays on the line, silent, until the test hangs up for them.
        first = asyncio.create_task(
            rig.sim.inbound_call(did, CALLER, (), final_wait_s=3600.0, max_wait_for_agent_s=3600.0)
        )
        await rig.wait_for(lambda: rig.admission is not None and rig.admission.active == 1)
        second = await rig.sim.inbound_call(did, OTHER_CALLER, (), final_wait_s=5.0)
        assert second.result is not None
        assert second.result.hung_up_by == "agent"
        assert "Sorry, all our agents are busy. Goodbye." in rig.tts.spoken
        assert rig.admission.active == 1  # the first call is still up

        # The refused call is stored: failed, outcome busy, why; a callback for its caller.
        assert second.call_id is not None
        # (Not rig.ended: that waits for every journal, and the first call's is live.)
        refused = await rig.wait_for_call(
            tenant.client_id, second.call_id, lambda d: d.status == CallStatus.FAILED
        )
        assert refused.status == CallStatus.FAILED
        assert refused.outcome == CallOutcome.BUSY
        assert "at capacity" in refused.failure_reason
        assert "routing.max_active_calls" in refused.failure_reason
        # ... and announced like any call that ends: started, then completed as busy.
        async with rig.db.read() as session:
            announced = list(
                await session.scalars(
                    select(WebhookEvent)
                    .where(WebhookEvent.ordering_key == f"call:{second.call_id}")
                    .order_by(WebhookEvent.seq)
                )
            )
        calls_announced = [e for e in announced if e.type.startswith("call.")]
        assert [e.type for e in calls_announced] == ["call.started", "call.completed"]
        assert calls_announced[1].data["outcome"] == "busy"
        async with rig.api() as api:
            callbacks = (await api.get("/api/callbacks/", headers=tenant.headers)).json()
            offered = [c for c in callbacks["items"] if c["phone_number"] == OTHER_CALLER]
            assert len(offered) == 1, callbacks
            assert offered[0]["reason"] == "called while every line was busy"
            assert offered[0]["status"] == "scheduled"
            # start-call while the node is full: 503, naming the capacity, nothing written.
            before = (await api.get("/api/calls/", headers=tenant.headers)).json()["items"]
            response = await api.post(
                "/api/agents/ai/start-call/",
                json={"phone_number": "+4930555000111", "ignore_working_hours": True},
                headers=tenant.headers,
            )
            assert response.status_code == 503, response.text
            assert "routing.max_active_calls = 1" in response.json()["detail"]
            after = (await api.get("/api/calls/", headers=tenant.headers)).json()["items"]
            assert len(after) == len(before)

        # The first call goes on untouched and ends as any call does.
        channel = next(c for c in rig.sim.channels.values() if c.caller_num == CALLER and c.call_id)
        assert channel.hangup_cause is None
        rig.sim.hang_up(channel, 16)
        await first
        assert first.result().call_id is not None
        ended = await rig.ended(tenant.client_id, channel.call_id)  # type: ignore[arg-type]
        assert ended.status == CallStatus.COMPLETED
        assert ended.failure_reason == ""
        assert rig.admission.active == 0
