"""The pjsua2 endpoint called by a real SIP peer: Debian's sipp on 127.0.0.1.

sipp sends real RTP (PCMU) carrying speech; an "ear" socket named in sipp's SDP records the RTP
the endpoint sends back. The fast test uses a scripted tone agent; the real-model test runs the
real CallRunner with the ``ci`` models on speech from Debian's flite.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from callagent.settings import SipSettings
from callagent.telephony.sip.endpoint import SipCallConnection, SipEndpoint, user_part
from callagent.voice_pipeline.clock import MonotonicClock
from callagent.voice_pipeline.frames import AudioFrame, DtmfFrame, frame_bytes

from fakes.baresip import baresip_available, run_baresip
from fakes.sipp import open_ear, pcm_to_ulaw, run_sipp, sipp_available
from helpers.audio import rms, silence, voice
from helpers.voices import flite_available, word_set

pytestmark = [
    pytest.mark.timeout(60),
    # CI installs sip-tester: there a missing sipp must fail, not skip.
    pytest.mark.skipif(
        not sipp_available() and not os.environ.get("CI"),
        reason="needs Debian's sip-tester (sipp)",
    ),
]

REPO = Path(__file__).resolve().parents[3]


def sip_settings(**changes: object) -> SipSettings:
    rtp = 20000 + (os.getpid() % 200) * 100  # away from other test runs on the same machine
    return SipSettings(
        **{"enabled": True, "host": "127.0.0.1", "port": 0, "rtp_port": rtp, **changes}  # type: ignore[arg-type]
    )


class ToneAgent:
    """Answers like an agent: a 0.4 s tone as soon as audio flows, records what it heard."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.digits: list[str] = []
        self.connection: SipCallConnection | None = None
        self.finished = asyncio.Event()

    async def __call__(self, conn: SipCallConnection) -> None:
        self.connection = conn
        rate = conn.sample_rate
        # 400 Hz: a whole number of periods per 20 ms frame, and well inside the phone band.
        samples = np.sin(2 * np.pi * 400 * np.arange(rate // 50) / rate) * 6000
        tone = samples.astype("<i2").tobytes()
        speaker = asyncio.create_task(self._speak(conn, tone, bytes(frame_bytes(rate))))
        try:
            async for frame in conn.frames():
                if isinstance(frame, AudioFrame):
                    self.frames.append(frame.pcm)
                elif isinstance(frame, DtmfFrame):
                    self.digits.append(frame.digit)
        finally:
            speaker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await speaker
            self.finished.set()

    @staticmethod
    async def _speak(conn: SipCallConnection, tone: bytes, quiet: bytes) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for tick in itertools.count(1):
            await conn.send_audio(tone if tick <= 20 else quiet)
            await asyncio.sleep(max(0.0, start + tick * 0.02 - loop.time()))


def test_user_part() -> None:
    assert user_part('"Bob" <sip:+4930123@example.net>;tag=x') == "+4930123"
    assert user_part("sip:agent@127.0.0.1:5060") == "agent"
    assert user_part("<sip:example.net>") == ""


async def test_sipp_call_reaches_the_agent_and_hears_it(tmp_path: Path) -> None:
    agent = ToneAgent()
    speech = voice(1.0, 8000, level=0.5)
    transport, ear, ear_port = await open_ear()
    try:
        async with SipEndpoint(sip_settings(), agent, clock=MonotonicClock()) as sip:
            result = await run_sipp(
                tmp_path,
                target_port=sip.port,
                service="+4930123456",
                ulaw=pcm_to_ulaw(speech),
                ear_port=ear_port,
                caller="4930777",
                before_speech_ms=500,
                after_speech_ms=1200,
                dtmf="5#",
            )
            assert result.returncode == 0, result.output + result.errors
            await asyncio.wait_for(agent.finished.wait(), 5)
    finally:
        transport.close()
    conn = agent.connection
    assert conn is not None
    assert (conn.caller, conn.dialed) == ("4930777", "+4930123456")
    assert conn.sample_rate == 16000
    assert conn.closed  # sipp's BYE ended the call
    assert agent.digits == ["5", "#"]  # SIP INFO application/dtmf-relay
    # The caller's speech arrived as a continuous 20 ms stream, resampled to 16 kHz by pjmedia.
    assert {len(f) for f in agent.frames} == {640}
    loud = [f for f in agent.frames if rms(f) > 0.05]
    assert 40 <= len(loud) <= 60, len(loud)  # 1 s of speech = 50 frames
    assert len(agent.frames) >= 100  # the silence around it is delivered too
    # The agent's greeting tone went out as PCMU RTP to the address in the caller's SDP. Once
    # sipp's own RTP arrives from another port, pjmedia re-targets its RTP to that source after
    # a few packets (symmetric RTP, as for NAT), so the ear hears the greeting only; the
    # baresip test below records the whole call on the caller's side.
    heard = ear.pcm(0)
    frames = [heard[i : i + 320] for i in range(0, len(heard), 320)]
    assert sum(rms(f) > 0.1 for f in frames) >= 18  # 0.4 s of tone = 20 frames


async def test_a_handler_that_fails_ends_only_its_call(tmp_path: Path) -> None:
    calls: list[SipCallConnection] = []

    async def failing(conn: SipCallConnection) -> None:
        calls.append(conn)
        raise RuntimeError("boom")

    transport, _, ear_port = await open_ear()
    try:
        async with SipEndpoint(sip_settings(), failing, clock=MonotonicClock()) as sip:
            result = await run_sipp(
                tmp_path,
                target_port=sip.port,
                service="agent",
                ulaw=pcm_to_ulaw(silence(0.2)),
                ear_port=ear_port,
                after_speech_ms=2000,
            )
            # The endpoint hung up (BYE) while sipp was pausing: sipp reports the unexpected BYE.
            assert result.returncode != 0
            assert "BYE" in result.output + result.errors
            # The endpoint still takes the next call.
            sip._handler = ToneAgent()
            again = tmp_path / "again"
            again.mkdir()
            ok = await run_sipp(
                again,
                target_port=sip.port,
                service="agent",
                ulaw=pcm_to_ulaw(voice(0.3)),
                ear_port=ear_port,
            )
            assert ok.returncode == 0, ok.output + ok.errors
    finally:
        transport.close()
    assert len(calls) == 1
    assert calls[0].closed


@pytest.mark.skipif(
    not baresip_available() and not os.environ.get("CI"), reason="needs Debian's baresip"
)
async def test_baresip_over_wideband_g722_hears_the_agent(tmp_path: Path) -> None:
    agent = ToneAgent()
    caller = np.concatenate(
        [
            np.zeros(8000),
            np.frombuffer(voice(1.0, 16000, level=0.5), "<i2") / 32768,
            np.zeros(16000),
        ]
    )
    async with SipEndpoint(sip_settings(), agent, clock=MonotonicClock()) as sip:
        result = await run_baresip(
            tmp_path,
            target=f"sip:agent@127.0.0.1:{sip.port}",
            speech=caller,
            rate=16000,
            codec="g722",
            timeout_s=20,
        )
        await asyncio.wait_for(agent.finished.wait(), 5)
    assert "Call established" in result.output, result.output
    assert "G722" in result.output  # negotiated wideband: 16 kHz end to end
    # The caller's speech reached the agent...
    loud = [f for f in agent.frames if rms(f) > 0.05]
    assert 40 <= len(loud) <= 60, len(loud)
    # ...and the caller heard the agent's whole 0.4 s tone, at 16 kHz.
    assert result.heard_rate == 16000
    frame = 320
    frames = [result.heard[i : i + frame] for i in range(0, len(result.heard), frame)]
    # (Through pjmedia's G.722 and baresip's decoder the tone arrives ~6 dB quieter: measured.)
    tone_frames = sum(float(np.sqrt(np.mean(f**2))) > 0.03 for f in frames if len(f))
    assert 17 <= tone_frames <= 23, tone_frames


@pytest.mark.real_models
@pytest.mark.skipif(
    (not flite_available() or not baresip_available()) and not os.environ.get("CI"),
    reason="needs Debian's flite and baresip",
)
async def test_real_models_understand_a_sip_caller_and_answer_in_speech(tmp_path: Path) -> None:
    from callagent.app.components import load_engines
    from callagent.dialog.agent_profile import DEFAULT_AGENT
    from callagent.dialog.prompt import build_system_prompt
    from callagent.settings import ModelSettings
    from callagent.telephony.call_runner import CallReport, CallRunner

    question = "Hi, I am thinking about solar panels for my roof. How much would that cost?"
    wav = tmp_path / "question.wav"
    await asyncio.to_thread(
        subprocess.run, ["flite", "-voice", "slt", "-t", question, "-o", str(wav)], check=True
    )
    samples, rate = soundfile.read(str(wav), dtype="float32")
    spoken = soxr.resample(samples, rate, 8000)
    # Quiet while the greeting plays (no barge-in), the question, then time for the answer.
    caller = np.concatenate([np.zeros(5 * 8000), spoken, np.zeros(16 * 8000)])

    engines = await asyncio.to_thread(
        load_engines, ModelSettings(profile="ci", models_dir=REPO / "models")
    )
    await engines.llm.warm_up(build_system_prompt(DEFAULT_AGENT))
    reports: list[CallReport] = []
    clock = MonotonicClock()
    runner = CallRunner(engines, DEFAULT_AGENT, clock, on_call_finished=reports.append)
    async with SipEndpoint(sip_settings(), runner, clock=clock) as sip:
        result = await run_baresip(
            tmp_path,
            target=f"sip:agent@127.0.0.1:{sip.port}",
            speech=caller,
            rate=8000,
            codec="pcmu",
            timeout_s=45,
        )
        await asyncio.sleep(0.5)
    assert "Call established" in result.output, result.output
    (report,) = reports
    data = report.to_json()
    assert data["turns"], data
    caller_text = data["turns"][0]["caller_text"]
    assert {"solar", "panels", "roof", "cost"} <= word_set(caller_text), caller_text
    said = data["greeting"] + " " + " ".join(t["agent_text"] for t in data["turns"])
    # What the caller heard, transcribed, is the English the agent says it said.
    heard = soxr.resample(result.heard, result.heard_rate, 16000)
    heard_pcm = (np.clip(heard, -1, 1) * 32767).astype("<i2").tobytes()
    transcript = await engines.stt.transcribe(heard_pcm, 16000)
    overlap = len(word_set(transcript.text) & word_set(said)) / len(word_set(said))
    assert overlap >= 0.5, (transcript.text, said)
    print(f"SIP call with the ci models: {data}; caller heard {transcript.text!r}", file=sys.stderr)


REGISTRAR = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="registrar">
  <recv request="REGISTER"/>
  <send><![CDATA[
SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: Digest realm="trunk.test", nonce="4f1c2d3e5a6b", algorithm=MD5
Content-Length: 0

]]></send>
  <recv request="REGISTER">
    <action><verifyauth assign_to="authvalid" username="u4930" password="s3cret-pw"/></action>
  </recv>
  <nop hide="true" test="authvalid" next="good"/>
  <send next="end"><![CDATA[
SIP/2.0 403 Forbidden
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <label id="good"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Contact:];expires=300
Content-Length: 0

]]></send>
  <label id="end"/>
</scenario>
"""


@pytest.mark.parametrize(("password", "code"), [("s3cret-pw", 200), ("wrong-pw", 403)])
async def test_registration_with_a_trunk_uses_the_configured_credentials(
    tmp_path: Path, password: str, code: int
) -> None:
    from fakes.sipp import SIPP
    from helpers.ports import free_udp_port

    assert SIPP is not None
    port = free_udp_port()
    (tmp_path / "registrar.xml").write_text(REGISTRAR)
    sipp = await asyncio.create_subprocess_exec(
        SIPP, "-sf", "registrar.xml", "-i", "127.0.0.1", "-p", str(port), "-m", "1",
        "-nostdin", "-timeout", "15s", "-trace_err",
        cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    settings = sip_settings(registrar=f"127.0.0.1:{port}", username="u4930", password=password)
    try:
        async with SipEndpoint(settings, ToneAgent(), clock=MonotonicClock()) as sip:
            async with asyncio.timeout(10):
                while sip.registration_code != code:  # noqa: ASYNC110 - set on pj's thread
                    await asyncio.sleep(0.05)
    finally:
        async with asyncio.timeout(20):
            await sipp.wait()


async def test_closing_the_endpoint_mid_call_hangs_up_cleanly(tmp_path: Path) -> None:
    agent = ToneAgent()
    transport, _, ear_port = await open_ear()
    try:
        sip = SipEndpoint(sip_settings(), agent, clock=MonotonicClock())
        await sip.start()
        caller = asyncio.create_task(
            run_sipp(
                tmp_path,
                target_port=sip.port,
                service="agent",
                ulaw=pcm_to_ulaw(voice(0.3)),
                ear_port=ear_port,
                after_speech_ms=10_000,
            )
        )
        async with asyncio.timeout(5):
            while agent.connection is None:  # noqa: ASYNC110 - set by the endpoint's thread
                await asyncio.sleep(0.02)
        await sip.close()  # BYE to the caller, handler ended, ports deleted, library destroyed
        result = await caller
    finally:
        transport.close()
    assert agent.finished.is_set()
    assert agent.connection is not None
    assert agent.connection.closed
    assert "BYE" in result.output + result.errors  # sipp was hung up on mid-pause


STRANGER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="a caller from an address that is not allowed">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Stranger" <sip:4930666@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:4930666@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=stranger 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="403"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: "Stranger" <sip:4930666@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
</scenario>
"""


async def test_a_call_from_an_address_not_allowed_is_refused_with_403(tmp_path: Path) -> None:
    from fakes.sipp import SIPP
    from helpers.ports import free_udp_block, free_udp_port

    assert SIPP is not None
    agent = ToneAgent()
    (tmp_path / "stranger.xml").write_text(STRANGER)
    transport, _, ear_port = await open_ear()
    try:
        # Only 127.0.0.1 may call; 127.0.0.2 is this machine too, but not listed.
        settings = sip_settings(allowed_networks="127.0.0.1/32")
        async with SipEndpoint(settings, agent, clock=MonotonicClock()) as sip:
            stranger = await asyncio.create_subprocess_exec(
                SIPP, f"127.0.0.1:{sip.port}", "-sf", "stranger.xml", "-s", "agent",
                "-i", "127.0.0.2", "-mi", "127.0.0.2", "-mp", str(free_udp_block(4, "127.0.0.2")),
                "-p", str(free_udp_port()), "-m", "1", "-nostdin",
                "-timeout", "15s", "-timeout_error", "-trace_err",
                cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "TERM": "dumb"},
            )  # fmt: skip
            async with asyncio.timeout(20):
                output, _ = await stranger.communicate()
            errors = await asyncio.to_thread(
                lambda: "".join(p.read_text() for p in tmp_path.glob("*_errors.log"))
            )
            assert stranger.returncode == 0, output.decode(errors="replace")[-2000:] + errors
            assert agent.connection is None  # the agent never heard of it
            # A listed address still gets through to the agent.
            listed = tmp_path / "listed"
            listed.mkdir()
            result = await run_sipp(
                listed,
                target_port=sip.port,
                service="agent",
                ulaw=pcm_to_ulaw(voice(0.3)),
                ear_port=ear_port,
            )
            assert result.returncode == 0, result.output + result.errors
    finally:
        transport.close()
    assert agent.connection is not None
