"""The ``callagent`` command: the composition root (DESIGN.md).

It is the one place that reads settings and wires the pieces together:
``serve`` runs the agent, ``call --simulate`` runs a whole call against it, ``models``
downloads and checks the model files.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile

from callagent.dialog.agent_profile import (
    DEFAULT_AGENT,
    AgentProfile,
    AgentProfileError,
    load_agent_profile,
)
from callagent.dialog.prompt import build_system_prompt
from callagent.modelfiles import ModelFileError
from callagent.settings import Settings, SettingsError, load_settings
from callagent.store.db import Database
from callagent.telephony.asterisk.ami import AmiClient, AmiDialer
from callagent.telephony.asterisk.loopback_caller import Interruption, simulate_call
from callagent.telephony.asterisk.placer import AmiCallPlacer
from callagent.telephony.asterisk.server import AudioSocketServer
from callagent.telephony.call_journal import CallJournals
from callagent.telephony.call_runner import CallReport, CallRunner, VoiceEngines
from callagent.telephony.outbound import CallPlacer, NoTelephonyPlacer
from callagent.telephony.recording import delete_expired_recordings
from callagent.telephony.routing import CallRouter, ProfileCache
from callagent.voice_pipeline.audio import float_to_pcm, resample
from callagent.voice_pipeline.clock import Clock, MonotonicClock
from callagent.voice_pipeline.pipeline import PipelineSettings
from callagent.voice_pipeline.turns import TurnSettings
from callagent.voice_pipeline.vad import VadSettings

if TYPE_CHECKING:  # pjsua2 is imported only when direct SIP is enabled
    from callagent.telephony.sip.endpoint import SipEndpoint

log = logging.getLogger("callagent")

RETENTION_INTERVAL_S = 86_400.0
"""Recordings past retention are deleted at start and then once a day."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class UsageError(Exception):
    """A command-line problem worth one clear line, not a traceback."""


def read_caller_audio(path: Path, sample_rate: int) -> bytes:
    """Any audio file libsndfile reads (wav, µ-law wav, flac, …) as mono s16le PCM at
    ``sample_rate``, resampled with soxr."""
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as error:
        raise UsageError(f"cannot read caller audio {path}: {error}") from error
    if samples.size == 0:
        raise UsageError(f"caller audio {path} is empty")
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    return resample(float_to_pcm(np.asarray(mono)), int(rate), sample_rate)


def write_wav(path: Path, pcm: bytes, sample_rate: int, channels: int = 1) -> None:
    """Write s16le PCM as a wav file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm)


def pipeline_settings(settings: Settings) -> PipelineSettings:
    """The pipeline's parameter object, from the turn-taking settings."""
    return PipelineSettings(
        vad=VadSettings(aggressiveness=settings.turn_taking.vad_aggressiveness),
        turns=TurnSettings(end_silence_s=settings.turn_taking.end_silence_s),
    )


def agent_profile(settings: Settings) -> AgentProfile:
    """The configured agent, or the built-in demo agent."""
    if settings.agent.file is None:
        return DEFAULT_AGENT
    return load_agent_profile(Path(settings.agent.file))


async def prepare(settings: Settings) -> tuple[VoiceEngines, AgentProfile]:
    """Load the models (in a thread: it takes seconds) and warm the LLM's prompt cache."""
    from callagent.engines import load_engines

    profile = agent_profile(settings)
    engines = await asyncio.to_thread(load_engines, settings.models)
    await engines.llm.warm_up(build_system_prompt(profile))
    return engines, profile


async def run_simulated_call(
    settings: Settings,
    utterances: Sequence[bytes | Interruption],
    *,
    sample_rate: int = 8000,
    engines: VoiceEngines | None = None,
    profile: AgentProfile | None = None,
) -> tuple[CallReport, Any]:
    """One whole call through a real TCP AudioSocket connection to an in-process server,
    with a client that behaves like Asterisk (issue #2, item 7). ``utterances`` are PCM at
    ``sample_rate``, one per caller turn."""
    if engines is None or profile is None:
        engines, profile = await prepare(settings)
    reports: list[CallReport] = []
    clock = MonotonicClock()
    runner = CallRunner(
        engines,
        profile,
        clock,
        pipeline_settings(settings),
        on_call_finished=reports.append,
    )
    async with AudioSocketServer(runner, "127.0.0.1", 0, clock=clock) as server:
        result = await simulate_call("127.0.0.1", server.port, utterances, sample_rate=sample_rate)
    # Closing the server waited for the call handler, so the report is complete.
    (report,) = reports
    return report, result


