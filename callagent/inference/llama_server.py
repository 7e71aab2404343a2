"""llama.cpp's ``llama-server`` as a supervised child of callagent (``[llm] server = "local"``).

The server runs the GGUF model with ``parallel`` slots and continuous batching: concurrent calls
generate in one batch instead of queueing behind each other (docs/models.md, "LLM server"). It
is a separate process, so a native crash in llama.cpp ends that process, not callagent: calls in
flight get :class:`~callagent.inference.errors.EngineUnavailable` from their stream, the
supervisor logs how the server died (the signal by name), starts it again on the same port, and
the next request works.

The binary is built from the llama.cpp that llama-cpp-python vendors, portably, by
``scripts/build_llama_server.py`` (``make llama-server``), which installs it as
``<venv>/bin/callagent-llama-server``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import dataclasses
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from callagent.dialog.llm import ChatMessage
from callagent.inference.openai_llm import OpenAIChatLanguageModel, OpenAIChatSettings

log = logging.getLogger(__name__)

BINARY_NAME = "callagent-llama-server"


class LlamaServerError(RuntimeError):
    """llama-server could not be found or started; the message says why (and what it printed)."""


def find_binary(configured: str = "") -> Path:
    """The llama-server to run: ``configured`` (``llm.server_binary``), else the one
    ``scripts/build_llama_server.py install`` put into this venv."""
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise LlamaServerError(f"llm.server_binary = {configured!r}: no such file")
        return path
    path = Path(sys.prefix) / "bin" / BINARY_NAME
    if not path.is_file():
        raise LlamaServerError(
            f"llm.server = 'local' needs llama-server, and {path} is not there: run "
            "`make llama-server` (scripts/build_llama_server.py install) or set llm.server_binary"
        )
    return path


def describe_exit(returncode: int) -> str:
    """``-9`` → ``killed by SIGKILL``; ``1`` → ``exited with status 1``."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child before exec: the kernel sends SIGTERM when callagent dies, however it
    # dies, so no llama-server is left holding the model's memory and the port.
    PR_SET_PDEATHSIG = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True, slots=True)
class LlamaServerSettings:
    """How to run llama-server.

    ``n_ctx`` is per slot (the server's ``-c`` is ``parallel × n_ctx``). ``threads`` is the
    same count the in-process model gets (``models.llm_threads``): on 2 cores the LLM must leave
    a core to STT and TTS (DESIGN.md, "Known traps"); prompts, like in-process, on
    ``threads_batch`` (0: every core). ``port`` 0 picks a free one at the first
    start and keeps it across restarts.
    """

    binary: Path
    model_path: Path
    parallel: int = 4
    n_ctx: int = 2048
    threads: int = 1
    threads_batch: int = 0
    host: str = "127.0.0.1"
    port: int = 0
    startup_timeout_s: float = 120.0
    restart_delays_s: tuple[float, ...] = (0.2, 1.0, 5.0, 15.0)
    extra_args: tuple[str, ...] = field(default_factory=tuple)


State = Literal["stopped", "starting", "ready", "restarting"]


