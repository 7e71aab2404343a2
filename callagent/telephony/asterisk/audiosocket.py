"""The AudioSocket wire protocol, sans-IO.

AudioSocket is the TCP protocol Asterisk's ``AudioSocket()`` dialplan application speaks to us.
This module only turns bytes into events and events into bytes (the h11 pattern, DESIGN.md
practice 1); the socket loops live in :mod:`.server` (our side) and :mod:`.loopback_caller`
(a stand-in for Asterisk). Nothing here touches a socket or a clock, so every rule below is tested
on plain byte strings.

Wire format (DESIGN.md "Contracts"): a message is one *kind* byte, a two-byte big-endian payload
length, then the payload. Facts observed on a real Asterisk 22 (DESIGN.md "Contracts" and
"Known traps") that shape the rules here:

* the UUID message (0x01, 16 raw bytes) is always the first message, and there is only one;
* DTMF (0x03) carries one ASCII digit and is sent when the digit ends;
* audio is signed 16-bit little-endian mono PCM; 0x10 is 8 kHz (320 bytes per 20 ms), 0x11-0x18
  carry 12 / 16 / 24 / 32 / 44.1 / 48 / 96 / 192 kHz (0x12 with ``c(slin16)``, 640-byte frames);
  the last frame of a played file can be shorter than 20 ms;
* Asterisk never sends 0x00: its hang-up is the socket closing, which we report as
  :class:`HangUp` too;
* Asterisk hangs up when it receives any kind other than audio or 0x00 (and, per
  ``res_audiosocket.c``, on an empty audio payload), so the server side refuses to encode them.

Bad input from the peer raises :class:`ProtocolError`; the caller of :meth:`next_event` ends that
one call (DESIGN.md practice 2).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, TypeAlias

from callagent.voice_pipeline.frames import DTMF_DIGITS

HEADER_SIZE: Final = 3
"""Kind byte plus two length bytes."""

FRAME_DURATION_S: Final = 0.020
"""Asterisk sends, and plays, audio in 20 ms frames (DESIGN.md "Contracts")."""

MAX_PAYLOAD: Final = 16_384
"""Largest payload accepted or sent, in bytes.

The biggest frame Asterisk produces is 20 ms at 192 kHz: 192000 * 0.020 * 2 = 7680 bytes. Channels
packetised at 40 ms double that to 15360; 16 KiB covers both with a little room, is far below the
64 KiB the length field could claim, and keeps a hostile peer from making us buffer more than one
small message per call (DESIGN.md practice 2: payload sizes are bounded).
"""

UUID_SIZE: Final = 16


class Kind(enum.IntEnum):
    """The kind byte of an AudioSocket message (DESIGN.md "Contracts")."""

    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO_8K = 0x10
    AUDIO_12K = 0x11
    AUDIO_16K = 0x12
    AUDIO_24K = 0x13
    AUDIO_32K = 0x14
    AUDIO_44K1 = 0x15
    AUDIO_48K = 0x16
    AUDIO_96K = 0x17
    AUDIO_192K = 0x18
    ERROR = 0xFF


AUDIO_KIND_SAMPLE_RATES: Final[Mapping[Kind, int]] = MappingProxyType(
    {
        Kind.AUDIO_8K: 8_000,
        Kind.AUDIO_12K: 12_000,
        Kind.AUDIO_16K: 16_000,
        Kind.AUDIO_24K: 24_000,
        Kind.AUDIO_32K: 32_000,
        Kind.AUDIO_44K1: 44_100,
        Kind.AUDIO_48K: 48_000,
        Kind.AUDIO_96K: 96_000,
        Kind.AUDIO_192K: 192_000,
    }
)
"""Sample rate in Hz of each audio kind."""

SAMPLE_RATE_AUDIO_KINDS: Final[Mapping[int, Kind]] = MappingProxyType(
    {rate: kind for kind, rate in AUDIO_KIND_SAMPLE_RATES.items()}
)
"""Audio kind for each supported sample rate in Hz."""


def _kind_name(kind: int) -> str:
    """``0x10 (AUDIO_8K)`` for known kinds, ``0x42`` for unknown ones, for error messages."""
    try:
        return f"0x{kind:02x} ({Kind(kind).name})"
    except ValueError:
        return f"0x{kind:02x}"


# --- messages -------------------------------------------------------------------------------
#
# One class per message, used in both directions as in h11 (the same `Audio` is what the server
# receives from Asterisk and what it sends back). They stay inside telephony/asterisk/: the
# connection hands the call runner the pipeline's own frames (DESIGN.md practice 3).


@dataclass(frozen=True, slots=True)
class CallStarted:
    """The UUID message (0x01): the first message of every call, naming the channel."""

    call_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Audio:
    """An audio message (0x10-0x18): signed 16-bit little-endian mono PCM."""

    pcm: bytes = field(repr=False)
    sample_rate: int

    def __repr__(self) -> str:
        # Frames arrive 50 times a second; logging their bytes would drown the log.
        return f"Audio({len(self.pcm)} bytes, {self.sample_rate} Hz)"


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A DTMF message (0x03): one key, reported by Asterisk when the key is released."""

    digit: str


