"""The post-call analysis worker ``callagent serve`` runs (docs/analysis.md, "The worker").

It takes due analysis jobs from the store one at a time (``store/services/analysis_jobs.py``:
each job goes to exactly one node, under a lease), has the local model analyse the call
(``dialog/analysis.py``), resolves the callback time and writes the result
(``store/services/call_analysis.py``). Nothing it holds in memory matters across a restart:
a job it had when the process died is taken again once its lease runs out.

**The live calls come first.** On 2 cores the analysis would slow a live call's turns
(docs/models.md), so while this node has a call the worker takes no job - unless the job has
waited ``max_defer_s``, then it runs anyway at the lowest CPU priority - and a run it started
stops between two tokens when a call starts: the job goes back to the queue, the run not
counted, and is taken again once the node is quiet.

How runs end: the result stored (``done``); nothing said on the call (``done``, nothing
written); the model's answer invalid twice (``failed`` at once, the reasons stored: another run
would say the same); any other error (the database, the model) - retried with backoff, then
``failed``; a lease lost to another node (nothing written).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal

from callagent.dialog.analysis import (
    AnalysisFailed,
    JsonModel,
    Preempted,
    analyse_call,
    resolve_callback_time,
)
from callagent.store.db import Database
from callagent.store.models import utcnow
from callagent.store.services import analysis_jobs, call_analysis
from callagent.store.services.analysis_jobs import JobLease, LeaseLost
from callagent.store.services.call_analysis import CallAnalysis, CallForAnalysis

log = logging.getLogger(__name__)

RunResult = Literal["done", "skipped", "failed", "retry", "preempted", "lost"]

STOP_TIMEOUT_S: Final = 15.0
"""How long :meth:`AnalysisWorker.close` waits for a run to stop (generation stops at the next
token; a prompt being processed cannot be interrupted)."""

BUSY_POLL_S: Final = 0.25
"""How often a run checks whether a call started (the model polls a flag set from here)."""


@dataclass(frozen=True)
class AnalysisParams:
    """How the worker takes jobs (settings section ``analysis``)."""

    poll_interval_s: float = 5.0
    """Pause between looks for a due job when there was none (or the node was busy)."""
    lease_s: float = 600.0
    """How long a job stays this node's without a word from it; renewed every third of it."""
    max_defer_s: float = 900.0
    """A job that waited this long runs even while calls are live (at the lowest priority)."""
    tries: int = 2
    """Answers asked of the model per run: an invalid one is asked for once more."""


