"""Enumerations of the data model and the transition tables that guard every status change.

Status changes go through explicit transition tables: an illegal transition is an error, never
a silent overwrite (docs/api.md, "Transition tables"). Every service changes a status only through
:func:`check_transition`, so the tables below are the single statement of what may follow what.
Enum values are stored as short strings (no database enum types), so adding a value later needs
no migration; the API rejects values not listed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from callagent.store.errors import IllegalTransition


class AgentStatus(StrEnum):
    """Life of an agent: trained until 20 % (learning), 80 % (active), then tuned by calls."""

    TRAINING = "training"
    LEARNING = "learning"
    ACTIVE = "active"
    OPTIMIZING = "optimizing"


class PersonalityType(StrEnum):
    """How the agent comes across on the phone."""

    PROFESSIONAL = "professional"
    FRIENDLY = "friendly"
    ENTHUSIASTIC = "enthusiastic"
    CONSULTATIVE = "consultative"
    EMPATHETIC = "empathetic"
    ASSERTIVE = "assertive"
    CASUAL = "casual"


class TrainingType(StrEnum):
    """The six areas of the training rubric (docs/api.md, "Training rubric")."""

    SCRIPT = "script"
    PRODUCT = "product"
    OBJECTIONS = "objections"
    COMPANY = "company"
    GOALS = "goals"
    TECHNIQUES = "techniques"


class InterestLevel(StrEnum):
    """How close a customer is to buying."""

    COLD = "cold"
    WARM = "warm"
    HOT = "hot"
    CONVERTED = "converted"


class CallType(StrEnum):
    """Why a call exists. ``start-call`` places every kind but ``inbound`` and ``test``."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    SCHEDULED = "scheduled"
    FOLLOWUP = "followup"
    TEST = "test"
    """A call from the dashboard's browser phone (docs/dashboard.md "Talk to your agent"): the
    client's own person talking to their agent; stored like an inbound call, never dialled.
    No migration: call types are stored as VARCHAR(32) without a CHECK constraint."""


class CallStatus(StrEnum):
    """Where a call is in its life (the telephony layer moves it; see CALL_TRANSITIONS)."""

    QUEUED = "queued"
    DIALING = "dialing"
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class CallOutcome(StrEnum):
    """What came of a call, set once (by ``call-outcome`` or the telephony layer)."""

    ANSWERED = "answered"
    INTERESTED = "interested"
    NOT_INTERESTED = "not_interested"
    CONVERTED = "converted"
    CALLBACK_REQUESTED = "callback_requested"
    DEMO_SCHEDULED = "demo_scheduled"
    DO_NOT_CALL = "do_not_call"
    TRANSFERRED = "transferred"
    WRONG_NUMBER = "wrong_number"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail"
    FAILED = "failed"


#: Outcomes where nobody was reached: a callback behind such a call is retried.
UNREACHED_OUTCOMES = frozenset(
    {CallOutcome.NO_ANSWER, CallOutcome.BUSY, CallOutcome.VOICEMAIL, CallOutcome.FAILED}
)


class CallbackStatus(StrEnum):
    """A scheduled callback's life."""

    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Sentiment(StrEnum):
    """The caller's overall mood on a call."""

    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"


class NoteKind(StrEnum):
    """Where a contact note came from."""

    CALL_SUMMARY = "call_summary"
    MANUAL = "manual"


class AnalysisStatus(StrEnum):
    """A post-call analysis job's life (docs/analysis.md): ``queued`` → ``running`` → ``done``
    or ``failed``; a run that fails for a passing reason goes back to ``queued`` (retried
    later), and a ``running`` job whose lease ran out (its node died) is taken again."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class OpportunityStage(StrEnum):
    """A sales opportunity's stage; the two ``closed_*`` stages are final."""

    PROSPECTING = "prospecting"
    QUALIFICATION = "qualification"
    PROPOSAL = "proposal"
    NEGOTIATION = "negotiation"
    CLOSED_WON = "closed_won"
    CLOSED_LOST = "closed_lost"


