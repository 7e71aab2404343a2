"""Clocks for pacing and turn-taking.

Every timed decision in the voice pipeline (end of turn, pacing, barge-in) reads time from an
injected :class:`Clock`, so tests run the same code on a compressed, deterministic timeline
(DESIGN.md practice 6) while production uses the monotonic clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """Source of time for the pipeline."""

    def now(self) -> float:
        """Seconds on a monotonic timeline."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once :meth:`now` has reached ``deadline``."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class FakeClock:
    """A clock that only moves when a test calls :meth:`advance`.

    Sleepers wake in deadline order as time passes them, and each wake-up is given a few loop
    iterations to run, so a test that advances 20 ms at a time sees the same interleaving as a
    real call, only faster.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._counter), future))
        await future

    async def advance(self, seconds: float, *, settle_iterations: int = 20) -> None:
        """Move time forward by ``seconds``, waking every sleeper whose deadline passes."""
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not future.done():
                future.set_result(None)
            await settle(settle_iterations)
        self._now = target
        await settle(settle_iterations)


async def settle(iterations: int = 20) -> None:
    """Let other tasks run for a few loop iterations."""
    for _ in range(iterations):
        await asyncio.sleep(0)
