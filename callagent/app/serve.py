"""``callagent serve``: the agent as a service, wired from the settings.

The AudioSocket listener, AMI with its call placer, the direct-SIP endpoint, call routing and
persistence, recording retention, crash recovery, post-call analysis (:func:`start_telephony`),
then the HTTP API and ``/health`` until SIGINT / SIGTERM (:func:`serve`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callagent.app.analysis_worker import AnalysisParams, AnalysisWorker
from callagent.app.components import analysis_model, pipeline_settings, prepare, voice_catalog
from callagent.app.llm_server import close_llm
from callagent.app.scheduling import dial_policy, scheduler_params
from callagent.dialog.agent_profile import AgentProfile
from callagent.dialog.analysis import JsonModel
from callagent.scheduler.service import Scheduler
from callagent.settings import Settings
from callagent.store.db import Database
from callagent.telephony.admission import BusyPrompt, CallAdmission
from callagent.telephony.asterisk.ami import AmiClient, AmiDialer
from callagent.telephony.asterisk.placer import AmiCallPlacer
from callagent.telephony.asterisk.server import AudioSocketServer
from callagent.telephony.call_actions import ActionParams
from callagent.telephony.call_journal import CallJournals
from callagent.telephony.call_runner import CallReport, CallRunner, VoiceEngines
from callagent.telephony.metrics import CallMetrics
from callagent.telephony.outbound import CallPlacer, NoTelephonyPlacer
from callagent.telephony.recording import delete_expired_recordings
from callagent.telephony.recovery import CallRecovery, RecoveryParams
from callagent.telephony.routing import CallRouter, ProfileCache
from callagent.voice_pipeline.clock import Clock, MonotonicClock
from callagent.webhooks.delivery import WebhookParams, WebhookWorker

if TYPE_CHECKING:  # pjsua2 is imported only when direct SIP is enabled
    from callagent.inference.supervisor import EnginePool
    from callagent.telephony.sip.endpoint import SipEndpoint

log = logging.getLogger(__name__)

RETENTION_INTERVAL_S = 86_400.0
"""Recordings past retention are deleted at start and then once a day."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class FinishedCalls:
    """How many calls this node has finished, and the reports of the latest ``keep``: a node
    runs for months, so it never holds every report it made (the store has them all)."""

    def __init__(self, keep: int = 100) -> None:
        self._recent: deque[CallReport] = deque(maxlen=keep)
        self.count = 0

    def append(self, report: CallReport) -> None:
        """Note one finished call (the runner's ``on_call_finished``)."""
        self._recent.append(report)
        self.count += 1

    def __iter__(self) -> Iterator[CallReport]:
        return iter(self._recent)

    def __len__(self) -> int:
        return len(self._recent)


