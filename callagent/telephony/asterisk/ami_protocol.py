"""AMI messages as callagent handles them, and the rule every header it sends must pass.

AMI (the Asterisk Manager Interface) is a line-based text protocol over TCP: after a banner line
from Asterisk, both sides exchange *messages*, each a block of ``Key: Value`` lines ended by
``\\r\\n`` and terminated by an empty line. A client sends actions (``Action: Originate``);
Asterisk answers each with a response carrying the action's ``ActionID`` and pushes events
(``Event: Hangup``). A key may repeat (``Variable: A=1`` twice), so a message is an ordered list
of pairs, not a dict.

What production uses: panoramisk parses and writes the wire (:mod:`.ami` wraps it). Ours are
:class:`AmiMessage` - the message type the AMI client converts panoramisk's messages into and
:mod:`.call_tracker` reads - and :func:`check_header`, which the client runs on every header
before panoramisk sends it: a value containing CR or LF (a caller-id name from a CRM that
contained ``\\r\\nAction: Originate``) would otherwise inject a second action into the stream
(DESIGN.md practice 2). The sans-IO codec the AMI simulator speaks lives with the test doubles
(``tests/fakes/ami_connection.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

MAX_LINE: Final = 4_096
"""Longest AMI line, in bytes, that :func:`check_header` lets us send (and the test codec reads).
Asterisk itself reads actions into a 1025-byte buffer; event lines it sends (a long channel
variable) can be longer, so the bound is generous but finite."""

HEADER_KEY: Final = re.compile(r"[!-9;-~]+")
"""A header key: printable ASCII without spaces or colons (``Cause-txt``, ``ActionID`` ...)."""


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One AMI message: an action, a response or an event; headers in wire order.

    Lookups are case-insensitive, as in Asterisk (``astman_get_header`` uses ``strncasecmp``).
    """

    headers: tuple[tuple[str, str], ...]

    @classmethod
    def build(cls, first: tuple[str, str], *rest: tuple[str, str], **more: str) -> AmiMessage:
        """``AmiMessage.build(("Event", "Hangup"), ("Cause", "16"), Uniqueid="...")``."""
        return cls((first, *rest, *more.items()))

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first value of ``key`` (any case), or ``default``."""
        folded = key.casefold()
        for name, value in self.headers:
            if name.casefold() == folded:
                return value
        return default

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def get_all(self, key: str) -> list[str]:
        """Every value of a repeated key, e.g. all ``Variable`` headers."""
        folded = key.casefold()
        return [value for name, value in self.headers if name.casefold() == folded]

    @property
    def kind(self) -> str:
        """``"action"``, ``"response"``, ``"event"`` - from the first header - or ``""``."""
        if not self.headers:
            return ""
        first = self.headers[0][0].casefold()
        return first if first in ("action", "response", "event") else ""

    @property
    def name(self) -> str:
        """The value of the first header: the action, response status or event name."""
        return self.headers[0][1] if self.headers else ""

    @property
    def action_id(self) -> str | None:
        """The ``ActionID`` that ties a response (and some events) to its action."""
        return self.get("ActionID")

    def variables(self) -> dict[str, str]:
        """``Variable: NAME=value`` headers as a dict (Originate, Status events)."""
        result: dict[str, str] = {}
        for item in self.get_all("Variable"):
            name, sep, value = item.partition("=")
            if sep:
                result[name] = value
        return result

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)


def check_header(key: str, value: str) -> None:
    """Raise ``ValueError`` unless ``key: value`` can be sent as one AMI line unchanged."""
    if not HEADER_KEY.fullmatch(key):
        raise ValueError(f"bad AMI header name {key!r}")
    if "\r" in value or "\n" in value:
        # The one rule that matters most: a line break would start a new header or message.
        raise ValueError(f"AMI header {key} contains a line break: {value!r}")
    if len(key) + 2 + len(value.encode()) + 2 > MAX_LINE:
        raise ValueError(f"AMI header {key} is longer than {MAX_LINE} bytes")
