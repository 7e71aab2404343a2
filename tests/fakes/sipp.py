"""Running Debian's sipp (package ``sip-tester``) as a real SIP caller, and hearing what it is sent.

sipp places the call and streams headerless µ-law over RTP (its ``rtp_stream`` would send a .wav
header as audio - DESIGN.md "Known traps"). Its SDP names the port of an "ear": a UDP socket of
the test that records the RTP the endpoint sends back, i.e. what the caller would hear.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers.ports import free_udp_block, free_udp_port

SIPP = shutil.which("sipp")


def sipp_available() -> bool:
    """True when sipp is installed (CI installs sip-tester)."""
    return SIPP is not None


_BIAS = 0x84
_CLIP = 32635


def pcm_to_ulaw(pcm: bytes) -> bytes:
    """16-bit 8 kHz PCM as G.711 µ-law bytes (what PCMU carries), the ITU-T reference way."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
    sign = np.where(samples < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(samples), _CLIP) + _BIAS
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def ulaw_to_pcm(ulaw: bytes) -> bytes:
    """G.711 µ-law bytes as 16-bit PCM."""
    codes = ~np.frombuffer(ulaw, dtype=np.uint8).astype(np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    magnitude = ((((codes & 0x0F) << 3) + _BIAS) << exponent) - _BIAS
    return np.where(codes & 0x80, -magnitude, magnitude).astype("<i2").tobytes()


@dataclass
class Ear(asyncio.DatagramProtocol):
    """Records RTP packets: (payload type, payload), and when each arrived (monotonic s)."""

    packets: list[tuple[int, bytes]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        csrc = data[0] & 0x0F
        payload_type = data[1] & 0x7F
        self.packets.append((payload_type, data[12 + 4 * csrc :]))
        self.arrivals.append(time.monotonic())

    def pcm(self, payload_type: int = 0) -> bytes:
        """The received PCMU audio, decoded, in arrival order."""
        return ulaw_to_pcm(b"".join(p for pt, p in self.packets if pt == payload_type))


async def open_ear() -> tuple[asyncio.DatagramTransport, Ear, int]:
    loop = asyncio.get_running_loop()
    transport, ear = await loop.create_datagram_endpoint(Ear, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    return transport, ear, port


_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callagent caller">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Test Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:{caller}@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio {ear_port} RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Test Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: sip:{caller}@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
"""

_DTMF = """  <send><![CDATA[
INFO [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Test Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {cseq} INFO
Contact: sip:{caller}@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/dtmf-relay
Content-Length: [len]

Signal={digit}
Duration=160
]]></send>
  <recv response="200"/>
"""

_TAIL = """  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Test Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {cseq} BYE
Contact: sip:{caller}@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""


def scenario(
    *,
    ear_port: int,
    caller: str,
    before_speech_ms: int,
    after_speech_ms: int,
    speech_file: str,
    dtmf: str = "",
    before_dtmf_ms: int = 0,
) -> str:
    """A sipp caller: INVITE (SDP pointing at the ear), ACK, optional DTMF over SIP INFO
    (``before_dtmf_ms`` after the ACK), a pause, the speech file as RTP (PCMU) while pausing
    ``after_speech_ms``, BYE."""
    parts = [_HEAD.format(caller=caller, ear_port=ear_port)]
    if dtmf and before_dtmf_ms:
        parts.append(f'  <pause milliseconds="{before_dtmf_ms}"/>\n')
    parts += [_DTMF.format(caller=caller, digit=digit, cseq=2 + i) for i, digit in enumerate(dtmf)]
    parts.append(f'  <pause milliseconds="{before_speech_ms}"/>\n')
    parts.append(f'  <nop><action><exec rtp_stream="{speech_file},1,0"/></action></nop>\n')
    parts.append(f'  <pause milliseconds="{after_speech_ms}"/>\n')
    parts.append(_TAIL.format(caller=caller, cseq=2 + len(dtmf)))
    return "".join(parts)


@dataclass
class SippResult:
    returncode: int
    output: str
    errors: str


async def run_sipp(
    workdir: Path,
    *,
    target_port: int,
    service: str,
    ulaw: bytes,
    ear_port: int,
    caller: str = "4930777",
    before_speech_ms: int = 300,
    after_speech_ms: int = 1500,
    dtmf: str = "",
    before_dtmf_ms: int = 0,
    timeout_s: float = 30.0,
) -> SippResult:
    """Call ``service@127.0.0.1:target_port`` once with sipp and wait for it to finish."""
    assert SIPP is not None
    (workdir / "caller.ulaw").write_bytes(ulaw)
    xml = workdir / "caller.xml"
    xml.write_text(
        scenario(
            ear_port=ear_port,
            caller=caller,
            before_speech_ms=before_speech_ms,
            # rtp_stream plays in the background: the pause covers the speech, then the wait.
            after_speech_ms=len(ulaw) // 8 + after_speech_ms,
            speech_file="caller.ulaw",
            dtmf=dtmf,
            before_dtmf_ms=before_dtmf_ms,
        )
    )
    process = await asyncio.create_subprocess_exec(
        SIPP,
        f"127.0.0.1:{target_port}",
        "-sf",
        str(xml),
        "-s",
        service,
        "-i",
        "127.0.0.1",
        "-mi",
        "127.0.0.1",
        "-mp",
        str(free_udp_block(4)),
        "-p",
        str(free_udp_port()),
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        f"{int(timeout_s)}s",
        "-timeout_error",
        "-trace_err",
        cwd=workdir,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "TERM": "dumb"},
    )
    try:
        async with asyncio.timeout(timeout_s + 5):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    errors = await asyncio.to_thread(_read_errors, workdir)
    return SippResult(process.returncode or 0, output.decode(errors="replace")[-3000:], errors)


def _read_errors(workdir: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in workdir.glob("*_errors.log"))


def rtp_header(sequence: int, timestamp: int, ssrc: int = 0x1234, payload_type: int = 0) -> bytes:
    """A minimal RTP header (used to poke the endpoint with stray packets)."""
    return struct.pack("!BBHII", 0x80, payload_type, sequence, timestamp, ssrc)


# --- sipp as the far end of outbound calls -----------------------------------------------------

_OPTIONS_ANSWER = """  <label id="options"/>
  <send next="end"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag02[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <label id="end"/>
</scenario>
"""

# A provider that does not answer OPTIONS (many do not, or only from registered addresses): the
# request is taken and ends that sipp "call" without a reply, so Asterisk's qualify times out.
_OPTIONS_IGNORE = """  <label id="options"/>
  <label id="end"/>
</scenario>
"""

_CALLEE_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callagent callee">
  <recv request="OPTIONS" optional="true" next="options"/>
  <recv request="INVITE">{keep_cseq}</recv>
  <send><![CDATA[
SIP/2.0 100 Trying
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
"""

_REJECT = """  <send><![CDATA[
SIP/2.0 {code} {text}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port]>
Content-Length: 0

]]></send>
  <recv request="ACK" next="end"/>
"""

_RING_FOREVER = """  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port]>
Content-Length: 0

]]></send>
  <recv request="CANCEL"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <send><![CDATA[
SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
CSeq: [$cseq] INVITE
Content-Length: 0

]]></send>
  <recv request="ACK" next="end"/>
"""


def callee_scenario(*, reject: tuple[int, str] | None, answer_options: bool = True) -> str:
    """sipp as the callee of every INVITE: rejects it with ``reject`` (code, reason phrase), or
    with None rings until the caller cancels. An OPTIONS (a qualify) is answered 200, or with
    ``answer_options=False`` never answered."""
    options = _OPTIONS_ANSWER if answer_options else _OPTIONS_IGNORE
    if reject is None:
        # The 487 that answers the CANCEL names the INVITE's CSeq number. (sipp refuses to
        # start on a variable it assigns but never uses, so only this scenario keeps it.)
        keep = '<action><ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="cseq"/>'
        head = _CALLEE_HEAD.format(keep_cseq=f"\n    {keep}</action>\n  ")
        return head + _RING_FOREVER + options
    head = _CALLEE_HEAD.format(keep_cseq="")
    return head + _REJECT.format(code=reject[0], text=reject[1]) + options


class SippCallee:
    """sipp listening on ``port`` as the far end of outbound calls (:func:`callee_scenario`),
    until the context ends. Every SIP message it saw or sent is in :meth:`messages`."""

    def __init__(
        self,
        workdir: Path,
        port: int,
        *,
        reject: tuple[int, str] | None,
        answer_options: bool = True,
    ) -> None:
        self.workdir = workdir
        self.port = port
        self.reject = reject
        self.answer_options = answer_options
        self.trace = workdir / "callee_messages.log"
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> SippCallee:
        assert SIPP is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        xml = self.workdir / "callee.xml"
        xml.write_text(callee_scenario(reject=self.reject, answer_options=self.answer_options))
        self.process = await asyncio.create_subprocess_exec(
            SIPP,
            "-sf",
            str(xml),
            "-i",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(free_udp_block(4)),
            "-nostdin",
            "-trace_err",
            "-trace_msg",
            "-message_file",
            str(self.trace),
            cwd=self.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "TERM": "dumb"},
        )
        try:
            await wait_udp_bound(self.port)
        except TimeoutError:
            await self.__aexit__()
            raise RuntimeError(f"sipp never listened: {_read_errors(self.workdir)}") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    def messages(self) -> str:
        """The SIP messages sipp received and sent so far."""
        return self.trace.read_text(errors="replace") if self.trace.exists() else ""


async def wait_udp_bound(port: int, timeout_s: float = 10.0) -> None:
    """Wait until something listens on UDP ``port`` of 127.0.0.1 (binding it then fails)."""
    async with asyncio.timeout(timeout_s):
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    return
            await asyncio.sleep(0.05)
