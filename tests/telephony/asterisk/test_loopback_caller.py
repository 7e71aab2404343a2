"""The loopback caller against small agents over real TCP (what ``callagent call --simulate`` runs).

Most tests run on a :class:`FakeClock` advanced 20 ms at a time, so timelines are deterministic to
the tick and a 2-second call takes milliseconds; one test runs on the real clock.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
import uuid
import wave
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from callagent.telephony.asterisk import loopback_caller
from callagent.telephony.asterisk.audiosocket import (
    Audio,
    AudioSocketMessage,
    AudioSocketProtocol,
    AudioSocketRole,
    CallStarted,
    HangUp,
)
from callagent.telephony.asterisk.loopback_caller import (
    Interruption,
    LoopbackCallResult,
    rms,
    simulate_call,
)
from callagent.telephony.asterisk.server import AudioSocketConnection, AudioSocketServer
from callagent.voice_pipeline.clock import Clock, FakeClock, MonotonicClock
from callagent.voice_pipeline.frames import AudioFrame, DtmfFrame, HangUpFrame, frame_bytes

pytestmark = pytest.mark.timeout(10)

T = TypeVar("T")
TICK = 0.02
CALLER_LEVEL = 5000
GREETING_LEVEL = 3000
REPLY_LEVEL = 2000


def tone(frames: int, level: int, sample_rate: int = 8000) -> bytes:
    """A loud square wave, ``frames`` x 20 ms long."""
    return struct.pack("<hh", level, -level) * (frames * frame_bytes(sample_rate) // 4)


def frames_of(pcm: bytes, sample_rate: int) -> list[bytes]:
    size = frame_bytes(sample_rate)
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def segments(pcm: bytes, sample_rate: int) -> list[tuple[int, int, int]]:
    """(first tick, end tick, level) of each run of loud frames."""
    runs: list[tuple[int, int, int]] = []
    start: int | None = None
    frames = frames_of(pcm, sample_rate)
    for i, frame in enumerate([*frames, b""]):
        loud = rms(frame) > 1000
        if loud and start is None:
            start = i
        elif not loud and start is not None:
            level = struct.unpack_from("<h", frames[start])[0]
            runs.append((start, i, level))
            start = None
    return runs


class ToyAgent:
    """A tiny agent paced on ``clock``: greets, answers each caller turn with a tone.

    It sends one frame per 20 ms tick (silence when idle), as the voice pipeline will, and finds
    the end of a caller turn after ``end_of_turn_frames`` quiet frames.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        greeting_frames: int = 10,
        reply_frames: int = 8,
        end_of_turn_frames: int = 5,
        hang_up_after_replies: int | None = None,
    ) -> None:
        self.clock = clock
        self.greeting_frames = greeting_frames
        self.reply_frames = reply_frames
        self.end_of_turn_frames = end_of_turn_frames
        self.hang_up_after_replies = hang_up_after_replies
        self.received = bytearray()
        self.arrivals: list[float] = []
        self.rates: set[int] = set()
        self.dtmf: list[str] = []
        self.dtmf_at: list[int] = []  # caller frames received when each key arrived
        self.call_ids: list[uuid.UUID] = []
        self.finished = asyncio.Event()

    async def __call__(self, conn: AudioSocketConnection) -> None:
        self.call_ids.append(conn.call_id)
        outbox: deque[bytes] = deque()
        hang_up_when_said = False
        heard_caller = asyncio.Event()

        async def speak() -> None:
            # Like a real pipeline, learn the call's rate from its first frame before speaking.
            await heard_caller.wait()
            rate = conn.sample_rate or 8000
            outbox.extend(frames_of(tone(self.greeting_frames, GREETING_LEVEL, rate), rate))
            start, tick = self.clock.now(), 0
            while not conn.closed:
                await self.clock.sleep_until(start + tick * TICK)
                tick += 1
                if outbox:
                    await conn.send_audio(outbox.popleft())
                elif hang_up_when_said:
                    await conn.hang_up()
                else:
                    await conn.send_audio(bytes(frame_bytes(rate)))

        speaker = asyncio.create_task(speak())
        try:
            talking, quiet, replies = False, 0, 0
            async for frame in conn.frames():
                if isinstance(frame, HangUpFrame):
                    break
                if isinstance(frame, DtmfFrame):
                    self.dtmf.append(frame.digit)
                    self.dtmf_at.append(len(self.received) // frame_bytes(conn.sample_rate or 8000))
                    continue
                assert isinstance(frame, AudioFrame)
                heard_caller.set()
                self.arrivals.append(self.clock.now())
                self.received += frame.pcm
                self.rates.add(frame.sample_rate)
                if rms(frame.pcm) > 1000:
                    talking, quiet = True, 0
                elif talking:
                    quiet += 1
                    if quiet == self.end_of_turn_frames:
                        talking, replies = False, replies + 1
                        rate = frame.sample_rate
                        outbox.extend(frames_of(tone(self.reply_frames, REPLY_LEVEL, rate), rate))
                        if replies == self.hang_up_after_replies:
                            hang_up_when_said = True
        finally:
            speaker.cancel()
            await asyncio.gather(speaker, return_exceptions=True)
            self.finished.set()


async def drive(clock: FakeClock, work: Awaitable[T]) -> T:
    """Run ``work`` while moving the fake clock on in 20 ms steps."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            await clock.advance(TICK)
        return task.result()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


async def run_call(
    handler: Callable[[AudioSocketConnection], Awaitable[None]],
    clock: FakeClock,
    utterances: list[bytes | str | Interruption],
    **kwargs: object,
) -> LoopbackCallResult:
    # The server is set up for the rate the caller (playing Asterisk's dialplan) uses.
    rate = int(kwargs.get("sample_rate", 8000))  # type: ignore[call-overload]
    async with AudioSocketServer(handler, port=0, clock=clock, sample_rate=rate) as server:
        return await drive(
            clock,
            simulate_call(
                "127.0.0.1",
                server.port,
                utterances,
                clock=clock,
                **kwargs,  # type: ignore[arg-type]
            ),
        )


async def test_polite_caller_waits_for_agent_and_timelines_align(clock: FakeClock) -> None:
    agent = ToyAgent(clock)
    call_id = uuid.uuid4()
    result = await run_call(
        agent,
        clock,
        [tone(10, CALLER_LEVEL), tone(10, CALLER_LEVEL)],
        call_id=call_id,
        pause_after_agent_s=0.2,
        final_wait_s=0.3,
        max_wait_for_agent_s=5.0,
    )
    assert result.call_id == call_id
    assert agent.call_ids == [call_id]
    assert result.hung_up_by == "caller"
    assert result.error is None
    assert len(result.caller_pcm) == len(result.agent_pcm)
    assert len(result.caller_pcm) % 320 == 0

    caller = segments(result.caller_pcm, 8000)
    agent_said = segments(result.agent_pcm, 8000)
    assert [level for *_, level in caller] == [CALLER_LEVEL, CALLER_LEVEL]
    assert [level for *_, level in agent_said] == [GREETING_LEVEL, REPLY_LEVEL, REPLY_LEVEL]
    (g0, g1, _), (r0, r1, _), (s0, s1, _) = agent_said
    (c0, c1, _), (d0, d1, _) = caller
    assert g0 <= 2, "the agent greets as soon as the call starts"
    assert (g1 - g0, c1 - c0, d1 - d0, r1 - r0) == (10, 10, 10, 8)
    # The caller speaks exactly pause_after_agent_s (10 ticks) after the agent went quiet...
    assert c0 - g1 == 10
    assert d0 - r1 == 10
    # ...and the agent's answers sit where they were heard: the 5th quiet frame (tick c1 + 4)
    # ends the turn, and the answer goes out on that tick or within two more.
    assert 4 <= r0 - c1 <= 6
    assert 4 <= s0 - d1 <= 6
    # The caller hangs up final_wait_s (15 ticks) after the last answer.
    assert len(result.caller_pcm) // 320 - s1 in (15, 16)
    assert result.duration_s == pytest.approx(len(result.caller_pcm) / 16000, abs=0.03)
    assert result.agent_max_lead_s <= 0.02

    # The server got exactly what the result says the caller said, one frame every 20 ms.
    await asyncio.wait_for(agent.finished.wait(), 2)
    assert bytes(agent.received).rstrip(b"\0") == result.caller_pcm.rstrip(b"\0")
    gaps = {round(b - a, 6) for a, b in zip(agent.arrivals, agent.arrivals[1:], strict=False)}
    assert gaps == {TICK}


async def test_interrupting_caller_talks_over_the_agent(clock: FakeClock) -> None:
    agent = ToyAgent(clock, greeting_frames=50)  # a one-second greeting
    result = await run_call(
        agent,
        clock,
        [Interruption(tone(10, CALLER_LEVEL), after_agent_speech_s=0.4)],
        final_wait_s=0.2,
        max_wait_for_agent_s=5.0,
    )
    (g0, g1, _), *_ = segments(result.agent_pcm, 8000)
    (c0, _, _), *_ = segments(result.caller_pcm, 8000)
    # The caller cuts in 0.4 s (20 ticks) into the greeting, while the agent still talks.
    assert c0 - g0 in (20, 21)
    assert c0 < g1


async def test_caller_goes_on_when_agent_stays_silent(clock: FakeClock) -> None:
    agent = ToyAgent(clock, greeting_frames=0)
    result = await run_call(
        agent,
        clock,
        [tone(5, CALLER_LEVEL)],
        pause_after_agent_s=0.2,
        max_wait_for_agent_s=0.4,
        final_wait_s=0.2,
    )
    caller = segments(result.caller_pcm, 8000)
    assert [(start, end) for start, end, _ in caller] == [(20, 25)]
    reply = segments(result.agent_pcm, 8000)
    assert len(reply) == 1
    assert 4 <= reply[0][0] - 25 <= 6
    assert result.hung_up_by == "caller"


async def test_agent_hang_up_ends_the_call(clock: FakeClock) -> None:
    agent = ToyAgent(clock, hang_up_after_replies=1)
    result = await run_call(
        agent,
        clock,
        [tone(5, CALLER_LEVEL), tone(5, CALLER_LEVEL), tone(5, CALLER_LEVEL)],
        pause_after_agent_s=0.2,
        final_wait_s=0.2,
    )
    assert result.hung_up_by == "agent"
    assert result.error is None
    assert len(segments(result.caller_pcm, 8000)) == 1
    assert [level for *_, level in segments(result.agent_pcm, 8000)] == [
        GREETING_LEVEL,
        REPLY_LEVEL,
    ]


async def test_dtmf_keys_are_sent_at_release(clock: FakeClock) -> None:
    agent = ToyAgent(clock, greeting_frames=3)
    result = await run_call(
        agent,
        clock,
        ["12#", tone(3, CALLER_LEVEL)],
        pause_after_agent_s=0.1,
        max_wait_for_agent_s=0.5,
        final_wait_s=0.1,
    )
    await asyncio.wait_for(agent.finished.wait(), 2)
    assert agent.dtmf == ["1", "2", "#"]
    # Each key is reported at its release, 100 ms after it was pressed, 100 ms apart; the audio
    # stream goes on unbroken under the key presses.
    greeting_start = segments(result.agent_pcm, 8000)[0][0]
    first = agent.dtmf_at[0]
    assert first == greeting_start + 3 + 5 + 5  # greeting, pause, then the 5 ticks of the key
    assert agent.dtmf_at == [first, first + 10, first + 20]
    assert result.hung_up_by == "caller"
    # Keys are no speech: the caller waits max_wait_for_agent_s (25 ticks) after the last gap.
    assert [s for s, _, _ in segments(result.caller_pcm, 8000)] == [first + 20 + 5 + 25]


async def test_wideband_call(clock: FakeClock) -> None:
    agent = ToyAgent(clock, greeting_frames=4)
    result = await run_call(
        agent,
        clock,
        [tone(4, CALLER_LEVEL, 16_000)],
        sample_rate=16_000,
        pause_after_agent_s=0.1,
        final_wait_s=0.1,
    )
    assert agent.rates == {16_000}
    assert result.sample_rate == 16_000
    assert len(result.caller_pcm) % 640 == 0
    assert [level for *_, level in segments(result.agent_pcm, 16_000)] == [
        GREETING_LEVEL,
        REPLY_LEVEL,
    ]
    assert [end - start for start, end, _ in segments(result.caller_pcm, 16_000)] == [4]


async def test_unpaced_agent_is_laid_end_to_end_and_reported(clock: FakeClock) -> None:
    async def blurter(conn: AudioSocketConnection) -> None:
        greeting = tone(10, GREETING_LEVEL)
        for frame in frames_of(greeting, 8000):  # all at once: a pacing bug
            await conn.send_audio(frame)
        async for _ in conn.frames():
            pass

    result = await run_call(blurter, clock, [], final_wait_s=0.1)
    assert [(end - start) for start, end, _ in segments(result.agent_pcm, 8000)] == [10]
    assert result.agent_max_lead_s == pytest.approx(9 * TICK)


async def test_the_arrival_of_every_agent_frame_shows_how_it_was_paced(clock: FakeClock) -> None:
    async def blurter(conn: AudioSocketConnection) -> None:
        for frame in frames_of(tone(10, GREETING_LEVEL), 8000):  # all at once: a pacing bug
            await conn.send_audio(frame)
        async for _ in conn.frames():
            pass

    burst = await run_call(blurter, clock, [], final_wait_s=0.1)
    assert len(burst.agent_arrivals_s) == 10
    assert len(set(burst.agent_arrivals_s)) == 1  # ten frames on the wire in one instant

    paced = await run_call(ToyAgent(clock, greeting_frames=10), clock, [], final_wait_s=0.1)
    arrivals = paced.agent_arrivals_s
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert len(paced.agent_arrivals_s) >= 10
    assert gaps == pytest.approx([TICK] * len(gaps))


async def test_real_clock() -> None:
    real = MonotonicClock()
    agent = ToyAgent(real, greeting_frames=5, reply_frames=5, end_of_turn_frames=3)
    async with AudioSocketServer(agent, port=0, clock=real) as server:
        result = await simulate_call(
            "127.0.0.1",
            server.port,
            [tone(5, CALLER_LEVEL)],
            clock=real,
            pause_after_agent_s=0.1,
            final_wait_s=0.1,
            max_wait_for_agent_s=2.0,
        )
    assert result.hung_up_by == "caller"
    assert 0.4 < result.duration_s < 2.0
    assert [level for *_, level in segments(result.agent_pcm, 8000)] == [
        GREETING_LEVEL,
        REPLY_LEVEL,
    ]
    assert len(segments(result.caller_pcm, 8000)) == 1


# --- a raw server, to see exactly what the loopback caller sends and how it reacts -------------


class RawServer:
    """Accepts one connection, records the bytes, optionally answers with fixed bytes."""

    def __init__(self, answer: bytes = b"", *, close_after_answer: bool = False) -> None:
        self.answer = answer
        self.close_after_answer = close_after_answer
        self.data = bytearray()
        self.done = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self.serve(reader, writer))
        self.tasks.add(task)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            self.data += await reader.readexactly(19)  # the UUID message
            if self.answer:
                writer.write(self.answer)
                await writer.drain()
                if self.close_after_answer:
                    return
            while chunk := await reader.read(4096):
                self.data += chunk
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self.done.set()


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[..., Awaitable[tuple[RawServer, int]]]]:
    servers: list[asyncio.Server] = []
    raws: list[RawServer] = []

    async def start(answer: bytes = b"", **kwargs: bool) -> tuple[RawServer, int]:
        raw = RawServer(answer, **kwargs)
        server = await asyncio.start_server(raw.accept, "127.0.0.1", 0)
        servers.append(server)
        raws.append(raw)
        return raw, server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()
    for raw in raws:
        await asyncio.gather(*raw.tasks, return_exceptions=True)


async def test_wire_is_uuid_then_unbroken_frames_and_no_hang_up_message(
    clock: FakeClock, raw_server: Callable[..., Awaitable[tuple[RawServer, int]]]
) -> None:
    raw, port = await raw_server()
    call_id = uuid.uuid4()
    result = await drive(
        clock,
        simulate_call(
            "127.0.0.1",
            port,
            [tone(3, CALLER_LEVEL)],
            call_id=call_id,
            clock=clock,
            max_wait_for_agent_s=0.2,
            final_wait_s=0.1,
        ),
    )
    await asyncio.wait_for(raw.done.wait(), 2)
    protocol = AudioSocketProtocol(AudioSocketRole.SERVER)
    protocol.receive_data(bytes(raw.data))
    events: list[AudioSocketMessage] = []
    while (event := protocol.next_event()) is not None:
        events.append(event)
    # Every message is the UUID or a full 20 ms frame: no 0x00, Asterisk hangs up by closing.
    assert events[0] == CallStarted(call_id)
    assert all(isinstance(e, Audio) and len(e.pcm) == 320 for e in events[1:])
    assert b"".join(e.pcm for e in events[1:] if isinstance(e, Audio)) == result.caller_pcm
    protocol.receive_data(b"")
    assert protocol.next_event() == HangUp()
    # The agent never spoke: the caller waited max_wait_for_agent_s, spoke, waited again.
    assert [(s, e) for s, e, _ in segments(result.caller_pcm, 8000)] == [(10, 13)]
    assert len(result.caller_pcm) // 320 == 23
    assert result.hung_up_by == "caller"
    assert result.agent_pcm == bytes(len(result.caller_pcm))


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        pytest.param(b"\x03\x00\x011", "0x03 (DTMF)", id="dtmf"),
        pytest.param(b"\x01\x00\x10" + bytes(16), "0x01 (UUID)", id="uuid"),
        pytest.param(b"\xff\x00\x01\x01", "0xff (ERROR)", id="error"),
        pytest.param(b"\x42\x00\x00", "unknown message kind 0x42", id="garbage"),
        pytest.param(b"\x12\x02\x80" + bytes(640), "16000 Hz audio on a 8000 Hz", id="rate"),
    ],
)
async def test_asterisk_hangs_up_on_bad_server_messages(
    clock: FakeClock,
    raw_server: Callable[..., Awaitable[tuple[RawServer, int]]],
    caplog: pytest.LogCaptureFixture,
    answer: bytes,
    message: str,
) -> None:
    raw, port = await raw_server(answer)
    result = await drive(
        clock, simulate_call("127.0.0.1", port, [tone(3, CALLER_LEVEL)], clock=clock)
    )
    assert result.hung_up_by == "agent"
    assert result.error is not None
    assert message in result.error
    assert any(
        r.name == loopback_caller.__name__ and r.levelno == logging.ERROR for r in caplog.records
    )
    # Asterisk closed the call: the server sees the end of the connection.
    await asyncio.wait_for(raw.done.wait(), 2)


@pytest.mark.parametrize(
    "answer", [pytest.param(b"\x00\x00\x00", id="hang-up"), pytest.param(b"", id="close")]
)
async def test_server_hang_up_or_close_is_agent_hang_up(
    clock: FakeClock, raw_server: Callable[..., Awaitable[tuple[RawServer, int]]], answer: bytes
) -> None:
    _, port = await raw_server(answer or b"\x10\x00\x02\x00\x00", close_after_answer=True)
    result = await drive(clock, simulate_call("127.0.0.1", port, [tone(3, 5000)], clock=clock))
    assert result.hung_up_by == "agent"
    assert result.error is None


async def test_write_wav(tmp_path: Path) -> None:
    result = LoopbackCallResult(
        call_id=uuid.uuid4(),
        sample_rate=8000,
        caller_pcm=struct.pack("<2h", 1, 2),
        agent_pcm=struct.pack("<2h", -1, -2),
        hung_up_by="caller",
        duration_s=0.0,
    )
    assert result.stereo_pcm() == struct.pack("<4h", 1, -1, 2, -2)
    path = tmp_path / "call.wav"
    result.write_wav(path)
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        assert wav.readframes(2) == struct.pack("<4h", 1, -1, 2, -2)


async def test_unreachable_server_raises() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(ConnectionRefusedError):
        await simulate_call("127.0.0.1", port, [])


@pytest.mark.parametrize(
    ("kwargs", "utterances"),
    [
        ({"sample_rate": 11_025}, []),
        ({}, [b"\x00"]),
        ({}, ["12x"]),
        ({}, [""]),
    ],
)
async def test_bad_arguments(kwargs: dict[str, int], utterances: list[bytes | str]) -> None:
    with pytest.raises(ValueError, match=r"Hz|DTMF|even"):
        await simulate_call("127.0.0.1", 9, utterances, **kwargs)  # type: ignore[arg-type]
