"""``callagent call --simulate``: one whole call against an in-process AudioSocket server.

The caller is :func:`~callagent.telephony.asterisk.loopback_caller.simulate_call`, a client that
behaves like Asterisk, playing recordings; the agent runs on the real models and pipeline.

Without ``--client`` the configured file agent answers and nothing is stored
(:func:`run_simulated_call`). With ``--client`` (:func:`run_routed_call`) the call is a client's
inbound call, handled by what ``callagent serve`` runs (:func:`~callagent.app.serve.
start_telephony`): it is announced with the dialled number and caller id the dialplan's
``CallagentInbound`` event carries - to the AMI call tracker when AMI is configured, else to the
router - then routed to the client's agent and customer, stored as it goes, acted on (callback,
do-not-call, hand-over, booking), and analysed after the hang-up (docs/telephony.md, "Try your
agent end to end").
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from callagent.app.audio_files import read_caller_audio, write_wav
from callagent.app.components import analysis_model, pipeline_settings, prepare
from callagent.app.errors import UsageError
from callagent.app.serve import Telephony, start_telephony
from callagent.dialog.agent_profile import AgentProfile
from callagent.dialog.analysis import JsonModel
from callagent.dialog.when import customer_time_zone
from callagent.settings import Settings
from callagent.store.db import Database
from callagent.store.errors import DomainError
from callagent.store.models import utcnow
from callagent.store.schemas import CallbackView, CallDetail, CustomerView
from callagent.store.services import agents, analysis_jobs, callbacks, calls, clients, customers
from callagent.store.states import AnalysisStatus
from callagent.telephony.asterisk.ami_protocol import AmiMessage
from callagent.telephony.asterisk.config import INBOUND_EVENT
from callagent.telephony.asterisk.loopback_caller import (
    Interruption,
    LoopbackCallResult,
    simulate_call,
)
from callagent.telephony.asterisk.server import AudioSocketServer
from callagent.telephony.call_runner import CallReport, CallRunner, VoiceEngines
from callagent.telephony.routing import e164
from callagent.voice_pipeline.clock import MonotonicClock

ANALYSIS_WAIT_S: Final = 900.0
"""How long a routed call waits for its post-call analysis: a run of the default model takes
10-60 s on 2 cores (docs/analysis.md); jobs queued before it go first."""

ANALYSIS_POLL_S: Final = 0.2
"""How often the simulated node's analysis worker looks for the call's job (serve: 5 s)."""


async def run_simulated_call(
    settings: Settings,
    utterances: Sequence[bytes | Interruption],
    *,
    sample_rate: int = 8000,
    engines: VoiceEngines | None = None,
    profile: AgentProfile | None = None,
) -> tuple[CallReport, Any]:
    """One whole call through a real TCP AudioSocket connection to an in-process server, with
    a client that behaves like Asterisk. ``utterances`` are PCM at ``sample_rate``, one per
    caller turn."""
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
    # The loopback caller plays Asterisk with a dialplan that fixes ``sample_rate``.
    async with AudioSocketServer(
        runner, "127.0.0.1", 0, clock=clock, sample_rate=sample_rate
    ) as server:
        result = await simulate_call("127.0.0.1", server.port, utterances, sample_rate=sample_rate)
    # Closing the server waited for the call handler, so the report is complete.
    (report,) = reports
    return report, result


def print_call(report: CallReport) -> None:
    """The call as a transcript with each turn's latency figures, for a person to read."""
    data = report.to_json()
    if data["greeting"]:
        print(f"agent : {data['greeting']}")
    for turn in data["turns"]:
        print(f"caller: {turn['caller_text']}")
        cut = " [interrupted]" if turn["interrupted"] else ""
        print(f"agent : {turn['agent_text']}{cut}")
        latency = ", ".join(f"{k} {v:.0f}" for k, v in turn["latency_ms"].items() if v is not None)
        print(f"        ({latency} ms)")
    for action in data["actions"]:
        details = ", ".join(f"{k}={v}" for k, v in action.items() if k not in ("type", "source"))
        print(f"action: {action['type']} ({action['source']}){': ' + details if details else ''}")
    print(f"barge-ins: {data['barge_ins']}, call length {data['duration_s']} s")


