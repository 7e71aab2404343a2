"""The browser phone's wire format (callagent/telephony/browser/connection.py) on messages: the
hello, audio bounds, and a connection fed from a scripted socket - resampled with soxr to 20 ms
frames at 16 kHz without losing samples, a bad message ending the call with its close code."""

from __future__ import annotations

import asyncio
import json
import uuid

import numpy as np
import pytest

from callagent.telephony.browser.connection import (
    CALL_RATE,
    MAX_AUDIO_BYTES,
    BrowserConnection,
    Hello,
    WireError,
    check_audio,
    parse_hello,
)
from callagent.voice_pipeline.clock import MonotonicClock
from callagent.voice_pipeline.frames import AudioFrame, HangUpFrame, frame_bytes
from callagent.voice_pipeline.pipeline import TurnRecord

pytestmark = pytest.mark.timeout(10)


class ScriptedSocket:
    """Plays the page: hands out ``incoming`` in order, then reports the page's close."""

    def __init__(self, incoming: list[str | bytes]) -> None:
        self.incoming = list(incoming)
        self.sent: list[str | bytes] = []
        self.closed: tuple[int, str] | None = None

    async def receive(self) -> str | bytes | None:
        await asyncio.sleep(0)
        return self.incoming.pop(0) if self.incoming else None

    async def send(self, message: str | bytes) -> None:
        self.sent.append(message)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def test_the_hello_names_the_rate_and_the_token() -> None:
    text = json.dumps({"type": "hello", "rate": 48000, "csrf": "t"})
    assert parse_hello(text) == Hello(rate=48000, csrf="t")


@pytest.mark.parametrize(
    ("message", "code", "says"),
    [
        (None, 1000, "closed before"),
        (b"\0\0", 1003, "audio before the hello"),
        ("not json", 1003, "not JSON"),
        ("[1, 2]", 1003, '"type"'),
        (json.dumps({"type": "hangup"}), 1003, "expected a hello"),
        (json.dumps({"type": "hello", "rate": 12345, "csrf": "t"}), 1003, "rate must be"),
        (json.dumps({"type": "hello", "rate": True, "csrf": "t"}), 1003, "rate must be"),
        (json.dumps({"type": "hello", "rate": 48000}), 1008, "csrf"),
        ("x" * 5000, 1009, "over 4096"),
    ],
)
def test_a_bad_hello_is_refused_naming_why(
    message: str | bytes | None, code: int, says: str
) -> None:
    with pytest.raises(WireError, match=says) as refused:
        parse_hello(message)
    assert refused.value.code == code


@pytest.mark.parametrize(
    ("payload", "code"), [(b"", 1003), (b"\0" * 3, 1003), (b"\0" * (MAX_AUDIO_BYTES + 2), 1009)]
)
def test_audio_must_be_bounded_16_bit_pcm(payload: bytes, code: int) -> None:
    with pytest.raises(WireError) as refused:
        check_audio(payload)
    assert refused.value.code == code


async def test_a_second_of_48_khz_audio_becomes_a_second_of_20_ms_frames_at_16_khz() -> None:
    tone = (np.sin(np.arange(48000) * 2 * np.pi * 440 / 48000) * 8000).astype("<i2").tobytes()
    chunks: list[str | bytes] = [tone[i : i + 1920] for i in range(0, len(tone), 1920)]
    socket = ScriptedSocket(chunks)
    connection = BrowserConnection(
        socket, client_id=uuid.uuid4(), wire_rate=48000, clock=MonotonicClock()
    )
    frames = [frame async for frame in connection.frames()]
    audio = [f for f in frames if isinstance(f, AudioFrame)]
    assert isinstance(frames[-1], HangUpFrame)
    assert {len(f.pcm) for f in audio} == {frame_bytes(CALL_RATE)}
    assert {f.sample_rate for f in audio} == {CALL_RATE}
    # soxr keeps back its filter's delay until the end; nothing more than that is missing.
    assert 47 <= len(audio) <= 50
    assert connection.closed


async def test_a_bad_message_ends_the_call_with_its_close_code() -> None:
    socket = ScriptedSocket([b"\0" * 640, b"\1\2\3", b"\0" * 640])
    connection = BrowserConnection(
        socket, client_id=uuid.uuid4(), wire_rate=16000, clock=MonotonicClock()
    )

    async def runner(call: BrowserConnection) -> None:
        frames = [frame async for frame in call.frames()]
        assert isinstance(frames[-1], HangUpFrame)
        assert sum(isinstance(f, AudioFrame) for f in frames) == 1  # nothing after the bad one

    await connection.serve(runner)
    assert socket.closed is not None
    assert socket.closed[0] == 1003
    assert "16-bit PCM" in socket.closed[1]


async def test_the_transcript_and_barge_ins_reach_the_page_in_order_with_the_audio() -> None:
    socket = ScriptedSocket([])
    connection = BrowserConnection(
        socket, client_id=uuid.uuid4(), wire_rate=16000, clock=MonotonicClock()
    )

    async def runner(call: BrowserConnection) -> None:
        call.observer.agent_spoke("Hello, this is Robin.")
        await call.send_audio(b"\0" * 640)
        call.observer.turn_finished(
            TurnRecord(caller_text="How much?", agent_text="Six thousand", interrupted=True)
        )
        await call.hang_up()

    await connection.serve(runner)
    events = [json.loads(m) if isinstance(m, str) else len(m) for m in socket.sent]
    assert events == [
        {"type": "started", "call_id": str(connection.call_id), "rate": 16000},
        {"type": "transcript", "speaker": "agent", "text": "Hello, this is Robin."},
        640,
        {"type": "transcript", "speaker": "caller", "text": "How much?"},
        {"type": "transcript", "speaker": "agent", "text": "Six thousand", "interrupted": True},
        {"type": "ended", "call_id": str(connection.call_id)},
    ]
    assert socket.closed == (1000, "")
