"""Direct SIP without Asterisk: a pjsua2 endpoint bridged to the voice pipeline.

Small installs can let callagent itself take calls on a SIP port (and register with a trunk).
Each answered call becomes a :class:`SipCallConnection`, which gives the call handler what an
AudioSocket connection gives - ``call_id``, ``frames()`` yielding the pipeline's own
:class:`~callagent.voice_pipeline.frames.AudioFrame` / ``DtmfFrame`` / ``HangUpFrame``,
``send_audio()``, ``hang_up()`` - so the same :class:`~callagent.telephony.call_runner.
CallRunner` runs SIP calls and Asterisk calls (both satisfy
:class:`~callagent.telephony.connection.CallConnection`).

Threads (pjsua2 calls back on pjsip's threads, never on the event loop):

* one **pj thread** owns the library: it creates the endpoint (so it is registered with pjlib),
  runs ``libHandleEvents`` in a loop (``threadCnt = 0``: every SIP callback arrives on this
  thread), executes the commands the event loop submits (:meth:`_PjThread.submit`, a thread-safe
  queue of callables) and deletes every pjsua2 object itself - Python's garbage collector on
  another thread must never run a pjsua2 destructor;
* pjmedia's **clock thread** calls :class:`_BridgePort`'s ``onFrameReceived`` /
  ``onFrameRequested`` every 20 ms: received audio goes to the event loop with
  ``call_soon_threadsafe``; audio to send is taken from a ``deque`` the event loop fills
  (``append``/``popleft`` are atomic under the GIL), silence when it is empty;
* the **event loop** runs the call handlers.

Known trap (DESIGN.md): every media port must be deleted before ``libDestroy()``, or the process
aborts - :meth:`_PjThread._shutdown` disconnects and deletes ports, then calls, then the account,
and only then destroys the library.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import queue
import re
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import pjsua2 as pj

from callagent.settings import SipSettings
from callagent.telephony.sip.sources import CallerSources
from callagent.voice_pipeline.clock import Clock
from callagent.voice_pipeline.frames import (
    AudioFrame,
    DtmfFrame,
    HangUpFrame,
    InboundFrame,
    frame_bytes,
)

log = logging.getLogger(__name__)

POLL_MS: Final = 10
"""How long one ``libHandleEvents`` call may block; also the latency of a submitted command."""

MAX_INBOUND_FRAMES: Final = 500
"""Caller frames queued for a handler that does not keep up (10 s); older ones are dropped."""

MAX_OUTBOUND_FRAMES: Final = 10
"""Agent frames buffered towards the caller (200 ms). The pipeline paces on its own 20 ms clock
and pjmedia pulls on another; the buffer absorbs their jitter, and on barge-in at most this much
already-sent audio is still heard."""

CODEC_PRIORITIES: Final = {"G722/16000/1": 250, "PCMA/8000/1": 240, "PCMU/8000/1": 230}
"""Telephony codecs only, wideband first; every other codec pjsua2 ships is disabled so what a
trunk negotiates is predictable."""

_USER_PART = re.compile(r"sips?:([^@;>]+)@")

DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")
"""The sixteen DTMF keys (RFC 4733 events 0-15); anything else pjsua2 reports is dropped."""


SipCallHandler = Callable[["SipCallConnection"], Awaitable[None]]


def user_part(uri: str) -> str:
    """``"Bob" <sip:+4930123@host>;tag=1`` -> ``+4930123`` ("" when there is none)."""
    match = _USER_PART.search(uri)
    return match.group(1) if match else ""


class SipCallConnection:
    """One answered SIP call, as its handler sees it (shaped like ``AudioSocketConnection``)."""

    def __init__(
        self,
        *,
        key: int,
        endpoint: SipEndpoint,
        remote: str,
        local: str,
        sip_call_id: str,
        sample_rate: int,
        clock: Clock,
    ) -> None:
        self.call_id: Final = uuid.uuid4()
        self.remote: Final = remote
        """The caller's URI (From)."""
        self.caller: Final = user_part(remote)
        """The caller id: the user part of the From URI."""
        self.dialed: Final = user_part(local)
        """The number called: the user part of the To URI (the DID on a trunk)."""
        self.sip_call_id: Final = sip_call_id
        self._key = key
        self._endpoint = endpoint
        self._rate = sample_rate
        self._clock = clock
        self._frame_bytes = frame_bytes(sample_rate)
        # One frame's PCM, a DTMF digit, or None for the end of the call; stamped as frames when
        # the handler takes them, on the pipeline's clock.
        self._inbound: asyncio.Queue[bytes | str | None] = asyncio.Queue(MAX_INBOUND_FRAMES)
        self.outbound: collections.deque[bytes] = collections.deque(maxlen=MAX_OUTBOUND_FRAMES)
        """Frames for pjmedia's clock thread to take (see the module docstring)."""
        self._pending = bytearray()
        self._closed = False
        self._reading = False
        self.dropped_inbound = 0
        self.underruns = 0
        """Frames pjmedia wanted while nothing was buffered (silence was sent instead)."""

    def __repr__(self) -> str:
        return f"<SipCallConnection {self.call_id} from {self.remote}>"

    @property
    def sample_rate(self) -> int:
        """Rate of the audio in both directions (``sip.sample_rate``; pjmedia resamples)."""
        return self._rate

    @property
    def closed(self) -> bool:
        """True once the call is over, whoever ended it."""
        return self._closed

    async def frames(self) -> AsyncIterator[InboundFrame]:
        """The caller's audio (20 ms frames, continuous) and DTMF, then one
        :class:`~callagent.voice_pipeline.frames.HangUpFrame` when the call ends."""
        if self._reading:
            raise RuntimeError(f"{self!r}: frames() is already being iterated")
        self._reading = True
        try:
            while not self._closed:
                item = await self._inbound.get()
                if item is None:
                    break
                if isinstance(item, str):
                    yield DtmfFrame(item, self._clock.now())
                else:
                    yield AudioFrame(item, self._rate, self._clock.now())
            yield HangUpFrame(self._clock.now())
        finally:
            self._reading = False

    async def send_audio(self, pcm: bytes) -> None:
        """Queue agent audio (16-bit mono PCM at :attr:`sample_rate`) for the caller."""
        if self._closed:
            return
        if len(pcm) % 2:
            raise ValueError(f"audio of {len(pcm)} bytes is not 16-bit PCM")
        self._pending += pcm
        size = self._frame_bytes
        while len(self._pending) >= size:
            self.outbound.append(bytes(self._pending[:size]))
            del self._pending[:size]

    async def hang_up(self) -> None:
        """End the call (BYE); does nothing once it is over."""
        if self._closed:
            return
        self._finish()
        with contextlib.suppress(RuntimeError):
            await self._endpoint._hang_up(self._key)

    # --- called on the event loop by the endpoint ----------------------------------------------

    def _push(self, item: bytes | str) -> None:
        """Queue one frame's PCM or one DTMF digit for :meth:`frames`."""
        if self._closed:
            return
        try:
            self._inbound.put_nowait(item)
        except asyncio.QueueFull:
            # The handler is not keeping up: drop the oldest, keep the newest (bounded memory).
            self.dropped_inbound += 1
            with contextlib.suppress(asyncio.QueueEmpty):
                self._inbound.get_nowait()
            self._inbound.put_nowait(item)

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.outbound.clear()
        with contextlib.suppress(asyncio.QueueFull):
            self._inbound.put_nowait(None)
        if self._inbound.full():  # make room for the end marker
            self._inbound.get_nowait()
            self._inbound.put_nowait(None)


