"""A browser-phone call over a WebSocket (docs/dashboard.md "Talk to your agent").

Wire format, one call per socket:

* browser → server, first a text message ``{"type": "hello", "rate": R, "csrf": T}``: ``R`` is
  the rate of the microphone audio it will send (its AudioContext's own rate, one of
  :data:`WIRE_RATES`), ``T`` the page's CSRF token (checked by the page's handler);
* browser → server, binary: caller audio, signed 16-bit little-endian mono PCM at ``R``, at
  most :data:`MAX_AUDIO_BYTES` per message; text ``{"type": "hangup"}`` ends the call;
* server → browser, binary: agent audio, s16le mono PCM at :data:`CALL_RATE`, sent on the
  pipeline's 20 ms clock (the browser plays it through a small jitter buffer);
* server → browser, text JSON: ``started`` (call id, rate), ``transcript`` (speaker ``agent``
  or ``caller``, text, interrupted), ``barge_in`` (drop what is queued for playing) and
  ``ended``.

The browser sends its native rate and the server resamples with soxr: the browser's own
AudioContext resampling is not exposed to a worklet, and decimating in JavaScript would mean
writing an anti-aliasing filter there; soxr is the resampler every other transport uses
(DESIGN.md "Contracts"). 48 kHz PCM is 96 kB/s, nothing on a LAN or loopback.

A malformed message (binary before the hello, an odd or oversized payload, unknown JSON) ends
this call only, with a close code naming why (DESIGN.md practice 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

from callagent.voice_pipeline.audio import StreamResampler
from callagent.voice_pipeline.clock import Clock
from callagent.voice_pipeline.frames import (
    AudioFrame,
    HangUpFrame,
    InboundFrame,
    frame_bytes,
)
from callagent.voice_pipeline.pipeline import BargeIn, PipelineObserver, TurnRecord

log = logging.getLogger(__name__)

CALL_RATE: Final = 16_000
"""The call's rate: what Whisper wants, so the caller's audio is resampled once."""

WIRE_RATES: Final = frozenset({8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 96_000})
"""Microphone rates a hello may announce (what AudioContexts run at)."""

MAX_AUDIO_BYTES: Final = 32_768
"""A binary message's limit: 170 ms at 96 kHz; the page sends 20 ms."""

MAX_TEXT_CHARS: Final = 4_096
"""A text message's limit: a hello with its token is under 200 characters."""

MAX_QUEUED: Final = 500
"""Messages waiting for a browser that stopped reading (10 s of audio): then the call ends."""

CLOSE_NORMAL: Final = 1000
CLOSE_UNSUPPORTED: Final = 1003
CLOSE_POLICY: Final = 1008
CLOSE_TOO_BIG: Final = 1009


class WireError(Exception):
    """The browser sent something the wire format does not allow; ``code`` is the close code."""

    def __init__(self, message: str, code: int = CLOSE_UNSUPPORTED) -> None:
        super().__init__(message)
        self.code = code


class MessageSocket(Protocol):
    """The WebSocket as the connection needs it (the API adapts Litestar's to it)."""

    async def receive(self) -> str | bytes | None:
        """The next message, or None once the browser closed the socket."""
        ...

    async def send(self, message: str | bytes) -> None:
        """Send one text or binary message."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code``; does nothing once closed."""
        ...


@dataclass(frozen=True)
class Hello:
    """The first message: the microphone's rate and the page's CSRF token."""

    rate: int
    csrf: str


def parse_text(text: str) -> dict[str, Any]:
    """A text message as a JSON object with a string ``type``; raises :class:`WireError`."""
    if len(text) > MAX_TEXT_CHARS:
        raise WireError(f"text message over {MAX_TEXT_CHARS} characters", CLOSE_TOO_BIG)
    try:
        value = json.loads(text)
    except ValueError:
        raise WireError("text message is not JSON") from None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise WireError('text message is not a JSON object with a "type"')
    return value


