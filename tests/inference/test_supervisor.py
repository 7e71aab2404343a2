"""The supervisor's edge cases with tiny engines in real worker processes
(tests/fakes/engine_worker.py): a request the worker cannot read, a response the call process
cannot read, a worker killed mid-stream, a worker that cannot start (docs/inference.md)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from callagent.inference.clients import WorkerLanguageModel, WorkerSpeechToText
from callagent.inference.errors import EngineUnavailable
from callagent.inference.supervisor import (
    EngineError,
    EnginePool,
    EngineWorker,
    WorkerSpec,
    WorkerStartError,
)

pytestmark = pytest.mark.timeout(60)

TESTS = Path(__file__).resolve().parents[1]
ENV = {"PYTHONPATH": str(TESTS)}


def echo_spec(**kwargs: object) -> WorkerSpec:
    return WorkerSpec(
        "llm",
        "fakes.engine_worker:echo_engine",
        env=ENV,
        backoff_s=0.05,
        **kwargs,  # type: ignore[arg-type]
    )


async def until(condition: object, what: str) -> None:
    """Poll ``condition()`` (no timing is asserted: the test's timeout bounds the wait)."""
    while not condition():  # type: ignore[operator]  # noqa: ASYNC110
        await asyncio.sleep(0.02)


@pytest.fixture
async def worker() -> object:
    worker = EngineWorker(echo_spec())
    await worker.wait_ready()
    yield worker
    await worker.close()


async def test_a_reply_streams_word_by_word_from_the_worker(worker: EngineWorker) -> None:
    llm = WorkerLanguageModel(worker)
    words = [d async for d in llm.stream([{"role": "user", "content": "one two three"}])]
    assert words == ["one ", "two ", "three "]
    stt = WorkerSpeechToText(worker)
    assert (await stt.transcribe(b"\0" * 640, 8000)).text == "640 bytes at 8000 Hz"


async def test_an_unreadable_request_fails_only_that_request(worker: EngineWorker) -> None:
    llm = WorkerLanguageModel(worker)
    deltas = llm.stream([{"role": "user", "content": "forever"}])
    assert await anext(deltas) == "forever "
    with pytest.raises(EngineError, match="unreadable message"):
        await worker.call({0: "no op"})  # type: ignore[dict-item]
    with pytest.raises(EngineError, match="unknown operation 'fly'"):
        await worker.call({"op": "fly"})
    # The stream that was under way goes on, and the worker serves the next request.
    assert await anext(deltas) == "more "
    await deltas.aclose()
    assert (await WorkerSpeechToText(worker).transcribe(b"\0\0", 8000)).text
    assert worker.restarts == 0


async def test_an_unreadable_response_fails_only_its_request(worker: EngineWorker) -> None:
    pid = worker.pid
    with pytest.raises(EngineError, match="unreadable message"):
        await worker.call({"op": "garble"})
    assert (await WorkerSpeechToText(worker).transcribe(b"\0\0", 8000)).text
    assert worker.pid == pid
    assert worker.state == "ready"


async def test_a_worker_killed_mid_stream_fails_the_stream_and_comes_back(
    worker: EngineWorker,
) -> None:
    llm = WorkerLanguageModel(worker)
    await llm.warm_up("You are a test.")
    first_pid = worker.pid
    assert first_pid is not None
    deltas = llm.stream([{"role": "user", "content": "forever"}])
    assert await anext(deltas) == "forever "
    os.kill(first_pid, signal.SIGKILL)
    with pytest.raises(EngineUnavailable) as raised:
        async for _ in deltas:
            pass
    assert raised.value.engine == "llm"
    assert "killed by SIGKILL" in raised.value.reason
    # While it restarts a request fails at once rather than waiting for the model to load.
    if worker.state != "ready":
        with pytest.raises(EngineUnavailable, match=r"worker (restarting|starting)"):
            await WorkerSpeechToText(worker).transcribe(b"\0\0", 8000)
    await until(lambda: worker.state == "ready", "restarted")
    assert worker.pid != first_pid
    assert worker.restarts == 1
    assert worker.status()["last_exit"] == "killed by SIGKILL"
    words = [d async for d in llm.stream([{"role": "user", "content": "back again"}])]
    assert words == ["back ", "again "]


async def test_a_worker_that_cannot_start_is_retried_with_growing_backoff(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "attempts"
    spec = WorkerSpec(
        "tts",
        "fakes.engine_worker:failing_engine",
        {"marker": str(marker)},
        env=ENV,
        backoff_s=0.2,
        max_backoff_s=0.8,
    )
    pool = EnginePool({"tts": EngineWorker(spec)})
    with pytest.raises(WorkerStartError, match="tts: RuntimeError: model file missing"):
        await pool.start()  # the node does not start without its engines
    assert marker.read_text() == "1"

    worker = EngineWorker(spec)
    pool = EnginePool({"tts": worker})
    worker.start()
    try:
        # The wait before each restart, read while the worker waits (state "restarting").
        backoffs: dict[int, float] = {}
        while len(backoffs) < 4:
            await asyncio.sleep(0.02)
            status = pool.status()["tts"]
            if status["state"] == "restarting" and status["restarts"]:
                backoffs.setdefault(status["restarts"], status["next_start_in_s"])
        assert "model file missing" in status["error"]
        assert status["failed_starts"] == status["restarts"]
        # Doubling from 0.2 s, capped at 0.8 s.
        assert [backoffs[n] for n in (1, 2, 3, 4)] == [0.2, 0.4, 0.8, 0.8], backoffs
        with pytest.raises(EngineUnavailable):
            await worker.call({"op": "synthesize", "text": "hello"})
    finally:
        await pool.close()
    assert worker.state == "stopped"


async def test_metrics_count_restarts_per_engine(worker: EngineWorker) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    pool = EnginePool({"llm": worker})
    registry.register(pool.collector())
    assert 'callagent_engine_restarts_total{engine="llm"} 0.0' in generate_latest(registry).decode()
    pid = worker.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await until(lambda: worker.restarts == 1 and worker.state == "ready", "restarted")
    text = generate_latest(registry).decode()
    assert 'callagent_engine_restarts_total{engine="llm"} 1.0' in text
    assert 'callagent_engine_up{engine="llm"} 1.0' in text
