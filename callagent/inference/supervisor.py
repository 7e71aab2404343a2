"""Supervised engine workers: start, notice death at once, fail what was in flight, restart.

:class:`EngineWorker` owns one worker process (``python -m callagent.inference.worker``) and
the socket pair it talks over. Its supervising task reads every response on the event loop;
the socket's end of file - the worker is gone, whatever killed it - fails every request in
flight with :class:`~callagent.inference.errors.EngineUnavailable`, logs the exit code or
signal by name, counts the restart and starts a new worker after a backoff (0.5 s doubling to
30 s; reset once a worker has been up for a minute). A request made while the worker is not
ready fails at once with ``EngineUnavailable``: a restart reloads the model (seconds for the
LLM), longer than a caller should wait in silence, so the call apologises and hands the caller
on instead (docs/inference.md "When a worker dies").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from callagent.inference.errors import EngineUnavailable
from callagent.inference.wire import (
    CONTROL,
    FrameDecoder,
    GarbledMessage,
    WireError,
    decode_body,
    encode,
)

log = logging.getLogger(__name__)

State = Literal["starting", "ready", "restarting", "stopped"]

STABLE_AFTER_S: Final = 60.0
"""A worker up this long has recovered: the next death restarts it after the first backoff
again, not after the doubled one."""


STOP_TIMEOUT_S: Final = 10.0
"""How long a worker may take to exit once its socket is closed (a transcription or a TTS
sentence in progress finishes first) before it is killed."""


class EngineError(RuntimeError):
    """The worker is fine but failed this one request (the engine raised, or the message could
    not be read): only this request fails, like an in-process engine that raised."""


class WorkerStartError(RuntimeError):
    """A worker did not come up when the node started (its model did not load, or it died)."""


@dataclass(frozen=True)
class WorkerSpec:
    """How to start one engine's worker."""

    engine: str
    """``stt``, ``llm`` or ``tts``: the name in logs, ``/health`` and metrics."""
    factory: str
    """``"module:function"`` returning a :class:`~callagent.inference.worker.ServedEngine`."""
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    """JSON-able arguments of the factory."""
    start_timeout_s: float = 180.0
    """Longest a start may take (the default profile's LLM loads in a few seconds)."""
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    env: Mapping[str, str] = field(default_factory=dict)
    """Added to the worker's environment (e.g. ``PYTHONPATH`` for tests' fake engines)."""


def describe_exit(returncode: int | None) -> str:
    """``"exited with code 3"``, ``"killed by SIGKILL"``: how a worker ended, for people."""
    if returncode is None:
        return "closed its connection"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


_Item = tuple[str, Any]  # ("chunk" | "result" | "end" | "error", data) or ("gone", error)


