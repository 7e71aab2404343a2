"""The AudioSocket protocol on byte strings (DESIGN.md practice 1).

One table of (event, bytes) drives both directions: what Asterisk sends and the server parses,
and what the server sends and Asterisk (the loopback caller) parses.
"""

from __future__ import annotations

import uuid

import pytest

from callagent.telephony.asterisk.audiosocket import (
    AUDIO_KIND_SAMPLE_RATES,
    MAX_PAYLOAD,
    SAMPLE_RATE_AUDIO_KINDS,
    Audio,
    AudioSocketMessage,
    AudioSocketProtocol,
    AudioSocketRole,
    CallStarted,
    Dtmf,
    ErrorMessage,
    HangUp,
    Kind,
    ProtocolError,
    encode,
)
from callagent.voice_pipeline.frames import frame_bytes

CALL_ID = uuid.UUID("12345678-1234-5678-9abc-def012345678")
UUID_BYTES = b"\x01\x00\x10" + CALL_ID.bytes

# 20 ms of a ramp, so byte order mistakes show.
PCM_8K = bytes(range(256)) + bytes(range(64))
PCM_16K = bytes(640)

TABLE: list[tuple[AudioSocketMessage, bytes]] = [
    (CallStarted(CALL_ID), UUID_BYTES),
    (Audio(PCM_8K, 8_000), b"\x10\x01\x40" + PCM_8K),
    # Asterisk 22 with c(slin16): kind 0x12, 640-byte frames (DESIGN.md "Contracts").
    (Audio(PCM_16K, 16_000), b"\x12\x02\x80" + PCM_16K),
    # The last frame of a played file can be shorter than 20 ms (seen on Asterisk 22).
    (Audio(b"\x01\x00\xff\x7f", 8_000), b"\x10\x00\x04\x01\x00\xff\x7f"),
    (Audio(b"\x00\x80", 12_000), b"\x11\x00\x02\x00\x80"),
    (Audio(b"\x00\x80", 24_000), b"\x13\x00\x02\x00\x80"),
    (Audio(b"\x00\x80", 32_000), b"\x14\x00\x02\x00\x80"),
    (Audio(b"\x00\x80", 44_100), b"\x15\x00\x02\x00\x80"),
    (Audio(b"\x00\x80", 48_000), b"\x16\x00\x02\x00\x80"),
    (Audio(b"\x00\x80", 96_000), b"\x17\x00\x02\x00\x80"),
    (Audio(b"\x00\x80", 192_000), b"\x18\x00\x02\x00\x80"),
    (Audio(bytes(MAX_PAYLOAD), 192_000), b"\x18\x40\x00" + bytes(MAX_PAYLOAD)),
    (Dtmf("5"), b"\x03\x00\x015"),
    (Dtmf("#"), b"\x03\x00\x01#"),
    (Dtmf("*"), b"\x03\x00\x01*"),
    (Dtmf("D"), b"\x03\x00\x01D"),
    (ErrorMessage(b"\x01"), b"\xff\x00\x01\x01"),
    (ErrorMessage(b""), b"\xff\x00\x00"),
    (HangUp(), b"\x00\x00\x00"),
]

FROM_SERVER = [(event, data) for event, data in TABLE if isinstance(event, Audio | HangUp)]
NOT_FROM_SERVER = [(event, data) for event, data in TABLE if not isinstance(event, Audio | HangUp)]
AFTER_UUID = TABLE[1:]


def events_of(protocol: AudioSocketProtocol) -> list[AudioSocketMessage]:
    events = []
    while (event := protocol.next_event()) is not None:
        events.append(event)
        if isinstance(event, HangUp):
            break
    return events


def server_after_uuid() -> AudioSocketProtocol:
    protocol = AudioSocketProtocol(AudioSocketRole.SERVER)
    protocol.receive_data(UUID_BYTES)
    assert protocol.next_event() == CallStarted(CALL_ID)
    return protocol


