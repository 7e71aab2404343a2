"""The worker messages' framing on byte strings (DESIGN.md practice 1): whole, byte by byte,
with trailing bytes; an unreadable body fails only its request, a bad length the stream."""

from __future__ import annotations

import pytest

from callagent.inference.wire import (
    MAX_FRAME,
    FrameDecoder,
    GarbledMessage,
    WireError,
    decode_body,
    encode,
)

MESSAGES = [
    (7, {"op": "transcribe", "pcm": b"\x01\x00" * 160, "rate": 8000}),
    (8, {"kind": "chunk", "data": "Hello"}),
    (2**40, {"kind": "end"}),
]


def frames_of(data: bytes, step: int) -> list[tuple[int, dict[str, object]]]:
    decoder = FrameDecoder()
    out = []
    for start in range(0, len(data), step):
        decoder.receive_data(data[start : start + step])
        while (frame := decoder.next_frame()) is not None:
            out.append((frame[0], decode_body(frame[1])))
    return out


@pytest.mark.parametrize("step", [1, 3, 1000])
def test_frames_come_back_as_sent_whatever_the_split(step: int) -> None:
    data = b"".join(encode(i, m) for i, m in MESSAGES)
    assert frames_of(data, step) == MESSAGES


def test_a_partial_frame_waits_for_the_rest() -> None:
    frame = encode(1, {"kind": "end"})
    decoder = FrameDecoder()
    decoder.receive_data(frame + frame[:5])
    assert decoder.next_frame() is not None
    assert decoder.next_frame() is None
    decoder.receive_data(frame[5:])
    assert decoder.next_frame() == (1, frame[12:])


def test_an_unreadable_body_is_reported_with_its_request_id() -> None:
    good = encode(5, {"kind": "end"})
    broken = good[:12] + b"\xc1" * (len(good) - 12)
    decoder = FrameDecoder()
    decoder.receive_data(broken + encode(6, {"kind": "end"}))
    request_id, body = decoder.next_frame()  # type: ignore[misc]
    assert request_id == 5
    with pytest.raises(GarbledMessage):
        decode_body(body)
    assert decoder.next_frame() == (6, good[12:])  # the stream goes on
    with pytest.raises(GarbledMessage):
        decode_body(encode(1, {0: "x"})[12:])  # type: ignore[dict-item]  # not a str-keyed map


@pytest.mark.parametrize("length", [0, 7, MAX_FRAME + 1])
def test_a_length_out_of_bounds_breaks_the_stream(length: int) -> None:
    decoder = FrameDecoder()
    decoder.receive_data(length.to_bytes(4, "big") + bytes(8))
    with pytest.raises(WireError):
        decoder.next_frame()


def test_a_message_too_large_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="frame limit"):
        encode(1, {"pcm": bytes(MAX_FRAME)})
