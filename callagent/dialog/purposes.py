"""Why a call is made, what the agent is to reach on it, and what it may do.

docs/dialog.md "Call purposes" has the table. A call's ``purpose`` comes with start-call (and
from campaigns and triggers) as text: one of the purposes below (``"follow_up"``), a purpose
with what it is about (``"follow_up: the quote we sent on Monday"``), or free text, which keeps
working - it is what the call is about, and the purpose is the call type's default
(:func:`parse_purpose`). Nothing new is stored: the call session's ``purpose`` column holds
the text as given.

Each purpose has its objective, which goes into the system prompt, and its allowed in-call
actions, which the dialog enforces in code (``conversation.Conversation``): an action the
model writes that the purpose does not allow is recorded as skipped, with why, and the agent
says it cannot arrange that on this call. A do-not-call request, a hand-over to a person the
caller asked for, and the caller's goodbye are always allowed (:data:`ALWAYS_ALLOWED`).

The system prompt of an (agent, purpose) pair is byte-stable: the agent's part comes first and
is the same for every purpose, so llama.cpp's prefix cache keeps it across calls of any
purpose (DESIGN.md "Known traps"); what the call is about goes in the call's context message
after it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from callagent.dialog.actions import ActionKind


class CallPurpose(enum.StrEnum):
    """What a call is for."""

    SALES_OUTREACH = "sales_outreach"
    FOLLOW_UP = "follow_up"
    CUSTOMER_SUPPORT = "customer_support"
    APPOINTMENT_BOOKING = "appointment_booking"
    RENEWAL_REMINDER = "renewal_reminder"


ALWAYS_ALLOWED: Final = frozenset(
    {ActionKind.SET_DO_NOT_CALL, ActionKind.TRANSFER, ActionKind.END_CALL}
)
"""What no purpose can take away: the caller's do-not-call request (a legal duty), a person
when the caller asks for one, and the caller's goodbye."""


@dataclass(frozen=True, slots=True)
class PurposeRules:
    """One purpose: its objective (for the prompt), the actions it allows beyond
    :data:`ALWAYS_ALLOWED`, and what the opening says the call is about when start-call gave
    no words of its own ("" - the opening only asks whether this is a good moment)."""

    label: str
    objective: str
    allowed: frozenset[ActionKind]
    reason: str = ""


PURPOSES: Final[Mapping[CallPurpose, PurposeRules]] = {
    CallPurpose.SALES_OUTREACH: PurposeRules(
        label="sales outreach",
        objective=(
            "the customer did not ask for this call. Find out briefly whether the offer fits "
            "them, answer their questions with the facts you were given, and agree on a next "
            "step: an appointment, a callback or information sent. Respect a clear no."
        ),
        allowed=frozenset(
            {
                ActionKind.SCHEDULE_CALLBACK,
                ActionKind.BOOK_APPOINTMENT,
                ActionKind.SEND_INFORMATION,
                ActionKind.SET_INTEREST,
            }
        ),
    ),
    CallPurpose.FOLLOW_UP: PurposeRules(
        label="follow-up",
        objective=(
            "follow up on an earlier conversation with this customer: recall it in one "
            "sentence, answer what is still open, and agree on the next step."
        ),
        allowed=frozenset(
            {
                ActionKind.SCHEDULE_CALLBACK,
                ActionKind.BOOK_APPOINTMENT,
                ActionKind.SEND_INFORMATION,
                ActionKind.SET_INTEREST,
            }
        ),
        reason="follow up on our last conversation",
    ),
    CallPurpose.CUSTOMER_SUPPORT: PurposeRules(
        label="customer support",
        objective=(
            "help the customer with their question or problem. Do not sell and do not offer "
            "demos or appointments. If you cannot solve it, offer a callback or a colleague."
        ),
        allowed=frozenset({ActionKind.SCHEDULE_CALLBACK, ActionKind.SEND_INFORMATION}),
        reason="check on your support request",
    ),
    CallPurpose.APPOINTMENT_BOOKING: PurposeRules(
        label="appointment booking",
        objective=(
            "book an appointment: find a day and time that suits the customer and book it. "
            "Keep other topics short."
        ),
        allowed=frozenset(
            {ActionKind.BOOK_APPOINTMENT, ActionKind.SCHEDULE_CALLBACK, ActionKind.SET_INTEREST}
        ),
        reason="book a time for your appointment",
    ),
    CallPurpose.RENEWAL_REMINDER: PurposeRules(
        label="renewal reminder",
        objective=(
            "remind the customer that their plan or contract is up for renewal, answer their "
            "questions about it, and find out whether they want to renew. Do not pressure them."
        ),
        allowed=frozenset(
            {
                ActionKind.SCHEDULE_CALLBACK,
                ActionKind.SEND_INFORMATION,
                ActionKind.SET_INTEREST,
            }
        ),
        reason="remind you about your upcoming renewal",
    ),
}