def parse_hello(message: str | bytes | None) -> Hello:
    """The hello that must open the call; raises :class:`WireError` naming what is wrong."""
    if message is None:
        raise WireError("the socket closed before its hello", CLOSE_NORMAL)
    if isinstance(message, bytes):
        raise WireError("audio before the hello")
    value = parse_text(message)
    if value["type"] != "hello":
        raise WireError(f"expected a hello, got {value['type']!r}")
    rate, csrf = value.get("rate"), value.get("csrf")
    if not isinstance(rate, int) or isinstance(rate, bool) or rate not in WIRE_RATES:
        raise WireError(f"hello: rate must be one of {sorted(WIRE_RATES)}, got {rate!r}")
    if not isinstance(csrf, str):
        raise WireError("hello: csrf must be the page's token", CLOSE_POLICY)
    return Hello(rate=rate, csrf=csrf)


def check_audio(payload: bytes) -> bytes:
    """A binary message as caller PCM; raises :class:`WireError` for an empty, odd-length
    or oversized one."""
    if len(payload) > MAX_AUDIO_BYTES:
        raise WireError(f"audio message over {MAX_AUDIO_BYTES} bytes", CLOSE_TOO_BIG)
    if not payload or len(payload) % 2:
        raise WireError(f"audio message of {len(payload)} bytes is not 16-bit PCM")
    return payload


class _Transcript:
    """The pipeline's events as the page's transcript messages."""

    def __init__(self, connection: BrowserConnection) -> None:
        self._connection = connection

    def turn_finished(self, record: TurnRecord) -> None:
        if record.caller_text:
            self._connection.send_event(
                {"type": "transcript", "speaker": "caller", "text": record.caller_text}
            )
        if record.agent_text:
            self._connection.send_event(
                {
                    "type": "transcript",
                    "speaker": "agent",
                    "text": record.agent_text,
                    "interrupted": record.interrupted,
                }
            )

    def barge_in(self, event: BargeIn) -> None:
        self._connection.send_event({"type": "barge_in"})

    def agent_spoke(self, text: str) -> None:
        self._connection.send_event({"type": "transcript", "speaker": "agent", "text": text})


