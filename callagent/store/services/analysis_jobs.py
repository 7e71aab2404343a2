"""Post-call analysis jobs: durable rows that exactly one node runs (docs/analysis.md).

Nothing may depend on a process remembering its work across a restart, and with several nodes
on one database each due job goes to exactly one of them (DESIGN.md, Modes). So a call's
analysis is a row in ``call_analysis_jobs``, written in the same transaction that ends the call
(:func:`enqueue`, called by ``call_state`` and ``calls.record_outcome``), unique per call:

* **claim** (:func:`claim`): one short transaction picks the oldest due job - ``queued`` with
  ``run_after`` passed, or ``running`` with a lease that ran out (its node died) - and writes
  this node's name and a lease on it. On PostgreSQL the pick is ``SELECT … FOR UPDATE SKIP
  LOCKED``: nodes claiming at once each get a different row and never wait for each other. On
  SQLite every write transaction starts with ``BEGIN IMMEDIATE`` (``store/db.py``): claims are
  serialised by the database file's write lock, across processes too, and the second one finds
  the job ``running``.
* **fencing** (:func:`hold`): the result is written in one transaction that first re-reads the
  job under a row lock and goes on only if this node still holds the lease it was given; a node
  whose lease ran out and was taken over writes nothing. Together with the unique row per call
  that is "never run twice for one call": at most one result is ever stored.
* **retry** (:func:`retry_or_fail`): a run that failed for a passing reason (the database, the
  model crashed) goes back to ``queued`` after a backoff, up to ``max_attempts`` runs; then the
  job is ``failed`` with the reason stored. :func:`fail` ends it at once (the model's answer
  stayed invalid: another run would say the same). :func:`give_back` returns a job without
  counting the run (the node made way for a live call).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from callagent.store.db import Database
from callagent.store.errors import Conflict, NotFound
from callagent.store.ids import new_id
from callagent.store.models import CallAnalysisJob, CallSession
from callagent.store.services import events
from callagent.store.services._common import to_view
from callagent.store.states import AnalysisStatus

START_DELAY: Final = dt.timedelta(seconds=10)
"""A job waits this long after the call ended: the call journal's last writes (the final turns,
drained for up to 5 s at the end of a call, docs/telephony.md "Failures") land first."""

MAX_ATTEMPTS: Final = 3
"""Runs of one job before it fails for good."""

BACKOFF: Final = (dt.timedelta(seconds=30), dt.timedelta(minutes=5), dt.timedelta(minutes=30))
"""The pause before run 2, 3, … of a job that failed for a passing reason."""

_ERROR_CHARS: Final = 1000


class LeaseLost(Conflict):
    """This node's lease on a job is gone: it ran out and another node took the job, or the job
    was settled meanwhile. Nothing is written."""


@dataclass(frozen=True)
class JobLease:
    """A job this node claimed, by ids: what it may do until ``locked_until``."""

    job_id: uuid.UUID
    client_id: uuid.UUID
    call_id: uuid.UUID
    worker: str
    attempt: int
    """The number of this run (1 for the first)."""
    max_attempts: int
    locked_until: dt.datetime
    created_at: dt.datetime


@dataclass(frozen=True)
class JobView:
    """A job as tests and the status report see it."""

    job_id: uuid.UUID
    call_id: uuid.UUID
    status: AnalysisStatus
    attempts: int
    run_after: dt.datetime
    locked_by: str
    locked_until: dt.datetime | None
    last_error: str
    finished_at: dt.datetime | None


async def enqueue(
    session: AsyncSession,
    call: CallSession,
    now: dt.datetime,
    *,
    delay: dt.timedelta = START_DELAY,
    max_attempts: int = MAX_ATTEMPTS,
) -> None:
    """Queue the analysis of ``call`` in the caller's transaction (the one that ends the call,
    so a call is never over without its job). A call that has a job keeps it: one per call."""
    values = {
        "id": new_id(),
        "client_id": call.client_id,
        "call_id": call.id,
        "status": AnalysisStatus.QUEUED.value,
        "attempts": 0,
        "max_attempts": max_attempts,
        "run_after": now + delay,
        "locked_by": "",
        "last_error": "",
        "created_at": now,
        "updated_at": now,
    }
    table = CallAnalysisJob.__table__
    dialect = (await session.connection()).dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # Dialect inserts do not run the ORM type decorators' defaults, but they do bind through
    # the column types (UtcDateTime), so aware times are stored as everywhere else.
    statement = insert(table).values(**values).on_conflict_do_nothing(index_elements=["call_id"])
    await session.execute(statement)


async def enqueue_call(
    db: Database, client_id: uuid.UUID, call_id: uuid.UUID, now: dt.datetime, **options: object
) -> None:
    """:func:`enqueue` in a transaction of its own (a call ended before analysis existed, or an
    operator asking for it). Raises NotFound for another client's call."""
    async with db.write() as session:
        call = await session.scalar(
            select(CallSession).where(CallSession.id == call_id, CallSession.client_id == client_id)
        )
        if call is None:
            raise NotFound(f"call {call_id} not found")
        await enqueue(session, call, now, **options)  # type: ignore[arg-type]


