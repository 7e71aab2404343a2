"""Calls through a real Asterisk 22.10.1 running the configuration callagent renders.

Asterisk is the one built by ``scripts/build_asterisk.sh`` (:mod:`helpers.asterisk`); callagent's
side is what ``callagent serve`` runs (:func:`callagent.app.serve.start_telephony`), in this
process so the test can read its database; the phone network is baresip and sipp on loopback,
playing both the callers and the SIP trunk. A second AMI session (:class:`AmiRecorder`) keeps
every event Asterisk sent, verbatim: the AMI simulator of the fast tests copies these.

Tests of behaviour that is still wrong assert the *correct* behaviour and are marked
``xfail(strict=True, raises=StillBroken)``: only the assertion of the bug may fail them (any other
failure is a real failure), and the fix turns them into a strict-xfail error that asks for the
mark to go.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
import soxr

from callagent.api.app import create_app
from callagent.api.state import ApiState
from callagent.app.serve import Telephony, start_telephony
from callagent.dialog.llm import ChatMessage
from callagent.settings import Settings
from callagent.store.db import Database
from callagent.store.schemas import AgentSetup, CallDetail, TrainingCreate
from callagent.store.services import agents, calls, clients
from callagent.store.states import CallOutcome, CallStatus, CallType, TrainingType
from callagent.telephony.asterisk.ami import AmiDialer, TransferMethod
from callagent.telephony.asterisk.call_tracker import CallEnded, CallEvent, OriginateResult
from callagent.telephony.asterisk.loopback_caller import simulate_call
from callagent.telephony.call_runner import VoiceEngines
from callagent.voice_pipeline.clock import MonotonicClock

from fakes.baresip import BaresipResult, baresip_available, run_baresip
from fakes.routing_rig import CALLER, FALLBACK, Tenant, make_tenant, number
from fakes.sipp import (
    SippCallee,
    open_ear,
    pcm_to_ulaw,
    run_sipp,
    sipp_available,
    ulaw_to_pcm,
    wait_udp_bound,
)
from helpers import store_fixtures
from helpers.asterisk import (
    AmiEvent,
    AmiRecorder,
    AsteriskPorts,
    RealAsterisk,
    asterisk_environ,
    field_of,
    real_asterisk,
)
from helpers.audio import rms, voice
from helpers.fakes import FakeLanguageModel, FakeSpeechToText, FakeTextToSpeech
from helpers.voices import flite_available, word_set

REPO = Path(__file__).resolve().parents[3]

pytestmark = [
    pytest.mark.real_asterisk,
    pytest.mark.skipif(
        (not sipp_available() or not baresip_available()) and not os.environ.get("CI"),
        reason="needs Debian's sip-tester and baresip",
    ),
]


class StillBroken(AssertionError):
    """The correct behaviour, asserted, failing because of a known bug."""


def expect_fixed(condition: bool, message: str) -> None:
    """Assert the correct behaviour of a known bug (see the module docstring)."""
    if not condition:
        raise StillBroken(message)


@dataclass
class Installation:
    """One test's installation: Asterisk, callagent's telephony side, a database, a client."""

    asterisk: RealAsterisk
    settings: Settings
    telephony: Telephony
    db: Database
    tenant: Tenant
    ami: AmiRecorder

    async def start_call(self, phone: str, tenant: Tenant | None = None) -> uuid.UUID:
        """``POST /api/agents/ai/start-call/`` for ``tenant`` (the installation's client by
        default), as a CRM would; the call session id."""
        app = create_app(lambda: {}, ApiState(self.db, placer=self.telephony.placer))
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # ASGI typing differs
        async with httpx.AsyncClient(transport=transport, base_url="http://callagent") as api:
            response = await api.post(
                "/api/agents/ai/start-call/",
                json={"phone_number": phone, "ignore_working_hours": True},
                headers=(tenant or self.tenant).headers,
            )
        assert response.status_code == 201, response.text
        return uuid.UUID(response.json()["call_id"])

    async def call(
        self,
        call_id: uuid.UUID,
        predicate: Callable[[CallDetail], bool],
        timeout_s: float = 30,
        tenant: Tenant | None = None,
    ) -> CallDetail:
        """Poll the stored call (of ``tenant``, by default the installation's client) until
        ``predicate`` holds."""
        client_id = (tenant or self.tenant).client_id
        detail = None
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    with contextlib.suppress(Exception):  # not stored yet
                        detail = await calls.get_call(self.db, client_id, call_id)
                    if detail is not None and predicate(detail):
                        return detail
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(f"stored call never matched; last seen: {detail}") from None

    async def ended(
        self, call_id: uuid.UUID, timeout_s: float = 30, tenant: Tenant | None = None
    ) -> CallDetail:
        """The stored call (of ``tenant``, by default the installation's client) once the
        phone side of it is over."""
        return await self.call(
            call_id,
            lambda d: d.status in (CallStatus.COMPLETED, CallStatus.FAILED),
            timeout_s,
            tenant,
        )

    def report(self, name: str) -> None:
        """Print what Asterisk sent over AMI (``pytest -s`` shows it): the observed facts."""
        print(f"\n===== {name}: AMI as received =====\n{self.ami.text()}", file=sys.stderr)


def fake_engines(transcripts: list[str], replies: list[str]) -> VoiceEngines:
    """Scripted STT / LLM / TTS: the flows under test are the phone's, not the models'."""
    clock = MonotonicClock()
    return VoiceEngines(
        FakeSpeechToText(clock, transcripts),  # type: ignore[arg-type]
        FakeTextToSpeech(clock, seconds_per_word=0.05),  # type: ignore[arg-type]
        FakeLanguageModel(clock, replies),  # type: ignore[arg-type]
    )


@dataclass
class AnswersEachTurn(FakeLanguageModel):
    """Answers a caller turn by its words, however often it is asked.

    When the caller pauses inside a turn ("Yes, | tell me more."), the early transcript may end
    the turn and start an answer; if the caller goes on before any of it was heard, that answer
    is withdrawn and the whole turn is asked again (voice_pipeline/turns.py,
    docs/pipeline.md "End of turn"). A queue of replies would hand the second request the next
    turn's answer; this fake gives the same turn the same answer.
    """

    answers: dict[str, str] = field(default_factory=dict)

    async def stream(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        self.replies = [self.answers.get(messages[-1]["content"], "Okay.")]
        async for word in super().stream(messages):
            yield word


@pytest.fixture
def sqlite_url() -> str:
    """A migrated test database of its own (made outside the test's event loop)."""
    return store_fixtures.own_migrated_url("sqlite")


@contextlib.asynccontextmanager
async def installation(
    database_url: str, tmp_path: Path, ports: AsteriskPorts, engines: VoiceEngines, **env: str
) -> AsyncIterator[Installation]:
    """Asterisk on the rendered configuration, then callagent's telephony side (as ``serve``
    wires it) logged in to its AMI, a client whose agent answers the one DID."""
    did = number()
    environ = asterisk_environ(
        ports, did, CALLAGENT_RECORDINGS_DIR=str(tmp_path / "recordings"), **env
    )
    db = Database(database_url)
    tenant = await make_tenant(db, "Alma", "Alpha Roofing", did)
    try:
        async with real_asterisk(environ) as (asterisk, settings), AmiRecorder(settings) as ami:
            telephony = await start_telephony(
                settings, db, engines, FALLBACK, clock=MonotonicClock()
            )
            try:
                assert telephony.ami is not None
                await telephony.ami.wait_connected(10)
                yield Installation(asterisk, settings, telephony, db, tenant, ami)
            finally:
                await telephony.close()
    finally:
        await db.dispose()


def flite(text: str, rate: int, tmp_path: Path) -> np.ndarray:
    """``text`` spoken by Debian's flite (a voice unlike the agent's), float32 at ``rate``."""
    wav = tmp_path / f"flite-{abs(hash(text))}.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(wav)], check=True)
    samples, source_rate = soundfile.read(str(wav), dtype="float32")
    return np.asarray(soxr.resample(samples, source_rate, rate), dtype=np.float32)


def workdir(path: Path) -> Path:
    """``path``, created: a folder for one SIP peer's files."""
    path.mkdir(parents=True, exist_ok=True)
    return path


def first_sound_s(samples: np.ndarray, rate: int, threshold: float = 0.02) -> float | None:
    """Seconds into ``samples`` of the first 20 ms frame louder than ``threshold`` (RMS)."""
    frame = rate // 50
    for start in range(0, len(samples) - frame, frame):
        chunk = samples[start : start + frame]
        if float(np.sqrt(np.mean(chunk**2))) > threshold:
            return start / rate
    return None


@pytest.mark.real_models
@pytest.mark.timeout(240)
@pytest.mark.skipif(
    not flite_available() and not os.environ.get("CI"), reason="needs Debian's flite"
)
async def test_inbound_call_to_a_did_is_greeted_understood_and_stored(
    tmp_path: Path, sqlite_url: str
) -> None:
    """baresip calls the client's number through Asterisk: the agent's greeting is what the
    caller hears, the caller's question is transcribed into the stored call, and the caller's
    hang-up ends it."""
    from callagent.app.components import load_engines
    from callagent.settings import ModelSettings

    engines = await asyncio.to_thread(
        load_engines, ModelSettings(profile="ci", models_dir=REPO / "models")
    )
    question = "Hi, I am thinking about solar panels for my roof. How much would that cost?"
    spoken = await asyncio.to_thread(flite, question, 8000, tmp_path)
    # Quiet while the greeting plays (no barge-in; with its AI disclosure and recording notice
    # it is ~9 s of Piper speech), the question, then time for the answer.
    caller_audio = np.concatenate([np.zeros(10 * 8000), spoken, np.zeros(14 * 8000)])
    ports = AsteriskPorts()
    async with installation(sqlite_url, tmp_path, ports, engines) as inst:
        started = time.monotonic()
        result = await run_baresip(
            workdir(tmp_path / "caller"),
            target=f"sip:{inst.tenant.did}@127.0.0.1:{ports.sip}",
            speech=caller_audio,
            rate=8000,
            codec="pcmu",
            timeout_s=60,
            user=CALLER,
        )
        call_s = time.monotonic() - started
        async with asyncio.timeout(15):
            while not inst.telephony.finished:  # noqa: ASYNC110 - the runner's own list
                await asyncio.sleep(0.1)
        page = await calls.list_calls(inst.db, inst.tenant.client_id)
        (view,) = page.items
        detail = await inst.ended(view.id)
        inst.report("inbound call")
        inbound = await inst.ami.wait_for(lambda m: field_of(m, "UserEvent") == "CallagentInbound")
        hangups = inst.ami.events("Hangup")
        asterisk_log = inst.asterisk.output()
    # Every write of the call has landed: the telephony side drained its journals on close.
    db = Database(sqlite_url)
    try:
        detail = await calls.get_call(db, inst.tenant.client_id, view.id)
    finally:
        await db.dispose()
    assert "Call established" in result.output, result.output + asterisk_log

    # Routed by the DID the dialplan announced, the customer made from the caller id.
    assert field_of(inbound, "Did") == inst.tenant.did
    assert field_of(inbound, "Caller") == CALLER
    assert field_of(inbound, "CallId") == str(view.id)
    assert (detail.call_type, detail.did, detail.phone_number) == (
        CallType.INBOUND,
        inst.tenant.did,
        CALLER,
    )

    # What the caller heard, transcribed, is the agent's greeting.
    greeting = detail.transcript[0]
    assert greeting.speaker == "agent"
    assert greeting.text.startswith("Hello, this is Alma from Alpha Roofing.")
    heard = soxr.resample(result.heard, result.heard_rate, 16000)
    heard_pcm = (np.clip(heard, -1, 1) * 32767).astype("<i2").tobytes()
    heard_text = (await engines.stt.transcribe(heard_pcm, 16000)).text
    # ("Alpha" comes back as "Alfa" as often as not.)
    assert {"alma", "roofing", "help"} <= word_set(heard_text), heard_text
    greeting_delay = first_sound_s(result.heard, result.heard_rate)
    assert greeting_delay is not None

    # The caller's question is in the stored call, as the caller's turn.
    caller_turns = [t.text for t in detail.transcript if t.speaker == "caller"]
    assert caller_turns, detail.transcript
    assert {"solar", "panels", "roof", "cost"} <= word_set(caller_turns[0]), caller_turns

    # The caller hung up: Asterisk's Hangup cause is stored with the completed call.
    assert detail.status == CallStatus.COMPLETED
    assert detail.hangup_cause == 16, (detail.hangup_cause, detail.hangup_cause_text, hangups)
    assert detail.recording_ref == f"{view.id}.wav"
    assert (tmp_path / "recordings" / detail.recording_ref).exists()
    print(
        f"inbound: call {call_s:.1f} s, greeting heard {greeting_delay:.2f} s into the caller's"
        f" recording, caller heard {heard_text!r}, stored {detail.transcript}",
        file=sys.stderr,
    )


async def test_asterisk_starts_on_the_rendered_configuration(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Every rendered file loads, the modules it requires are running, AMI takes callagent's
    account with exactly the rights manager.conf gives it."""
    ports = AsteriskPorts()
    async with installation(sqlite_url, tmp_path, ports, fake_engines([], [])) as inst:
        modules = inst.asterisk.cli("module show like audiosocket")
        endpoint = inst.asterisk.cli("pjsip show endpoint trunk")
        dialplan = inst.asterisk.cli("dialplan show callagent-inbound")
        startup_s = inst.asterisk.started_s
        banner = inst.ami.banner
        log = inst.asterisk.output()
    assert "chan_audiosocket.so" in modules, modules
    assert "res_audiosocket.so" in modules, modules
    assert "trunk" in endpoint, endpoint
    assert inst.tenant.did in dialplan, dialplan
    assert banner.startswith("Asterisk Call Manager/"), banner
    print(f"asterisk: fully booted in {startup_s:.2f} s; banner {banner!r}\n{log}", file=sys.stderr)


def originate_events(ami: AmiRecorder, call_id: uuid.UUID) -> list[AmiEvent]:
    """The events of the originated channel, its OriginateResponse included (both carry the
    call id as Uniqueid: the Originate's ChannelId), in arrival order."""
    return [m for m in ami.events() if field_of(m, "Uniqueid") == str(call_id)]


async def test_outbound_call_answered_by_a_person_is_connected_and_stored(
    tmp_path: Path, sqlite_url: str
) -> None:
    """start-call → Originate → baresip (the trunk) answers and says "Hello?" → AMD says HUMAN →
    the agent greets over AudioSocket → the callee answers → the callee hangs up."""
    ports = AsteriskPorts()
    hello = await asyncio.to_thread(flite, "Hello?", 8000, tmp_path)
    reply = await asyncio.to_thread(flite, "Yes, tell me more.", 8000, tmp_path)
    # "Hello?", then quiet through AMD's after-greeting silence and the agent's greeting, the
    # reply, quiet for the agent's answer; then baresip hangs up (its audio file has ended).
    callee_audio = np.concatenate(
        [hello, np.zeros(int(4.5 * 8000)), reply, np.zeros(4 * 8000)]
    ).astype(np.float32)
    clock = MonotonicClock()
    model = AnswersEachTurn(
        clock,  # type: ignore[arg-type]
        [],
        answers={"Yes, tell me more.": "We offer free inspections."},
    )
    engines = VoiceEngines(
        FakeSpeechToText(clock, ["Yes, tell me more."]),  # type: ignore[arg-type]
        FakeTextToSpeech(clock, seconds_per_word=0.05),  # type: ignore[arg-type]
        model,  # type: ignore[arg-type]
    )
    phone = number()
    async with installation(sqlite_url, tmp_path, ports, engines) as inst:
        callee = asyncio.create_task(
            run_baresip(
                workdir(tmp_path / "callee"),
                target=None,
                speech=callee_audio,
                rate=8000,
                listen_port=ports.trunk,
                timeout_s=40,
                # baresip answers only a request URI naming one of its accounts ("UA not
                # found" otherwise): the number Asterisk dials.
                user=phone,
            )
        )
        try:
            await wait_udp_bound(ports.trunk)
            started = time.monotonic()
            call_id = await inst.start_call(phone)
            detail = await inst.call(
                call_id, lambda d: d.status in (CallStatus.COMPLETED, CallStatus.FAILED), 40
            )
            result = await callee
        finally:
            if not callee.done():
                callee.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await callee
        call_s = time.monotonic() - started
        inst.report("outbound call answered")
        events = originate_events(inst.ami, call_id)
        amd = inst.ami.events("UserEvent")
    db = Database(sqlite_url)
    try:
        detail = await calls.get_call(db, inst.tenant.client_id, call_id)
    finally:
        await db.dispose()
    assert "Call established" in result.output, result.output
    (response,) = [m for m in events if field_of(m, "Event") == "OriginateResponse"]
    assert field_of(response, "Reason") == "4", response
    assert field_of(response, "Response") == "Success", response
    # The originated channel (its Uniqueid is the call id) is the stored telephony channel.
    (newchannel,) = [m for m in events if field_of(m, "Event") == "Newchannel"]
    assert detail.telephony_channel == field_of(newchannel, "Channel"), detail
    assert [field_of(m, "Status") for m in amd] == ["HUMAN"], amd
    assert (detail.status, detail.call_type, detail.phone_number) == (
        CallStatus.COMPLETED,
        CallType.OUTBOUND,
        phone,
    )
    assert detail.amd_status == "HUMAN"
    assert [t.speaker for t in detail.transcript] == ["agent", "caller", "agent"]
    # The agent placed the call: it opens as a caller does, not with "How can I help you?".
    assert detail.transcript[0].text == (
        "Hello, this is Alma from Alpha Roofing. I'm an AI assistant. This call is recorded."
        " Do you have a moment?"
    )
    assert detail.transcript[2].text == "We offer free inspections."
    # However often the model was asked (an answer started in a pause inside the turn is
    # withdrawn when the caller goes on), it was asked about the whole turn and nothing else
    # (the greeting is left out of requests: conversation.messages_for): the turn was never
    # split in two, nor a withdrawn answer kept in the history.
    assert model.requests, "the model was never asked"
    for request in model.requests:
        assert [(m["role"], m["content"]) for m in request if m["role"] != "system"] == [
            ("user", "Yes, tell me more."),
        ], request
    assert detail.hangup_cause == 16, (detail.hangup_cause, detail.hangup_cause_text)
    # The callee heard the agent (the fake voice speaks a tone).
    assert first_sound_s(result.heard, result.heard_rate) is not None
    print(
        f"outbound: {call_s:.1f} s from start-call to stored end; AMD {amd}; stored {detail}",
        file=sys.stderr,
    )


@pytest.mark.parametrize(
    ("reject", "reason", "cause", "outcome", "status", "why"),
    [
        pytest.param(
            (486, "Busy Here"), 0, 17, CallOutcome.BUSY, CallStatus.COMPLETED, "busy", id="busy"
        ),
        pytest.param(
            None, 3, 19, CallOutcome.NO_ANSWER, CallStatus.COMPLETED, "no answer", id="no-answer"
        ),
        pytest.param(
            (503, "Service Unavailable"),
            0,
            34,
            CallOutcome.FAILED,
            CallStatus.FAILED,
            "congestion",
            id="congestion",
        ),
        pytest.param(
            # Seen with the response before the HangupRequest that carries the cause.
            (404, "Not Found"),
            0,
            1,
            CallOutcome.FAILED,
            CallStatus.FAILED,
            "failed",
            id="unallocated",
        ),
    ],
)
async def test_an_unanswered_outbound_call_is_stored_with_why(
    tmp_path: Path,
    sqlite_url: str,
    reject: tuple[int, str] | None,
    reason: int,
    cause: int,
    outcome: CallOutcome,
    status: CallStatus,
    why: str,
) -> None:
    """sipp as the trunk rejects the INVITE (or rings until Asterisk gives up): the call is
    stored with the outcome the callee's answer means, its hang-up cause and its channel. What
    Asterisk reports is asserted as observed (OriginateResponse ``Reason``, Hangup ``Cause``),
    so a change shows here first."""
    ports = AsteriskPorts()
    async with (
        SippCallee(tmp_path / "callee", ports.trunk, reject=reject) as callee,
        installation(
            sqlite_url, tmp_path, ports, fake_engines([], []), CALLAGENT_ORIGINATE_TIMEOUT_S="5"
        ) as inst,
    ):
        call_id = await inst.start_call(number())
        detail = await inst.ended(call_id)
        await asyncio.sleep(1.0)  # any later Hangup event and its write
        detail = await inst.ended(call_id)
        inst.report(f"outbound {why}")
        events = originate_events(inst.ami, call_id)
        sip = callee.messages()
    assert "INVITE sip:" in sip, sip
    print(f"stored: {detail}", file=sys.stderr)
    (response,) = [m for m in events if field_of(m, "Event") == "OriginateResponse"]
    assert (field_of(response, "Response"), field_of(response, "Reason")) == (
        "Failure",
        str(reason),
    ), response
    (hangup,) = [m for m in events if field_of(m, "Event") == "Hangup"]
    assert field_of(hangup, "Cause") == str(cause), hangup
    assert (detail.outcome, detail.status) == (outcome, status), detail
    assert detail.failure_reason.startswith(why), detail.failure_reason
    # The cause is stored whether the Hangup came before the response or after it.
    assert detail.hangup_cause == cause, detail
    assert detail.telephony_channel == field_of(hangup, "Channel"), detail


async def test_the_hangup_cause_is_stored_whichever_event_comes_first(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A rejected call's ``Hangup`` and ``OriginateResponse`` reach callagent's tracker in
    either order: Asterisk sends them in either order (both seen, for busy and for no answer),
    and panoramisk hands the OriginateResponse over through the Originate's future, later than
    an event. The cause must be stored either way: every busy call placed is checked, and calls
    are placed until the tracker got the OriginateResponse first (at most 30; the AMI simulator's
    tests cover both orders deterministically)."""
    ports = AsteriskPorts()
    async with (
        SippCallee(tmp_path / "callee", ports.trunk, reject=(486, "Busy Here")),
        installation(sqlite_url, tmp_path, ports, fake_engines([], [])) as inst,
    ):
        seen: list[CallEvent] = []
        assert inst.telephony.ami is not None
        unsubscribe = inst.telephony.ami.subscribe(seen.append)
        orders = []
        response_first = None
        try:
            # Seen: the first 1-5 calls of a run with the Hangup first, rarely 12 in a row.
            for _ in range(30):
                call_id = await inst.start_call(number())
                await inst.ended(call_id)
                await asyncio.sleep(0.3)  # the later of the two events, and its write
                order = [
                    type(e).__name__
                    for e in seen
                    if e.call_id == call_id and isinstance(e, OriginateResult | CallEnded)
                ]
                orders.append(order)
                stored = await inst.ended(call_id)
                assert stored.hangup_cause == 17, (order, stored)
                assert stored.outcome == CallOutcome.BUSY, (order, stored)
                if order[0] == "OriginateResult":
                    response_first = stored
                    break
        finally:
            unsubscribe()
    print(f"orders the tracker reported: {orders}", file=sys.stderr)
    if response_first is None:
        # Not a skip: every call above was checked; only the rarer order did not come up.
        print("the OriginateResponse never reached the tracker first", file=sys.stderr)


@pytest.mark.parametrize("audiosocket_format", ["slin16", "slin"])
async def test_a_caller_whose_media_has_not_started_is_greeted(
    tmp_path: Path, sqlite_url: str, audiosocket_format: str
) -> None:
    """sipp calls and stays silent - no RTP at all - for 8 s: the agent must greet anyway.
    Asterisk sends no AudioSocket frame until the caller's RTP arrives (with ``AudioSocket()``
    it hangs up after 2 s without frames either way): the agent speaks first, at the rate the
    dialplan fixes, and its paced silence keeps the call up."""
    ports = AsteriskPorts()
    transport, ear, ear_port = await open_ear()
    try:
        async with installation(
            sqlite_url,
            tmp_path,
            ports,
            fake_engines([], []),
            CALLAGENT_AUDIOSOCKET_FORMAT=audiosocket_format,
        ) as inst:
            started = time.monotonic()
            result = await run_sipp(
                tmp_path,
                target_port=ports.sip,
                service=inst.tenant.did,
                ulaw=pcm_to_ulaw(voice(0.5)),
                ear_port=ear_port,
                caller=CALLER.lstrip("+"),
                before_speech_ms=8000,
                after_speech_ms=500,
            )
            inst.report("caller without RTP")
    finally:
        transport.close()
    # sipp's BYE was answered: the call was up all along.
    assert result.returncode == 0, result.output + result.errors
    # Only before the caller's own RTP starts does Asterisk send to the SDP's address (the
    # ear); after it, rtp_symmetric sends to the port sipp streams from.
    before_media = [
        payload
        for (_, payload), arrived in zip(ear.packets, ear.arrivals, strict=True)
        if arrived - started < 7.5
    ]
    loud = [p for p in before_media if rms(ulaw_to_pcm(p)) > 0.02]
    print(
        f"no-RTP caller: {len(before_media)} RTP packets reached the caller in its first 7.5 s,"
        f" {len(loud)} with sound; {len(ear.packets)} in all",
        file=sys.stderr,
    )
    assert len(loud) >= 10, f"{len(loud)} packets of greeting before the caller's media"
    # And the line stayed alive: a packet every 20 ms once the call was up (setup takes <1 s).
    assert len(before_media) >= 6.5 * 50, len(before_media)


async def test_only_asterisk_talks_to_audiosocket_and_its_calls_still_work(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The AudioSocket checks on, as by default: a stranger who reaches the port with a call id
    of its own is disconnected without a word, a second connection naming the live call is
    refused while it goes on, and Asterisk's own inbound call is greeted and stored."""
    ports = AsteriskPorts()
    transport, ear, ear_port = await open_ear()
    try:
        async with installation(sqlite_url, tmp_path, ports, fake_engines([], [])) as inst:
            assert inst.settings.network.audiosocket_accept == "announced"
            started = time.monotonic()
            stranger = await simulate_call(
                "127.0.0.1",
                ports.audiosocket,
                [voice(0.3, 16000)],
                sample_rate=16000,
                max_wait_for_agent_s=3.0,
                final_wait_s=0.2,
            )
            caller = asyncio.create_task(
                run_sipp(
                    tmp_path,
                    target_port=ports.sip,
                    service=inst.tenant.did,
                    ulaw=pcm_to_ulaw(voice(0.5)),
                    ear_port=ear_port,
                    caller=CALLER.lstrip("+"),
                    before_speech_ms=5000,
                    after_speech_ms=500,
                )
            )
            try:
                inbound = await inst.ami.wait_for(
                    lambda m: field_of(m, "UserEvent") == "CallagentInbound"
                )
                call_id = uuid.UUID(field_of(inbound, "CallId"))
                await inst.call(call_id, lambda d: d.status == CallStatus.IN_PROGRESS)
                intruder = await simulate_call(
                    "127.0.0.1",
                    ports.audiosocket,
                    [voice(0.3, 16000)],
                    sample_rate=16000,
                    call_id=call_id,
                    max_wait_for_agent_s=2.0,
                    final_wait_s=0.2,
                )
                result = await caller
            finally:
                if not caller.done():
                    caller.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await caller
            detail = await inst.ended(call_id)
            page = await calls.list_calls(inst.db, inst.tenant.client_id)
            inst.report("AudioSocket checks")
    finally:
        transport.close()
    assert stranger.hung_up_by == "agent"
    assert not any(stranger.agent_pcm), "the stranger heard the agent"
    assert intruder.hung_up_by == "agent"
    assert not any(intruder.agent_pcm), "the intruder heard the live call"
    # Asterisk's call: up all along, greeted before the caller's media, stored alone.
    assert result.returncode == 0, result.output + result.errors
    greeting = [
        payload
        for (_, payload), arrived in zip(ear.packets, ear.arrivals, strict=True)
        if arrived - started < 4.5 and rms(ulaw_to_pcm(payload)) > 0.02
    ]
    assert len(greeting) >= 10, len(greeting)
    assert [c.id for c in page.items] == [call_id]
    assert detail.status == CallStatus.COMPLETED
    assert detail.transcript[0].speaker == "agent"
    assert detail.transcript[0].text.startswith("Hello, this is Alma from Alpha Roofing.")


async def numberless_tenant(db: Database) -> Tenant:
    """A client whose trained agent has no phone number of its own (it answers no DID)."""
    created = await clients.create_client(db, "Beta Plumbing (client)")
    await agents.setup_agent(
        db,
        created.client_id,
        AgentSetup(agent_name="Bea", business_info={"company_name": "Beta Plumbing"}),
    )
    await agents.add_training(
        db,
        created.client_id,
        # Trained enough to place calls, as fakes.routing_rig.make_tenant trains.
        TrainingCreate(
            training_type=TrainingType.SCRIPT,
            training_content="Greet the caller on behalf of Beta Plumbing. " + "w " * 200,
        ),
    )
    return Tenant(created.client_id, "", "Bea", "Beta Plumbing", created.api_key)


def identity_headers(sip: str, called: str) -> dict[str, str]:
    """The From, P-Asserted-Identity and Remote-Party-ID of the first INVITE to ``called`` in
    a sipp message log, by lower-case name."""
    invite = sip[sip.index(f"INVITE sip:{called}@") :].split("\n\n", 1)[0]
    print(f"INVITE as the trunk got it:\n{invite}", file=sys.stderr)
    headers = {}
    for line in invite.splitlines():
        name, _, value = line.partition(":")
        if name.lower() in ("from", "p-asserted-identity", "remote-party-id"):
            headers[name.lower()] = value.strip()
    return headers


async def test_the_trunk_caller_id_is_presented_on_outbound_calls(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Each agent presents its own number (its client's PhoneNumber, docs/scheduler.md), and
    an agent without one ``asterisk.trunk_caller_id``: with credentials the From names the
    account (``from_user``) and the caller id goes out as P-Asserted-Identity."""
    ports = AsteriskPorts()
    shared = "+4930999888"
    async with (
        SippCallee(tmp_path / "callee", ports.trunk, reject=(486, "Busy Here")) as callee,
        installation(
            sqlite_url, tmp_path, ports, fake_engines([], []), CALLAGENT_TRUNK_CALLER_ID=shared
        ) as inst,
    ):
        own_call = number()
        await inst.ended(await inst.start_call(own_call))
        numberless = await numberless_tenant(inst.db)
        fallback_call = number()
        await inst.ended(await inst.start_call(fallback_call, numberless), tenant=numberless)
        sip = callee.messages()
    own = identity_headers(sip, own_call)
    assert f"<sip:{inst.tenant.did}@" in own.get("p-asserted-identity", ""), own
    assert shared not in str(own), own
    assert "<sip:callagent@" in own["from"], own
    fallback = identity_headers(sip, fallback_call)
    assert f"<sip:{shared}@" in fallback.get("p-asserted-identity", ""), fallback
    assert "<sip:callagent@" in fallback["from"], fallback


async def test_an_ip_authenticated_trunk_can_be_configured(tmp_path: Path, sqlite_url: str) -> None:
    """A trunk that admits by source address has no username or password: the rendering leaves
    the auth out, Asterisk loads it, and an outbound call reaches the trunk with the caller id
    in its From (no ``from_user``) and in P-Asserted-Identity: the agent's own number, or
    ``asterisk.trunk_caller_id`` for an agent without one."""
    ports = AsteriskPorts()
    shared = "+4930999777"
    async with (
        SippCallee(tmp_path / "callee", ports.trunk, reject=(486, "Busy Here")) as callee,
        installation(
            sqlite_url,
            tmp_path,
            ports,
            fake_engines([], []),
            CALLAGENT_TRUNK_USERNAME="",
            CALLAGENT_TRUNK_PASSWORD="",
            CALLAGENT_TRUNK_CALLER_ID=shared,
        ) as inst,
    ):
        endpoint = inst.asterisk.cli("pjsip show endpoint trunk")
        auths = inst.asterisk.cli("pjsip show auths")
        own_call = number()
        await inst.ended(await inst.start_call(own_call))
        numberless = await numberless_tenant(inst.db)
        fallback_call = number()
        await inst.ended(await inst.start_call(fallback_call, numberless), tenant=numberless)
        sip = callee.messages()
    assert "outbound_auth" not in endpoint or "trunk-auth" not in endpoint, endpoint
    assert "trunk-auth" not in auths, auths
    for called, presented in ((own_call, inst.tenant.did), (fallback_call, shared)):
        identity = identity_headers(sip, called)
        assert f"<sip:{presented}@" in identity["from"], identity
        assert f"<sip:{presented}@" in identity.get("p-asserted-identity", ""), identity


async def test_an_outbound_call_goes_out_while_the_trunk_ignores_options(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A provider that never answers OPTIONS: with the default settings Asterisk does not ping
    the trunk, and calls reach it. (With pings on, Asterisk marks the trunk Unreachable once a
    ping goes unanswered - at a random moment within the first interval after a start - and
    then refuses every call to it: the next test.)"""
    ports = AsteriskPorts()
    async with (
        SippCallee(
            tmp_path / "callee", ports.trunk, reject=(486, "Busy Here"), answer_options=False
        ) as callee,
        installation(sqlite_url, tmp_path, ports, fake_engines([], [])) as inst,
    ):
        # Longer than a ping's timeout (qualify_timeout, 3 s): had one been sent at the start,
        # the trunk would be Unreachable by now.
        await asyncio.sleep(4.5)
        qualify = inst.asterisk.cli("pjsip show qualify aor trunk")
        call_id = await inst.start_call(number())
        detail = await inst.ended(call_id)
        sip = callee.messages()
    print(f"{qualify}\nstored {detail}", file=sys.stderr)
    assert re.search(r"Qualify frequency\s*:\s*0 sec", qualify), qualify
    assert "OPTIONS sip:" not in sip, sip
    assert "INVITE sip:" in sip, f"no INVITE reached the trunk; stored {detail}\n{qualify}"


async def test_with_pings_on_a_trunk_that_ignores_them_gets_no_calls(
    tmp_path: Path, sqlite_url: str
) -> None:
    """``asterisk.trunk_qualify_interval_s`` reaches Asterisk, and the trade-off it documents is
    Asterisk's: once a ping goes unanswered, every call to the trunk fails at once, unsent."""
    ports = AsteriskPorts()
    async with (
        SippCallee(
            tmp_path / "callee", ports.trunk, reject=(486, "Busy Here"), answer_options=False
        ) as callee,
        installation(
            sqlite_url,
            tmp_path,
            ports,
            fake_engines([], []),
            CALLAGENT_TRUNK_QUALIFY_INTERVAL_S="2",
        ) as inst,
    ):
        contacts = ""
        async with asyncio.timeout(15):
            while "Unavail" not in contacts:
                await asyncio.sleep(0.2)
                contacts = await asyncio.to_thread(inst.asterisk.cli, "pjsip show contacts")
        call_id = await inst.start_call(number())
        detail = await inst.ended(call_id)
        sip = callee.messages()
    print(f"{contacts}\nstored {detail}", file=sys.stderr)
    assert "OPTIONS sip:" in sip, sip
    assert "INVITE sip:" not in sip, sip
    assert detail.status == CallStatus.FAILED, detail


def config_complaints(log: str) -> list[str]:
    """The lines of an Asterisk log that complain about a configuration file it could not find."""
    missing = re.compile(
        r"Unable to load config|Can't find .*config|Could not find valid \S+\.conf|"
        r"Could not load \S+ config"
    )
    return [line for line in log.splitlines() if missing.search(line)]


async def test_asterisk_starts_without_looking_for_files_it_is_not_given() -> None:
    """Every configuration file the core and the loaded modules read at start is rendered:
    a start logs no error and no missing file (each was a misleading ERROR in the log)."""
    async with real_asterisk(asterisk_environ(AsteriskPorts(), number())) as (asterisk, _):
        log = asterisk.output()
    print(log, file=sys.stderr)
    assert config_complaints(log) == [], log
    assert [line for line in log.splitlines() if "ERROR" in line] == [], log


def sent_and_heard_s(caller_dir: Path, result: BaresipResult) -> tuple[float, float]:
    """How long baresip sent audio (its encoder dump: from the answer on) and how long it heard
    (its decoder dump: from the first RTP that reached it). Both dumps close with the call, so
    ``sent - heard`` is how long after the answer the first audio reached the callee."""
    (encoded,) = (caller_dir / "baresip" / "dump").glob("*-enc.wav")
    info = soundfile.info(str(encoded))
    return info.frames / info.samplerate, len(result.heard) / result.heard_rate


@pytest.mark.parametrize(
    ("says_hello", "within_s"),
    [pytest.param(False, 2.5, id="silent"), pytest.param(True, 1.5, id="hello")],
)
async def test_how_long_an_outbound_callee_waits_for_the_agent_while_amd_listens(
    tmp_path: Path, sqlite_url: str, says_hello: bool, within_s: float
) -> None:
    """The callee hears nothing until AMD has decided (docs/telephony.md, "Outbound calls and
    AMD"). A callee who says "Hello?" hears the agent within ``within_s`` of the hello's end
    (AMD waits ``after_greeting_silence`` to call it HUMAN); one who waits in silence for the
    caller to speak first - many people do with an unknown number - within ``within_s`` of the
    answer (AMD's ``initial_silence``, then MACHINE)."""
    ports = AsteriskPorts()
    phone = number()
    callee_dir = workdir(tmp_path / "callee")
    hello = await asyncio.to_thread(flite, "Hello?", 8000, tmp_path) if says_hello else None
    quiet = np.zeros(7 * 8000, dtype=np.float32)
    speech = quiet if hello is None else np.concatenate([hello, quiet]).astype(np.float32)
    async with installation(sqlite_url, tmp_path, ports, fake_engines([], [])) as inst:
        callee = asyncio.create_task(
            run_baresip(
                callee_dir,
                target=None,
                speech=speech,
                rate=8000,
                listen_port=ports.trunk,
                timeout_s=30,
                user=phone,
            )
        )
        try:
            await wait_udp_bound(ports.trunk)
            call_id = await inst.start_call(phone)
            result = await callee
        finally:
            if not callee.done():
                callee.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await callee
        await inst.ended(call_id)
        amd = [(field_of(m, "Status"), field_of(m, "Cause")) for m in inst.ami.events("UserEvent")]
    assert "Call established" in result.output, result.output
    sent_s, heard_s = sent_and_heard_s(callee_dir, result)
    first = first_sound_s(result.heard, result.heard_rate)
    assert first is not None, "the callee never heard the agent"
    agent_after_s = sent_s - heard_s + first
    # The hello's end: the last loud frame of what the callee said.
    tail = first_sound_s(hello[::-1], 8000) if hello is not None else None
    waited_from_s = len(hello) / 8000 - tail if hello is not None and tail is not None else 0.0
    waited_s = agent_after_s - waited_from_s
    print(
        f"callee {'saying hello' if says_hello else 'silent'}: AMD {amd}; the agent was heard"
        f" {agent_after_s:.2f} s after the answer: {waited_s:.2f} s of silence after"
        f" {'the hello' if says_hello else 'the answer'}",
        file=sys.stderr,
    )
    assert waited_s < within_s, (waited_s, amd)


def bridged_together(ami: AmiRecorder, channel: str, other: str) -> bool:
    """True when ``channel`` and ``other`` entered the same bridge (AMI BridgeEnter events)."""
    bridges: dict[str, set[str]] = {}
    for event in ami.events("BridgeEnter"):
        members = bridges.setdefault(field_of(event, "BridgeUniqueid") or "", set())
        members.add(field_of(event, "Channel") or "")
    return any({channel, other} <= members for members in bridges.values())


@pytest.mark.parametrize(
    "method",
    [
        pytest.param(TransferMethod.REDIRECT, id="redirect"),
        # Sent on the AudioSocket leg: Asterisk transfers the bridge peer of the channel named.
        pytest.param(TransferMethod.BLIND_TRANSFER, id="blind-transfer"),
    ],
)
async def test_a_transfer_connects_the_caller_to_the_target(
    tmp_path: Path, sqlite_url: str, method: TransferMethod
) -> None:
    """baresip calls in and talks to the agent; callagent hands the call to the allow-listed
    ``sales`` (another baresip, on the trunk): the caller must end up bridged with sales."""
    ports = AsteriskPorts()
    sales_number = "+4930111222"
    engines = fake_engines([], [])
    async with installation(
        sqlite_url, tmp_path, ports, engines, CALLAGENT_TRANSFER_TARGETS=f"sales={sales_number}"
    ) as inst:
        sales = asyncio.create_task(
            run_baresip(
                workdir(tmp_path / "sales"),
                target=None,
                speech=np.zeros(5 * 8000, dtype=np.float32),
                rate=8000,
                listen_port=ports.trunk,
                user=sales_number,
                timeout_s=30,
            )
        )
        caller = asyncio.create_task(
            run_baresip(
                workdir(tmp_path / "caller"),
                target=f"sip:{inst.tenant.did}@127.0.0.1:{ports.sip}",
                speech=np.zeros(12 * 8000, dtype=np.float32),
                rate=8000,
                user=CALLER,
                timeout_s=30,
            )
        )
        try:
            await wait_udp_bound(ports.trunk)
            inbound = await inst.ami.wait_for(
                lambda m: field_of(m, "UserEvent") == "CallagentInbound"
            )
            call_id = uuid.UUID(field_of(inbound, "CallId"))
            await inst.ami.wait_for(
                lambda m: (
                    field_of(m, "Event") == "BridgeEnter"
                    and field_of(m, "Channel") == field_of(inbound, "Channel")
                )
            )
            await asyncio.sleep(1.0)  # the agent's greeting is under way
            assert inst.telephony.ami is not None
            dialer = AmiDialer.from_settings(inst.telephony.ami, inst.settings.asterisk)
            await dialer.transfer(call_id, "sales", method=method)
            sales_leg = await inst.ami.wait_for(
                lambda m: (
                    field_of(m, "Event") == "DialBegin"
                    and field_of(m, "DialString") == f"{sales_number}@trunk"
                )
            )
            await inst.ami.wait_for(
                lambda m: (
                    field_of(m, "Event") == "DialEnd"
                    and field_of(m, "DestChannel") == field_of(sales_leg, "DestChannel")
                )
            )
            await asyncio.sleep(0.5)
            _, sales_result = await asyncio.gather(caller, sales)
        finally:
            for task in (caller, sales):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        inst.report(f"transfer by {method.value}")
        detail = await inst.ended(call_id)
    caller_channel = field_of(inbound, "Channel") or ""
    sales_channel = field_of(sales_leg, "DestChannel") or ""
    print(
        f"{method.value}: caller {caller_channel}, sales {sales_channel}; stored {detail}",
        file=sys.stderr,
    )
    assert "Call established" in sales_result.output, sales_result.output
    assert bridged_together(inst.ami, caller_channel, sales_channel), inst.ami.text()
    # Stored once Asterisk accepted it, whether or not the caller's channel hung up first.
    assert detail.transferred_to == "sales", detail


async def test_dtmf_reaches_the_call_and_the_agent_can_send_it(
    tmp_path: Path, sqlite_url: str
) -> None:
    """sipp presses 1 2 # (SIP INFO, which res_pjsip_dtmf_info turns into DTMF frames): AMI
    reports them and the stored call has them. callagent sends 9 with PlayDTMF: it reaches
    the caller as RFC 4733 telephone-events (payload type 101, event 9)."""
    ports = AsteriskPorts()
    transport, ear, ear_port = await open_ear()
    try:
        async with installation(sqlite_url, tmp_path, ports, fake_engines([], [])) as inst:
            caller = asyncio.create_task(
                run_sipp(
                    tmp_path,
                    target_port=ports.sip,
                    service=inst.tenant.did,
                    ulaw=pcm_to_ulaw(voice(0.5)),
                    ear_port=ear_port,
                    caller=CALLER.lstrip("+"),
                    dtmf="12#",
                    # Once the agent is on the line (keys pressed as the call is answered:
                    # test_keys_pressed_as_the_call_is_answered_are_all_stored).
                    before_dtmf_ms=1500,
                    # No RTP from the caller for 4 s: until it starts, Asterisk sends media to
                    # the SDP's address - the ear (rtp_symmetric then follows sipp's socket).
                    before_speech_ms=4000,
                    after_speech_ms=500,
                )
            )
            try:
                inbound = await inst.ami.wait_for(
                    lambda m: field_of(m, "UserEvent") == "CallagentInbound"
                )
                call_id = uuid.UUID(field_of(inbound, "CallId"))
                assert inst.telephony.ami is not None
                dialer = AmiDialer.from_settings(inst.telephony.ami, inst.settings.asterisk)
                await inst.ami.wait_for(
                    lambda m: (
                        field_of(m, "Event") == "BridgeEnter"
                        and field_of(m, "Channel") == field_of(inbound, "Channel")
                    )
                )
                await dialer.play_dtmf(call_id, "9")
                result = await caller
            finally:
                if not caller.done():
                    caller.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await caller
            detail = await inst.ended(call_id)
            await asyncio.sleep(0.5)
            detail = await inst.ended(call_id)
            inst.report("DTMF")
            dtmf_events = [
                (
                    field_of(m, "Event"),
                    field_of(m, "Channel"),
                    field_of(m, "Digit"),
                    field_of(m, "Direction"),
                )
                for m in inst.ami.events()
                if field_of(m, "Event") in ("DTMFBegin", "DTMFEnd")
            ]
    finally:
        transport.close()
    assert result.returncode == 0, result.output + result.errors
    print(f"DTMF events: {dtmf_events}; stored dtmf {detail.dtmf!r}", file=sys.stderr)
    received = [
        d for e, _, d, direction in dtmf_events if e == "DTMFEnd" and direction == "Received"
    ]
    assert received == ["1", "2", "#"], dtmf_events
    assert detail.dtmf == "12#", detail
    telephone_events = {payload[0] for pt, payload in ear.packets if pt == 101 and payload}
    print(
        f"RTP to the caller: payload types {sorted({pt for pt, _ in ear.packets})},"
        f" telephone-events {telephone_events}",
        file=sys.stderr,
    )
    assert telephone_events == {9}, [pt for pt, _ in ear.packets][:50]


async def test_keys_pressed_as_the_call_is_answered_are_all_stored(
    tmp_path: Path, sqlite_url: str
) -> None:
    """sipp presses 1 2 # the moment the call is up - before callagent has routed the call
    and stored its session: no key is lost."""
    ports = AsteriskPorts()
    transport, _, ear_port = await open_ear()
    try:
        async with installation(sqlite_url, tmp_path, ports, fake_engines([], [])) as inst:
            result = await run_sipp(
                tmp_path,
                target_port=ports.sip,
                service=inst.tenant.did,
                ulaw=pcm_to_ulaw(voice(0.5)),
                ear_port=ear_port,
                caller=CALLER.lstrip("+"),
                dtmf="12#",
                before_dtmf_ms=0,
                before_speech_ms=1500,
                after_speech_ms=500,
            )
            inbound = await inst.ami.wait_for(
                lambda m: field_of(m, "UserEvent") == "CallagentInbound"
            )
            call_id = uuid.UUID(field_of(inbound, "CallId"))
            detail = await inst.ended(call_id)
            await asyncio.sleep(0.5)
            detail = await inst.ended(call_id)
            # Seen: the first key's DTMFEnd comes before the CallagentInbound UserEvent.
            order = [
                f"{field_of(m, 'Event')} {field_of(m, 'Digit') or field_of(m, 'UserEvent')}"
                for m in inst.ami.events()
                if field_of(m, "Event") in ("DTMFEnd", "UserEvent")
            ]
            inst.report("early DTMF")
    finally:
        transport.close()
    assert result.returncode == 0, result.output + result.errors
    print(f"early DTMF: AMI order {order}; stored {detail.dtmf!r}", file=sys.stderr)
    assert detail.dtmf == "12#", (detail.dtmf, order)


async def test_ami_reconnects_after_asterisk_restarts(tmp_path: Path, sqlite_url: str) -> None:
    """Asterisk stops (``core stop now``) and starts again on the same configuration: callagent's
    AMI client logs in again on its own, and the next start-call is placed."""
    ports = AsteriskPorts()
    async with (
        SippCallee(tmp_path / "callee", ports.trunk, reject=(486, "Busy Here")) as callee,
        installation(sqlite_url, tmp_path, ports, fake_engines([], [])) as inst,
    ):
        ami = inst.telephony.ami
        assert ami is not None
        await asyncio.to_thread(inst.asterisk.stop)
        async with asyncio.timeout(10):
            while ami.connected:  # noqa: ASYNC110 - the client's own state
                await asyncio.sleep(0.05)
        down = time.monotonic()
        await asyncio.to_thread(inst.asterisk.start)
        await ami.wait_connected(40)
        back_s = time.monotonic() - down
        call_id = await inst.start_call(number())
        detail = await inst.ended(call_id)
        sip = callee.messages()
    print(f"AMI logged in again {back_s:.1f} s after Asterisk was stopped", file=sys.stderr)
    assert "INVITE sip:" in sip, sip
    # Stored as ended: the new session delivered the call's events (which outcome is the busy
    # bug's business, tested above).
    assert detail.status in (CallStatus.COMPLETED, CallStatus.FAILED), detail


async def test_with_slin_a_callers_hang_up_is_stored_with_its_cause(
    tmp_path: Path, sqlite_url: str
) -> None:
    """``audiosocket_format = slin`` (the AudioSocket() application, 8 kHz): baresip calls,
    hears the agent, hangs up; the stored cause is the caller's Normal Clearing (16), which
    Asterisk names in the SoftHangupRequest while its Hangup says 0 "Unknown"."""
    ports = AsteriskPorts()
    async with installation(
        sqlite_url, tmp_path, ports, fake_engines([], []), CALLAGENT_AUDIOSOCKET_FORMAT="slin"
    ) as inst:
        result = await run_baresip(
            workdir(tmp_path / "caller"),
            target=f"sip:{inst.tenant.did}@127.0.0.1:{ports.sip}",
            speech=np.zeros(4 * 8000, dtype=np.float32),
            rate=8000,
            user=CALLER,
            timeout_s=30,
        )
        inbound = await inst.ami.wait_for(lambda m: field_of(m, "UserEvent") == "CallagentInbound")
        call_id = uuid.UUID(field_of(inbound, "CallId"))
        detail = await inst.ended(call_id)
        await asyncio.sleep(0.5)
        detail = await inst.ended(call_id)
        inst.report("slin caller hang-up")
        hangups = [
            (field_of(m, "Channel"), field_of(m, "Cause"), field_of(m, "Cause-txt"))
            for m in inst.ami.events("Hangup")
        ]
    print(f"slin: Hangup events {hangups}; stored {detail}", file=sys.stderr)
    assert "Call established" in result.output, result.output
    assert first_sound_s(result.heard, result.heard_rate) is not None  # the agent was heard
    assert (detail.hangup_cause, detail.hangup_cause_text) == (16, "Normal Clearing"), (
        detail,
        hangups,
    )
