"""The AudioSocket server over real TCP on 127.0.0.1 (DESIGN.md practices 2 and 3)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import struct
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest

from callagent.telephony.asterisk import server as server_module
from callagent.telephony.asterisk.audiosocket import (
    Audio,
    AudioSocketMessage,
    AudioSocketProtocol,
    AudioSocketRole,
    CallStarted,
    Dtmf,
    ErrorMessage,
    HangUp,
    ProtocolError,
)
from callagent.telephony.asterisk.server import AudioSocketConnection, AudioSocketServer
from callagent.voice_pipeline.clock import FakeClock
from callagent.voice_pipeline.frames import AudioFrame, DtmfFrame, HangUpFrame, InboundFrame

pytestmark = pytest.mark.timeout(10)

LOGGER = server_module.__name__
FRAME_8K = b"\x01\x02" * 160
FRAME_16K = b"\x03\x04" * 320
T = 12.5
CLOCK = FakeClock(T)
"""Never advanced: every frame a connection yields carries ``T``, so a frame stamped on any
other clock shows."""


class Client:
    """A bare AudioSocket client: sends raw bytes, parses what the server sends like Asterisk."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = AudioSocketProtocol(AudioSocketRole.ASTERISK)
        self.call_id = uuid.uuid4()

    @classmethod
    async def connect(cls, port: int, *, send_uuid: bool = True) -> Client:
        client = cls(*await asyncio.open_connection("127.0.0.1", port))
        if send_uuid:
            await client.send(client.protocol.send(CallStarted(client.call_id)))
        return client

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_event(self, event: AudioSocketMessage) -> None:
        await self.send(self.protocol.send(event))

    async def read_event(self, within: float = 2.0) -> AudioSocketMessage:
        """Next message from the server; ``HangUp`` also for end of file or a reset."""
        async with asyncio.timeout(within):
            while (event := self.protocol.next_event()) is None:
                try:
                    data = await self.reader.read(4096)
                except ConnectionResetError:
                    data = b""
                self.protocol.receive_data(data)
        return event

    async def read_until_hang_up(self, within: float = 2.0) -> list[AudioSocketMessage]:
        events: list[AudioSocketMessage] = []
        while not isinstance(event := await self.read_event(within), HangUp):
            events.append(event)
        return events

    async def closed_by_server(self, within: float = 2.0) -> bool:
        """True if the server closed the connection (possibly after a 0x00)."""
        async with asyncio.timeout(within):
            while True:
                try:
                    data = await self.reader.read(4096)
                except ConnectionResetError:
                    return True
                if not data:
                    return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    async def reset(self) -> None:
        """Close with a TCP reset, as a crashed peer would."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()
        await asyncio.sleep(0)


class EchoAgent:
    """Records each call's frames and echoes audio back; can be told to fail on a call."""

    def __init__(self) -> None:
        self.frames: dict[uuid.UUID, list[InboundFrame]] = defaultdict(list)
        self.connections: dict[uuid.UUID, AudioSocketConnection] = {}
        self.finished: dict[uuid.UUID, asyncio.Event] = defaultdict(asyncio.Event)
        self.started: dict[uuid.UUID, asyncio.Event] = defaultdict(asyncio.Event)
        self.fail_on: set[uuid.UUID] = set()

    async def __call__(self, conn: AudioSocketConnection) -> None:
        self.connections[conn.call_id] = conn
        self.started[conn.call_id].set()
        try:
            async for frame in conn.frames():
                self.frames[conn.call_id].append(frame)
                if conn.call_id in self.fail_on:
                    raise RuntimeError("handler bug")
                if isinstance(frame, AudioFrame):
                    await conn.send_audio(frame.pcm)
        finally:
            self.finished[conn.call_id].set()

    async def wait_finished(self, call_id: uuid.UUID, within: float = 2.0) -> None:
        async with asyncio.timeout(within):
            await self.finished[call_id].wait()


@pytest.fixture
def agent() -> EchoAgent:
    return EchoAgent()