class LlamaServer:
    """One supervised llama-server process: started, health-checked, restarted when it dies."""

    def __init__(self, settings: LlamaServerSettings) -> None:
        self.settings = settings
        self.port = settings.port
        self.state: State = "stopped"
        #: How often the server died and was started again.
        self.restarts = 0
        #: How the last death looked (``killed by SIGKILL``), for /health and the log.
        self.last_exit: str | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=40)
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._ready = asyncio.Event()

    @property
    def base_url(self) -> str:
        """``http://host:port``: what an :class:`OpenAIChatLanguageModel` talks to."""
        return f"http://{self.settings.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The running server's process id."""
        return self._process.pid if self._process is not None else None

    def status(self) -> dict[str, Any]:
        """What ``/health`` shows of the server, shaped like an engine worker's."""
        status: dict[str, Any] = {
            "state": self.state,
            "pid": self.pid if self.state == "ready" else None,
            "restarts": self.restarts,
            "url": self.base_url,
            "slots": self.settings.parallel,
        }
        if self.last_exit:
            status["last_exit"] = self.last_exit
        return status

    def command(self) -> list[str]:
        """The server's command line."""
        s = self.settings
        return [
            str(s.binary),
            "--model",
            str(s.model_path),
            "--host",
            s.host,
            "--port",
            str(self.port),
            "--parallel",
            str(s.parallel),
            "--cont-batching",
            "--ctx-size",
            str(s.parallel * s.n_ctx),
            "--threads",
            str(s.threads),
            "--threads-batch",
            # 0: every core, as llama-cpp-python processes prompts in-process (docs/models.md,
            # "llama.cpp build": two prompt threads halve a turn's first token on 2 cores).
            str(s.threads_batch or os.cpu_count() or 1),
            "--cache-prompt",
            "--no-webui",
            *s.extra_args,
        ]

    async def start(self) -> None:
        """Start the server and wait until it answers ``/health``; then supervise it.

        Raises :class:`LlamaServerError` with the server's last output when it exits or does not
        become healthy within ``startup_timeout_s``.
        """
        if self.port == 0:
            self.port = _free_port(self.settings.host)
        self._closing = False
        await self._launch()
        self._supervisor = asyncio.create_task(self._supervise(), name="llama-server supervisor")

    async def _launch(self) -> None:
        self.state = "starting"
        self._ready.clear()
        self._output.clear()
        self._process = await asyncio.create_subprocess_exec(
            *self.command(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        reader = asyncio.create_task(self._read_output(self._process))
        try:
            await self._wait_healthy(self._process)
        except BaseException:
            await self._kill()
            reader.cancel()
            raise
        log.info(
            "llama-server ready at %s (pid %s, %d slots, %d threads)",
            self.base_url,
            self._process.pid,
            self.settings.parallel,
            self.settings.threads,
        )
        self.state = "ready"
        self._ready.set()

    async def _read_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self._output.append(line)
            log.debug("llama-server: %s", line)

    def output_tail(self) -> str:
        """The server's last lines of output (why it failed, usually)."""
        return "\n".join(self._output)

    async def _wait_healthy(self, process: asyncio.subprocess.Process) -> None:
        deadline = time.monotonic() + self.settings.startup_timeout_s
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if process.returncode is not None:
                    await asyncio.sleep(0.1)  # let the reader take the last lines
                    raise LlamaServerError(
                        f"llama-server {describe_exit(process.returncode)} at start:\n"
                        f"{self.output_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.base_url}/health")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise LlamaServerError(
                        f"llama-server not ready after {self.settings.startup_timeout_s:.0f} s:\n"
                        f"{self.output_tail()}"
                    )
                await asyncio.sleep(0.1)

    async def _supervise(self) -> None:
        failures = 0
        while not self._closing:
            process = self._process
            assert process is not None
            returncode = await process.wait()
            if self._closing:
                return
            self.last_exit = describe_exit(returncode)
            self.state = "restarting"
            self._ready.clear()
            log.error(
                "llama-server (pid %s) %s; restarting it. Its last output:\n%s",
                process.pid,
                self.last_exit,
                self.output_tail(),
            )
            delays = self.settings.restart_delays_s
            while not self._closing:
                await asyncio.sleep(delays[min(failures, len(delays) - 1)])
                try:
                    await self._launch()
                except LlamaServerError as error:
                    failures += 1
                    log.error("llama-server restart failed (%d in a row): %s", failures, error)
                    continue
                self.restarts += 1
                failures = 0
                break

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the server answers again (after a restart); False on timeout."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _kill(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10.0)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def close(self) -> None:
        """Stop supervising and stop the server."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._kill()
        self.state = "stopped"


class LocalServerLanguageModel(OpenAIChatLanguageModel):
    """The chat client of a llama-server this node runs; closing it stops the server."""

    def __init__(self, server: LlamaServer, settings: OpenAIChatSettings) -> None:
        super().__init__(settings)
        self.server = server
        self._slots_warm = False

    async def warm_up(self, system_prompt: str, *, context: str = "") -> None:
        """The first warm-up (at start) fills every slot, each named by its ``id_slot``, so no
        call's first turn finds a cold slot and evaluates the whole prompt (measured: p95 first
        token 24 s with 4 cold slots, docs/models.md "LLM server"); later ones (a call's, at
        connect) fill the slot that call will use."""
        if self._slots_warm:
            await super().warm_up(system_prompt, context=context)
            return
        messages: list[ChatMessage] = [{"role": "system", "content": system_prompt}]
        if context:
            messages.append({"role": "system", "content": context})
        messages.append({"role": "user", "content": "Hello."})
        await asyncio.gather(
            *(self._warm(messages, slot) for slot in range(self.server.settings.parallel))
        )
        self._slots_warm = True

    async def aclose(self) -> None:
        """Close the connections, then stop the server."""
        await super().aclose()
        await self.server.close()


async def start_local_server(
    server_settings: LlamaServerSettings, chat: OpenAIChatSettings | None = None
) -> LocalServerLanguageModel:
    """Start llama-server and return the language model that talks to it."""
    server = LlamaServer(server_settings)
    await server.start()
    base = chat or OpenAIChatSettings(base_url=server.base_url)
    settings = dataclasses.replace(base, base_url=server.base_url, setting="llm.server")
    return LocalServerLanguageModel(server, settings)