_S = AgentStatus
#: training → learning (20 %) → active (80 %) → optimizing (enough calls to learn from).
AGENT_TRANSITIONS: Mapping[AgentStatus, frozenset[AgentStatus]] = {
    _S.TRAINING: frozenset({_S.LEARNING}),
    _S.LEARNING: frozenset({_S.ACTIVE}),
    _S.ACTIVE: frozenset({_S.OPTIMIZING}),
    _S.OPTIMIZING: frozenset(),
}

_C = CallStatus
#: A call only moves forward; the three final states have no way out.
CALL_TRANSITIONS: Mapping[CallStatus, frozenset[CallStatus]] = {
    _C.QUEUED: frozenset({_C.DIALING, _C.IN_PROGRESS, _C.FAILED, _C.CANCELLED}),
    _C.DIALING: frozenset({_C.RINGING, _C.IN_PROGRESS, _C.COMPLETED, _C.FAILED, _C.CANCELLED}),
    _C.RINGING: frozenset({_C.IN_PROGRESS, _C.COMPLETED, _C.FAILED, _C.CANCELLED}),
    _C.IN_PROGRESS: frozenset({_C.COMPLETED, _C.FAILED}),
    _C.COMPLETED: frozenset(),
    _C.FAILED: frozenset(),
    _C.CANCELLED: frozenset(),
}

_B = CallbackStatus
#: A callback being dialled either ends or, when nobody answered, is scheduled again.
CALLBACK_TRANSITIONS: Mapping[CallbackStatus, frozenset[CallbackStatus]] = {
    _B.SCHEDULED: frozenset({_B.IN_PROGRESS, _B.CANCELLED, _B.FAILED}),
    _B.IN_PROGRESS: frozenset({_B.COMPLETED, _B.SCHEDULED, _B.FAILED, _B.CANCELLED}),
    _B.COMPLETED: frozenset(),
    _B.CANCELLED: frozenset(),
    _B.FAILED: frozenset(),
}

_I = InterestLevel
#: Interest goes up and down with calls; ``converted`` is final.
INTEREST_TRANSITIONS: Mapping[InterestLevel, frozenset[InterestLevel]] = {
    _I.COLD: frozenset({_I.WARM, _I.HOT, _I.CONVERTED}),
    _I.WARM: frozenset({_I.COLD, _I.HOT, _I.CONVERTED}),
    _I.HOT: frozenset({_I.COLD, _I.WARM, _I.CONVERTED}),
    _I.CONVERTED: frozenset(),
}

_O = OpportunityStage
_OPEN = frozenset({_O.PROSPECTING, _O.QUALIFICATION, _O.PROPOSAL, _O.NEGOTIATION})
#: Open stages move freely among themselves and to a close; closed stages are final.
OPPORTUNITY_TRANSITIONS: Mapping[OpportunityStage, frozenset[OpportunityStage]] = {
    **{stage: (_OPEN | {_O.CLOSED_WON, _O.CLOSED_LOST}) - {stage} for stage in _OPEN},
    _O.CLOSED_WON: frozenset(),
    _O.CLOSED_LOST: frozenset(),
}

E = TypeVar("E", bound=StrEnum)

_TABLES: Mapping[type[StrEnum], tuple[str, Mapping]] = {  # type: ignore[type-arg]
    AgentStatus: ("agent status", AGENT_TRANSITIONS),
    CallStatus: ("call status", CALL_TRANSITIONS),
    CallbackStatus: ("callback status", CALLBACK_TRANSITIONS),
    InterestLevel: ("interest level", INTEREST_TRANSITIONS),
    OpportunityStage: ("opportunity stage", OPPORTUNITY_TRANSITIONS),
}


def can_transition(current: E, target: E) -> bool:
    """Whether the table of ``current``'s enum allows ``current → target``."""
    _, table = _TABLES[type(current)]
    return target in table[current]


def check_transition(current: E, target: E) -> E:
    """Return ``target`` if ``current → target`` is allowed, else raise IllegalTransition."""
    if not can_transition(current, target):
        what, _ = _TABLES[type(current)]
        raise IllegalTransition(f"{what} cannot change from '{current}' to '{target}'")
    return target