def asterisk_after_uuid() -> AudioSocketProtocol:
    protocol = AudioSocketProtocol(AudioSocketRole.ASTERISK)
    assert protocol.send(CallStarted(CALL_ID)) == UUID_BYTES
    return protocol


def test_kinds_and_rates_match_the_contract() -> None:
    assert [k.value for k in Kind] == [0x00, 0x01, 0x03, *range(0x10, 0x19), 0xFF]
    assert dict(AUDIO_KIND_SAMPLE_RATES) == {
        Kind(0x10 + i): rate
        for i, rate in enumerate(
            [8_000, 12_000, 16_000, 24_000, 32_000, 44_100, 48_000, 96_000, 192_000]
        )
    }
    assert {rate: kind for kind, rate in AUDIO_KIND_SAMPLE_RATES.items()} == dict(
        SAMPLE_RATE_AUDIO_KINDS
    )
    assert frame_bytes(8_000) == 320
    assert frame_bytes(16_000) == 640
    assert frame_bytes(44_100) == 1764


def test_audio_repr_leaves_out_the_pcm() -> None:
    assert repr(Audio(PCM_8K, 8_000)) == "Audio(320 bytes, 8000 Hz)"


# --- Asterisk -> server -----------------------------------------------------------------------


@pytest.mark.parametrize(("event", "data"), AFTER_UUID)
def test_asterisk_encodes_table(event: AudioSocketMessage, data: bytes) -> None:
    assert asterisk_after_uuid().send(event) == data
    assert encode(event) == data


@pytest.mark.parametrize(("event", "data"), AFTER_UUID)
def test_server_parses_table_whole(event: AudioSocketMessage, data: bytes) -> None:
    protocol = server_after_uuid()
    protocol.receive_data(data)
    assert protocol.next_event() == event


@pytest.mark.parametrize(("event", "data"), TABLE)
def test_server_parses_table_byte_by_byte(event: AudioSocketMessage, data: bytes) -> None:
    protocol = AudioSocketProtocol(AudioSocketRole.SERVER)
    stream = data if isinstance(event, CallStarted) else UUID_BYTES + data
    events: list[AudioSocketMessage] = []
    for i in range(len(stream)):
        protocol.receive_data(stream[i : i + 1])
        while (got := protocol.next_event()) is not None:
            events.append(got)
            if isinstance(got, HangUp):
                break
    assert events[-1] == event
    assert len(events) == (1 if isinstance(event, CallStarted) else 2)


@pytest.mark.parametrize(("event", "data"), AFTER_UUID)
def test_server_parses_table_with_trailing_bytes(event: AudioSocketMessage, data: bytes) -> None:
    protocol = server_after_uuid()
    follow = b"\x10\x00\x02\x01\x02"
    protocol.receive_data(data + follow[:2])
    assert protocol.next_event() == event
    if isinstance(event, HangUp):
        # After a hang-up the call is over: what follows is ignored.
        assert protocol.next_event() is None
        return
    assert protocol.next_event() is None  # the trailing header is still incomplete
    protocol.receive_data(follow[2:])
    assert protocol.next_event() == Audio(b"\x01\x02", 8_000)


def test_server_parses_whole_table_in_one_read() -> None:
    protocol = AudioSocketProtocol(AudioSocketRole.SERVER)
    protocol.receive_data(b"".join(data for _, data in TABLE))
    assert events_of(protocol) == [event for event, _ in TABLE]


# --- server -> Asterisk -----------------------------------------------------------------------


@pytest.mark.parametrize(("event", "data"), FROM_SERVER)
def test_server_encodes_table(event: AudioSocketMessage, data: bytes) -> None:
    assert AudioSocketProtocol(AudioSocketRole.SERVER).send(event) == data


@pytest.mark.parametrize(("event", "data"), FROM_SERVER)
def test_asterisk_parses_table_whole_and_byte_by_byte(
    event: AudioSocketMessage, data: bytes
) -> None:
    whole = AudioSocketProtocol(AudioSocketRole.ASTERISK)
    whole.receive_data(data + b"\x10\x00")
    assert whole.next_event() == event
    by_byte = AudioSocketProtocol(AudioSocketRole.ASTERISK)
    got: list[AudioSocketMessage | None] = []
    for i in range(len(data)):
        by_byte.receive_data(data[i : i + 1])
        got.append(by_byte.next_event())
    assert got == [None] * (len(data) - 1) + [event]