class EngineWorker:
    """One engine's worker process, restarted whenever it dies (see the module docstring)."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec: Final = spec
        self.state: State = "stopped"
        self.restarts = 0
        """Times the worker died and was started again."""
        self.last_exit: str | None = None
        self.last_error: str | None = None
        """Why the last start failed ("" once a start succeeded)."""
        self.failed_starts = 0
        """Starts in a row that did not reach ``ready``."""
        self.info: dict[str, Any] = {}
        """What the worker said at ``ready`` (its pid, a voice's sample rate)."""
        self.backoff_s = spec.backoff_s
        """The wait before the next restart."""
        self.on_ready: list[Callable[[], Awaitable[None]]] = []
        """Run (as tasks) every time a worker becomes ready after a restart, e.g. to warm the
        new LLM's prompt cache."""
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Queue[_Item]] = {}
        self._ops: dict[int, str] = {}  # what each request in flight asks
        self._writer: asyncio.StreamWriter | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closing = False

    # --- lifetime -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start supervising (the worker starts in the background)."""
        if self._task is None:
            self._first = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._supervise(), name=f"{self.spec.engine}-worker")

    async def wait_ready(self) -> None:
        """Until the first start is over; :class:`WorkerStartError` when it failed."""
        self.start()
        assert self._first is not None
        await asyncio.shield(self._first)

    @property
    def pid(self) -> int | None:
        """The running worker's process id."""
        return None if self._process is None else self._process.pid

    async def close(self) -> None:
        """Stop the worker (its socket closes; it exits) and the supervision."""
        self._closing = True
        if self._writer is not None:
            self._writer.close()
        process = self._process
        if process is not None and process.returncode is None:
            # Its socket closed, the worker exits by itself (it ignores SIGTERM: see worker.py)
            # once the request it is computing returns; a worker stuck in native code is killed.
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        for task in [self._task, *self._background]:
            if task is not None:
                task.cancel()
        for task in [self._task, *self._background]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.state = "stopped"

    def status(self) -> dict[str, Any]:
        """What ``/health`` shows of this engine."""
        status: dict[str, Any] = {
            "state": self.state,
            "pid": self.pid if self.state == "ready" else None,
            "restarts": self.restarts,
            "in_flight": len(self._pending),
        }
        if self.last_exit:
            status["last_exit"] = self.last_exit
        if self.state != "ready" and self.last_error:
            status["error"] = self.last_error
            status["failed_starts"] = self.failed_starts
            status["next_start_in_s"] = self.backoff_s
        return status

    def in_flight(self) -> list[str]:
        """The operations of the requests in flight (``stream``, ``synthesize``, …)."""
        return [self._ops.get(request_id, "?") for request_id in self._pending]

    # --- requests -------------------------------------------------------------------------------

    async def call(self, message: dict[str, Any]) -> Any:
        """Send one request and return its ``result`` (or None for ``end``)."""
        request_id, queue = await self._open(message)
        try:
            kind, data = await queue.get()
            return self._settle(kind, data)
        finally:
            self._pending.pop(request_id, None)
            self._ops.pop(request_id, None)

    async def stream(self, message: dict[str, Any]) -> AsyncIterator[Any]:
        """Send one request and yield its chunks as they come. Leaving early (a barge-in)
        tells the worker to stop."""
        request_id, queue = await self._open(message)
        finished = False
        try:
            while True:
                kind, data = await queue.get()
                if kind == "chunk":
                    yield data
                    continue
                finished = True
                self._settle(kind, data)
                return
        finally:
            self._pending.pop(request_id, None)
            self._ops.pop(request_id, None)
            if not finished:
                self._send(request_id, {"op": "cancel"})

    async def _open(self, message: dict[str, Any]) -> tuple[int, asyncio.Queue[_Item]]:
        if self.state != "ready" or self._writer is None:
            raise EngineUnavailable(self.spec.engine, f"worker {self.state}")
        request_id = next(self._ids)
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._pending[request_id] = queue
        self._ops[request_id] = str(message.get("op"))
        self._send(request_id, message)
        return request_id, queue

    def _send(self, request_id: int, message: dict[str, Any]) -> None:
        writer = self._writer
        if writer is not None and not writer.is_closing():
            # The socket buffer takes a request at once (the largest, an utterance, is well
            # under a megabyte); its answer is awaited, so no drain is needed for back-pressure.
            writer.write(encode(request_id, message))

    def _settle(self, kind: str, data: Any) -> Any:
        if kind in ("result", "end"):
            return data
        if kind == "gone":
            raise data
        raise EngineError(f"{self.spec.engine} engine: {data}")

    # --- supervision ----------------------------------------------------------------------------

    async def _supervise(self) -> None:
        while not self._closing:
            started = time.monotonic()
            became_ready = await self._run_once()
            if self._closing:
                break
            if became_ready and time.monotonic() - started >= STABLE_AFTER_S:
                self.backoff_s = self.spec.backoff_s
            self.state = "restarting"
            self.restarts += 1
            log.error(
                "%s worker %s; restart %d in %.1f s",
                self.spec.engine,
                self.last_exit,
                self.restarts,
                self.backoff_s,
            )
            await asyncio.sleep(self.backoff_s)
            self.backoff_s = min(self.backoff_s * 2, self.spec.max_backoff_s)

    async def _run_once(self) -> bool:
        """Start a worker, serve its responses until it dies; True when it reached ready."""
        self.state = "starting"
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ready = False
        try:
            spec = {"engine": self.spec.engine, "factory": self.spec.factory}
            spec["kwargs"] = dict(self.spec.kwargs)
            env = {**os.environ, **self.spec.env}
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "callagent.inference.worker",
                "--fd",
                str(child.fileno()),
                "--spec",
                json.dumps(spec),
                pass_fds=(child.fileno(),),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
            )
            # Only the worker may hold its end: its death is then the end of our stream.
            child.close()
            reader, self._writer = await asyncio.open_unix_connection(sock=parent)
            decoder = FrameDecoder()
            ready = await self._handshake(reader, decoder)
            if ready:
                await self._read(reader, decoder)
        except ConnectionResetError:
            pass  # it died with our last bytes unread: its exit status below says how
        except (WireError, OSError) as error:
            log.error("%s worker connection broken: %s", self.spec.engine, error)
        finally:
            child.close()
            await self._reap()
            gone = EngineUnavailable(self.spec.engine, f"worker {self.last_exit}")
            for queue in self._pending.values():
                queue.put_nowait(("gone", gone))
            if not ready:
                self.failed_starts += 1
                self.last_error = self.last_error or f"worker {self.last_exit} at start-up"
                self._first_done(WorkerStartError(f"{self.spec.engine}: {self.last_error}"))
        return ready

    async def _handshake(self, reader: asyncio.StreamReader, decoder: FrameDecoder) -> bool:
        """Wait for the worker's ``ready`` (True) or ``fatal`` / death (False)."""
        self.last_error = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.spec.start_timeout_s
        while True:
            frame = decoder.next_frame()
            if frame is None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    self.last_error = f"not ready after {self.spec.start_timeout_s:.0f} s"
                    return False
                try:
                    data = await asyncio.wait_for(reader.read(65536), remaining)
                except TimeoutError:
                    continue
                if not data:
                    return False
                decoder.receive_data(data)
                continue
            request_id, body = frame
            try:
                message = decode_body(body)
            except GarbledMessage as error:
                self.last_error = str(error)
                return False
            if request_id != CONTROL:
                continue
            if message.get("kind") == "fatal":
                self.last_error = str(message.get("message", "failed"))
                log.error("%s worker failed to start: %s", self.spec.engine, self.last_error)
                return False
            if message.get("kind") == "ready":
                self.info = dict(message.get("info") or {})
                self.state = "ready"
                self.failed_starts = 0
                log.info("%s worker ready (pid %s)", self.spec.engine, self.pid)
                self._first_done(None)
                if self.restarts:
                    for hook in self.on_ready:
                        task = asyncio.create_task(hook(), name=f"{self.spec.engine}-rewarm")
                        self._background.add(task)
                        task.add_done_callback(self._background.discard)
                return True

    async def _read(self, reader: asyncio.StreamReader, decoder: FrameDecoder) -> None:
        """Hand responses to their requests until the worker's end of file."""
        while True:
            while (frame := decoder.next_frame()) is not None:
                request_id, body = frame
                queue = self._pending.get(request_id)
                try:
                    message = decode_body(body)
                except GarbledMessage as error:
                    log.warning("%s worker: request %d: %s", self.spec.engine, request_id, error)
                    if queue is not None:
                        queue.put_nowait(("error", str(error)))
                    continue
                if queue is None:
                    continue  # a request whose caller left (a cancelled stream's last chunks)
                kind = str(message.get("kind"))
                queue.put_nowait((kind, message.get("message" if kind == "error" else "data")))
            data = await reader.read(65536)
            if not data:
                return
            decoder.receive_data(data)

    async def _reap(self) -> None:
        """The worker's stream ended: make sure the process is gone and say how it ended."""
        self.state = "restarting" if not self._closing else "stopped"
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        process = self._process
        if process is None:
            self.last_exit = "did not start"
            return
        try:
            # The stream ends when the process dies; a broken stream from a live worker means
            # it can no longer be trusted.
            await asyncio.wait_for(process.wait(), 2.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        self.last_exit = describe_exit(process.returncode)

    def _first_done(self, error: BaseException | None) -> None:
        first = self._first
        if first is not None and not first.done():
            if error is None:
                first.set_result(None)
            else:
                first.set_exception(error)
                first.exception()  # retrieved here: nobody may be waiting for it


class SupervisedEngine(Protocol):
    """An engine process supervised elsewhere (the node's own llama-server,
    docs/models.md "LLM server"), shown beside the workers on ``/health`` and in metrics."""

    state: str
    restarts: int

    def status(self) -> dict[str, Any]:
        """What ``/health`` shows of it."""
        ...


class EnginePool:
    """The node's engine workers, by engine name, and the engine processes it watches."""

    def __init__(self, workers: Mapping[str, EngineWorker]) -> None:
        self.workers: Final = dict(workers)
        self.watched: Final[dict[str, SupervisedEngine]] = {}

    def watch(self, name: str, engine: SupervisedEngine) -> None:
        """Show ``engine`` (started and stopped by its owner) on ``/health`` and in metrics."""
        self.watched[name] = engine

    def _engines(self) -> dict[str, EngineWorker | SupervisedEngine]:
        return {**self.workers, **self.watched}

    async def start(self) -> None:
        """Start every worker and wait until each is ready; :class:`WorkerStartError` (after
        stopping them all) when one did not come up."""
        for worker in self.workers.values():
            worker.start()
        try:
            await asyncio.gather(*(w.wait_ready() for w in self.workers.values()))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop every worker."""
        for worker in self.workers.values():
            await worker.close()

    def status(self) -> dict[str, Any]:
        """Each engine's state, for ``/health`` (docs/inference.md)."""
        return {name: engine.status() for name, engine in self._engines().items()}

    def collector(self) -> Collector:
        """Prometheus figures of the workers: ``callagent_engine_restarts_total{engine}`` and
        ``callagent_engine_up{engine}`` (docs/metrics.md), read at scrape time."""
        return _PoolCollector(self)


class _PoolCollector(Collector):
    def __init__(self, pool: EnginePool) -> None:
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            "callagent_engine_restarts",
            "Times an engine worker process died and was restarted",
            labels=["engine"],
        )
        up = GaugeMetricFamily(
            "callagent_engine_up", "1 while the engine's worker is ready", labels=["engine"]
        )
        for name, engine in self._pool._engines().items():
            restarts.add_metric([name], engine.restarts)
            up.add_metric([name], 1 if engine.state == "ready" else 0)
        yield restarts
        yield up

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected at scrape time only
