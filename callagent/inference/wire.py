"""The messages between the call process and an engine worker, sans-IO (DESIGN.md practice 1).

One frame is ``length`` (4 bytes, big-endian, of what follows) + ``request id`` (8 bytes,
big-endian) + a msgpack body. The id sits outside the body so that a body that cannot be read
fails only its own request (DESIGN.md practice 2); a length beyond :data:`MAX_FRAME` cannot be
resynchronised from and breaks the stream. Id 0 is the worker's own: its ``ready`` or
``fatal`` message at start-up (docs/inference.md "The messages").
"""

from __future__ import annotations

import struct
from typing import Any, Final

import msgspec

MAX_FRAME: Final = 32 * 1024 * 1024
"""Largest frame, bytes: a 60 s utterance at 48 kHz is 5.8 MB; anything near this is a bug."""

CONTROL: Final = 0
"""The request id of the worker's start-up messages."""

_HEADER = struct.Struct(">IQ")
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(dict[str, Any])


class WireError(Exception):
    """The byte stream is broken (a frame too large or too small): nothing after it can be
    trusted, so the connection is dropped."""


class GarbledMessage(Exception):
    """One frame's body could not be read; the stream itself is intact."""


def encode(request_id: int, message: dict[str, Any]) -> bytes:
    """One frame carrying ``message`` for request ``request_id``."""
    body = _encoder.encode(message)
    if len(body) + 8 > MAX_FRAME:
        raise ValueError(f"message of {len(body)} bytes exceeds the {MAX_FRAME}-byte frame limit")
    return _HEADER.pack(len(body) + 8, request_id) + body


def decode_body(body: bytes) -> dict[str, Any]:
    """A frame's message; :class:`GarbledMessage` when it is not a msgpack map."""
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError as error:
        raise GarbledMessage(f"unreadable message ({len(body)} bytes): {error}") from None


class FrameDecoder:
    """Splits a byte stream into ``(request id, body)`` frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def receive_data(self, data: bytes) -> None:
        """Bytes read from the peer, in any split."""
        self._buffer += data

    def next_frame(self) -> tuple[int, bytes] | None:
        """The next whole frame, or None until more bytes arrive; :class:`WireError` when the
        stream is broken."""
        if len(self._buffer) < _HEADER.size:
            return None
        length, request_id = _HEADER.unpack_from(self._buffer)
        if length < 8 or length > MAX_FRAME:
            raise WireError(f"frame length {length} outside 8..{MAX_FRAME}")
        end = 4 + length
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[_HEADER.size : end])
        del self._buffer[:end]
        return request_id, body