def _print_call(report: CallReport) -> None:
    data = report.to_json()
    if data["greeting"]:
        print(f"agent : {data['greeting']}")
    for turn in data["turns"]:
        print(f"caller: {turn['caller_text']}")
        cut = " [interrupted]" if turn["interrupted"] else ""
        print(f"agent : {turn['agent_text']}{cut}")
        latency = ", ".join(f"{k} {v:.0f}" for k, v in turn["latency_ms"].items() if v is not None)
        print(f"        ({latency} ms)")
    print(f"barge-ins: {data['barge_ins']}, call length {data['duration_s']} s")


async def _call(args: argparse.Namespace, settings: Settings) -> int:
    if not args.simulate:
        raise UsageError(
            "placing a real call needs Asterisk (issue #4); use --simulate CALLER.wav for now"
        )
    utterances = [read_caller_audio(path, args.rate) for path in args.simulate]
    report, result = await run_simulated_call(settings, utterances, sample_rate=args.rate)
    if args.out:
        write_wav(args.out, result.agent_pcm, result.sample_rate)
    if args.recording:
        result.write_wav(args.recording)
    if args.json:
        print(json.dumps({**report.to_json(), "hung_up_by": result.hung_up_by}))
    else:
        _print_call(report)
    return 0


async def _clients(args: argparse.Namespace, settings: Settings) -> int:
    """``callagent clients create|keys|revoke`` (issue #3): manage tenants and API keys."""
    import uuid

    import msgspec

    from callagent.store.db import Database
    from callagent.store.errors import DomainError
    from callagent.store.services import clients

    database = Database(settings.database.url)
    try:
        await database.migrate()
        if args.clients_command == "create":
            created = await clients.create_client(database, args.name)
            print(msgspec.json.encode(created).decode())
        elif args.clients_command == "keys":
            keys = await clients.list_api_keys(database, uuid.UUID(args.client_id))
            print(msgspec.json.encode(keys).decode())
        else:
            revoked = await clients.revoke_api_key(database, uuid.UUID(args.key_id))
            print(msgspec.json.encode(revoked).decode())
    except ValueError as error:  # a malformed UUID
        raise UsageError(f"not a valid id: {error}") from error
    except DomainError as error:
        raise UsageError(error.detail) from error
    finally:
        await database.dispose()
    return 0


@dataclass
class Telephony:
    """Everything ``serve`` runs besides HTTP (issue #4): the AudioSocket listener, AMI with
    its call placer, the direct-SIP endpoint, call routing and persistence, and recording
    retention. Built by :func:`start_telephony`; :meth:`close` stops it all in order."""

    server: AudioSocketServer
    runner: CallRunner
    journals: CallJournals
    profiles: ProfileCache
    placer: CallPlacer
    ami: AmiClient | None = None
    sip: SipEndpoint | None = None
    recordings: Path | None = None
    host: str = "127.0.0.1"
    finished: list[CallReport] = field(default_factory=list)
    background: list[asyncio.Task[None]] = field(default_factory=list)
    unsubscribe_ami: Callable[[], None] | None = None

    def status(self) -> dict[str, Any]:
        """What ``GET /health`` reports about telephony."""
        return {
            "audiosocket": f"{self.host}:{self.server.port}",
            "active_calls": self.server.active_calls,
            "calls_finished": len(self.finished),
            "ami": None if self.ami is None else ("connected" if self.ami.connected else "down"),
            "sip": None if self.sip is None else f"port {self.sip.port}",
            "recordings": str(self.recordings) if self.recordings else None,
        }

    async def close(self) -> None:
        """Stop taking calls, let live calls finish and their writes land, then disconnect."""
        await self.server.close()
        if self.sip is not None:
            await self.sip.close()
        if self.unsubscribe_ami is not None:
            self.unsubscribe_ami()
        if self.ami is not None:
            await self.ami.close()
        for task in self.background:
            task.cancel()
        for task in self.background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.profiles.close()
        await self.journals.close()