@dataclass(frozen=True, slots=True)
class HangUp:
    """A hang-up: the 0x00 message, or (when received) the peer closing the connection."""


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """An error message (0xff); ``code`` is its payload (Asterisk sends one code byte)."""

    code: bytes


AudioSocketMessage: TypeAlias = CallStarted | Audio | Dtmf | HangUp | ErrorMessage
"""Any AudioSocket message."""


class ProtocolError(Exception):
    """The peer broke the AudioSocket protocol; the call it belongs to must end."""


class AudioSocketRole(enum.Enum):
    """Which end of the connection a :class:`AudioSocketProtocol` plays."""

    SERVER = "server"
    """We are the AudioSocket server and the peer is Asterisk (production)."""

    ASTERISK = "asterisk"
    """We play Asterisk and the peer is an AudioSocket server (the loopback caller and tests)."""


class AudioSocketProtocol:
    """Sans-IO AudioSocket state machine for one connection.

    Feed received bytes with :meth:`receive_data` (``b""`` marks end of file), then call
    :meth:`next_event` until it returns ``None`` (more data needed). :meth:`send` turns an event
    into the bytes to write. Which messages may be received and sent depends on ``role``:

    ================================  =============================  =============================
    role                              receives                       sends
    ================================  =============================  =============================
    ``AudioSocketRole.SERVER``        UUID first, then audio, DTMF,  audio, hang-up
                                      error, hang-up
    ``AudioSocketRole.ASTERISK``      audio, hang-up                 UUID first, then audio,
                                                                     DTMF, error, hang-up
    ================================  =============================  =============================

    After a hang-up has been returned, or a :class:`ProtocolError` raised, the connection is over:
    further bytes are discarded, :meth:`next_event` returns ``None`` after a hang-up and raises the
    same error again after an error.
    """

    def __init__(self, role: AudioSocketRole = AudioSocketRole.SERVER) -> None:
        self.role: Final = role
        self._buffer = bytearray()
        self._eof = False
        self._finished = False
        self._error: ProtocolError | None = None
        self._received_uuid = False
        self._sent_uuid = False

    # --- receiving ----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the peer; ``b""`` means the peer closed the connection."""
        if self._eof:
            raise RuntimeError("receive_data() called after end of file")
        if not data:
            self._eof = True
        elif not self._finished and self._error is None:
            self._buffer += data

    def next_event(self) -> AudioSocketMessage | None:
        """Return the next complete message, or ``None`` if more data is needed.

        At end of file, messages already buffered are returned first, then one
        :class:`HangUp` (Asterisk hangs up by closing the socket); a message cut short
        by end of file is a :class:`ProtocolError`.
        """
        if self._error is not None:
            raise self._error
        if self._finished:
            return None
        try:
            event = self._parse_one()
            if event is None and self._eof:
                if self._buffer:
                    raise self._truncated_error()
                event = HangUp()
        except ProtocolError as exc:
            self._error = exc
            self._buffer.clear()
            raise
        if isinstance(event, HangUp):
            self._finished = True
            self._buffer.clear()
        return event

    def _truncated_error(self) -> ProtocolError:
        if len(self._buffer) < HEADER_SIZE:
            return ProtocolError(
                f"connection closed inside a message header ({len(self._buffer)} of "
                f"{HEADER_SIZE} bytes)"
            )
        length = int.from_bytes(self._buffer[1:HEADER_SIZE], "big")
        got = len(self._buffer) - HEADER_SIZE
        return ProtocolError(
            f"connection closed inside a {_kind_name(self._buffer[0])} message "
            f"({got} of {length} payload bytes)"
        )

    def _parse_one(self) -> AudioSocketMessage | None:
        if len(self._buffer) < HEADER_SIZE:
            return None
        kind_byte = self._buffer[0]
        length = int.from_bytes(self._buffer[1:HEADER_SIZE], "big")
        # The header alone decides most errors, so garbage and oversize claims are refused
        # before we wait for (and buffer) a payload that may never come.
        kind = self._check_header(kind_byte, length)
        end = HEADER_SIZE + length
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[HEADER_SIZE:end])
        del self._buffer[:end]
        return self._decode(kind, payload)

    def _check_header(self, kind_byte: int, length: int) -> Kind:
        try:
            kind = Kind(kind_byte)
        except ValueError:
            raise ProtocolError(
                f"unknown message kind 0x{kind_byte:02x} (length {length})"
            ) from None
        name = _kind_name(kind)
        if length > MAX_PAYLOAD:
            raise ProtocolError(f"{name} message of {length} bytes exceeds {MAX_PAYLOAD}")
        if self.role is AudioSocketRole.SERVER:
            self._check_from_asterisk(kind, name)
        elif kind is not Kind.HANGUP and kind not in AUDIO_KIND_SAMPLE_RATES:
            # Asterisk hangs up on these (seen on Asterisk 22); the loopback caller does the same.
            raise ProtocolError(
                f"server sent a {name} message; Asterisk accepts only audio and hang-up"
            )
        if kind is Kind.UUID and length != UUID_SIZE:
            raise ProtocolError(f"UUID message of {length} bytes, expected {UUID_SIZE}")
        if kind is Kind.DTMF and length != 1:
            raise ProtocolError(f"DTMF message of {length} bytes, expected 1")
        if kind is Kind.HANGUP and length != 0:
            raise ProtocolError(f"hang-up message with a {length}-byte payload, expected none")
        if kind in AUDIO_KIND_SAMPLE_RATES and (length == 0 or length % 2):
            raise ProtocolError(
                f"{name} message of {length} bytes; 16-bit PCM needs a non-zero even length"
            )
        return kind

    def _check_from_asterisk(self, kind: Kind, name: str) -> None:
        # Only checks: the header is checked again each time more payload bytes arrive, so
        # the state changes in _decode, once the whole message is in.
        if kind is Kind.UUID:
            if self._received_uuid:
                raise ProtocolError("second UUID message on the same call")
        elif not self._received_uuid:
            raise ProtocolError(f"{name} message before the UUID message")

    def _decode(self, kind: Kind, payload: bytes) -> AudioSocketMessage:
        if kind is Kind.UUID:
            self._received_uuid = True
            return CallStarted(uuid.UUID(bytes=payload))
        if kind is Kind.DTMF:
            digit = chr(payload[0])
            if digit not in DTMF_DIGITS:
                raise ProtocolError(f"DTMF message with non-digit byte 0x{payload[0]:02x}")
            return Dtmf(digit)
        if kind is Kind.HANGUP:
            return HangUp()
        if kind is Kind.ERROR:
            return ErrorMessage(payload)
        return Audio(payload, AUDIO_KIND_SAMPLE_RATES[kind])

    # --- sending ------------------------------------------------------------------------------

    def send(self, event: AudioSocketMessage) -> bytes:
        """Encode ``event`` for the peer.

        Raises ``ValueError`` for anything the peer would hang up on or cannot parse: on the
        server side any kind but audio and hang-up (Asterisk hangs up on them); audio
        that is empty, of odd length, longer than :data:`MAX_PAYLOAD` or at an unsupported rate;
        on the Asterisk side anything before the UUID, a second UUID, or a non-digit DTMF.
        """
        if self.role is AudioSocketRole.SERVER and not isinstance(event, Audio | HangUp):
            raise ValueError(
                f"the server must not send {event!r}: Asterisk hangs up on anything but "
                "audio and hang-up"
            )
        if self.role is AudioSocketRole.ASTERISK:
            if isinstance(event, CallStarted):
                if self._sent_uuid:
                    raise ValueError("the UUID message was already sent")
                self._sent_uuid = True
            elif not self._sent_uuid:
                raise ValueError(f"the UUID message must be sent before {event!r}")
        return encode(event)


