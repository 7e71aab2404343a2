"""``callagent serve`` runs the post-call analysis worker: calls that ended (here, before the
node started) are analysed in the background, ``/health`` counts the runs, and stopping
closes the worker and its model (docs/analysis.md, "The worker")."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from callagent.app.serve import start_telephony
from callagent.settings import load_settings
from callagent.store.db import Database
from callagent.store.models import utcnow
from callagent.store.services import calls
from callagent.store.states import CallOutcome
from callagent.telephony.call_runner import VoiceEngines
from callagent.voice_pipeline.clock import MonotonicClock

from fakes.routing_rig import FALLBACK
from helpers.analysis_data import ScriptedJsonModel, answer, finished_call
from helpers.fakes import FakeLanguageModel, FakeSpeechToText, FakeTextToSpeech
from helpers.store_data import ready_client
from helpers.store_fixtures import fresh_url

pytestmark = pytest.mark.timeout(30)

ENV = {
    "CALLAGENT_AUDIOSOCKET_PORT": "0",
    "CALLAGENT_RECORDINGS": "false",
    "CALLAGENT_ANALYSIS_POLL_INTERVAL_S": "0.1",
}


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    database = Database(fresh_url("sqlite"))
    await database.migrate()
    yield database
    await database.dispose()


def engines() -> VoiceEngines:
    clock = MonotonicClock()
    return VoiceEngines(
        FakeSpeechToText(clock, []),  # type: ignore[arg-type]
        FakeTextToSpeech(clock),  # type: ignore[arg-type]
        FakeLanguageModel(clock, []),  # type: ignore[arg-type]
    )


async def test_serve_analyses_calls_in_the_background_and_stops_cleanly(db: Database) -> None:
    client_id = await ready_client(db)
    # Calls that ended before this node started: their jobs wait in the database.
    ended = [
        await finished_call(db, client_id, at=utcnow() - dt.timedelta(minutes=5)) for _ in range(2)
    ]
    model = ScriptedJsonModel([answer(callback_requested=False, outcome="interested")])
    telephony = await start_telephony(
        load_settings(environ=ENV), db, engines(), FALLBACK, analysis=model
    )
    try:
        assert telephony.analysis is not None
        async with asyncio.timeout(10):
            while telephony.status()["analysis"] != {"done": 2}:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        await telephony.close()
    assert model.closed
    for call_id in ended:
        detail = await calls.get_call(db, client_id, call_id)
        assert detail.outcome == CallOutcome.INTERESTED


async def test_with_analysis_disabled_no_worker_runs(db: Database) -> None:
    settings = load_settings(environ={**ENV, "CALLAGENT_ANALYSIS": "false"})
    telephony = await start_telephony(settings, db, engines(), FALLBACK)
    try:
        assert telephony.analysis is None
        assert telephony.status()["analysis"] is None
    finally:
        await telephony.close()