def worker_name() -> str:
    """This process's name on the jobs it holds: host, pid and a random part (a restarted
    process with the same pid is another worker)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class AnalysisWorker:
    """Runs due analysis jobs until :meth:`close` (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        model: JsonModel,
        params: AnalysisParams | None = None,
        *,
        busy: Callable[[], bool] = lambda: False,
        name: str | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        resolve: Callable[[CallForAnalysis, CallAnalysis], dt.datetime | None] = (
            resolve_callback_time
        ),
    ) -> None:
        self._db = db
        self._model = model
        self._params = params or AnalysisParams()
        self._busy = busy
        self.name = name or worker_name()
        self._clock = clock
        self._resolve = resolve
        self._stopping = asyncio.Event()
        self._yield = False  # read by the model's thread: stop generating
        self._task: asyncio.Task[None] | None = None
        self.results: dict[str, int] = {}
        """Runs so far by how they ended (for ``/health``)."""
        self.running: uuid.UUID | None = None
        """The call being analysed now."""

    @property
    def _lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self._params.lease_s)

    def start(self) -> None:
        """Run :meth:`run` in the background until :meth:`close`."""
        if self._task is not None:
            raise RuntimeError("the analysis worker is already running")
        self._task = asyncio.create_task(self.run(), name="post-call-analysis")

    async def close(self) -> None:
        """Stop: a run in progress stops at its next token and gives its job back."""
        self._stopping.set()
        self._yield = True
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT_S)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def run(self) -> None:
        """Take and run jobs until :meth:`close`; an error is logged and the next look is
        after ``poll_interval_s`` (a database that is down delays the analysis, nothing
        else)."""
        while not self._stopping.is_set():
            try:
                result = await self.run_once()
            except Exception:
                log.exception("post-call analysis: looking for a job failed")
                result = None
            if result in (None, "preempted") and await self._pause(self._params.poll_interval_s):
                return

    async def run_once(self) -> RunResult | None:
        """Take one due job and run it; how it ended, or None when there was none to take."""
        now = self._clock()
        busy = self._busy()
        # While a call is live only jobs that waited too long are taken, and those run on.
        created_before = now - dt.timedelta(seconds=self._params.max_defer_s) if busy else None
        lease = await analysis_jobs.claim(
            self._db, self.name, now, self._lease, created_before=created_before
        )
        if lease is None:
            return None
        result = await self._run(lease, preemptible=not busy)
        self.results[result] = self.results.get(result, 0) + 1
        return result

    async def _run(self, lease: JobLease, *, preemptible: bool) -> RunResult:
        self.running = lease.call_id
        self._yield = self._stopping.is_set()
        watch = asyncio.create_task(self._watch(lease, preemptible), name="analysis-watch")
        try:
            return await self._analyse(lease)
        except Preempted:
            log.info("analysis of call %s made way for a live call", lease.call_id)
            resume = self._clock() + dt.timedelta(seconds=self._params.poll_interval_s)
            await self._settle(analysis_jobs.give_back(self._db, lease, self._clock(), resume))
            return "preempted"
        except AnalysisFailed as failed:
            log.warning("analysis of call %s failed: %s", lease.call_id, failed)
            await self._settle(analysis_jobs.fail(self._db, lease, str(failed), self._clock()))
            return "failed"
        except LeaseLost as lost:
            log.warning("analysis of call %s: %s; its result is not stored", lease.call_id, lost)
            return "lost"
        except Exception as error:
            log.exception("analysis of call %s: run %d failed", lease.call_id, lease.attempt)
            reason = f"{type(error).__name__}: {error}"
            await self._settle(analysis_jobs.retry_or_fail(self._db, lease, reason, self._clock()))
            return "retry"
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            self.running = None

    async def _analyse(self, lease: JobLease) -> RunResult:
        call = await call_analysis.load_call(self._db, lease)
        if call is None:
            await analysis_jobs.complete(self._db, lease, self._clock(), "the call is gone")
            return "skipped"
        if not call.caller_spoke:
            await analysis_jobs.complete(self._db, lease, self._clock(), "nothing was said")
            return "skipped"
        run = await analyse_call(
            self._model, call, tries=self._params.tries, should_stop=lambda: self._yield
        )
        callback_at = self._resolve(call, run.result)
        applied = await call_analysis.apply_analysis(
            self._db,
            lease,
            run.result,
            self._clock(),
            callback_at=callback_at,
            model=self._model.name,
            seconds=run.seconds,
        )
        log.info(
            "call %s analysed in %.1f s: outcome %s%s",
            lease.call_id,
            run.seconds,
            (applied.outcome or applied.kept_outcome or "-"),
            "" if applied.outcome else " (kept)",
        )
        return "done"

    async def _watch(self, lease: JobLease, preemptible: bool) -> None:
        """While a run goes on: tell the model to stop when a call starts (if the run may be
        preempted) or the worker stops, and renew the lease every third of it."""
        loop = asyncio.get_running_loop()
        renew_every = self._params.lease_s / 3
        next_renewal = loop.time() + renew_every
        while True:
            if self._stopping.is_set() or (preemptible and self._busy()):
                self._yield = True
            if loop.time() >= next_renewal:
                try:
                    lease = await analysis_jobs.renew(self._db, lease, self._clock(), self._lease)
                except LeaseLost:
                    log.warning("analysis of call %s: the lease was lost", lease.call_id)
                    self._yield = True
                    return
                except Exception:
                    log.warning("analysis of call %s: renewing the lease failed", lease.call_id)
                next_renewal = loop.time() + renew_every
            await asyncio.sleep(BUSY_POLL_S)

    async def _settle(self, write: Awaitable[object]) -> None:
        """A job's closing write; if it fails the lease runs out and the job is taken again."""
        try:
            await write
        except Exception:
            log.exception("post-call analysis: the job's state could not be stored")

    async def _pause(self, seconds: float) -> bool:
        """Wait ``seconds``; whether :meth:`close` was called meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()