@pytest.mark.parametrize(("event", "data"), NOT_FROM_SERVER)
def test_server_refuses_to_send_kinds_asterisk_hangs_up_on(
    event: AudioSocketMessage, data: bytes
) -> None:
    with pytest.raises(ValueError, match="must not send"):
        AudioSocketProtocol(AudioSocketRole.SERVER).send(event)


@pytest.mark.parametrize(("event", "data"), NOT_FROM_SERVER)
def test_asterisk_hangs_up_on_non_audio_from_server(event: AudioSocketMessage, data: bytes) -> None:
    protocol = AudioSocketProtocol(AudioSocketRole.ASTERISK)
    protocol.receive_data(data)
    with pytest.raises(ProtocolError, match=f"0x{data[0]:02x}"):
        protocol.next_event()


# --- send validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (Audio(b"", 8_000), "non-zero even length"),  # res_audiosocket.c hangs up on length 0
        (Audio(b"\x00\x00\x00", 8_000), "non-zero even length"),
        (Audio(bytes(MAX_PAYLOAD + 2), 8_000), "non-zero even length"),
        (Audio(b"\x00\x00", 11_025), "no audio kind for 11025 Hz"),
    ],
)
def test_server_refuses_bad_audio(event: AudioSocketMessage, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AudioSocketProtocol(AudioSocketRole.SERVER).send(event)


def test_asterisk_side_send_rules() -> None:
    protocol = AudioSocketProtocol(AudioSocketRole.ASTERISK)
    with pytest.raises(ValueError, match="UUID message must be sent before"):
        protocol.send(Audio(PCM_8K, 8_000))
    protocol.send(CallStarted(CALL_ID))
    with pytest.raises(ValueError, match="already sent"):
        protocol.send(CallStarted(CALL_ID))
    with pytest.raises(ValueError, match="not a DTMF digit"):
        protocol.send(Dtmf("x"))
    with pytest.raises(TypeError):
        protocol.send("audio")  # type: ignore[arg-type]


# --- bad input from Asterisk: every case ends the call with a clear ProtocolError ---------------

BAD_AFTER_UUID: list[tuple[bytes, str]] = [
    (b"\x42\x00\x00", "unknown message kind 0x42"),
    (b"GET / HTTP/1.1\r\n", "unknown message kind 0x47"),
    (b"\x10\xff\xff", "0x10 (AUDIO_8K) message of 65535 bytes exceeds 16384"),
    (b"\xff\x40\x01", "exceeds 16384"),
    (UUID_BYTES, "second UUID"),
    (b"\x10\x00\x03\x00\x00\x00", "0x10 (AUDIO_8K) message of 3 bytes"),
    (b"\x12\x00\x00", "0x12 (AUDIO_16K) message of 0 bytes"),
    (b"\x03\x00\x01x", "non-digit byte 0x78"),
    (b"\x03\x00\x02" + b"12", "DTMF message of 2 bytes"),
    (b"\x03\x00\x00", "DTMF message of 0 bytes"),
    (b"\x00\x00\x01\x00", "hang-up message with a 1-byte payload"),
]

BAD_FIRST: list[tuple[bytes, str]] = [
    (b"\x10\x01\x40" + PCM_8K, "0x10 (AUDIO_8K) message before the UUID"),
    (b"\x03\x00\x011", "before the UUID"),
    (b"\x01\x00\x0f" + bytes(15), "UUID message of 15 bytes, expected 16"),
    (b"\x01\x00\x11" + bytes(17), "UUID message of 17 bytes"),
    (b"\x16\x03\x00", "before the UUID"),
]


@pytest.mark.parametrize(("data", "message"), BAD_AFTER_UUID)
def test_bad_input_after_uuid(data: bytes, message: str) -> None:
    protocol = server_after_uuid()
    protocol.receive_data(data)
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        protocol.next_event()
    # The protocol stays failed; later bytes change nothing.
    protocol.receive_data(b"\x10\x00\x02\x00\x00")
    with pytest.raises(ProtocolError):
        protocol.next_event()


@pytest.mark.parametrize(("data", "message"), BAD_FIRST)
def test_bad_first_message(data: bytes, message: str) -> None:
    protocol = AudioSocketProtocol(AudioSocketRole.SERVER)
    protocol.receive_data(data)
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        protocol.next_event()


def test_bad_header_is_refused_before_its_payload_arrives() -> None:
    # An oversize or malformed claim is refused at once, not after buffering the payload.
    protocol = server_after_uuid()
    protocol.receive_data(b"\x10\x7f\xff")
    with pytest.raises(ProtocolError, match="exceeds"):
        protocol.next_event()


def test_uuid_split_across_reads_is_one_uuid() -> None:
    protocol = AudioSocketProtocol(AudioSocketRole.SERVER)
    protocol.receive_data(UUID_BYTES[:5])
    assert protocol.next_event() is None
    assert protocol.next_event() is None
    protocol.receive_data(UUID_BYTES[5:])
    assert protocol.next_event() == CallStarted(CALL_ID)


# --- end of file --------------------------------------------------------------------------------


def test_eof_is_a_hang_up_once() -> None:
    # Asterisk never sends 0x00: it hangs up by closing the socket (DESIGN.md "Contracts").
    protocol = server_after_uuid()
    protocol.receive_data(b"\x10\x00\x02\x01\x02")
    protocol.receive_data(b"")
    assert protocol.next_event() == Audio(b"\x01\x02", 8_000)
    assert protocol.next_event() == HangUp()
    assert protocol.next_event() is None
    assert protocol.next_event() is None


def test_eof_before_uuid_is_a_hang_up() -> None:
    protocol = AudioSocketProtocol(AudioSocketRole.SERVER)
    protocol.receive_data(b"")
    assert protocol.next_event() == HangUp()


@pytest.mark.parametrize(
    ("partial", "message"),
    [
        (b"\x10", r"inside a message header \(1 of 3 bytes\)"),
        (b"\x10\x01", r"inside a message header \(2 of 3 bytes\)"),
        (b"\x10\x01\x40", r"inside a 0x10 \(AUDIO_8K\) message \(0 of 320 payload bytes\)"),
        (b"\x10\x01\x40" + bytes(319), r"\(319 of 320 payload bytes\)"),
        (b"\x03\x00\x01", r"0x03 \(DTMF\) message \(0 of 1"),
    ],
)
def test_eof_mid_message_is_an_error(partial: bytes, message: str) -> None:
    protocol = server_after_uuid()
    protocol.receive_data(partial)
    assert protocol.next_event() is None
    protocol.receive_data(b"")
    with pytest.raises(ProtocolError, match=message):
        protocol.next_event()


def test_asterisk_side_eof_mid_message_is_an_error() -> None:
    protocol = AudioSocketProtocol(AudioSocketRole.ASTERISK)
    protocol.receive_data(b"\x10\x01\x40\x00")
    protocol.receive_data(b"")
    with pytest.raises(ProtocolError, match="1 of 320"):
        protocol.next_event()


def test_receive_after_eof_is_a_bug() -> None:
    protocol = AudioSocketProtocol(AudioSocketRole.SERVER)
    protocol.receive_data(b"")
    with pytest.raises(RuntimeError):
        protocol.receive_data(b"\x00")


def test_data_after_hang_up_message_is_ignored() -> None:
    protocol = server_after_uuid()
    protocol.receive_data(b"\x00\x00\x00\x42\x42\x42")
    assert protocol.next_event() == HangUp()
    protocol.receive_data(b"\x42\x42\x42")
    assert protocol.next_event() is None
    protocol.receive_data(b"")
    assert protocol.next_event() is None