@pytest.fixture
async def server(agent: EchoAgent) -> AsyncIterator[AudioSocketServer]:
    async with AudioSocketServer(agent, port=0, clock=CLOCK, uuid_timeout=0.3) as srv:
        yield srv


async def test_binds_a_free_port(server: AudioSocketServer) -> None:
    assert server.port > 0
    assert server.port != 9092


async def test_call_frames_and_echo(
    server: AudioSocketServer, agent: EchoAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    client = await Client.connect(server.port)
    await client.send_event(Audio(FRAME_8K, 8_000))
    assert await client.read_event() == Audio(FRAME_8K, 8_000)
    await client.send_event(Dtmf("7"))
    await client.send_event(ErrorMessage(b"\x02"))
    await client.send_event(Audio(b"\x05\x06", 8_000))  # a short last frame
    assert await client.read_event() == Audio(b"\x05\x06", 8_000)
    # Asterisk hangs up by closing the socket, never with 0x00 (DESIGN.md "Contracts").
    await client.close()
    await agent.wait_finished(client.call_id)
    # Asterisk's error message is logged by the connection, not handed to the pipeline.
    assert agent.frames[client.call_id] == [
        AudioFrame(FRAME_8K, 8_000, T),
        DtmfFrame("7", T),
        AudioFrame(b"\x05\x06", 8_000, T),
        HangUpFrame(T),
    ]
    assert any("Asterisk reported error b'\\x02'" in r.getMessage() for r in caplog.records)
    conn = agent.connections[client.call_id]
    assert conn.closed
    assert conn.remote.startswith("127.0.0.1:")


async def test_uuid_and_audio_in_one_read(server: AudioSocketServer, agent: EchoAgent) -> None:
    client = await Client.connect(server.port, send_uuid=False)
    proto = client.protocol
    await client.send(proto.send(CallStarted(client.call_id)) + proto.send(Audio(FRAME_8K, 8_000)))
    assert await client.read_event() == Audio(FRAME_8K, 8_000)
    await client.close()
    await agent.wait_finished(client.call_id)


async def test_many_concurrent_calls(server: AudioSocketServer, agent: EchoAgent) -> None:
    clients = await asyncio.gather(*(Client.connect(server.port) for _ in range(20)))

    async def talk(n: int, client: Client) -> None:
        for i in range(5):
            frame = bytes([n, i]) * 160
            await client.send_event(Audio(frame, 8_000))
            assert await client.read_event() == Audio(frame, 8_000)
            await asyncio.sleep(0.001)
        await client.close()

    await asyncio.gather(*(talk(n, c) for n, c in enumerate(clients)))
    for n, client in enumerate(clients):
        await agent.wait_finished(client.call_id)
        assert agent.frames[client.call_id] == [
            *(AudioFrame(bytes([n, i]) * 160, 8_000, T) for i in range(5)),
            HangUpFrame(T),
        ]


BAD_MID_CALL = [
    pytest.param(b"\x42\x00\x00", "unknown message kind 0x42", id="unknown-kind"),
    pytest.param(b"\x10\xff\xff", "exceeds", id="oversize"),
    pytest.param(b"\xde\xad\xbe\xef" * 8, "unknown message kind 0xde", id="garbage"),
    pytest.param(b"\x01\x00\x10" + bytes(16), "second UUID", id="second-uuid"),
    pytest.param(b"\x10\x00\x03abc", "3 bytes", id="odd-audio"),
    pytest.param(b"\x03\x00\x01z", "non-digit", id="non-digit-dtmf"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_MID_CALL)
async def test_bad_input_ends_only_that_call(
    server: AudioSocketServer,
    agent: EchoAgent,
    caplog: pytest.LogCaptureFixture,
    bad: bytes,
    message: str,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    good, evil = await Client.connect(server.port), await Client.connect(server.port)
    for client in (good, evil):
        await client.send_event(Audio(FRAME_8K, 8_000))
        assert await client.read_event() == Audio(FRAME_8K, 8_000)

    await evil.send(bad)
    assert await evil.closed_by_server()
    await agent.wait_finished(evil.call_id)
    assert agent.connections[evil.call_id].closed
    assert any(
        r.name == LOGGER and r.levelno == logging.WARNING and message in r.getMessage()
        for r in caplog.records
    )

    # The other call goes on, and new calls are still answered.
    await good.send_event(Audio(FRAME_8K[::-1], 8_000))
    assert await good.read_event() == Audio(FRAME_8K[::-1], 8_000)
    late = await Client.connect(server.port)
    await late.send_event(Audio(FRAME_8K, 8_000))
    assert await late.read_event() == Audio(FRAME_8K, 8_000)
    for client in (good, late, evil):
        await client.close()


BAD_FIRST = [
    pytest.param(b"\x10\x01\x40" + FRAME_8K, "before the UUID", id="audio-before-uuid"),
    pytest.param(b"\x01\x00\x04abcd", "UUID message of 4 bytes", id="short-uuid"),
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", "unknown message kind 0x47", id="http"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_FIRST)
async def test_bad_first_message_drops_connection(
    server: AudioSocketServer,
    agent: EchoAgent,
    caplog: pytest.LogCaptureFixture,
    bad: bytes,
    message: str,
) -> None:
    client = await Client.connect(server.port, send_uuid=False)
    await client.send(bad)
    assert await client.closed_by_server()
    assert not agent.connections
    assert any(message in r.getMessage() for r in caplog.records if r.name == LOGGER)
    await client.close()


async def test_uuid_timeout_drops_connection(
    server: AudioSocketServer, agent: EchoAgent, caplog: pytest.LogCaptureFixture
) -> None:
    silent = await Client.connect(server.port, send_uuid=False)
    partial = await Client.connect(server.port, send_uuid=False)
    await partial.send(b"\x01\x00\x10abc")  # a UUID that never completes
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await silent.closed_by_server()
    assert await partial.closed_by_server()
    assert 0.25 < loop.time() - started < 1.5
    assert not agent.connections
    assert sum("no UUID" in r.getMessage() for r in caplog.records) == 2
    assert server.active_calls == 0
    for client in (silent, partial):
        await client.close()


async def test_a_second_connection_for_a_connected_call_is_refused(
    server: AudioSocketServer, agent: EchoAgent, caplog: pytest.LogCaptureFixture
) -> None:
    """Only one peer speaks for a call: someone who learnt a live call's id cannot join it."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    first = await Client.connect(server.port)
    await first.send_event(Audio(FRAME_8K, 8_000))
    assert await first.read_event() == Audio(FRAME_8K, 8_000)
    intruder = Client(*await asyncio.open_connection("127.0.0.1", server.port))
    intruder.call_id = first.call_id
    await intruder.send(intruder.protocol.send(CallStarted(first.call_id)))
    await intruder.send_event(Audio(FRAME_8K[::-1], 8_000))
    assert await intruder.closed_by_server()
    assert any("second connection" in r.getMessage() for r in caplog.records)
    # The call itself goes on, its frames untouched by the intruder's.
    await first.send_event(Audio(FRAME_8K, 8_000))
    assert await first.read_event() == Audio(FRAME_8K, 8_000)
    assert [f.pcm for f in agent.frames[first.call_id] if isinstance(f, AudioFrame)] == [
        FRAME_8K,
        FRAME_8K,
    ]
    await first.close()
    await agent.wait_finished(first.call_id)
    # Once the call is over its id may connect again (e.g. Asterisk retrying after a drop).
    again = Client(*await asyncio.open_connection("127.0.0.1", server.port))
    await again.send(again.protocol.send(CallStarted(first.call_id)))
    await again.send_event(Audio(FRAME_8K, 8_000))
    assert await again.read_event() == Audio(FRAME_8K, 8_000)
    for client in (intruder, again):
        await client.close()


async def test_accepted_sockets_send_each_frame_at_once(
    agent: EchoAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TCP_NODELAY on every accepted socket - set by the server itself, not left to asyncio's
    default (switched off here to show it)."""
    monkeypatch.setattr(asyncio.base_events, "_set_nodelay", lambda sock: None)
    options: list[int] = []

    async def handler(conn: AudioSocketConnection) -> None:
        sock = conn._writer.get_extra_info("socket")  # the accepted socket, for this check only
        options.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        await agent(conn)

    async with AudioSocketServer(handler, port=0, clock=CLOCK) as server:
        client = await Client.connect(server.port)
        await client.send_event(Audio(FRAME_8K, 8_000))
        assert await client.read_event() == Audio(FRAME_8K, 8_000)
        await client.close()
    assert options == [1]


async def test_close_before_uuid_is_quietly_dropped(
    server: AudioSocketServer, agent: EchoAgent
) -> None:
    client = await Client.connect(server.port, send_uuid=False)
    await client.close()
    for _ in range(50):
        if server.active_calls == 0:
            break
        await asyncio.sleep(0.01)
    assert server.active_calls == 0
    assert not agent.connections


async def test_connection_reset_ends_call(
    server: AudioSocketServer, agent: EchoAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    other = await Client.connect(server.port)
    client = await Client.connect(server.port)
    await client.send_event(Audio(FRAME_8K, 8_000))
    assert await client.read_event() == Audio(FRAME_8K, 8_000)
    # Several echoes in flight towards a socket that resets.
    await client.send(client.protocol.send(Audio(FRAME_8K, 8_000)) * 3)
    await client.reset()
    await agent.wait_finished(client.call_id)
    conn = agent.connections[client.call_id]
    assert conn.closed
    await conn.send_audio(FRAME_8K)  # no exception once closed
    await conn.hang_up()
    await other.send_event(Audio(FRAME_8K, 8_000))
    assert await other.read_event() == Audio(FRAME_8K, 8_000)
    await other.close()


async def test_eof_mid_message_ends_call(
    server: AudioSocketServer, agent: EchoAgent, caplog: pytest.LogCaptureFixture
) -> None:
    client = await Client.connect(server.port)
    await client.send(b"\x10\x01\x40" + bytes(100))
    await client.close()
    await agent.wait_finished(client.call_id)
    assert any("100 of 320 payload bytes" in r.getMessage() for r in caplog.records)


async def test_handler_exception_ends_only_that_call(
    server: AudioSocketServer, agent: EchoAgent, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = await Client.connect(server.port), await Client.connect(server.port)
    agent.fail_on.add(bad.call_id)
    await bad.send_event(Audio(FRAME_8K, 8_000))
    # The failed call is hung up: 0x00, then the socket closes.
    assert await bad.read_until_hang_up() == []
    assert await bad.closed_by_server()
    failures = [r for r in caplog.records if r.name == LOGGER and r.exc_info]
    assert len(failures) == 1
    assert str(bad.call_id) in failures[0].getMessage()
    await good.send_event(Audio(FRAME_8K, 8_000))
    assert await good.read_event() == Audio(FRAME_8K, 8_000)
    await good.close()
    await bad.close()


async def test_the_call_rate_is_known_before_any_audio_arrives() -> None:
    """Asterisk sends nothing until the caller's RTP arrives (DESIGN.md "Known traps"): the
    agent speaks at the rate the dialplan fixes without waiting for the first frame."""
    rates: list[int] = []

    async def handler(conn: AudioSocketConnection) -> None:
        rates.append(conn.sample_rate)
        await conn.send_audio(FRAME_16K)  # nothing received yet
        async for frame in conn.frames():
            if isinstance(frame, HangUpFrame):
                break
            assert isinstance(frame, AudioFrame)
            rates.append(frame.sample_rate)
            await conn.send_audio(frame.pcm)

    async with AudioSocketServer(handler, port=0, clock=CLOCK, sample_rate=16_000) as server:
        client = await Client.connect(server.port)
        assert await client.read_event() == Audio(FRAME_16K, 16_000)
        await client.send_event(Audio(FRAME_16K[::-1], 16_000))
        assert await client.read_event() == Audio(FRAME_16K[::-1], 16_000)
        await client.close()
    assert rates == [16_000, 16_000]


def _tone(rate: int, seconds: float, hz: float = 440.0) -> bytes:
    t = [i / rate for i in range(int(rate * seconds))]
    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * x))) for x in t)


async def test_audio_at_another_rate_than_the_dialplans_is_resampled_both_ways(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A dialplan that sends 8 kHz to a server set up for 16 kHz (rendered from other
    settings): the handler still gets the call's rate, the caller gets the rate it sends, and
    the mismatch is logged once."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    received: list[AudioFrame] = []

    async def handler(conn: AudioSocketConnection) -> None:
        async for frame in conn.frames():
            if isinstance(frame, HangUpFrame):
                break
            assert isinstance(frame, AudioFrame)
            received.append(frame)
            await conn.send_audio(frame.pcm)
        assert conn.wire_rate == 8_000

    tone = _tone(8_000, 1.0)
    async with AudioSocketServer(handler, port=0, clock=CLOCK, sample_rate=16_000) as server:
        client = await Client.connect(server.port)
        echoed: list[Audio] = []
        for start in range(0, len(tone), 320):
            await client.send_event(Audio(tone[start : start + 320], 8_000))
        with contextlib.suppress(TimeoutError):
            while True:
                event = await client.read_event(within=0.3)
                assert isinstance(event, Audio)
                echoed.append(event)
        await client.close()
    assert {f.sample_rate for f in received} == {16_000}
    # Twice the samples, minus what soxr's streaming filter still holds (measured: ~90 ms).
    assert 2 * len(tone) - 3200 <= sum(len(f.pcm) for f in received) <= 2 * len(tone)
    assert {e.sample_rate for e in echoed} == {8_000}
    # Through both directions' filters: at most ~0.2 s of 8 kHz audio still held.
    assert len(tone) - 3200 <= sum(len(e.pcm) for e in echoed) <= len(tone)
    warnings = [
        r for r in caplog.records if "8000 Hz audio on a call set up for 16000" in r.message
    ]
    assert len(warnings) == 1


async def test_handler_return_hangs_up() -> None:
    async def handler(conn: AudioSocketConnection) -> None:
        await conn.send_audio(FRAME_8K)

    async with AudioSocketServer(handler, port=0, clock=CLOCK) as server:
        client = await Client.connect(server.port)
        assert await client.read_until_hang_up() == [Audio(FRAME_8K, 8_000)]
        # 0x00 was a real message, not just the end of file.
        assert client.protocol.next_event() is None
        assert await client.closed_by_server()
        await client.close()


async def test_hang_up_is_idempotent_and_send_after_is_a_no_op() -> None:
    done = asyncio.Event()
    errors: list[BaseException] = []

    async def handler(conn: AudioSocketConnection) -> None:
        try:
            await conn.hang_up()
            assert conn.closed
            await conn.hang_up()
            await conn.send_audio(FRAME_8K)
            assert [f async for f in conn.frames()] == [HangUpFrame(T)]
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)
        finally:
            done.set()

    async with AudioSocketServer(handler, port=0, clock=CLOCK) as server:
        client = await Client.connect(server.port)
        assert await client.read_until_hang_up() == []
        await asyncio.wait_for(done.wait(), 2)
        await client.close()
    assert errors == []


async def test_send_audio_refuses_bad_pcm() -> None:
    errors: list[Exception] = []

    async def handler(conn: AudioSocketConnection) -> None:
        for pcm in (b"", b"\x00", bytes(20_000)):
            try:
                await conn.send_audio(pcm)
            except ValueError as exc:
                errors.append(exc)

    async with AudioSocketServer(handler, port=0, clock=CLOCK) as server:
        client = await Client.connect(server.port)
        assert await client.read_until_hang_up() == []
        await client.close()
    assert len(errors) == 3


async def test_frames_has_one_reader() -> None:
    errors: list[Exception] = []

    async def handler(conn: AudioSocketConnection) -> None:
        first = conn.frames()
        reading: asyncio.Task[InboundFrame] = asyncio.ensure_future(anext(first))
        await asyncio.sleep(0.01)
        try:
            async for _ in conn.frames():
                pass
        except RuntimeError as exc:
            errors.append(exc)
        await conn.hang_up()
        assert await reading == HangUpFrame(T)
        with pytest.raises(StopAsyncIteration):
            await anext(first)

    async with AudioSocketServer(handler, port=0, clock=CLOCK) as server:
        client = await Client.connect(server.port)
        await client.read_until_hang_up()
        await client.close()
    assert len(errors) == 1


async def test_max_calls_refuses_extra_connections(agent: EchoAgent) -> None:
    async with AudioSocketServer(agent, port=0, clock=CLOCK, max_calls=1) as server:
        first = await Client.connect(server.port)
        await first.send_event(Audio(FRAME_8K, 8_000))
        assert await first.read_event() == Audio(FRAME_8K, 8_000)
        second = await Client.connect(server.port)
        assert await second.closed_by_server()
        await first.close()
        await agent.wait_finished(first.call_id)
        for _ in range(50):
            if server.active_calls == 0:
                break
            await asyncio.sleep(0.01)
        third = await Client.connect(server.port)
        await third.send_event(Audio(FRAME_8K, 8_000))
        assert await third.read_event() == Audio(FRAME_8K, 8_000)
        await third.close()
        await second.close()


async def test_close_ends_calls_and_waits_for_handlers(agent: EchoAgent) -> None:
    stubborn_cancelled = asyncio.Event()
    stubborn_ids: set[uuid.UUID] = set()

    async def handler(conn: AudioSocketConnection) -> None:
        if conn.call_id in stubborn_ids:
            try:
                await asyncio.sleep(3600)  # ignores its connection closing
            finally:
                stubborn_cancelled.set()
        await agent(conn)

    server = AudioSocketServer(handler, port=0, clock=CLOCK)
    await server.start()
    port = server.port
    polite = await Client.connect(port)
    stubborn = await Client.connect(port, send_uuid=False)
    stubborn_ids.add(stubborn.call_id)
    await stubborn.send_event(CallStarted(stubborn.call_id))
    waiting = await Client.connect(port, send_uuid=False)
    await polite.send_event(Audio(FRAME_8K, 8_000))
    assert await polite.read_event() == Audio(FRAME_8K, 8_000)
    await asyncio.sleep(0.05)  # let the stubborn call reach its handler
    await server.close(grace_s=0.2)
    assert agent.finished[polite.call_id].is_set()
    assert stubborn_cancelled.is_set()
    assert server.active_calls == 0
    for client in (polite, stubborn, waiting):
        assert await client.closed_by_server()
        await client.close()
    with pytest.raises(ConnectionRefusedError):
        await Client.connect(port)


async def test_server_never_sends_non_audio() -> None:
    # The connection offers only audio and hang-up; the protocol under it refuses the rest,
    # because Asterisk hangs up on any other kind (seen on Asterisk 22).
    assert not hasattr(AudioSocketConnection, "send_dtmf")
    protocol = AudioSocketProtocol(AudioSocketRole.SERVER)
    for event in (Dtmf("1"), CallStarted(uuid.uuid4()), ErrorMessage(b"\x01")):
        with pytest.raises(ValueError, match="Asterisk hangs up"):
            protocol.send(event)
    client_side = AudioSocketProtocol(AudioSocketRole.ASTERISK)
    client_side.receive_data(b"\x03\x00\x011")
    with pytest.raises(ProtocolError, match="Asterisk accepts only audio and hang-up"):
        client_side.next_event()


async def test_connection_reset_while_reading(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    received: list[InboundFrame] = []
    finished = asyncio.Event()

    async def listener(conn: AudioSocketConnection) -> None:
        try:
            async for frame in conn.frames():
                received.append(frame)
        finally:
            finished.set()

    async with AudioSocketServer(listener, port=0, clock=CLOCK) as server:
        client = await Client.connect(server.port)
        await client.send_event(Audio(FRAME_8K, 8_000))
        await asyncio.sleep(0.05)
        await client.reset()
        await asyncio.wait_for(finished.wait(), 2)
    assert received == [AudioFrame(FRAME_8K, 8_000, T), HangUpFrame(T)]
    assert any("connection lost" in r.getMessage() for r in caplog.records)
