"""The post-call analysis worker on a scripted model: a finished call is analysed and the
customer's next call starts from what it learnt; the worker makes way for live calls; invalid
answers fail the job, other errors retry it; stopping gives a run's job back
(docs/analysis.md, "The worker"). The store's rules have their own tests
(tests/store/services/test_call_analysis.py, test_analysis_jobs.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from callagent.app.analysis_worker import AnalysisParams, AnalysisWorker
from callagent.store.db import Database
from callagent.store.models import utcnow
from callagent.store.services import analysis_jobs, call_state, calls, customers
from callagent.store.services.analysis_jobs import START_DELAY
from callagent.store.services.call_state import CallUpdate
from callagent.store.states import AnalysisStatus, CallOutcome, CallStatus
from callagent.telephony.routing import CallRouter, ProfileCache

from fakes.routing_rig import CALLER, FALLBACK, make_tenant
from helpers.analysis_data import ScriptedJsonModel, answer, finished_call, turns
from helpers.store_data import ready_client
from helpers.store_fixtures import fresh_url

pytestmark = pytest.mark.timeout(30)

LATER = START_DELAY + dt.timedelta(seconds=1)


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    """A database of this test's own: the worker takes any client's due job."""
    database = Database(fresh_url("sqlite"))
    await database.migrate()
    yield database
    await database.dispose()


def worker(db: Database, model: Any, **options: Any) -> AnalysisWorker:
    params = AnalysisParams(poll_interval_s=0.05, **options.pop("params", {}))
    return AnalysisWorker(db, model, params, name="test-node", **options)


class SipLine:
    """A direct-SIP call: the router reads the numbers it names (To / From)."""

    def __init__(self, dialed: str, caller: str) -> None:
        self.call_id = uuid.uuid4()
        self.remote = "test"
        self.sample_rate = 16000
        self.dialed = dialed
        self.caller = caller

    async def frames(self) -> AsyncIterator[Any]:
        return
        yield

    async def send_audio(self, pcm: bytes) -> None:
        pass

    async def hang_up(self) -> None:
        pass


async def test_a_finished_call_is_analysed_and_the_next_call_starts_from_it(
    db: Database,
) -> None:
    tenant = await make_tenant(db, "Alma", "Alpha Roofing")
    router = CallRouter(db, ProfileCache(db), fallback=FALLBACK)
    first = await router.route(SipLine(tenant.did, CALLER))
    assert first.call_id is not None
    assert first.context is not None
    assert "Earlier calls" not in first.context
    # The call as the journal writes it: turns as they are said, then the hang-up.
    started = utcnow()
    said = turns(
        "agent: Hello, this is Alma from Alpha Roofing.",
        "caller: Our roof leaks. Tuesday afternoons suit me best; call me back then.",
        at=started,
    )
    await call_state.append_turns(db, tenant.client_id, first.call_id, said)
    ended = started + dt.timedelta(seconds=30)
    await call_state.apply_call_update(
        db, tenant.client_id, first.call_id, CallUpdate(status=CallStatus.COMPLETED), ended
    )
    model = ScriptedJsonModel(
        [
            answer(
                summary="The caller's roof leaks; they want a callback on a Tuesday afternoon.",
                pain_points=["leaking roof"],
                callback_time="Tuesday afternoon",
                preferred_call_time="Tuesday afternoons",
                next_action="Call back Tuesday afternoon to book an inspection",
            )
        ]
    )
    analysis = worker(db, model, clock=lambda: ended + LATER, resolve=lambda call, result: None)
    assert await analysis.run_once() == "done"
    assert await analysis.run_once() is None  # nothing else is due
    [(messages, attempt)] = model.requests
    assert attempt == 1
    assert "Customer: Our roof leaks." in messages[1]["content"]

    detail = await calls.get_call(db, tenant.client_id, first.call_id)
    assert detail.outcome == CallOutcome.CALLBACK_REQUESTED
    assert detail.analysis is not None
    assert detail.analysis["model"] == "scripted"

    second = await router.route(SipLine(tenant.did, CALLER))
    assert second.context is not None
    assert "Earlier calls (newest first): " in second.context
    assert "they want a callback on a Tuesday afternoon" in second.context
    assert "Agreed next step: Call back Tuesday afternoon to book an inspection" in second.context
    assert "pain points: leaking roof" in second.context
    assert "Prefers to be called: Tuesday afternoons." in second.context
    assert "last outcome: callback requested" in second.context


async def test_the_worker_makes_way_for_a_live_call(db: Database) -> None:
    client_id = await ready_client(db)
    call_id = await finished_call(db, client_id, at=utcnow() - dt.timedelta(minutes=2))
    live = {"calls": 1}
    model = ScriptedJsonModel([answer()], delay_s=0.6)
    analysis = worker(db, model, busy=lambda: live["calls"] > 0, params={"max_defer_s": 3600})
    # A call is live: a fresh job is not taken.
    assert await analysis.run_once() is None
    # The node is quiet: the run starts; a call starts meanwhile and the run stops.
    live["calls"] = 0
    running = asyncio.create_task(analysis.run_once())
    await asyncio.sleep(0.2)
    live["calls"] = 1
    assert await running == "preempted"
    job = await analysis_jobs.job_for_call(db, client_id, call_id)
    assert job is not None
    assert (job.status, job.attempts) == (AnalysisStatus.QUEUED, 0)  # the run is not counted
    # A job that waited longer than max_defer_s runs even now, to the end.
    patient = worker(db, model, busy=lambda: True, params={"max_defer_s": 0})
    await asyncio.sleep(0.1)
    assert await patient.run_once() == "done"
    detail = await calls.get_call(db, client_id, call_id)
    assert detail.outcome == CallOutcome.CALLBACK_REQUESTED


async def test_invalid_answers_fail_the_job_and_the_call_keeps_its_live_data(
    db: Database,
) -> None:
    client_id = await ready_client(db)
    call_id = await finished_call(db, client_id, at=utcnow() - dt.timedelta(minutes=2))
    model = ScriptedJsonModel(['{"summary": "cut', '{"summary": "x", "outcome": "busy"}'])
    assert await worker(db, model).run_once() == "failed"
    job = await analysis_jobs.job_for_call(db, client_id, call_id)
    assert job is not None
    assert (job.status, job.attempts) == (AnalysisStatus.FAILED, 1)
    assert job.last_error.startswith("invalid answer after 2 tries: not JSON")
    detail = await calls.get_call(db, client_id, call_id)
    assert (detail.status, detail.outcome, detail.analysis) == (CallStatus.COMPLETED, None, None)
    assert len(detail.transcript) == 2


class CrashingModel(ScriptedJsonModel):
    async def complete_json(self, messages: list[Any], schema: dict[str, Any], **_: Any) -> str:
        raise RuntimeError("llama_decode returned -3")


async def test_a_model_error_is_retried_later(db: Database) -> None:
    client_id = await ready_client(db)
    call_id = await finished_call(db, client_id, at=utcnow() - dt.timedelta(minutes=2))
    assert await worker(db, CrashingModel([])).run_once() == "retry"
    job = await analysis_jobs.job_for_call(db, client_id, call_id)
    assert job is not None
    assert (job.status, job.attempts) == (AnalysisStatus.QUEUED, 1)
    assert job.last_error == "RuntimeError: llama_decode returned -3"
    assert job.run_after > utcnow() + dt.timedelta(seconds=20)  # the backoff


async def test_a_call_where_nothing_was_said_is_done_without_asking_the_model(
    db: Database,
) -> None:
    client_id = await ready_client(db)
    call_id = await finished_call(
        db, client_id, ("agent: Hello?",), at=utcnow() - dt.timedelta(minutes=2)
    )
    model = ScriptedJsonModel([answer()])
    assert await worker(db, model).run_once() == "skipped"
    assert model.requests == []
    job = await analysis_jobs.job_for_call(db, client_id, call_id)
    assert job is not None
    assert (job.status, job.last_error) == (AnalysisStatus.DONE, "nothing was said")


async def test_stopping_the_worker_gives_a_runs_job_back(db: Database) -> None:
    client_id = await ready_client(db)
    call_id = await finished_call(db, client_id, at=utcnow() - dt.timedelta(minutes=2))
    model = ScriptedJsonModel([answer()], delay_s=0.5)
    analysis = worker(db, model)
    analysis.start()
    async with asyncio.timeout(5):
        while analysis.running is None:  # noqa: ASYNC110 - the run starts in the background
            await asyncio.sleep(0.01)
    await analysis.close()
    job = await analysis_jobs.job_for_call(db, client_id, call_id)
    assert job is not None
    assert (job.status, job.attempts, job.locked_by) == (AnalysisStatus.QUEUED, 0, "")
    assert analysis.results == {"preempted": 1}
    customer = (await calls.get_call(db, client_id, call_id)).customer_id
    assert (await customers.get_customer(db, client_id, customer)).conversation_memory == []