@dataclass
class Telephony:
    """Everything ``serve`` runs besides HTTP (docs/telephony.md): the AudioSocket listener,
    AMI with its call placer, the direct-SIP endpoint, call routing and persistence, and
    recording retention. Built by :func:`start_telephony`; :meth:`close` stops it all in order.
    """

    server: AudioSocketServer
    runner: CallRunner
    journals: CallJournals
    profiles: ProfileCache
    placer: CallPlacer
    ami: AmiClient | None = None
    sip: SipEndpoint | None = None
    recordings: Path | None = None
    host: str = "127.0.0.1"
    finished: FinishedCalls = field(default_factory=FinishedCalls)
    background: list[asyncio.Task[None]] = field(default_factory=list)
    unsubscribe_ami: Callable[[], None] | None = None
    recovery: CallRecovery | None = None
    analysis: AnalysisWorker | None = None
    analysis_model: JsonModel | None = None
    admission: CallAdmission | None = None
    metrics: CallMetrics | None = None
    scheduler: Scheduler | None = None
    router: CallRouter | None = None
    """Routes every call; a simulated call without AMI is announced to it."""
    engines: EnginePool | None = None
    """The engines' worker processes, when they run in workers (docs/inference.md)."""

    def status(self) -> dict[str, Any]:
        """What ``GET /health`` reports about telephony."""
        return {
            "audiosocket": f"{self.host}:{self.server.port}",
            "active_calls": self.server.active_calls,
            "calls_finished": self.finished.count,
            "ami": None if self.ami is None else ("connected" if self.ami.connected else "down"),
            "sip": None if self.sip is None else f"port {self.sip.port}",
            "recordings": str(self.recordings) if self.recordings else None,
            "analysis": None if self.analysis is None else dict(self.analysis.results),
            "capacity": None if self.admission is None else self.admission.status(),
            "engines": None if self.engines is None else self.engines.status(),
        }

    def busy(self) -> bool:
        """Whether this node has a live call (the post-call analysis makes way for it)."""
        return self.server.active_calls > 0 or bool(self.journals.held_calls())

    async def close(self) -> None:
        """Stop taking calls, let live calls finish and their writes land, then disconnect."""
        if self.scheduler is not None:
            await self.scheduler.close()  # first: no new dial while the node winds down
        if self.recovery is not None:
            await self.recovery.close()  # first: no sweep while AMI and the calls wind down
        if self.analysis is not None:
            await self.analysis.close()  # a run in progress gives its job back
        if self.analysis_model is not None:
            await self.analysis_model.close()
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
    """Delete recordings past retention now and then once a day (docs/telephony.md)."""
    while True:
        try:
            await asyncio.to_thread(delete_expired_recordings, folder, retention_days)
        except Exception:
            log.exception("recording retention failed; trying again tomorrow")
        await asyncio.sleep(RETENTION_INTERVAL_S)


def analysis_params(settings: Settings) -> AnalysisParams:
    """The analysis worker's parameter object, from the ``analysis`` settings."""
    return AnalysisParams(
        poll_interval_s=settings.analysis.poll_interval_s,
        lease_s=settings.analysis.lease_s,
        max_defer_s=settings.analysis.max_defer_s,
    )


def recovery_params(settings: Settings) -> RecoveryParams:
    """Crash recovery's parameter object, from the ``recovery`` settings."""
    return RecoveryParams(
        heartbeat_interval_s=settings.recovery.heartbeat_interval_s,
        stale_after_s=settings.recovery.stale_after_s,
        sweep_interval_s=settings.recovery.sweep_interval_s,
    )


def webhook_params(settings: Settings) -> WebhookParams:
    """The webhook delivery worker's parameter object, from the ``webhooks`` settings."""
    section = settings.webhooks
    return WebhookParams(
        poll_interval_s=section.poll_interval_s,
        timeout_s=section.timeout_s,
        lease_s=section.lease_s,
        backoff_base_s=section.backoff_base_s,
        backoff_max_s=section.backoff_max_s,
        max_attempts=section.max_attempts,
        retention_days=section.retention_days,
    )