async def run_call(
    settings: Settings,
    callers: Sequence[Path],
    *,
    rate: int | None,
    out: Path | None = None,
    recording: Path | None = None,
    as_json: bool = False,
    client: str | None = None,
    caller_number: str | None = None,
    did: str | None = None,
    analyse: bool = True,
) -> int:
    """Play ``callers`` (audio files, one per caller turn) at wire rate ``rate`` to the agent;
    write the agent's audio to ``out`` and the call to ``recording`` (caller left, agent
    right); print the call as text or one JSON object. Returns the exit code.

    With ``client`` (a client id) the call is that client's inbound call from
    ``caller_number`` to ``did`` (default: the client's first number), routed, stored, acted
    on and - unless ``analyse`` is False - analysed (:func:`run_routed_call`); ``rate`` must
    then be the dialplan's (``asterisk.audiosocket_format``) or None."""
    routed: RoutedCall | None = None
    if client is not None:
        routed = await _run_routed(
            settings,
            callers,
            client=client,
            caller_number=caller_number,
            did=did,
            rate=rate,
            analyse=analyse,
        )
        report, result = routed.report, routed.result
    else:
        if caller_number is not None or did is not None or not analyse:
            raise UsageError("--caller-number, --did and --no-analysis need --client CLIENT_ID")
        rate = rate or 8000
        utterances = [read_caller_audio(path, rate) for path in callers]
        report, result = await run_simulated_call(settings, utterances, sample_rate=rate)
    if out:
        write_wav(out, result.agent_pcm, result.sample_rate)
    if recording:
        result.write_wav(recording)
    if as_json:
        data = routed.to_json() if routed is not None else report.to_json()
        print(json.dumps({**data, "hung_up_by": result.hung_up_by}, default=str))
    elif routed is not None:
        print_routed_call(routed)
    else:
        print_call(report)
    return 0


async def _run_routed(
    settings: Settings,
    callers: Sequence[Path],
    *,
    client: str,
    caller_number: str | None,
    did: str | None,
    rate: int | None,
    analyse: bool,
) -> RoutedCall:
    """:func:`run_routed_call` from the command line's arguments, checked first."""
    try:
        client_id = uuid.UUID(client)
    except ValueError:
        raise UsageError(f"--client {client!r} is not a client id (a UUID)") from None
    if caller_number is None:
        raise UsageError("--client needs --caller-number: the number the caller calls from")
    wire_rate = settings.asterisk.audiosocket_sample_rate()
    if rate is not None and rate != wire_rate:
        raise UsageError(
            f"--rate {rate}: a client's call runs at the dialplan's rate, {wire_rate} Hz "
            f"(asterisk.audiosocket_format = {settings.asterisk.audiosocket_format})"
        )
    utterances = [read_caller_audio(path, wire_rate) for path in callers]
    return await run_routed_call(
        settings,
        utterances,
        client_id=client_id,
        caller_number=caller_number,
        did=did,
        analyse=analyse,
    )


# --- a client's inbound call (``--client``) ----------------------------------------------------


@dataclass(frozen=True)
class RoutedCall:
    """A client's simulated inbound call and what it left in the store."""

    report: CallReport
    result: LoopbackCallResult
    client_id: uuid.UUID
    did: str
    caller: str
    call: CallDetail
    customer: CustomerView | None
    callbacks: list[CallbackView]
    """Callbacks and appointments this call scheduled."""
    customer_zone: str
    """The zone the customer's times are read in (dialog/when.py)."""
    analysis: str
    """How the post-call analysis ended: ``done``, ``failed: …``, ``not run``, ``still queued``."""

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of ``callagent call --simulate --client … --json``."""
        return {
            **self.report.to_json(),
            "hung_up_by": self.result.hung_up_by,
            "client_id": str(self.client_id),
            "did": self.did,
            "caller": self.caller,
            "customer_zone": self.customer_zone,
            "analysis": self.analysis,
            "stored": msgspec.to_builtins(
                {"call": self.call, "customer": self.customer, "callbacks": self.callbacks}
            ),
        }


def simulation_settings(settings: Settings, *, analysis: bool) -> Settings:
    """``settings`` for one simulated call on this machine: the AudioSocket listener on a free
    loopback port (a running ``serve`` keeps its own), no direct-SIP endpoint, and the
    analysis worker on or off as asked, looking for the call's job often."""
    return msgspec.structs.replace(
        settings,
        network=msgspec.structs.replace(
            settings.network, audiosocket_bind="127.0.0.1", audiosocket_port=0
        ),
        sip=msgspec.structs.replace(settings.sip, enabled=False),
        analysis=msgspec.structs.replace(
            settings.analysis, enabled=analysis, poll_interval_s=ANALYSIS_POLL_S
        ),
    )