def _due(now: dt.datetime) -> object:
    return or_(
        and_(CallAnalysisJob.status == AnalysisStatus.QUEUED, CallAnalysisJob.run_after <= now),
        and_(
            CallAnalysisJob.status == AnalysisStatus.RUNNING,
            CallAnalysisJob.locked_until < now,
        ),
    )


async def claim(
    db: Database,
    worker: str,
    now: dt.datetime,
    lease: dt.timedelta,
    *,
    created_before: dt.datetime | None = None,
) -> JobLease | None:
    """Take the oldest due job for ``worker`` until ``now + lease`` (see the module docstring);
    None when there is none. With ``created_before`` only jobs queued before then are taken.

    A job taken again after its lease ran out counts that lost run; one that has used up its
    runs that way is failed here (its node kept dying on it) and the next one is looked at.
    """
    while True:
        async with db.write() as session:
            statement = (
                select(CallAnalysisJob)
                .where(_due(now))  # type: ignore[arg-type]
                .order_by(CallAnalysisJob.run_after, CallAnalysisJob.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if created_before is not None:
                statement = statement.where(CallAnalysisJob.created_at < created_before)
            job = await session.scalar(statement)
            if job is None:
                return None
            job.updated_at = now
            if job.status == AnalysisStatus.RUNNING and job.attempts >= job.max_attempts:
                job.status = AnalysisStatus.FAILED
                job.finished_at = now
                job.last_error = _clip(
                    f"gave up after {job.attempts} runs: the lease of {job.locked_by} ran out"
                )
                job.locked_by, job.locked_until = "", None
                await _announce_unanalysed(session, job)
                continue
            job.status = AnalysisStatus.RUNNING
            job.attempts += 1
            job.locked_by = worker[:100]
            job.locked_until = now + lease
            return JobLease(
                job_id=job.id,
                client_id=job.client_id,
                call_id=job.call_id,
                worker=job.locked_by,
                attempt=job.attempts,
                max_attempts=job.max_attempts,
                locked_until=job.locked_until,
                created_at=job.created_at,
            )


async def hold(session: AsyncSession, lease: JobLease) -> CallAnalysisJob:
    """The job, locked in the caller's transaction, if ``lease`` still holds it; else LeaseLost.

    Every write of a run goes through this first (fencing): the lease's run, node and status
    must still be the job's, whatever the clocks say - a job another node took over has another
    run number.
    """
    job = await session.scalar(
        select(CallAnalysisJob).where(CallAnalysisJob.id == lease.job_id).with_for_update()
    )
    if job is None:
        raise LeaseLost(f"analysis job {lease.job_id} is gone")
    if (
        job.status != AnalysisStatus.RUNNING
        or job.locked_by != lease.worker
        or job.attempts != lease.attempt
    ):
        raise LeaseLost(
            f"analysis job {lease.job_id} is no longer held by {lease.worker} (run {lease.attempt})"
        )
    return job


def finish(job: CallAnalysisJob, now: dt.datetime, note: str = "") -> None:
    """Mark a held job ``done`` (in the transaction that stored its result)."""
    job.status = AnalysisStatus.DONE
    job.finished_at = job.updated_at = now
    job.locked_by, job.locked_until = "", None
    job.last_error = _clip(note)


async def complete(db: Database, lease: JobLease, now: dt.datetime, note: str = "") -> None:
    """Mark the job ``done`` with nothing else written (e.g. nothing was said on the call)."""
    async with db.write() as session:
        job = await hold(session, lease)
        finish(job, now, note)
        await _announce_unanalysed(session, job)


async def renew(
    db: Database, lease: JobLease, now: dt.datetime, extension: dt.timedelta
) -> JobLease:
    """Extend the lease while the run goes on (a long analysis on a busy machine); LeaseLost
    if it is no longer this node's."""
    async with db.write() as session:
        job = await hold(session, lease)
        job.locked_until = max(job.locked_until or now, now + extension)
        job.updated_at = now
        return replace(lease, locked_until=job.locked_until)


async def retry_or_fail(
    db: Database,
    lease: JobLease,
    error: str,
    now: dt.datetime,
    *,
    backoff: Sequence[dt.timedelta] = BACKOFF,
) -> AnalysisStatus:
    """After a run that failed for a passing reason: ``queued`` again after the backoff for
    this run, or ``failed`` once the job has had its runs. The reason is stored either way."""
    async with db.write() as session:
        job = await hold(session, lease)
        job.last_error = _clip(error)
        job.locked_by, job.locked_until = "", None
        job.updated_at = now
        if job.attempts >= job.max_attempts:
            job.status = AnalysisStatus.FAILED
            job.finished_at = now
            await _announce_unanalysed(session, job)
        else:
            pause = backoff[min(job.attempts, len(backoff)) - 1] if backoff else dt.timedelta()
            job.status = AnalysisStatus.QUEUED
            job.run_after = now + pause
        return job.status


async def fail(db: Database, lease: JobLease, reason: str, now: dt.datetime) -> None:
    """End the job as ``failed`` now, with the reason (the call keeps what it has)."""
    async with db.write() as session:
        job = await hold(session, lease)
        job.status = AnalysisStatus.FAILED
        job.finished_at = job.updated_at = now
        job.locked_by, job.locked_until = "", None
        job.last_error = _clip(reason)
        await _announce_unanalysed(session, job)


async def _announce_unanalysed(session: AsyncSession, job: CallAnalysisJob) -> None:
    """A job that ends without an analysis written still owes its call's ``call.completed``
    webhook event, which waits for the analysis (docs/webhooks.md)."""
    call = await session.get(CallSession, job.call_id)
    if call is not None and call.analyzed_at is None:
        await events.call_completed(session, call)


async def give_back(
    db: Database, lease: JobLease, now: dt.datetime, run_after: dt.datetime
) -> None:
    """Return the job to the queue without counting this run (it made way for a live call)."""
    async with db.write() as session:
        job = await hold(session, lease)
        job.status = AnalysisStatus.QUEUED
        job.attempts -= 1
        job.run_after = run_after
        job.locked_by, job.locked_until = "", None
        job.updated_at = now


async def pending(session: AsyncSession, call_id: uuid.UUID) -> bool:
    """Whether the call's analysis is still to come (its job ``queued`` or ``running``): until
    then its ``call.completed`` has not gone out (docs/webhooks.md)."""
    status = await session.scalar(
        select(CallAnalysisJob.status).where(CallAnalysisJob.call_id == call_id)
    )
    return status in (AnalysisStatus.QUEUED, AnalysisStatus.RUNNING)


async def job_for_call(db: Database, client_id: uuid.UUID, call_id: uuid.UUID) -> JobView | None:
    """The analysis job of one of the client's calls, if it has one."""
    async with db.read() as session:
        job = await session.scalar(
            select(CallAnalysisJob).where(
                CallAnalysisJob.call_id == call_id, CallAnalysisJob.client_id == client_id
            )
        )
    return None if job is None else to_view(job, JobView, job_id=job.id)


def _clip(text: str) -> str:
    return text.replace("\x00", "")[:_ERROR_CHARS]
