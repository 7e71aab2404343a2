"""The AudioSocket server: Asterisk's ``AudioSocket()`` connects here, one TCP connection per call.

A thin asyncio loop around :class:`~.audiosocket.AudioSocketProtocol` (DESIGN.md practice 1). The
server reads the UUID message, wraps the connection in an :class:`AudioSocketConnection` and hands
it to the call handler (the call runner) in a task of its own. Whatever a peer does - garbage, a
reset, silence before the UUID, a handler that raises - ends only that call (DESIGN.md practice
2); the listener and the other calls keep running.

Pacing is not done here: :meth:`AudioSocketConnection.send_audio` writes one message at once,
because Asterisk plays what it receives immediately and the voice pipeline owns the 20 ms
clock (DESIGN.md "Contracts").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Final, Self

from callagent.telephony.asterisk.audiosocket import (
    SAMPLE_RATE_AUDIO_KINDS,
    Audio,
    AudioSocketProtocol,
    AudioSocketRole,
    CallStarted,
    Dtmf,
    ErrorMessage,
    HangUp,
    ProtocolError,
)
from callagent.voice_pipeline.audio import StreamResampler
from callagent.voice_pipeline.clock import Clock
from callagent.voice_pipeline.frames import AudioFrame, DtmfFrame, HangUpFrame, InboundFrame

logger = logging.getLogger(__name__)

READ_CHUNK: Final = 16_384
"""Most bytes taken from the socket per read: one of the largest messages (DESIGN.md practice 2).
Between reads every complete message is handed on, so a call never buffers much more."""

DEFAULT_SAMPLE_RATE: Final = 8_000
"""The call rate when none is given: plain ``AudioSocket()`` speaks 8 kHz slin."""

CLOSE_TIMEOUT_S: Final = 1.0
"""How long closing waits for unsent bytes to leave before the socket is aborted."""


def _describe_peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    """Switch Nagle's algorithm off: every frame is a small write that must go out now."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:  # e.g. not a TCP socket
        logger.debug("TCP_NODELAY not set for %s: %r", _describe_peer(writer), exc)


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    """Close a connection without ever hanging on a peer that stopped reading."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await writer.wait_closed()
    except TimeoutError:
        writer.transport.abort()
    except OSError:
        # wait_closed() re-raises what ended the connection (e.g. a reset): it is closed anyway.
        pass


class AudioSocketConnection:
    """One call's AudioSocket connection, as handed to the call handler.

    Read the caller with :meth:`frames`, answer with :meth:`send_audio`, end the call with
    :meth:`hang_up`. Once the connection is closed (by either side) :meth:`send_audio` and
    :meth:`hang_up` do nothing, so the call runner need not race the caller's hang-up.
    AudioSocket's messages stay inside this module: the caller gets the pipeline's own frames,
    stamped with ``clock`` (DESIGN.md practice 3).

    ``sample_rate`` is the rate the dialplan fixes (``c(slin16)``: 16 kHz, ``AudioSocket()``:
    8 kHz), known before any audio arrives: Asterisk sends nothing until the caller's RTP does
    (DESIGN.md "Known traps"), and the agent must not wait for that to speak. Should Asterisk
    send another rate after all (a dialplan rendered from other settings), the connection
    says so once and resamples both ways, so the caller still hears the agent at the rate
    Asterisk asked for and the call runner sees only the call's rate.
    """

    def __init__(
        self,
        call_id: uuid.UUID,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: AudioSocketProtocol,
        clock: Clock,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
    ) -> None:
        if sample_rate not in SAMPLE_RATE_AUDIO_KINDS:
            raise ValueError(f"AudioSocket has no audio kind for {sample_rate} Hz")
        self.call_id: Final = call_id
        self.remote: Final = _describe_peer(writer)
        self._reader = reader
        self._writer = writer
        self._protocol = protocol
        self._clock = clock
        self._sample_rate: Final = sample_rate
        self._wire_rate = sample_rate  # what Asterisk actually sends, once it sends
        self._inbound: StreamResampler | None = None
        self._outbound: StreamResampler | None = None
        self._closed = False
        self._reading = False

    @property
    def sample_rate(self) -> int:
        """The call's rate in Hz: what :meth:`frames` yields and :meth:`send_audio` takes."""
        return self._sample_rate

    @property
    def wire_rate(self) -> int:
        """The rate of Asterisk's audio on the wire (the call's rate until audio arrives)."""
        return self._wire_rate

    @property
    def closed(self) -> bool:
        """True once the call is over on this connection, whoever ended it."""
        return self._closed

    def __repr__(self) -> str:
        return f"<AudioSocketConnection {self.call_id} from {self.remote}>"

    async def frames(self) -> AsyncIterator[InboundFrame]:
        """Yield the caller's audio and DTMF as :class:`AudioFrame` and :class:`DtmfFrame`, then
        one :class:`HangUpFrame` when the call ends.

        The call ends with a hang-up, end of file, a connection reset, a :class:`ProtocolError`
        (logged; the socket is closed) or :meth:`hang_up`. Asterisk's error messages (0xff) are
        logged, not yielded: the pipeline has nothing to do with them. Only one task may iterate
        it.
        """
        if self._reading:
            raise RuntimeError(f"{self!r}: frames() is already being iterated")
        self._reading = True
        try:
            while not self._closed:
                try:
                    event = self._protocol.next_event()
                except ProtocolError as exc:
                    logger.warning(
                        "call %s from %s: %s; ending the call", self.call_id, self.remote, exc
                    )
                    await self._close()
                    break
                if event is None:
                    await self._read_more()
                elif isinstance(event, HangUp):
                    logger.info("call %s: Asterisk hung up", self.call_id)
                    await self._close()
                    break
                elif isinstance(event, Audio):
                    pcm = self._from_wire(event)
                    if pcm:
                        yield AudioFrame(pcm, self._sample_rate, self._clock.now())
                elif isinstance(event, Dtmf):
                    yield DtmfFrame(event.digit, self._clock.now())
                elif isinstance(event, ErrorMessage):
                    logger.warning("call %s: Asterisk reported error %r", self.call_id, event.code)
                # A CallStarted cannot come here: the protocol raises on a second UUID.
            yield HangUpFrame(self._clock.now())
        finally:
            self._reading = False

    async def _read_more(self) -> None:
        try:
            data = await self._reader.read(READ_CHUNK)
        except OSError as exc:
            # Asterisk hanging up can look like a reset rather than a clean end of file.
            logger.info("call %s: connection lost: %r", self.call_id, exc)
            await self._close()
            return
        if not self._closed:  # after our own close the reader only reports that close
            self._protocol.receive_data(data)

    def _from_wire(self, audio: Audio) -> bytes:
        """Caller audio at the call's rate (see the class docstring for a rate mismatch)."""
        if audio.sample_rate != self._wire_rate:
            self._wire_rate = audio.sample_rate
            if audio.sample_rate == self._sample_rate:
                self._inbound = self._outbound = None
            else:
                logger.warning(
                    "call %s: Asterisk sends %d Hz audio on a call set up for %d Hz "
                    "(asterisk.audiosocket_format and the dialplan disagree); resampling",
                    self.call_id,
                    audio.sample_rate,
                    self._sample_rate,
                )
                self._inbound = StreamResampler(audio.sample_rate, self._sample_rate)
                self._outbound = StreamResampler(self._sample_rate, audio.sample_rate)
        if self._inbound is None:
            return audio.pcm
        return self._inbound.process(audio.pcm)

    async def send_audio(self, pcm: bytes) -> None:
        """Write one audio message: ``pcm`` at the call's rate, sent at the rate Asterisk
        uses (the same unless the dialplan disagrees with the settings).

        Does nothing once the call is closed. Raises ``ValueError`` for PCM the protocol refuses
        (empty, odd length, over :data:`~.audiosocket.MAX_PAYLOAD`): that is a bug in the sender.
        """
        if self._closed:
            return
        if self._outbound is not None:
            pcm = self._outbound.process(pcm)
            if not pcm:
                return  # the resampler's filter is still filling
        data = self._protocol.send(Audio(pcm, self._wire_rate))
        if self._writer.transport.is_closing():
            await self._close()
            return
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            logger.info("call %s: connection lost while sending: %r", self.call_id, exc)
            await self._close()

    async def hang_up(self) -> None:
        """Send the hang-up message and close the connection; does nothing if already closed.

        With ``AudioSocket()`` in the dialplan, Asterisk then continues at the next dialplan step
        (DESIGN.md "Known traps"): set a channel variable over AMI first to steer it.
        """
        if self._closed:
            return
        if not self._writer.transport.is_closing():
            with contextlib.suppress(OSError):
                self._writer.write(self._protocol.send(HangUp()))
        await self._close()

    async def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        # Wake a reader blocked in frames() now, rather than once unsent bytes have drained;
        # the transport is closed, so no more data can be fed after this end of file.
        self._reader.feed_eof()
        await _close_writer(self._writer)