class _BridgePort(pj.AudioMediaPort):  # type: ignore[misc]  # pjsua2 is untyped SWIG
    """The conference-bridge port of one call; its callbacks run on pjmedia's clock thread."""

    def __init__(self, conn: SipCallConnection, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._conn = conn
        self._loop = loop
        self._rate = conn.sample_rate
        self._silence = bytes(frame_bytes(conn.sample_rate))
        self.active = True

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        if not self.active:
            return
        try:
            if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size:
                pcm = bytes(frame.buf)
            else:
                # No RTP this tick (caller silent with DTX, or jitter): the pipeline still gets a
                # frame, as with Asterisk's transmit_silence - its turn timing counts frames.
                pcm = self._silence
            self._loop.call_soon_threadsafe(self._conn._push, pcm)
        except RuntimeError:
            self.active = False  # the event loop is closed: the endpoint is going away
        except Exception:
            log.exception("SIP call %s: received frame dropped", self._conn.call_id)

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        try:
            try:
                pcm = self._conn.outbound.popleft()
            except IndexError:
                pcm = self._silence
                if self.active and not self._conn.closed:
                    self._conn.underruns += 1
            frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
            frame.buf = pj.ByteVector(pcm)
            frame.size = len(pcm)
        except Exception:
            log.exception("SIP call %s: frame to send dropped", self._conn.call_id)


class _PjCall(pj.Call):  # type: ignore[misc]  # pjsua2 is untyped SWIG
    """One pjsua2 call; callbacks run on the pj thread."""

    def __init__(self, owner: _PjThread, account: pj.Account, call_id: int) -> None:
        super().__init__(account, call_id)
        self._owner = owner
        self.key = call_id
        self.conn: SipCallConnection | None = None
        self.port: _BridgePort | None = None
        self.media: pj.AudioMedia | None = None

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        try:
            info = self.getInfo()
            log.info("SIP call %s: %s (%s)", self.key, info.stateText, info.lastStatusCode)
            if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self._owner.call_disconnected(self)
        except Exception:
            log.exception("SIP call %s: state callback failed", self.key)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        try:
            info = self.getInfo()
            for media in info.media:
                if (
                    media.type == pj.PJMEDIA_TYPE_AUDIO
                    and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE
                ):
                    self._owner.media_active(self, self.getAudioMedia(media.index))
                    return
        except Exception:
            log.exception("SIP call %s: media callback failed", self.key)

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        # RFC 4733 telephone-events and SIP INFO (application/dtmf-relay) both arrive here.
        digit = str(prm.digit).upper()
        if self.conn is not None and digit in DTMF_DIGITS:
            self._owner.to_loop(self.conn._push, digit)


class _PjAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, owner: _PjThread) -> None:
        super().__init__()
        self._owner = owner

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        try:
            self._owner.incoming_call(self, prm.callId, prm.rdata.srcAddress)
        except Exception:
            log.exception("SIP: incoming call %s failed", prm.callId)

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        log.info("SIP registration: %s %s", prm.code, prm.reason)
        self._owner.registration_code = int(prm.code)