def encode(event: AudioSocketMessage) -> bytes:
    """Encode any valid message, without the role rules of :meth:`AudioSocketProtocol.send`."""
    match event:
        case Audio(pcm=pcm, sample_rate=rate):
            kind = SAMPLE_RATE_AUDIO_KINDS.get(rate)
            if kind is None:
                raise ValueError(f"AudioSocket has no audio kind for {rate} Hz")
            if not pcm or len(pcm) % 2 or len(pcm) > MAX_PAYLOAD:
                raise ValueError(
                    f"audio payload of {len(pcm)} bytes; need a non-zero even length "
                    f"of at most {MAX_PAYLOAD}"
                )
            return _message(kind, pcm)
        case HangUp():
            return _message(Kind.HANGUP, b"")
        case CallStarted(call_id=call_id):
            return _message(Kind.UUID, call_id.bytes)
        case Dtmf(digit=digit):
            if digit not in DTMF_DIGITS:
                raise ValueError(f"{digit!r} is not a DTMF digit")
            return _message(Kind.DTMF, digit.encode("ascii"))
        case ErrorMessage(code=code):
            if len(code) > MAX_PAYLOAD:
                raise ValueError(f"error payload of {len(code)} bytes exceeds {MAX_PAYLOAD}")
            return _message(Kind.ERROR, code)
    raise TypeError(f"not an AudioSocket event: {event!r}")


def _message(kind: Kind, payload: bytes) -> bytes:
    return bytes((kind,)) + len(payload).to_bytes(2, "big") + payload