CallHandler = Callable[[AudioSocketConnection], Awaitable[None]]
"""Runs one call; the connection is closed when it returns."""


class AudioSocketServer:
    """Listens for Asterisk's AudioSocket connections and runs ``handler`` for each call.

    Use as ``async with AudioSocketServer(handler, port=0, clock=clock) as server: ...`` or call
    :meth:`start` and :meth:`close`. ``port=0`` binds a free port, read back from :attr:`port`.
    A connection that sends no valid UUID within ``uuid_timeout`` seconds is dropped; beyond
    ``max_calls`` connections at once new ones are refused (closed at once), and so is a
    second connection naming a call that is connected already (only one peer may speak for a
    call). Accepted sockets get ``TCP_NODELAY``: each 20 ms frame is one small write that must
    leave at once, not wait for Nagle's algorithm to batch it. ``clock`` stamps
    the callers' frames; it must be the clock of the voice pipeline the handler runs.
    ``sample_rate`` is every call's rate, as the dialplan fixes it (see
    :class:`AudioSocketConnection`).
    """

    def __init__(
        self,
        handler: CallHandler,
        host: str = "127.0.0.1",
        port: int = 9092,
        *,
        clock: Clock,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        uuid_timeout: float = 5.0,
        max_calls: int = 100,
    ) -> None:
        if sample_rate not in SAMPLE_RATE_AUDIO_KINDS:
            raise ValueError(f"AudioSocket has no audio kind for {sample_rate} Hz")
        self._handler = handler
        self._clock = clock
        self._sample_rate = sample_rate
        self._host = host
        self._requested_port = port
        self._uuid_timeout = uuid_timeout
        self._max_calls = max_calls
        self._server: asyncio.Server | None = None
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._handshakes: set[asyncio.Task[None]] = set()
        self._connections: dict[uuid.UUID, AudioSocketConnection] = {}

    @property
    def port(self) -> int:
        """The port actually bound (useful with ``port=0``)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def host(self) -> str:
        """The address actually bound."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not started")
        host: str = self._server.sockets[0].getsockname()[0]
        return host

    @property
    def active_calls(self) -> int:
        """Connections currently served, including those still waiting for their UUID."""
        return len(self._tasks)

    async def start(self) -> None:
        """Bind and start accepting calls."""
        if self._server is not None:
            raise RuntimeError("the server is already started")
        self._server = await asyncio.start_server(self._accept, self._host, self._requested_port)
        logger.info("AudioSocket server listening on %s:%d", self._host, self.port)

    async def close(self, *, grace_s: float = 2.0) -> None:
        """Stop listening, end every call and wait for the handlers.

        Handlers get ``grace_s`` seconds to return once their connection is closed; after that
        they are cancelled.
        """
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task in self._handshakes:
            task.cancel()
        await asyncio.gather(*(conn.hang_up() for conn in list(self._connections.values())))
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace_s)
            for task in pending:
                logger.warning("call handler still running %.1fs after close; cancelling", grace_s)
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback, so the task is ours to track, log and cancel - not asyncio's.
        if self._closing or len(self._tasks) >= self._max_calls:
            logger.warning(
                "refusing AudioSocket connection from %s: %s",
                _describe_peer(writer),
                "shutting down" if self._closing else f"{self._max_calls} calls already active",
            )
            writer.transport.abort()
            return
        _set_nodelay(writer)
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        protocol = AudioSocketProtocol(AudioSocketRole.SERVER)
        task = asyncio.current_task()
        assert task is not None
        self._handshakes.add(task)
        try:
            call_id = await self._read_call_id(reader, writer, protocol)
        except asyncio.CancelledError:
            writer.transport.abort()  # the server is closing: no call to end politely yet
            raise
        finally:
            self._handshakes.discard(task)
        if call_id is None:
            await _close_writer(writer)
            return
        if call_id in self._connections:
            # Asterisk connects once per call; a second peer naming a live call is someone
            # else trying to listen in or talk over it.
            logger.warning(
                "refusing a second connection for call %s from %s: the call is connected",
                call_id,
                _describe_peer(writer),
            )
            await _close_writer(writer)
            return
        conn = AudioSocketConnection(
            call_id, reader, writer, protocol, self._clock, self._sample_rate
        )
        self._connections[call_id] = conn
        logger.info("call %s from %s started", call_id, conn.remote)
        try:
            await self._handler(conn)
        except Exception:
            # A failing call must not take the server or other calls with it (DESIGN.md practice 2).
            logger.exception("call %s: handler failed; ending this call", call_id)
        finally:
            del self._connections[call_id]
            await conn.hang_up()
            logger.info("call %s ended", call_id)

    async def _read_call_id(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: AudioSocketProtocol,
    ) -> uuid.UUID | None:
        """Read up to the UUID message; bytes after it stay buffered in ``protocol``."""
        remote = _describe_peer(writer)
        try:
            async with asyncio.timeout(self._uuid_timeout):
                while True:
                    event = protocol.next_event()
                    if isinstance(event, CallStarted):
                        return event.call_id
                    if isinstance(event, HangUp):
                        logger.info("%s closed the connection before its UUID", remote)
                        return None
                    protocol.receive_data(await reader.read(READ_CHUNK))
        except TimeoutError:
            logger.warning(
                "no UUID from %s within %.1fs; dropping the connection", remote, self._uuid_timeout
            )
        except ProtocolError as exc:
            logger.warning("bad first message from %s: %s; dropping the connection", remote, exc)
        except OSError as exc:
            logger.info("connection from %s lost before its UUID: %r", remote, exc)
        return None
