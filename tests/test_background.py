"""The background loop the scheduler, crash recovery and the webhook worker run on: a failed
pass is retried, closing lets a pass finish or cancels it, and a pause ends on close."""

from __future__ import annotations

import asyncio
import logging

import pytest

from callagent.background import BackgroundLoop

pytestmark = pytest.mark.timeout(10)


async def test_a_failed_pass_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    passes: list[int] = []
    third = asyncio.Event()

    async def step() -> float | None:
        passes.append(len(passes) + 1)
        if len(passes) == 1:
            raise OSError("database is down")
        if len(passes) == 3:
            third.set()
        return 0.0

    loop = BackgroundLoop("test loop", step, interval_s=0.01)
    loop.start()
    await asyncio.wait_for(third.wait(), 5)
    await loop.close()
    assert passes[:3] == [1, 2, 3]
    (failure,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failure.getMessage().startswith("test loop: a pass failed; trying again")
    assert "database is down" in (failure.exc_text or "")


async def test_close_lets_the_pass_in_progress_finish() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def step() -> None:
        started.set()
        await release.wait()
        finished.append("write")

    loop = BackgroundLoop("graceful", step, interval_s=60)
    loop.start()
    await started.wait()
    closing = asyncio.create_task(loop.close())
    await asyncio.sleep(0)
    release.set()
    await closing
    assert finished == ["write"]  # finished, and no second pass began


async def test_with_no_stop_timeout_close_cancels_the_pass_at_once() -> None:
    started = asyncio.Event()
    cancelled: list[bool] = []

    async def step() -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # an attempt that never answers
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    loop = BackgroundLoop("abandon", step, interval_s=60, stop_timeout_s=0)
    loop.start()
    await started.wait()
    await loop.close()
    assert cancelled == [True]


async def test_a_pass_that_waits_for_something_is_not_held_up_by_it_on_close() -> None:
    waiting = asyncio.Event()
    stopped: list[bool] = []

    async def never() -> None:
        await asyncio.Event().wait()

    async def step() -> None:
        waiting.set()
        stopped.append(await loop.pause(3600, until=never))

    loop = BackgroundLoop("waits", step, interval_s=3600)
    loop.start()
    await waiting.wait()
    await loop.close()
    assert stopped == [True]
    await loop.close()  # a second close is harmless


def test_a_negative_interval_is_refused_by_name() -> None:
    async def step() -> None:
        return None

    with pytest.raises(ValueError, match="bad loop"):
        BackgroundLoop("bad loop", step, interval_s=-1)
