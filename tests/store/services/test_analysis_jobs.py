"""Post-call analysis jobs on both backends: queued with the end of a call, one per call,
durable across a restart, taken by exactly one worker, fenced by their lease, retried with
backoff and then failed (docs/analysis.md, "The job")."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select

from callagent.store.db import Database
from callagent.store.models import CallAnalysisJob
from callagent.store.schemas import StartCall
from callagent.store.services import analysis_jobs, call_state, calls
from callagent.store.services.analysis_jobs import START_DELAY, LeaseLost
from callagent.store.services.call_state import CallUpdate
from callagent.store.states import AnalysisStatus, CallOutcome, CallStatus

from helpers.analysis_data import START, TALK, finished_call
from helpers.store_data import number, ready_client

LEASE = dt.timedelta(minutes=5)
DUE = START + TALK + START_DELAY


async def test_an_answered_call_queues_one_analysis_job_when_it_ends(own_db: Database) -> None:
    db = own_db
    client_id = await ready_client(db)
    call_id = await finished_call(db, client_id)
    job = await analysis_jobs.job_for_call(db, client_id, call_id)
    assert job is not None
    assert (job.status, job.attempts, job.run_after) == (AnalysisStatus.QUEUED, 0, DUE)
    # One per call: queueing it again changes nothing.
    await analysis_jobs.enqueue_call(db, client_id, call_id, DUE + LEASE)
    async with db.read() as session:
        rows = list(await session.scalars(select(CallAnalysisJob)))
    assert [(row.call_id, row.run_after) for row in rows] == [(call_id, DUE)]

    # The last writes of the call land first: not due before the delay.
    assert await analysis_jobs.claim(db, "a", DUE - dt.timedelta(seconds=1), LEASE) is None

    # A call nobody answered has nothing to analyse.
    prepared = await calls.prepare_call(
        db, client_id, StartCall(phone_number=number(), ignore_working_hours=True), START
    )
    busy = CallUpdate(status=CallStatus.COMPLETED, outcome=CallOutcome.BUSY)
    await call_state.apply_call_update(db, client_id, prepared.call_id, busy, START)
    assert await analysis_jobs.job_for_call(db, client_id, prepared.call_id) is None


async def test_a_job_survives_a_restart_and_a_dead_nodes_job_is_taken_over(
    own_db: Database,
) -> None:
    client_id = await ready_client(own_db)
    call_id = await finished_call(own_db, client_id)
    url = own_db.url
    await own_db.dispose()  # the node stops: only the database remembers

    node_a = Database(url)
    lease = await analysis_jobs.claim(node_a, "node-a", DUE, LEASE)
    assert lease is not None
    assert (lease.call_id, lease.attempt, lease.locked_until) == (call_id, 1, DUE + LEASE)
    await node_a.dispose()  # node A dies mid-run (kill -9): no write, no goodbye

    node_b = Database(url)
    try:
        # Within A's lease nobody takes the job: A may still be working on it.
        assert await analysis_jobs.claim(node_b, "node-b", DUE + LEASE / 2, LEASE) is None
        after = DUE + LEASE + dt.timedelta(seconds=1)
        taken = await analysis_jobs.claim(node_b, "node-b", after, LEASE)
        assert taken is not None
        assert (taken.job_id, taken.worker, taken.attempt) == (lease.job_id, "node-b", 2)
        # Had A only stalled, its result would now be refused: B holds the job.
        with pytest.raises(LeaseLost):
            await analysis_jobs.complete(node_b, lease, after)
        await analysis_jobs.complete(node_b, taken, after)
        job = await analysis_jobs.job_for_call(node_b, client_id, call_id)
        assert job is not None
        assert (job.status, job.attempts, job.locked_by) == (AnalysisStatus.DONE, 2, "")
        # Done is final: nobody takes it again, even much later.
        assert await analysis_jobs.claim(node_b, "node-b", after + 10 * LEASE, LEASE) is None
    finally:
        await node_b.dispose()


async def test_two_workers_never_run_one_job(own_db: Database, backend: str) -> None:
    client_id = await ready_client(own_db)
    call_ids = {await finished_call(own_db, client_id) for _ in range(6)}
    first, second = Database(own_db.url), Database(own_db.url)
    try:
        claimed: list[analysis_jobs.JobLease] = []
        while True:
            # Both nodes claim at the same moment, each on its own connection.
            pair = await asyncio.gather(
                analysis_jobs.claim(first, "first", DUE, LEASE),
                analysis_jobs.claim(second, "second", DUE, LEASE),
            )
            found = [lease for lease in pair if lease is not None]
            claimed += found
            if len(found) < 2:
                break
        assert sorted(str(lease.call_id) for lease in claimed) == sorted(map(str, call_ids))
        assert {lease.worker for lease in claimed} == {"first", "second"}
    finally:
        await first.dispose()
        await second.dispose()


async def test_skip_locked_lets_a_second_node_past_a_job_being_claimed(
    own_db: Database, backend: str
) -> None:
    """PostgreSQL: a job another node's transaction has locked is skipped, not waited for.
    SQLite: the second claim waits for the first transaction (one writer at a time) and then
    finds the job taken."""
    client_id = await ready_client(own_db)
    ids = [await finished_call(own_db, client_id) for _ in range(2)]
    other = Database(own_db.url)
    try:
        async with own_db.write() as session:
            locked = await session.scalar(
                select(CallAnalysisJob).where(CallAnalysisJob.call_id == ids[0]).with_for_update()
            )
            assert locked is not None
            if backend == "postgresql":
                async with asyncio.timeout(5):
                    lease = await analysis_jobs.claim(other, "other", DUE, LEASE)
                assert lease is not None
                assert lease.call_id == ids[1]
            else:
                waiting = asyncio.create_task(analysis_jobs.claim(other, "other", DUE, LEASE))
                await asyncio.sleep(0.3)
                assert not waiting.done()
                locked.status, locked.locked_by = AnalysisStatus.RUNNING, "me"
                locked.locked_until = DUE + LEASE
        if backend != "postgresql":
            lease = await waiting
            assert lease is not None
            assert lease.call_id == ids[1]
    finally:
        await other.dispose()


async def test_a_failing_job_is_retried_with_backoff_then_fails_with_its_reason(
    own_db: Database,
) -> None:
    db = own_db
    client_id = await ready_client(db)
    call_id = await finished_call(db, client_id)
    now = DUE
    pauses = []
    for run in (1, 2, 3):
        lease = await analysis_jobs.claim(db, "w", now, LEASE)
        assert lease is not None
        assert lease.attempt == run
        status = await analysis_jobs.retry_or_fail(db, lease, f"model crashed ({run})", now)
        job = await analysis_jobs.job_for_call(db, client_id, call_id)
        assert job is not None
        if run < 3:
            assert status == AnalysisStatus.QUEUED
            pauses.append(job.run_after - now)
            # Not before the backoff.
            early = job.run_after - dt.timedelta(seconds=1)
            assert await analysis_jobs.claim(db, "w", early, LEASE) is None
            now = job.run_after
        else:
            assert status == AnalysisStatus.FAILED
            assert (job.last_error, job.attempts, job.finished_at) == ("model crashed (3)", 3, now)
    assert pauses == [dt.timedelta(seconds=30), dt.timedelta(minutes=5)]
    assert await analysis_jobs.claim(db, "w", now + dt.timedelta(days=1), LEASE) is None


async def test_lost_leases_count_as_runs_and_a_run_given_back_does_not(own_db: Database) -> None:
    db = own_db
    client_id = await ready_client(db)
    call_id = await finished_call(db, client_id)
    # A run that made way for a live call is given back: it does not count.
    lease = await analysis_jobs.claim(db, "w", DUE, LEASE)
    assert lease is not None
    await analysis_jobs.give_back(db, lease, DUE, DUE + dt.timedelta(seconds=5))
    job = await analysis_jobs.job_for_call(db, client_id, call_id)
    assert job is not None
    assert (job.status, job.attempts) == (AnalysisStatus.QUEUED, 0)
    # A node that keeps dying on the job (three leases run out) makes it fail, not loop.
    now = DUE + dt.timedelta(seconds=5)
    for run in (1, 2, 3):
        lease = await analysis_jobs.claim(db, f"dies-{run}", now, LEASE)
        assert lease is not None
        assert lease.attempt == run
        now = lease.locked_until + dt.timedelta(seconds=1)
    assert await analysis_jobs.claim(db, "w", now, LEASE) is None
    job = await analysis_jobs.job_for_call(db, client_id, call_id)
    assert job is not None
    assert job.status == AnalysisStatus.FAILED
    assert job.last_error == "gave up after 3 runs: the lease of dies-3 ran out"


async def test_a_long_run_renews_its_lease(own_db: Database) -> None:
    db = own_db
    client_id = await ready_client(db)
    await finished_call(db, client_id)
    lease = await analysis_jobs.claim(db, "w", DUE, LEASE)
    assert lease is not None
    later = DUE + LEASE - dt.timedelta(seconds=10)
    renewed = await analysis_jobs.renew(db, lease, later, LEASE)
    assert renewed.locked_until == later + LEASE
    # Past the first lease the job is still this node's.
    assert await analysis_jobs.claim(db, "x", DUE + LEASE + dt.timedelta(seconds=1), LEASE) is None
    await analysis_jobs.complete(db, renewed, later)