class _PjLogWriter(pj.LogWriter):  # type: ignore[misc]
    """pjlib's log lines into Python logging (any thread; logging is thread-safe)."""

    def write(self, entry: pj.LogEntry) -> None:
        log.debug("pjsip: %s", entry.msg.rstrip())


@dataclass
class _Command:
    function: Callable[[], Any]
    result: concurrent.futures.Future[Any]


class _PjThread(threading.Thread):
    """Owns pjsua2: all library calls and all object deletions happen on this thread."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        super().__init__(name="pjsua2", daemon=True)
        self._endpoint = endpoint
        self._settings = endpoint.settings
        self._loop = endpoint.loop
        self._commands: queue.SimpleQueue[_Command | None] = queue.SimpleQueue()
        self.ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self.calls: dict[int, _PjCall] = {}
        self._graveyard: list[_PjCall] = []
        self.registration_code: int | None = None
        self.closing = False

    # --- commands from the event loop -----------------------------------------------------

    def submit(self, function: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        """Run ``function`` on the pj thread; its result or exception lands in the future."""
        result: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if not self.is_alive():
            result.set_exception(RuntimeError("the SIP endpoint is not running"))
        else:
            self._commands.put(_Command(function, result))
        return result

    def stop(self) -> None:
        """Ask the thread to shut pjsua2 down and exit."""
        self._commands.put(None)

    def to_loop(self, callback: Callable[..., Any], *args: Any) -> None:
        """Schedule ``callback(*args)`` on the event loop (ignored once it is closed)."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    # --- the thread -------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._ep = self._start()
        except Exception as exc:
            log.exception("SIP endpoint failed to start")
            self.ready.set_exception(exc)
            return
        try:
            while True:
                if not self._run_commands():
                    break
                self._ep.libHandleEvents(POLL_MS)
                self._bury()
        except Exception:
            log.exception("SIP endpoint loop failed")
        finally:
            self._shutdown()

    def _start(self) -> pj.Endpoint:
        s = self._settings
        ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        # threadCnt 0: no pjsua worker threads; all SIP callbacks come on this thread.
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.maxCalls = s.max_calls
        cfg.uaConfig.userAgent = "callagent"
        self._log_writer = _PjLogWriter()
        cfg.logConfig.writer = self._log_writer
        cfg.logConfig.level = 4 if log.isEnabledFor(logging.DEBUG) else 2
        cfg.logConfig.consoleLevel = 0
        cfg.logConfig.msgLogging = log.isEnabledFor(logging.DEBUG)
        cfg.medConfig.clockRate = s.sample_rate
        cfg.medConfig.sndClockRate = s.sample_rate
        cfg.medConfig.channelCount = 1
        cfg.medConfig.noVad = True  # send every frame: no silence suppression towards callers
        cfg.medConfig.ecTailLen = 0  # no echo canceller: there is no sound device to echo
        ep.libInit(cfg)
        transport = pj.TransportConfig()
        transport.boundAddress = s.host
        transport.port = s.port
        if s.public_address:
            transport.publicAddress = s.public_address
        kind = pj.PJSIP_TRANSPORT_TCP if s.transport == "tcp" else pj.PJSIP_TRANSPORT_UDP
        transport_id = ep.transportCreate(kind, transport)
        ep.libStart()
        ep.audDevManager().setNullDev()  # no sound card: the conference bridge runs on a timer
        for codec in ep.codecEnum2():
            ep.codecSetPriority(codec.codecId, CODEC_PRIORITIES.get(codec.codecId, 0))
        self._account = _PjAccount(self)
        self._account.create(self._account_config(ep, transport_id))
        local = ep.transportGetInfo(transport_id).localName
        self.ready.set_result(int(local.rsplit(":", 1)[1]))
        log.info("SIP endpoint listening on %s (%s)", local, s.transport)
        return ep

    def _account_config(self, ep: pj.Endpoint, transport_id: int) -> pj.AccountConfig:
        s = self._settings
        cfg = pj.AccountConfig()
        local = ep.transportGetInfo(transport_id).localName
        if s.registrar:
            domain = s.registrar.split(":", 1)[0]
            cfg.idUri = f"sip:{s.username}@{domain}"
            cfg.regConfig.registrarUri = f"sip:{s.registrar}"
            cfg.regConfig.registerOnAdd = True
            cfg.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", s.username, 0, s.password)
            )
        else:
            cfg.idUri = f"sip:{s.username or 'callagent'}@{local}"
        cfg.sipConfig.transportId = transport_id
        media = cfg.mediaConfig.transportConfig
        media.boundAddress = s.host
        media.port = s.rtp_port
        media.portRange = s.rtp_port_range
        if s.public_address:
            media.publicAddress = s.public_address
        return cfg

    def _run_commands(self) -> bool:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return True
            if command is None:
                return False
            if command.result.set_running_or_notify_cancel():
                try:
                    command.result.set_result(command.function())
                except Exception as exc:
                    command.result.set_exception(exc)

    # --- pjsua2 callbacks (this thread) -------------------------------------------------------

    def incoming_call(self, account: pj.Account, call_id: int, source: str) -> None:
        call = _PjCall(self, account, call_id)
        self.calls[call_id] = call
        answer = pj.CallOpParam()
        if not self._endpoint.sources.allows(source):
            # Neither the registrar nor a listed network (sip.allowed_networks): nobody else
            # gets to talk to the agent (docs/telephony.md "Direct SIP").
            answer.statusCode = pj.PJSIP_SC_FORBIDDEN
            log.warning("SIP: refusing call %s from %s: not an allowed address", call_id, source)
            call.hangup(answer)
            return
        if self.closing or len(self.calls) > self._settings.max_calls:
            answer.statusCode = pj.PJSIP_SC_BUSY_HERE
            log.warning(
                "SIP: refusing call %s (%s)", call_id, "closing" if self.closing else "busy"
            )
            call.hangup(answer)
            return
        answer.statusCode = pj.PJSIP_SC_OK
        call.answer(answer)

    def media_active(self, call: _PjCall, media: pj.AudioMedia) -> None:
        if call.port is None:
            info = call.getInfo()
            conn = SipCallConnection(
                key=call.key,
                endpoint=self._endpoint,
                remote=info.remoteUri,
                local=info.localUri,
                sip_call_id=info.callIdString,
                sample_rate=self._settings.sample_rate,
                clock=self._endpoint.clock,
            )
            call.conn = conn
            call.port = _BridgePort(conn, self._loop)
            fmt = pj.MediaFormatAudio()
            rate = self._settings.sample_rate
            fmt.init(pj.PJMEDIA_FORMAT_PCM, rate, 1, 20_000, 16)
            call.port.createPort(f"callagent-{call.key}", fmt)
            self.to_loop(self._endpoint._start_handler, conn)
        elif call.media is not None:
            # Re-INVITE: the stream was replaced; connect the port to the new one.
            with contextlib.suppress(Exception):  # the old stream may already be gone
                call.media.stopTransmit(call.port)
                call.port.stopTransmit(call.media)
        call.media = media
        media.startTransmit(call.port)
        call.port.startTransmit(media)

    def call_disconnected(self, call: _PjCall) -> None:
        if call.conn is not None:
            self.to_loop(call.conn._finish)
        if call.port is not None:
            call.port.active = False
        self.calls.pop(call.key, None)
        # Not deleted inside its own callback: buried on the next loop turn (see _bury).
        self._graveyard.append(call)

    def hang_up(self, key: int) -> None:
        call = self.calls.get(key)
        if call is not None:
            param = pj.CallOpParam()
            param.statusCode = pj.PJSIP_SC_DECLINE
            call.hangup(param)

    # --- teardown -----------------------------------------------------------------------------

    def _bury(self) -> None:
        while self._graveyard:
            call = self._graveyard.pop()
            self._release(call)

    @staticmethod
    def _release(call: _PjCall) -> None:
        port = call.port
        call.port = None
        call.media = None
        if port is not None:
            port.active = False
            del port  # the port leaves the conference bridge here, on the pj thread

    def _shutdown(self) -> None:
        self.closing = True
        ep = getattr(self, "_ep", None)
        if ep is None:
            return
        try:
            ep.hangupAllCalls()
            for _ in range(50):  # let the BYEs go out and the DISCONNECTED callbacks run
                if not self.calls:
                    break
                ep.libHandleEvents(POLL_MS)
            self._bury()
            for call in list(self.calls.values()):
                self._release(call)
            self.calls.clear()
            # Ports before libDestroy(), or the process aborts (DESIGN.md "Known traps").
            self._account.shutdown()
            del self._account
            ep.libDestroy()
        except Exception:
            log.exception("SIP endpoint shutdown failed")
        finally:
            del self._ep
            self._run_commands_after_stop()

    def _run_commands_after_stop(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            if command is not None and command.result.set_running_or_notify_cancel():
                command.result.set_exception(RuntimeError("the SIP endpoint has stopped"))


class SipEndpoint:
    """Accepts SIP calls on ``settings.host:settings.port`` and runs ``handler`` for each.

    ``async with SipEndpoint(settings, handler, clock=clock) as sip: ...``; ``sip.port`` is the
    port bound (useful with ``port=0``). With ``settings.registrar`` set it also registers with
    the trunk. Calls are answered only from the registrar's addresses and
    ``settings.allowed_networks``; others get 403 (:mod:`.sources`). Only one endpoint may run
    per process (pjsua2 is a singleton library). ``clock`` stamps the callers' frames; it must
    be the clock of the voice pipeline the handler runs.
    """

    def __init__(self, settings: SipSettings, handler: SipCallHandler, *, clock: Clock) -> None:
        self.settings = settings
        self._handler = handler
        self.clock: Final = clock
        self.loop = asyncio.get_running_loop()
        self._thread: _PjThread | None = None
        self._port: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.sources = CallerSources(settings.allowed_network_list())
        """Who may call (:mod:`.sources`); :meth:`start` adds the registrar's addresses."""
        self.connections: list[SipCallConnection] = []
        """Every call answered so far (most recent last)."""

    @property
    def port(self) -> int:
        """The SIP port actually bound."""
        if self._port is None:
            raise RuntimeError("the SIP endpoint is not started")
        return self._port

    @property
    def registration_code(self) -> int | None:
        """The last SIP status of the trunk registration (200 = registered), if any."""
        return self._thread.registration_code if self._thread else None

    async def start(self) -> None:
        """Start pjsua2 on its thread; returns once the transport is bound."""
        if self._thread is not None:
            raise RuntimeError("the SIP endpoint is already started")
        # Resolved here, once: pjsip's thread must never wait for DNS.
        self.sources = await CallerSources.resolve(self.settings)
        self._thread = _PjThread(self)
        self._thread.start()
        self._port = await asyncio.wrap_future(self._thread.ready)

    async def close(self, *, grace_s: float = 2.0) -> None:
        """Hang up every call, wait for the handlers (cancelled after ``grace_s``), stop pjsua2."""
        thread = self._thread
        if thread is None:
            return
        thread.closing = True
        for conn in self.connections:
            await conn.hang_up()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        thread.stop()
        await asyncio.to_thread(thread.join, 10.0)
        self._thread = None

    async def __aenter__(self) -> SipEndpoint:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _hang_up(self, key: int) -> None:
        if self._thread is None:
            return
        await asyncio.wrap_future(self._thread.submit(lambda: self._thread_hang_up(key)))

    def _thread_hang_up(self, key: int) -> None:
        if self._thread is not None:
            self._thread.hang_up(key)

    def _start_handler(self, conn: SipCallConnection) -> None:
        self.connections.append(conn)
        log.info("SIP call %s from %s to %s answered", conn.call_id, conn.caller, conn.dialed)
        task = asyncio.create_task(self._run_handler(conn), name=f"sip-call-{conn.call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_handler(self, conn: SipCallConnection) -> None:
        try:
            await self._handler(conn)
        except Exception:
            # One failing call must not take the endpoint or other calls with it.
            log.exception("SIP call %s: handler failed; ending this call", conn.call_id)
        finally:
            await conn.hang_up()
            log.info(
                "SIP call %s ended (%d underruns, %d inbound frames dropped)",
                conn.call_id,
                conn.underruns,
                conn.dropped_inbound,
            )