async def _expire_recordings(folder: Path, retention_days: float) -> None:
    """Delete recordings past retention now and then once a day (issue #4 item 4)."""
    while True:
        try:
            await asyncio.to_thread(delete_expired_recordings, folder, retention_days)
        except Exception:
            log.exception("recording retention failed; trying again tomorrow")
        await asyncio.sleep(RETENTION_INTERVAL_S)


async def start_telephony(
    settings: Settings,
    database: Database,
    engines: VoiceEngines,
    profile: AgentProfile,
    *,
    clock: Clock | None = None,
) -> Telephony:
    """Wire the telephony side from the settings (DESIGN.md: the CLI is the composition root).

    AMI is used when ``asterisk.ami_secret`` is set: its call placer serves start-call, and its
    call events are persisted; otherwise start-call answers "no telephony configured". The
    direct-SIP endpoint runs when ``sip.enabled``. Both, and the AudioSocket listener, share
    one call runner, router and journal.
    """
    journals = CallJournals(database)
    profiles = ProfileCache(database, warm=engines.llm.warm_up)
    ami: AmiClient | None = None
    placer: CallPlacer = NoTelephonyPlacer()
    unsubscribe = None
    if settings.asterisk.ami_secret:
        ami = AmiClient.from_settings(settings.asterisk)
        placer = AmiCallPlacer(AmiDialer.from_settings(ami, settings.asterisk))
        unsubscribe = ami.subscribe(journals.on_call_event)
        await ami.start()  # connects in the background, with backoff: Asterisk may start later
        log.info("AMI: connecting to %s:%d", settings.asterisk.ami_host, settings.asterisk.ami_port)
    router = CallRouter(
        database,
        profiles,
        fallback=profile,
        unknown_number=settings.routing.unknown_number,
        unknown_message=settings.routing.unknown_number_message,
        ami=ami,
    )
    recordings = Path(settings.recording.folder) if settings.recording.enabled else None
    finished: list[CallReport] = []
    clock = clock or MonotonicClock()
    runner = CallRunner(
        engines,
        profile,
        clock,
        pipeline_settings(settings),
        on_call_finished=finished.append,
        recordings=recordings,
        router=router,
        journals=journals,
    )
    network = settings.network
    server = AudioSocketServer(runner, network.host, network.audiosocket_port, clock=clock)
    telephony = Telephony(
        server=server,
        runner=runner,
        journals=journals,
        profiles=profiles,
        placer=placer,
        ami=ami,
        recordings=recordings,
        host=network.host,
        finished=finished,
        unsubscribe_ami=unsubscribe,
    )
    try:
        await server.start()
        log.info("AudioSocket listening on %s:%d", network.host, server.port)
        if settings.sip.enabled:
            from callagent.telephony.sip.endpoint import SipEndpoint

            telephony.sip = SipEndpoint(settings.sip, runner, clock=clock)
            await telephony.sip.start()
            log.info("SIP endpoint on %s:%d", settings.sip.host, telephony.sip.port)
        if recordings is not None and settings.recording.retention_days > 0:
            telephony.background.append(
                asyncio.create_task(
                    _expire_recordings(recordings, settings.recording.retention_days),
                    name="recording-retention",
                )
            )
    except BaseException:
        await telephony.close()
        raise
    return telephony


async def _serve(settings: Settings) -> int:
    # The REST API's database (issue #3): migrated to the latest schema before serving.
    database = Database(settings.database.url)
    try:
        await database.migrate()
        engines, profile = await prepare(settings)
        telephony = await start_telephony(settings, database, engines, profile)
        # uvicorn stops on SIGINT / SIGTERM and then re-raises the signal to the handler that
        # was there before it: make that a no-op until the calls are closed below, so the
        # process exits 0 like any service asked to stop.
        previous = {sig: signal.signal(sig, lambda *_: None) for sig in STOP_SIGNALS}
        try:
            await _serve_http(settings, database, telephony, profile)
        finally:
            await telephony.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        await database.dispose()
    return 0


async def _serve_http(
    settings: Settings, database: Database, telephony: Telephony, profile: AgentProfile
) -> None:
    """The REST API and ``/health`` until SIGINT / SIGTERM."""
    import uvicorn

    from callagent.api.app import create_app
    from callagent.api.state import ApiState

    def status() -> dict[str, Any]:
        return {"agent": profile.name, "models": settings.models.profile, **telephony.status()}

    network = settings.network
    http = uvicorn.Server(
        uvicorn.Config(
            create_app(status, ApiState(database, placer=telephony.placer)),
            host=network.host,
            port=network.http_port,
            log_level="warning",
        )
    )
    log.info("health endpoint on http://%s:%d/health", network.host, network.http_port)
    await http.serve()