class BrowserConnection:
    """One browser-phone call: satisfies
    :class:`~callagent.telephony.connection.CallConnection` and
    :class:`~callagent.telephony.connection.ClientTestCall`.

    Outgoing messages go through one queue and one writer task (:meth:`serve` runs it), so
    audio and transcript events never interleave mid-send and the pipeline's pacing is kept.
    """

    def __init__(
        self,
        socket: MessageSocket,
        *,
        client_id: uuid.UUID,
        wire_rate: int,
        clock: Clock,
        remote: str = "browser",
        call_id: uuid.UUID | None = None,
    ) -> None:
        if wire_rate not in WIRE_RATES:
            raise ValueError(f"no browser phone at {wire_rate} Hz")
        self._socket = socket
        self._client_id = client_id
        self._call_id = call_id or uuid.uuid4()
        self._remote = remote
        self._clock = clock
        self._inbound = StreamResampler(wire_rate, CALL_RATE)
        self._frame = frame_bytes(CALL_RATE)
        self._pending = b""
        self._outbox: asyncio.Queue[str | bytes | None] = asyncio.Queue(MAX_QUEUED)
        self._closed = False
        self._close_code = CLOSE_NORMAL
        self._close_reason = ""
        self._observer = _Transcript(self)

    @property
    def call_id(self) -> uuid.UUID:
        """A fresh id, which is also the stored call session's."""
        return self._call_id

    @property
    def remote(self) -> str:
        """The browser's address, for logs."""
        return self._remote

    @property
    def sample_rate(self) -> int:
        """Audio in and out is at :data:`CALL_RATE`."""
        return CALL_RATE

    @property
    def closed(self) -> bool:
        """True once the call is over, whoever ended it."""
        return self._closed

    @property
    def client_id(self) -> uuid.UUID:
        """The signed-in person's client."""
        return self._client_id

    @property
    def observer(self) -> PipelineObserver:
        """Sends the transcript and barge-ins to the page."""
        return self._observer

    @property
    def close_reason(self) -> str:
        """Why the call ended ("" for a normal end)."""
        return self._close_reason

    def send_event(self, event: dict[str, Any]) -> None:
        """Queue a JSON message for the page; ends the call when the page stopped reading."""
        self._queue(json.dumps(event))

    def _queue(self, message: str | bytes) -> None:
        if self._closed:
            return
        try:
            self._outbox.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("browser call %s: the page stopped reading; ending it", self._call_id)
            self._end(CLOSE_POLICY, "the page stopped reading")

    async def frames(self) -> AsyncIterator[InboundFrame]:
        """The caller's audio at :data:`CALL_RATE` in 20 ms frames, then one HangUpFrame when
        the page hangs up, closes the socket, sends a bad message or the call is ended."""
        while not self._closed:
            try:
                message = await self._socket.receive()
            except OSError as error:
                log.info("browser call %s: connection lost: %r", self._call_id, error)
                self._end(CLOSE_NORMAL, "")
                break
            if message is None:
                self._end(CLOSE_NORMAL, "")
                break
            try:
                if isinstance(message, bytes):
                    for frame in self._audio(check_audio(message)):
                        yield frame
                elif parse_text(message)["type"] == "hangup":
                    self._end(CLOSE_NORMAL, "")
                    break
                else:
                    log.info("browser call %s: ignoring %.60r", self._call_id, message)
            except WireError as error:
                log.warning("browser call %s: %s; ending this call", self._call_id, error)
                self._end(error.code, str(error))
                break
        yield HangUpFrame(self._clock.now())

    def _audio(self, pcm: bytes) -> list[AudioFrame]:
        self._pending += self._inbound.process(pcm)
        frames: list[AudioFrame] = []
        now = self._clock.now()
        while len(self._pending) >= self._frame:
            chunk, self._pending = self._pending[: self._frame], self._pending[self._frame :]
            frames.append(AudioFrame(chunk, CALL_RATE, now))
        return frames

    async def send_audio(self, pcm: bytes) -> None:
        """Queue agent audio (s16le at :data:`CALL_RATE`) for the page."""
        self._queue(pcm)

    async def hang_up(self) -> None:
        """End the call (the agent said goodbye); does nothing once it is over."""
        self._end(CLOSE_NORMAL, "")

    def _end(self, code: int, reason: str) -> None:
        if self._closed:
            return
        if code == CLOSE_NORMAL:
            with contextlib.suppress(asyncio.QueueFull):
                ended = {"type": "ended", "call_id": str(self._call_id)}
                self._outbox.put_nowait(json.dumps(ended))
        self._closed = True
        self._close_code, self._close_reason = code, reason
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(None)

    async def serve(self, handler: Any) -> None:
        """Run the call: ``handler`` (the call runner) with this connection, the writer
        alongside; the socket is closed when it returns, with the code that ended the call."""
        writer = asyncio.create_task(self._write(), name="browser-phone-writer")
        self.send_event({"type": "started", "call_id": str(self._call_id), "rate": CALL_RATE})
        try:
            await handler(self)
        finally:
            self._end(CLOSE_NORMAL, "")
            try:
                # What is queued (the goodbye's last frames, "ended") still goes out.
                await asyncio.wait_for(asyncio.shield(writer), timeout=2.0)
            except TimeoutError:
                pass
            finally:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await writer
            with contextlib.suppress(OSError, RuntimeError):
                await self._socket.close(self._close_code, self._close_reason[:120])

    async def _write(self) -> None:
        while True:
            message = await self._outbox.get()
            if message is None:
                return
            try:
                await self._socket.send(message)
            except (OSError, RuntimeError) as error:
                log.info("browser call %s: send failed: %r", self._call_id, error)
                self._end(CLOSE_NORMAL, "")
                return
