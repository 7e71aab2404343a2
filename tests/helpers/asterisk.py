"""A real Asterisk for the tests, running callagent's rendered configuration.

``scripts/build_asterisk.sh`` builds Asterisk 22.10.1 once from the source in ``../shared/
asterisk`` beside the repository (``make asterisk``; ``make test`` does it first) into the user
cache. :class:`RealAsterisk` starts that build in the foreground (``asterisk -C ETC/asterisk.conf
-f``) on the files ``callagent asterisk-config`` writes (the same function the command calls),
with one addition: a ``[directories]`` section in ``asterisk.conf`` pointing into a scratch
folder, since the rendered file deliberately leaves Asterisk's compiled-in paths alone
(docs/telephony.md). It is ready when AMI answers and the core reports it is fully booted, and it
stops with ``core stop now``.

Without the Asterisk source the tests are skipped on a developer machine, but fail in CI
(``CI`` set), as the PostgreSQL tests do (:mod:`helpers.postgres`): a missing Asterisk must not
turn into a silently green run. The source present but not built yet is the same case: building
takes minutes, which is ``make asterisk``'s job, not a test's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callagent.app.asterisk_config import write_asterisk_config_files
from callagent.settings import Settings, load_settings

from helpers.ports import free_tcp_port, free_udp_block, free_udp_port

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build_asterisk.sh"
AMI_SECRET = "real-asterisk-test-0123456789"
"""The AMI secret of the test configurations (manager.conf wants at least 16 characters)."""


def installed_asterisk() -> Path | None:
    """The folder ``scripts/build_asterisk.sh`` installs into, when the build is complete there;
    None when it is not built (or its source is absent)."""
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print-path"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        return None
    prefix = Path(done.stdout.strip())
    if not (prefix / ".callagent-build").is_file() or not (prefix / "sbin/asterisk").is_file():
        return None
    return prefix


def require_asterisk() -> Path:
    """The built Asterisk; skips the test without one, fails it in CI."""
    prefix = installed_asterisk()
    if prefix is None:
        message = "no Asterisk built: run `make asterisk` (scripts/build_asterisk.sh, ~5 min)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must run the real-Asterisk tests")
        pytest.skip(message)
    return prefix


@dataclass(frozen=True)
class AsteriskPorts:
    """Where the test Asterisk listens, and where it finds its peers, all on 127.0.0.1."""

    sip: int = field(default_factory=free_udp_port)
    ami: int = field(default_factory=free_tcp_port)
    audiosocket: int = field(default_factory=free_tcp_port)
    """callagent's AudioSocket listener, which Asterisk dials."""
    trunk: int = field(default_factory=free_udp_port)
    """The "SIP trunk": a sipp or baresip of the test (outbound calls go there)."""
    rtp_start: int = field(default_factory=lambda: free_udp_block(41))

    @property
    def rtp_end(self) -> int:
        return self.rtp_start + 40


def asterisk_environ(ports: AsteriskPorts, dids: str, **extra: str) -> dict[str, str]:
    """The ``CALLAGENT_*`` settings of a test installation: everything on loopback, the trunk at
    ``ports.trunk`` without registration (the test's SIP peer plays the trunk), AMI and
    AudioSocket on the chosen ports. ``extra`` adds or overrides variables."""
    return {
        "CALLAGENT_AMI_SECRET": AMI_SECRET,
        "CALLAGENT_AMI_PORT": str(ports.ami),
        "CALLAGENT_AUDIOSOCKET_PORT": str(ports.audiosocket),
        "CALLAGENT_ASTERISK_SIP_BIND": "127.0.0.1",
        "CALLAGENT_ASTERISK_SIP_PORT": str(ports.sip),
        "CALLAGENT_RTP_PORT_START": str(ports.rtp_start),
        "CALLAGENT_RTP_PORT_END": str(ports.rtp_end),
        "CALLAGENT_TRUNK_HOST": f"127.0.0.1:{ports.trunk}",
        # A trunk with credentials, as most are (an IP-authenticated one is a test of its own);
        # sipp and baresip never ask for them.
        "CALLAGENT_TRUNK_USERNAME": "callagent",
        "CALLAGENT_TRUNK_PASSWORD": "trunk-password",
        "CALLAGENT_TRUNK_REGISTER": "false",
        "CALLAGENT_DIDS": dids,
        **extra,
    }