async def start_telephony(
    settings: Settings,
    database: Database,
    engines: VoiceEngines,
    profile: AgentProfile,
    *,
    clock: Clock | None = None,
    analysis: JsonModel | None = None,
) -> Telephony:
    """Wire the telephony side from the settings.

    AMI is used when ``asterisk.ami_secret`` is set: its call placer serves start-call, and its
    call events are persisted; otherwise start-call answers "no telephony configured". The
    direct-SIP endpoint runs when ``sip.enabled``. Both, and the AudioSocket listener, share
    one call runner, router and journal. Crash recovery sweeps at once, in the background, and
    then at its interval (docs/telephony.md, "After a crash"). With an ``analysis`` model and
    ``analysis.enabled`` the post-call analysis worker runs too (docs/analysis.md); the
    telephony owns the model from here on and closes it.
    """
    journals = CallJournals(database)
    profiles = ProfileCache(database, warm=engines.llm.warm_up)
    ami: AmiClient | None = None
    placer: CallPlacer = NoTelephonyPlacer()
    # Without AMI a hand-over the agent decides is only recorded (docs/dialog.md).
    actions = ActionParams()
    unsubscribe = None
    if settings.asterisk.ami_secret:
        ami = AmiClient.from_settings(settings.asterisk)
        dialer = AmiDialer.from_settings(ami, settings.asterisk)
        placer = AmiCallPlacer(dialer)
        actions = ActionParams(
            transfer=dialer.transfer, transfer_targets=tuple(settings.asterisk.transfer_map())
        )
        unsubscribe = ami.subscribe(journals.on_call_event)
        await ami.start()  # connects in the background, with backoff: Asterisk may start later
        log.info("AMI: connecting to %s:%d", settings.asterisk.ami_host, settings.asterisk.ami_port)
    network = settings.network
    if ami is None and network.audiosocket_accept == "announced":
        # Nothing announces calls without AMI (the embedded mode): every caller is taken, so
        # the listener had better stay on loopback.
        log.warning(
            "AudioSocket takes every call on %s: without AMI (asterisk.ami_secret) no call "
            "can be announced",
            network.audiosocket_bind,
        )
    router = CallRouter(
        database,
        profiles,
        fallback=profile,
        unknown_number=settings.routing.unknown_number,
        unknown_message=settings.routing.unknown_number_message,
        ami=ami,
        accept=network.audiosocket_accept,
    )
    recordings = Path(settings.recording.folder) if settings.recording.enabled else None
    finished = FinishedCalls()
    clock = clock or MonotonicClock()
    # One count for AudioSocket, direct SIP, start-call and the scheduler (docs/telephony.md
    # "Capacity"); the busy prompt is rendered now, so a refusal costs the full node no TTS time.
    admission = CallAdmission(settings.routing.max_active_calls)
    busy = BusyPrompt(engines.tts, settings.routing.busy_message)
    await busy.prepare()
    # Rendered now, while the TTS is up: it plays when an engine has died (docs/inference.md).
    apology = BusyPrompt(engines.tts, settings.models.failure_message)
    await apology.prepare()
    metrics = CallMetrics()
    metrics.watch_admission(admission)
    if engines.pool is not None:
        metrics.registry.register(engines.pool.collector())
    if ami is not None:
        # Never unsubscribed: both live as long as the node, and AMI closes with it.
        ami.subscribe(admission.on_call_event)
        ami.subscribe(metrics.on_call_event)
    runner = CallRunner(
        engines,
        profile,
        clock,
        pipeline_settings(settings),
        on_call_finished=finished.append,
        recordings=recordings,
        router=router,
        journals=journals,
        actions=actions,
        admission=admission,
        busy=busy,
        metrics=metrics,
        apology=apology,
    )
    server = AudioSocketServer(
        runner,
        network.audiosocket_bind,
        network.audiosocket_port,
        clock=clock,
        sample_rate=settings.asterisk.audiosocket_sample_rate(),
        uuid_timeout=network.audiosocket_uuid_timeout_s,
    )
    recovery = CallRecovery(
        database, recovery_params(settings), journals=journals, ami=ami, recordings=recordings
    )
    telephony = Telephony(
        server=server,
        runner=runner,
        journals=journals,
        profiles=profiles,
        placer=placer,
        ami=ami,
        recordings=recordings,
        host=network.audiosocket_bind,
        finished=finished,
        unsubscribe_ami=unsubscribe,
        recovery=recovery,
        analysis_model=analysis,
        admission=admission,
        metrics=metrics,
        router=router,
        engines=engines.pool,
    )
    if analysis is not None and settings.analysis.enabled:
        telephony.analysis = AnalysisWorker(
            database, analysis, analysis_params(settings), busy=telephony.busy
        )
    try:
        # Calls a crash of this node (or of another) left live are settled from the start:
        # nothing waits for this process to remember them (DESIGN.md, Modes).
        recovery.start()
        await server.start()
        log.info("AudioSocket listening on %s:%d", network.audiosocket_bind, server.port)
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
        if telephony.analysis is not None:
            # Jobs queued before a restart (or by a node that died) are taken up from here.
            telephony.analysis.start()
        if settings.scheduler.enabled and ami is not None:
            # Due callbacks, retries and follow-ups are dialled from here (docs/scheduler.md).
            # Without a phone line nothing is dialled: due rows wait instead of failing.
            # Its calls take their slots from the same admission as every other call
            # (docs/scheduler.md "Capacity"): no dial into a node that is full.
            telephony.scheduler = Scheduler(
                database, placer, scheduler_params(settings), admission=admission
            )
            telephony.scheduler.start()
    except BaseException:
        await telephony.close()
        raise
    return telephony


