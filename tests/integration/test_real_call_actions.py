"""An in-call action on the real models of the ``ci`` profile (docs/dialog.md "In-call
actions"): a caller's recorded "please don't call me again", heard by Whisper, puts the number
on the do-not-call list of a stored call while the call goes on, the agent confirms and hangs
up, and start-call refuses the number afterwards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from callagent.app.audio_files import read_caller_audio
from callagent.app.components import pipeline_settings, prepare
from callagent.dialog.agent_profile import AgentProfile
from callagent.dialog.conversation import AgentLines
from callagent.settings import Settings, load_settings
from callagent.store.db import Database
from callagent.store.errors import CallRefused
from callagent.store.schemas import StartCall
from callagent.store.services import calls, customers
from callagent.telephony.asterisk.loopback_caller import simulate_call
from callagent.telephony.asterisk.server import AudioSocketServer
from callagent.telephony.call_journal import CallJournals
from callagent.telephony.call_runner import CallReport, CallRunner, VoiceEngines
from callagent.telephony.connection import CallConnection
from callagent.telephony.routing import Route
from callagent.voice_pipeline.clock import MonotonicClock

from helpers import store_fixtures
from helpers.store_data import NOW, number, ready_client
from helpers.voices import flite_available, flite_phone_wav

pytestmark = [
    pytest.mark.real_models,
    pytest.mark.skipif(
        not flite_available() and not os.environ.get("CI"),
        reason="needs Debian's flite (make test installs it)",
    ),
]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(
        environ={},
        overrides={("models", "profile"): "ci", ("models", "models_dir"): REPO / "models"},
    )


@pytest.fixture
def sqlite_url() -> str:
    return store_fixtures.migrated_url("sqlite")  # migrates once per process, outside the loop


@pytest.fixture(scope="module")
def loaded(settings: Settings) -> tuple[VoiceEngines, AgentProfile]:
    import asyncio

    return asyncio.run(prepare(settings))


class OneRoute:
    """A router that answers the one stored call of the test (routing itself is tested in
    test_call_routing.py)."""

    def __init__(self, route: Route) -> None:
        self._route = route

    async def route(self, connection: CallConnection) -> Route:
        assert connection.call_id == self._route.call_id
        return self._route


async def test_please_dont_call_me_again_sets_do_not_call_and_ends_the_call(
    tmp_path: Path,
    settings: Settings,
    loaded: tuple[VoiceEngines, AgentProfile],
    sqlite_url: str,
) -> None:
    engines, profile = loaded
    db = Database(sqlite_url)
    try:
        client_id = await ready_client(db)
        phone = number()
        placed = StartCall(phone_number=phone, ignore_working_hours=True)
        call_id = (await calls.prepare_call(db, client_id, placed, NOW)).call_id
        route = Route(
            kind="agent", reason="test", profile=profile, client_id=client_id, call_id=call_id
        )
        reports: list[CallReport] = []
        clock = MonotonicClock()
        runner = CallRunner(
            engines,
            profile,
            clock,
            pipeline_settings(settings),
            on_call_finished=reports.append,
            router=OneRoute(route),  # type: ignore[arg-type]  # the one method used
            journals=CallJournals(db),
        )
        caller = read_caller_audio(
            flite_phone_wav("Please don't call me again.", tmp_path / "dnc.wav", voice="awb"),
            8000,
        )
        async with AudioSocketServer(runner, "127.0.0.1", 0, clock=clock) as server:
            result = await simulate_call(
                "127.0.0.1", server.port, [caller], call_id=call_id, final_wait_s=20.0
            )
        detail = await calls.get_call(db, client_id, call_id)
        customer = await customers.get_customer(db, client_id, detail.customer_id)
        with pytest.raises(CallRefused) as refused:
            await calls.prepare_call(db, client_id, placed, NOW)
    finally:
        await db.dispose()
    (report,) = reports
    assert result.hung_up_by == "agent"
    assert report.log.turns[-1].agent_text == AgentLines().do_not_call
    assert [(a["type"], a["source"]) for a in report.actions] == [("set_do_not_call", "rule")]
    assert [(a["type"], a["result"]) for a in detail.actions_taken] == [("set_do_not_call", "done")]
    assert customer.do_not_call
    assert refused.value.code == "do_not_call"