async def client_number(db: Database, client_id: uuid.UUID, did: str | None) -> tuple[str, str]:
    """The number the simulated caller dials (``did``, else the client's first) and the agent's
    time zone; :class:`UsageError` naming what is missing when the call cannot reach the
    client's agent."""
    try:
        await clients.list_api_keys(db, client_id)
    except DomainError:
        raise UsageError(f"no client {client_id} in this database") from None
    try:
        agent = await agents.get_agent(db, client_id)
    except DomainError:
        raise UsageError(
            f"client {client_id} has no agent yet (POST /api/agents/ai/setup/, docs/api.md)"
        ) from None
    if not agent.phone_numbers:
        raise UsageError(
            f"the agent of client {client_id} answers no phone number: give it one "
            "(phone_numbers in PATCH /api/agents/ai/, docs/api.md)"
        )
    if did is None:
        return agent.phone_numbers[0], agent.timezone
    number = e164(did)
    if number not in agent.phone_numbers:
        raise UsageError(
            f"--did {did} is not a number of client {client_id} "
            f"(its numbers: {', '.join(agent.phone_numbers)})"
        )
    return number, agent.timezone


def announce(telephony: Telephony, call_id: uuid.UUID, did: str, caller: str) -> None:
    """Announce an inbound call the way the inbound dialplan does: its ``CallagentInbound``
    event (``config.INBOUND_EVENT``) with the call id, the dialled number and the caller id.

    With AMI it goes through the call tracker that reads Asterisk's events, so the router, the
    call journals and a hand-over see the call as one Asterisk answered - except that no
    Asterisk channel carries it. Without AMI the router is told the same three things.
    """
    if telephony.ami is not None:
        event = AmiMessage.build(
            ("Event", "UserEvent"),
            ("Privilege", "user,all"),
            ("UserEvent", INBOUND_EVENT),
            ("CallId", str(call_id)),
            ("Did", did),
            ("Caller", caller),
        )
        telephony.ami.deliver(telephony.ami.tracker.handle(event))
    else:
        assert telephony.router is not None
        telephony.router.announce(call_id, did, caller)


async def _report_of(telephony: Telephony, call_id: uuid.UUID, timeout_s: float) -> CallReport:
    """The call's report, once its handler has finished (the caller may hang up first)."""
    async with asyncio.timeout(timeout_s):
        while True:
            for report in telephony.finished:
                if report.call_id == call_id:
                    return report
            await asyncio.sleep(0.05)


