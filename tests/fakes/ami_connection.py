"""The Asterisk Manager Interface (AMI) wire protocol, sans-IO, for the AMI simulator and tests.

Production does not use this: panoramisk reads and writes callagent's AMI connection (see
:mod:`callagent.telephony.asterisk.ami`). This codec is the simulator's side of the wire, and the
tests use its client side to turn AMI text written the way Asterisk writes it into
:class:`~callagent.telephony.asterisk.ami_protocol.AmiMessage` values. It copies what the real
peer does (DESIGN.md practice 8): the framing below is Asterisk's, and panoramisk's client talks
to it in the tests.

AMI is a line-based text protocol over TCP: on connect the server sends one banner line,
``Asterisk Call Manager/11.0.0``; after that both sides exchange *messages*, each a block of
``Key: Value`` lines ended by ``\\r\\n``, terminated by an empty line. A client sends actions
(``Action: Originate``); the server answers each with a response (``Response: Success``) carrying
the action's ``ActionID``, and pushes events (``Event: Hangup``) as things happen. A key may repeat
(``Variable: A=1`` twice), so a message is an ordered list of pairs, not a dict.

This module turns bytes into :class:`Banner` / ``AmiMessage`` and back, for both ends
(DESIGN.md practice 1). Nothing here touches a socket.

Rules that protect the peer and us (DESIGN.md practice 2):

* a value containing CR or LF is refused when *encoding* (``check_header``): a caller-id name
  from a CRM that contained ``\\r\\nAction: Originate`` would otherwise inject a second action
  into the stream;
* lines and messages are bounded (``MAX_LINE``, :data:`MAX_MESSAGE`); beyond that the stream
  cannot be resynchronised, so it is a :class:`AmiProtocolError` and the connection must close;
* a line without a colon is dropped and counted (:attr:`AmiConnection.dropped_lines`), as
  Asterisk's ``astman_get_header`` would never match it; the rest of the message still counts.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, TypeAlias

from callagent.telephony.asterisk.ami_protocol import (
    HEADER_KEY,
    MAX_LINE,
    AmiMessage,
    check_header,
)

EOL: Final = b"\r\n"
BANNER_PREFIX: Final = "Asterisk Call Manager/"

MAX_MESSAGE: Final = 65_536
"""Most bytes in one message (all its lines): bounds what a hostile peer makes us buffer."""

MAX_HEADERS: Final = 512
"""Most lines in one message."""


class AmiProtocolError(Exception):
    """The peer broke the framing; the connection cannot continue and must be closed."""


@dataclass(frozen=True, slots=True)
class Banner:
    """The greeting line a server sends first: ``Asterisk Call Manager/<version>``."""

    version: str


Event: TypeAlias = Banner | AmiMessage


class Role(enum.Enum):
    """Which end of the connection a :class:`AmiConnection` plays."""

    CLIENT = "client"
    """We log in and send actions; the peer is Asterisk (it sends the banner first)."""

    SERVER = "server"
    """We are Asterisk (the simulator): we send the banner, the peer sends actions."""


def encode_message(message: AmiMessage | Iterable[tuple[str, str]]) -> bytes:
    """Encode a message: each header on its own CRLF-ended line, then an empty line."""
    headers = message.headers if isinstance(message, AmiMessage) else tuple(message)
    if not headers:
        raise ValueError("an AMI message needs at least one header")
    out = bytearray()
    for key, value in headers:
        check_header(key, value)
        out += f"{key}: {value}".encode() + EOL
    out += EOL
    if len(out) > MAX_MESSAGE:
        raise ValueError(f"AMI message of {len(out)} bytes exceeds {MAX_MESSAGE}")
    return bytes(out)


class AmiConnection:
    """Sans-IO AMI state machine for one TCP connection.

    Feed bytes with :meth:`receive_data` (``b""`` = the peer closed), then call :meth:`next_event`
    until it returns ``None``. On the client side the first event is always a :class:`Banner`;
    after end of file :meth:`next_event` returns ``None`` for good (:attr:`closed` is then true).
    Encode with :meth:`send_banner` (server) and :meth:`send`.
    """

    def __init__(self, role: Role) -> None:
        self.role: Final = role
        self._buffer = bytearray()
        self._lines: list[tuple[str, str]] = []
        self._message_bytes = 0
        self._expect_banner = role is Role.CLIENT
        self._banner_sent = False
        self._eof = False
        self._error: AmiProtocolError | None = None
        self.dropped_lines = 0
        """Lines without a colon that were ignored (a peer bug worth logging, not fatal)."""

    @property
    def closed(self) -> bool:
        """True once the peer closed and every complete message was returned."""
        return self._eof and not self._buffer and not self._lines

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the peer; ``b""`` means it closed the connection."""
        if self._eof:
            raise RuntimeError("receive_data() called after end of file")
        if not data:
            self._eof = True
        elif self._error is None:
            self._buffer += data

    def next_event(self) -> Event | None:
        """The next banner or complete message, or ``None`` when more bytes are needed.

        A message cut short by end of file is dropped (the peer went away mid-sentence; nothing
        of it can be acted upon). Raises :class:`AmiProtocolError` for an oversized line or
        message, and again on every later call.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._parse()
        except AmiProtocolError as exc:
            self._error = exc
            self._buffer.clear()
            self._lines.clear()
            raise

    def _parse(self) -> Event | None:
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    raise AmiProtocolError(f"line longer than {MAX_LINE} bytes")
                if self._eof:
                    self._buffer.clear()
                    self._lines.clear()
                return None
            if end + 1 > MAX_LINE:
                raise AmiProtocolError(f"line longer than {MAX_LINE} bytes")
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            # Asterisk ends lines with CRLF; a bare LF is accepted too (panoramisk notes that
            # some versions send one), so a lone trailing CR is stripped, nothing else.
            line = raw.removesuffix(b"\r").decode("utf-8", errors="replace")
            if self._expect_banner:
                self._expect_banner = False
                if not line.startswith(BANNER_PREFIX):
                    raise AmiProtocolError(f"expected the AMI banner, got {line[:80]!r}")
                return Banner(line[len(BANNER_PREFIX) :].strip())
            if not line:
                if self._lines:
                    message = AmiMessage(tuple(self._lines))
                    self._lines.clear()
                    self._message_bytes = 0
                    return message
                continue  # blank lines between messages carry nothing
            self._message_bytes += end + 1
            if self._message_bytes > MAX_MESSAGE or len(self._lines) >= MAX_HEADERS:
                raise AmiProtocolError(
                    f"message longer than {MAX_MESSAGE} bytes or {MAX_HEADERS} lines"
                )
            key, sep, value = line.partition(":")
            key = key.strip()
            if not sep or not HEADER_KEY.fullmatch(key):
                self.dropped_lines += 1
                continue
            self._lines.append((key, value.lstrip(" ")))

    def send_banner(self, version: str = "11.0.0") -> bytes:
        """The server's first line (server role only, once)."""
        if self.role is not Role.SERVER:
            raise ValueError("only the server sends the banner")
        if self._banner_sent:
            raise ValueError("the banner was already sent")
        if "\r" in version or "\n" in version:
            raise ValueError("line break in the banner version")
        self._banner_sent = True
        return f"{BANNER_PREFIX}{version}".encode() + EOL

    def send(self, message: AmiMessage) -> bytes:
        """Encode a message for the peer, checking it suits this side of the connection.

        A client sends actions; a server sends responses and events, and only after its banner.
        """
        kind = message.kind
        if self.role is Role.CLIENT and kind != "action":
            raise ValueError(f"a client sends actions, not {message.name!r}")
        if self.role is Role.SERVER:
            if kind not in ("response", "event"):
                raise ValueError(f"a server sends responses and events, not {message.name!r}")
            if not self._banner_sent:
                raise ValueError("the server must send its banner first")
        return encode_message(message)