async def serve(settings: Settings) -> int:
    """Run the agent until SIGINT / SIGTERM: the database, the models, telephony and HTTP.

    Returns the exit code: 0 when asked to stop.
    """
    # The REST API's database (docs/api.md): migrated to the latest schema before serving.
    # Whether answered calls wait for an analysis is the installation's (docs/analysis.md).
    database = Database(settings.database.url, analyse_calls=settings.analysis.analysed())
    engines: VoiceEngines | None = None
    try:
        await database.migrate()
        # Each engine in a worker process of its own unless models.workers is off: a native
        # crash then ends only the calls it served (docs/inference.md).
        engines, profile = await prepare(settings, workers=settings.models.workers)
        model = analysis_model(settings) if settings.analysis.enabled else None
        telephony = await start_telephony(settings, database, engines, profile, analysis=model)
        # Webhook deliveries queued before a restart (or by a node that died) go out from here
        # (docs/webhooks.md).
        webhook_worker = None
        if settings.webhooks.enabled:
            webhook_worker = WebhookWorker(database, webhook_params(settings))
            webhook_worker.start()
        # uvicorn stops on SIGINT / SIGTERM and then re-raises the signal to the handler that
        # was there before it: make that a no-op until the calls are closed below, so the
        # process exits 0 like any service asked to stop.
        previous = {sig: signal.signal(sig, lambda *_: None) for sig in STOP_SIGNALS}
        try:
            await _serve_http(settings, database, telephony, profile)
        finally:
            if webhook_worker is not None:
                await webhook_worker.close()
            await telephony.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        if engines is not None and engines.pool is not None:
            await engines.pool.close()
        if engines is not None:
            await close_llm(engines.llm)  # stops the llama-server child, when it is ours
        await database.dispose()
    return 0


async def _serve_http(
    settings: Settings, database: Database, telephony: Telephony, profile: AgentProfile
) -> None:
    """The REST API and ``/health`` until SIGINT / SIGTERM."""
    import uvicorn

    from callagent.api.app import create_app
    from callagent.api.pages import BrowserPhone
    from callagent.api.state import ApiState, start_call_rule
    from callagent.app.first_run import announce_first_run

    def status() -> dict[str, Any]:
        return {"agent": profile.name, "models": settings.models.profile, **telephony.status()}

    network = settings.network
    # A database without users: a one-time set-up link, never a default password.
    first_run = await announce_first_run(database, network)
    http = uvicorn.Server(
        uvicorn.Config(
            create_app(
                status,
                ApiState(
                    database,
                    placer=telephony.placer,
                    recordings=telephony.recordings,
                    admission=telephony.admission,
                    dial_rule=start_call_rule(dial_policy(settings)),
                    # An agent's voice must be one installed here (docs/api.md, voice_model).
                    voices=voice_catalog(settings.models),
                ),
                metrics=telephony.metrics,
                # "Talk to your agent": the browser phone's calls run like phone calls.
                phone=BrowserPhone(telephony.runner, telephony.runner.clock),
                first_run=first_run,
            ),
            host=network.host,
            port=network.http_port,
            log_level="warning",
            # A WebSocket message is buffered whole before the app sees it: the browser
            # phone's are 2-20 kB (docs/dashboard.md), so 64 kB bounds what a peer can make
            # the server hold.
            ws_max_size=64 * 1024,
            ws="wsproto",
        )
    )
    log.info("health endpoint on http://%s:%d/health", network.host, network.http_port)
    await http.serve()