async def _analysed(
    db: Database, client_id: uuid.UUID, call_id: uuid.UUID, timeout_s: float
) -> str:
    """Wait for the call's analysis job to end; how it ended."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    job = None
    while loop.time() < deadline:
        job = await analysis_jobs.job_for_call(db, client_id, call_id)
        if job is not None and job.status is AnalysisStatus.DONE:
            return "done"
        if job is not None and job.status is AnalysisStatus.FAILED:
            return f"failed: {job.last_error}"
        await asyncio.sleep(ANALYSIS_POLL_S)
    return "no job" if job is None else f"still {job.status.value} after {timeout_s:.0f} s"


async def run_routed_call(
    settings: Settings,
    utterances: Sequence[bytes | Interruption],
    *,
    client_id: uuid.UUID,
    caller_number: str,
    did: str | None = None,
    analyse: bool = True,
    engines: VoiceEngines | None = None,
    profile: AgentProfile | None = None,
    model: JsonModel | None = None,
    final_wait_s: float = 2.0,
    max_wait_for_agent_s: float = 20.0,
    analysis_wait_s: float = ANALYSIS_WAIT_S,
) -> RoutedCall:
    """One inbound call of client ``client_id`` from ``caller_number``, handled as ``serve``
    handles it (see the module docstring); ``utterances`` are PCM at the rate the dialplan
    fixes (``asterisk.audiosocket_format``). After the hang-up the post-call analysis runs
    unless ``analyse`` is False (``model``: the analysis model, else the profile's). The caller
    hangs up ``final_wait_s`` after the agent's last answer, and gives up waiting for an answer
    after ``max_wait_for_agent_s``. Raises :class:`UsageError` for a client, number or caller
    that cannot make the call."""
    caller = e164(caller_number)
    if caller is None:
        raise UsageError(
            f"--caller-number {caller_number!r} is not a phone number with its country code "
            "(e.g. +12125550123)"
        )
    database = Database(settings.database.url)
    try:
        await database.migrate()
        number, agent_zone = await client_number(database, client_id, did)
        if engines is None or profile is None:
            engines, profile = await prepare(settings)
        if analyse and model is None:
            model = analysis_model(settings)
        telephony = await start_telephony(
            simulation_settings(settings, analysis=analyse),
            database,
            engines,
            profile,
            analysis=model if analyse else None,
        )
        try:
            call_id = uuid.uuid4()
            announce(telephony, call_id, number, caller)
            result = await simulate_call(
                "127.0.0.1",
                telephony.server.port,
                utterances,
                sample_rate=settings.asterisk.audiosocket_sample_rate(),
                call_id=call_id,
                final_wait_s=final_wait_s,
                max_wait_for_agent_s=max_wait_for_agent_s,
            )
            report = await _report_of(telephony, call_id, timeout_s=60.0)
            analysed = "not run"
            if analyse:
                analysed = await _analysed(database, client_id, call_id, analysis_wait_s)
        finally:
            await telephony.close()  # the call's last writes land before the records are read
        return await _stored(
            database, report, result, client_id, number, caller, agent_zone, analysed
        )
    finally:
        await database.dispose()


async def _stored(
    db: Database,
    report: CallReport,
    result: LoopbackCallResult,
    client_id: uuid.UUID,
    did: str,
    caller: str,
    agent_zone: str,
    analysed: str,
) -> RoutedCall:
    try:
        detail = await calls.get_call(db, client_id, report.call_id)
    except DomainError:
        raise UsageError(
            f"the call was not stored for client {client_id}: see the log for how it was routed"
        ) from None
    customer = await customers.get_customer(db, client_id, detail.customer_id)
    page = await callbacks.list_callbacks(
        db, client_id, utcnow(), customer_id=detail.customer_id, limit=100
    )
    made = [c for c in page.items if c.origin_call_id == report.call_id]
    zone = customer_time_zone(customer.phone_number, customer.timezone, agent_zone)
    return RoutedCall(
        report=report,
        result=result,
        client_id=client_id,
        did=did,
        caller=caller,
        call=detail,
        customer=customer,
        callbacks=made,
        customer_zone=zone.key,
        analysis=analysed,
    )


def print_routed_call(routed: RoutedCall) -> None:
    """The call as a transcript, its actions and what was written, for a person to read."""
    call, customer = routed.call, routed.customer
    print(f"call {call.id}: {routed.caller} → {routed.did} (client {routed.client_id})")
    print_call(routed.report)
    print("written:")
    print(f"  call: {call.status.value}, outcome {call.outcome.value if call.outcome else '-'}")
    if call.transferred_to:
        print(f"  transferred to: {call.transferred_to}")
    for action in call.actions_taken:
        if action.get("result_detail"):
            print(f"  {action.get('type')}: {action['result_detail']}")
    zone = _zone(routed.customer_zone)
    for callback in routed.callbacks:
        local = callback.scheduled_at.astimezone(zone)
        kind = callback.expected_outcome or "callback"
        print(
            f"  {kind}: {local:%a %Y-%m-%d %H:%M} {routed.customer_zone} "
            f"({callback.status.value}): {callback.reason}"
        )
    if customer is not None:
        print(
            f"  customer {customer.id}: do-not-call {'yes' if customer.do_not_call else 'no'}, "
            f"interest {customer.interest_level.value}"
        )
    print(f"  analysis: {routed.analysis}")
    if call.conversation_notes:
        print(f"  summary: {call.conversation_notes}")
    if customer is not None and customer.conversation_notes:
        print(f"  customer notes: {customer.conversation_notes}")


def _zone(name: str) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC
