"""A background loop a node runs for as long as it serves: start, step, pause, close.

The scheduler (``scheduler/service.py``), crash recovery (``telephony/recovery.py``) and the
webhook worker (``webhooks/delivery.py``) each repeat one step - a pass over due rows, a
heartbeat or a sweep, one delivery - until the node stops. :class:`BackgroundLoop` is that loop
once: a step that fails is logged and tried again after the pause (a database that is down for
a while delays the work, nothing else), and :meth:`BackgroundLoop.close` lets the step in
progress finish for at most ``stop_timeout_s`` before cancelling it - a write cut off midway
would only wait for a lease or the next sweep, but a database connection cut off midway
outlives the event loop.

It sits at the package's top, like :mod:`callagent.call_logging`, because both ``telephony/``
and ``scheduler/`` use it and it imports nothing of ours (DESIGN.md, "Folders and who owns
what").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Step = Callable[[], Awaitable[float | None]]
"""One run of the loop's work; returns the pause before the next run, None for the loop's
``interval_s``."""


class BackgroundLoop:
    """Runs ``step`` again and again in one task until :meth:`close` (see the module docstring).

    ``name`` names the task and the log lines of a failed step. ``stop_timeout_s = 0`` cancels
    the step in progress at once (work that is safe to abandon, e.g. a webhook attempt whose
    lease runs out and is taken again).
    """

    def __init__(
        self,
        name: str,
        step: Step,
        *,
        interval_s: float,
        stop_timeout_s: float = 10.0,
    ) -> None:
        if interval_s < 0 or stop_timeout_s < 0:
            raise ValueError(f"{name}: interval_s and stop_timeout_s must not be negative")
        self.name = name
        self._step = step
        self._interval_s = interval_s
        self._stop_timeout_s = stop_timeout_s
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def stopping(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._stopping.is_set()

    def start(self) -> None:
        """Run :meth:`run` in a background task until :meth:`close`."""
        if self._task is not None:
            raise RuntimeError(f"{self.name} is already running")
        self._task = asyncio.create_task(self.run(), name=self.name)

    async def run(self) -> None:
        """Step, then pause, until :meth:`close` (in the caller's task)."""
        while not self.stopping:
            try:
                pause = await self._step()
            except Exception:
                log.exception(
                    "%s: a pass failed; trying again in %g s", self.name, self._interval_s
                )
                pause = None
            await self.pause(self._interval_s if pause is None else pause)

    async def pause(
        self, seconds: float, until: Callable[[], Awaitable[object]] | None = None
    ) -> bool:
        """Wait ``seconds`` (or until ``until()`` returns, or :meth:`close`); whether the loop
        is stopping. A step that waits for something calls this so that closing is not held
        up by the wait."""
        if self.stopping:
            return True
        if seconds <= 0 and until is None:
            await asyncio.sleep(0)  # a step that has more work still lets others run
            return self.stopping
        waits = {asyncio.ensure_future(self._stopping.wait())}
        if until is not None:
            waits.add(asyncio.ensure_future(until()))
        try:
            await asyncio.wait(waits, timeout=max(0.0, seconds), return_when="FIRST_COMPLETED")
        finally:
            for waiter in waits:
                waiter.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        return self.stopping

    async def close(self) -> None:
        """Stop: the step in progress may finish within ``stop_timeout_s``, then it is
        cancelled. Safe to call more than once, and on a loop never started."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        if self._stop_timeout_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), self._stop_timeout_s)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