_DEFAULTS: Final[Mapping[str, CallPurpose | None]] = {
    "outbound": CallPurpose.SALES_OUTREACH,
    "scheduled": CallPurpose.FOLLOW_UP,
    "followup": CallPurpose.FOLLOW_UP,
    "inbound": None,
}
"""The purpose of a call whose text names none, by call type. An inbound call has none: the
agent does what its own setup says and may take every action (as before purposes existed)."""


@dataclass(frozen=True, slots=True)
class CallBrief:
    """A call's purpose as read from its text: the purpose (None: the agent's general job,
    every action allowed) and what the call is about in words ("" when nothing was said)."""

    purpose: CallPurpose | None
    about: str = ""

    @property
    def rules(self) -> PurposeRules | None:
        """The purpose's rules, or None."""
        return PURPOSES[self.purpose] if self.purpose is not None else None

    def allows(self, kind: ActionKind) -> bool:
        """Whether an action of ``kind`` may be taken on this call."""
        rules = self.rules
        return rules is None or kind in ALWAYS_ALLOWED or kind in rules.allowed

    @property
    def spoken_reason(self) -> str:
        """What the opening of a placed call says it is about."""
        if self.about:
            return self.about
        rules = self.rules
        return rules.reason if rules is not None else ""


_SEPARATOR = re.compile(r"\s*[:\-–—]\s+|\s*:\s*")
_SNAKE_HEAD = re.compile(r"^[A-Za-z]+(?:_[A-Za-z]+)+$")


def _key(text: str) -> str:
    return "_".join(re.split(r"[\s_-]+", text.strip().lower()))


def _known(text: str) -> CallPurpose | None:
    try:
        return CallPurpose(_key(text))
    except ValueError:
        return None


def parse_purpose(text: str, call_type: str = "outbound") -> CallBrief:
    """A call's purpose text read as a :class:`CallBrief`: ``"follow_up"`` (also "follow up",
    "Follow-up"), ``"follow_up: the quote from Monday"``, or free text - then the call type's
    default purpose (outbound: sales outreach; scheduled and followup: follow-up; inbound:
    none) with the text as what the call is about."""
    flat = " ".join(text.split())
    whole = _known(flat.rstrip("."))
    if whole is not None:
        return CallBrief(whole)
    parts = _SEPARATOR.split(flat, maxsplit=1)
    if len(parts) == 2:
        head = _known(parts[0])
        if head is not None:
            return CallBrief(head, parts[1].strip())
    return CallBrief(_DEFAULTS.get(call_type, CallPurpose.SALES_OUTREACH), flat)


def check_purpose(text: str) -> None:
    """Raise ValueError when ``text`` names a purpose that does not exist ("sales_outrech",
    "renewal: …" is free text, "renew_reminder: …" is not): a typo must not silently become a
    sales call."""
    flat = " ".join(text.split())
    head = _SEPARATOR.split(flat, maxsplit=1)[0]
    if _SNAKE_HEAD.match(head) and _known(head) is None:
        known = ", ".join(p.value for p in CallPurpose)
        raise ValueError(f"unknown call purpose {head!r}; one of: {known}, or free text")