def _asterisk_config(args: argparse.Namespace, settings: Settings) -> int:
    """Render, check and write Asterisk's configuration (issue #4, docs/telephony.md)."""
    from callagent.telephony.asterisk.config import (
        AsteriskConfigError,
        render_asterisk_config,
        write_asterisk_config,
    )
    from callagent.telephony.asterisk.config_check import check_asterisk_config

    try:
        files = render_asterisk_config(
            settings.asterisk, audiosocket_port=settings.network.audiosocket_port
        )
    except AsteriskConfigError as error:
        raise UsageError(f"cannot render the Asterisk configuration: {error}") from error
    problems = check_asterisk_config(files)
    if problems:  # a bug in the templates, never the operator's: refuse to write it
        raise UsageError("rendered Asterisk configuration failed its check: " + "; ".join(problems))
    for path in write_asterisk_config(files, args.out):
        print(path)
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callagent", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="TOML config file")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--agent", type=Path, help="agent definition (YAML or JSON)")
    common.add_argument("--models", help="model profile: ci, default or server")
    common.add_argument("--models-dir", type=Path, help="folder of the model files")

    serve = sub.add_parser("serve", parents=[common], help="run the agent")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--audiosocket-port", type=int, help="AudioSocket port (default 9092)")
    serve.add_argument("--http-port", type=int, help="HTTP port (default 8000)")
    serve.add_argument(
        "--database-url", help="database (default sqlite+aiosqlite:///var/callagent.db)"
    )

    call = sub.add_parser("call", parents=[common], help="run a call")
    call.add_argument(
        "--simulate",
        type=Path,
        nargs="+",
        metavar="CALLER.wav",
        help="the caller's recording(s), one per caller turn, played like a real caller",
    )
    call.add_argument("--rate", type=int, default=8000, choices=(8000, 16000), help="wire rate")
    call.add_argument("--out", type=Path, help="write the agent's audio to this wav file")
    call.add_argument("--recording", type=Path, help="write the call (caller L, agent R)")
    call.add_argument("--json", action="store_true", help="print one JSON object")

    clients_parser = sub.add_parser("clients", help="manage clients and their API keys")
    clients_parser.add_argument("--database-url", help="database (as for serve)")
    clients_sub = clients_parser.add_subparsers(dest="clients_command", required=True)
    create = clients_sub.add_parser("create", help="create a client; prints its first API key")
    create.add_argument("name")
    keys = clients_sub.add_parser("keys", help="list a client's API keys")
    keys.add_argument("client_id")
    revoke = clients_sub.add_parser("revoke", help="revoke an API key")
    revoke.add_argument("key_id")

    asterisk = sub.add_parser(
        "asterisk-config", help="write Asterisk's configuration from the settings (issue #4)"
    )
    asterisk.add_argument("--out", type=Path, required=True, help="folder for the .conf files")

    models = sub.add_parser("models", help="download or verify model files (see --help)")
    models.add_argument("model_args", nargs=argparse.REMAINDER)
    return parser


def _overrides(args: argparse.Namespace) -> dict[tuple[str, str], Any]:
    return {
        ("agent", "file"): getattr(args, "agent", None),
        ("models", "profile"): getattr(args, "models", None),
        ("models", "models_dir"): getattr(args, "models_dir", None),
        ("network", "host"): getattr(args, "host", None),
        ("network", "audiosocket_port"): getattr(args, "audiosocket_port", None),
        ("network", "http_port"): getattr(args, "http_port", None),
        ("database", "url"): getattr(args, "database_url", None),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``callagent`` console command."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "models":
        from callagent.modelfiles.cli import main as models_main

        return models_main(args.model_args)
    try:
        settings = load_settings(config_file=args.config, overrides=_overrides(args))
        if args.command == "asterisk-config":
            return _asterisk_config(args, settings)
        if args.command == "clients":
            return asyncio.run(_clients(args, settings))
        if args.command == "serve":
            with contextlib.suppress(KeyboardInterrupt):
                return asyncio.run(_serve(settings))
            return 0
        return asyncio.run(_call(args, settings))
    except (SettingsError, AgentProfileError, ModelFileError, UsageError) as error:
        print(f"callagent: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