def scratch_directories(prefix: Path, etc: Path, scratch: Path) -> str:
    """``asterisk.conf``'s ``[directories]``: the configuration from ``etc``, the modules and
    binaries from the build, everything Asterisk writes (database, logs, control socket,
    spool) under ``scratch``."""
    for name in ("lib", "log", "run", "spool", "data", "keys", "agi"):
        (scratch / name).mkdir(exist_ok=True)
    return "\n".join(
        [
            "",
            "[directories]",
            f"astetcdir => {etc}",
            f"astmoddir => {prefix}/lib/asterisk/modules",
            f"astsbindir => {prefix}/sbin",
            f"astvarlibdir => {scratch}/lib",
            f"astdbdir => {scratch}/lib",
            f"astdatadir => {scratch}/data",
            f"astkeydir => {scratch}/keys",
            f"astagidir => {scratch}/agi",
            f"astspooldir => {scratch}/spool",
            f"astrundir => {scratch}/run",
            f"astlogdir => {scratch}/log",
            "",
        ]
    )


class RealAsterisk:
    """One Asterisk process on a rendered configuration; use as a context manager."""

    def __init__(self, prefix: Path, settings: Settings) -> None:
        self.prefix = prefix
        self.settings = settings
        # Short, not pytest's tmp_path: the control socket lives here and a Unix socket path
        # must fit in 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="callagent-ast-"))
        self.etc = self.root / "etc"
        self.scratch = self.root / "var"
        self.scratch.mkdir()
        self.output_path = self.root / "asterisk.out"
        self.process: subprocess.Popen[bytes] | None = None
        self.started_s: float | None = None
        """Seconds from exec to fully booted."""

    @property
    def config(self) -> Path:
        return self.etc / "asterisk.conf"

    @property
    def binary(self) -> Path:
        return self.prefix / "sbin" / "asterisk"

    def render(self) -> None:
        """Write what ``callagent asterisk-config --out ETC`` writes, plus scratch paths."""
        with contextlib.redirect_stdout(None):  # it prints each path written
            write_asterisk_config_files(self.settings, self.etc)
        with self.config.open("a", encoding="utf-8") as conf:
            conf.write(scratch_directories(self.prefix, self.etc, self.scratch))

    def start(self, timeout_s: float = 30.0) -> None:
        """Start in the foreground and wait until AMI answers and the core is fully booted."""
        if not self.config.exists():
            self.render()
        started = time.monotonic()
        with self.output_path.open("ab") as output:
            self.process = subprocess.Popen(
                [str(self.binary), "-C", str(self.config), "-f"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # Its own process group: a Ctrl-C of pytest must not reach it before `core stop`.
                start_new_session=True,
            )
        deadline = started + timeout_s
        while not self._ami_answers():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"asterisk exited with {self.process.returncode}:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"AMI never answered within {timeout_s} s:\n{self.output()}")
            time.sleep(0.05)
        self.cli("core waitfullybooted", timeout_s=max(1.0, deadline - time.monotonic()))
        self.started_s = time.monotonic() - started

    def _ami_answers(self) -> bool:
        """AMI sends its banner ("Asterisk Call Manager/...") as soon as a client connects."""
        ami = self.settings.asterisk
        try:
            with socket.create_connection((ami.ami_host, ami.ami_port), timeout=0.5) as sock:
                return sock.recv(64).startswith(b"Asterisk Call Manager/")
        except OSError:
            return False

    def cli(self, command: str, timeout_s: float = 10.0) -> str:
        """Run one CLI command over the control socket (``asterisk -rx``); its output."""
        done = subprocess.run(
            [str(self.binary), "-C", str(self.config), "-rx", command],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        return done.stdout + done.stderr

    def output(self) -> str:
        """Everything it printed plus its messages log (warnings and errors)."""
        parts = [self.output_path.read_text(errors="replace")]
        messages = self.scratch / "log" / "messages.log"
        if messages.exists():
            parts.append(messages.read_text(errors="replace"))
        return "\n".join(parts)[-20000:]

    def stop(self, timeout_s: float = 15.0) -> None:
        """``core stop now``; killed if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.cli("core stop now", timeout_s=timeout_s)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def __enter__(self) -> RealAsterisk:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if os.environ.get("CALLAGENT_KEEP_ASTERISK_LOGS") is None:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.asynccontextmanager
async def real_asterisk(environ: Mapping[str, str]) -> AsyncIterator[tuple[RealAsterisk, Settings]]:
    """A running Asterisk on the configuration the settings of ``environ`` render, and those
    settings (callagent's side uses the same ones). Starting and stopping block for a second
    or two: they run in a thread, not on the event loop."""
    prefix = require_asterisk()
    settings = load_settings(environ=dict(environ))
    asterisk = RealAsterisk(prefix, settings)
    try:
        await asyncio.to_thread(asterisk.start)
        yield asterisk, settings
    finally:
        await asyncio.to_thread(asterisk.__exit__, None, None, None)


AmiEvent = list[tuple[str, str]]
"""One AMI message as Asterisk sent it: its ``Key: Value`` lines in order."""


def field_of(message: AmiEvent, key: str) -> str | None:
    """The first value of ``key`` in ``message`` (AMI keys are case-insensitive)."""
    return next((v for k, v in message if k.lower() == key.lower()), None)


class AmiRecorder:
    """A second AMI session, logged in with callagent's own account (so it receives exactly
    the event classes callagent's account may read), that keeps every message verbatim: what a
    real Asterisk sends, to compare with what the AMI simulator plays."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.asterisk
        self.messages: list[AmiEvent] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self.banner = ""

    async def __aenter__(self) -> AmiRecorder:
        s = self.settings
        self._reader, self._writer = await asyncio.open_connection(s.ami_host, s.ami_port)
        self.banner = (await self._reader.readline()).decode().strip()
        self._writer.write(
            (
                f"Action: Login\r\nActionID: recorder-login\r\nUsername: {s.ami_username}\r\n"
                f"Secret: {s.ami_secret}\r\nEvents: on\r\n\r\n"
            ).encode()
        )
        await self._writer.drain()
        self._task = asyncio.create_task(self._read(), name="ami-recorder")
        await self.wait_for(lambda m: field_of(m, "ActionID") == "recorder-login")
        return self

    async def _read(self) -> None:
        assert self._reader is not None
        current: AmiEvent = []
        while line := await self._reader.readline():
            text = line.decode(errors="replace").rstrip("\r\n")
            if text:
                key, _, value = text.partition(":")
                current.append((key, value.strip()))
            elif current:
                self.messages.append(current)
                current = []

    def events(self, name: str | None = None) -> list[AmiEvent]:
        """The events received so far (responses left out), of one name if given."""
        return [
            m
            for m in self.messages
            if field_of(m, "Event") is not None and name in (None, field_of(m, "Event"))
        ]

    async def wait_for(
        self, predicate: Callable[[AmiEvent], bool], timeout_s: float = 10
    ) -> AmiEvent:
        """The first message (received before or after now) for which ``predicate`` holds."""
        async with asyncio.timeout(timeout_s):
            while True:
                for message in self.messages:
                    if predicate(message):
                        return message
                await asyncio.sleep(0.02)

    def text(self) -> str:
        """Everything received, in AMI's own text form."""
        return "\n".join("\n".join(f"{k}: {v}" for k, v in m) + "\n" for m in self.messages)

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
