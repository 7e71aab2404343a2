"""Which call an AMI event belongs to, and what it means for that call (docs/telephony.md).

Sans-IO (DESIGN.md practice 1): :meth:`CallTracker.handle` takes one :class:`AmiMessage` - an
event, or the ``OriginateResponse`` that panoramisk hands back as part of ``send_action``'s
result (DESIGN.md "Known traps") - and returns the :class:`CallEvent` objects it causes. No
socket, no clock, no task: the AMI client feeds it, the tests feed it byte-exact messages.

Correlation (the call id is a UUID, the same one AudioSocket carries):

* outbound calls are originated with ``ChannelId = <call id>``, so Asterisk gives the channel
  that ``Uniqueid``: ``Newchannel`` / ``Newstate`` / ``Hangup`` / ``DTMFEnd`` name it directly;
* inbound calls get a fresh UUID in the dialplan, announced by the ``CallagentInbound``
  UserEvent with the dialed number and caller id (``config.INBOUND_EVENT``); the event's own
  ``Uniqueid`` links later events of that channel to the call;
* AMD's result arrives as the ``CallagentAmd`` UserEvent carrying the call id.

Events carry ids, not ORM objects (DESIGN.md practice 11): the store subscribes to them to persist
call state as it changes. A malformed event is logged and dropped - it ends nothing (practice 2).
"""

from __future__ import annotations

import enum
import logging
import re
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from callagent.telephony.asterisk.ami_protocol import AmiMessage
from callagent.telephony.asterisk.config import AMD_EVENT, CALL_ID_VARIABLE, INBOUND_EVENT

log = logging.getLogger(__name__)

MAX_ENDED_CALLS: Final = 1024
"""Ended calls remembered for late lookups; older ones are forgotten (bounded memory)."""

_NUMBER = re.compile(r"\+?[0-9*#]{0,32}")


class DialOutcome(enum.Enum):
    """How dialling an originated call ended (OriginateResponse ``Reason``, docs/telephony.md
    "Outbound calls and AMD"); not the call's business outcome, which is
    :class:`callagent.store.states.CallOutcome`."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    FAILED = "failed"

    @classmethod
    def from_reason(cls, reason: int) -> DialOutcome:
        """Asterisk's reason codes are its control frames: 4 answer, 5 busy, 3 ringing (and
        then nobody answered), 1 hung up while ringing, 8 congestion, 0 no channel at all."""
        return _REASONS.get(reason, cls.FAILED)

    @classmethod
    def from_hangup_cause(cls, cause: int) -> DialOutcome:
        """The outcome implied by a Q.850 cause when the OriginateResponse was lost."""
        return _CAUSES.get(cause, cls.FAILED)


_REASONS: Final = {
    4: DialOutcome.ANSWERED,
    5: DialOutcome.BUSY,
    3: DialOutcome.NO_ANSWER,
    1: DialOutcome.NO_ANSWER,
    8: DialOutcome.CONGESTION,
    0: DialOutcome.FAILED,
}
_CAUSES: Final = {
    17: DialOutcome.BUSY,  # user busy
    18: DialOutcome.NO_ANSWER,  # no user responding
    19: DialOutcome.NO_ANSWER,  # no answer
    21: DialOutcome.NO_ANSWER,  # call rejected
    34: DialOutcome.CONGESTION,  # no circuit/channel available
    42: DialOutcome.CONGESTION,  # switching equipment congestion
}


class AmdStatus(enum.Enum):
    """``AMDSTATUS`` of Asterisk's AMD()."""

    HUMAN = "HUMAN"
    MACHINE = "MACHINE"
    NOTSURE = "NOTSURE"
    HANGUP = "HANGUP"


class AmiCallDirection(enum.Enum):
    """Who placed a call the AMI tracker follows."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboundCallStarted:
    """Asterisk answered a call to ``did`` from ``caller`` and is connecting it to AudioSocket."""

    call_id: uuid.UUID
    did: str
    caller: str
    channel: str


@dataclass(frozen=True, slots=True)
class CallRinging:
    """The far end is ringing (outbound)."""

    call_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The channel is up (Newstate ``Up``)."""

    call_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class OriginateResult:
    """How an originated call turned out; ``reason`` is Asterisk's code when it was reported."""

    call_id: uuid.UUID
    outcome: DialOutcome
    reason: int | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class AmdResult:
    """AMD()'s verdict on an answered outbound call."""

    call_id: uuid.UUID
    status: AmdStatus
    cause: str


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """The far end pressed a key (also delivered over AudioSocket as kind 0x03)."""

    call_id: uuid.UUID
    digit: str


@dataclass(frozen=True, slots=True)
class CallTransferred:
    """Asterisk accepted a hand-over of the call to an allow-listed target."""

    call_id: uuid.UUID
    target: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The channel hung up: Q.850 ``cause`` and its text (``0``/"" when not known)."""

    call_id: uuid.UUID
    cause: int
    cause_text: str


CallEvent: TypeAlias = (
    InboundCallStarted
    | CallRinging
    | CallAnswered
    | OriginateResult
    | AmdResult
    | DtmfReceived
    | CallTransferred
    | CallEnded
)


@dataclass
class CallState:
    """What is known about one call so far."""

    call_id: uuid.UUID
    direction: AmiCallDirection
    number: str = ""
    """Outbound: the number dialed. Inbound: the DID that was called."""
    caller: str = ""
    """Inbound: the caller id number (digits and + only)."""
    channel: str = ""
    uniqueid: str = ""
    answered: bool = False
    outcome: OriginateResult | None = None
    amd: AmdResult | None = None
    ended: CallEnded | None = None
    transfers: list[str] = field(default_factory=list)


def _call_id(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


class CallTracker:
    """Per-call state built from AMI events; see the module docstring."""

    def __init__(self) -> None:
        self._calls: dict[uuid.UUID, CallState] = {}
        self._by_uniqueid: dict[str, uuid.UUID] = {}
        self._ended: OrderedDict[uuid.UUID, CallState] = OrderedDict()
        self._lost: set[uuid.UUID] = set()
        self.dropped = 0
        """Events that named a call but could not be understood."""

    def get(self, call_id: uuid.UUID) -> CallState | None:
        """A live or recently ended call."""
        return self._calls.get(call_id) or self._ended.get(call_id)

    @property
    def active(self) -> list[CallState]:
        """Calls that have not ended."""
        return list(self._calls.values())

    def expect_outbound(self, call_id: uuid.UUID, number: str) -> CallState:
        """Register a call about to be originated with ``ChannelId = call_id``, so events that
        arrive before the Originate response are already correlated."""
        state = CallState(call_id, AmiCallDirection.OUTBOUND, number=number, uniqueid=str(call_id))
        self._calls[call_id] = state
        self._by_uniqueid[state.uniqueid] = call_id
        return state

    def handle(self, message: AmiMessage) -> list[CallEvent]:
        """The call events caused by one AMI event (or OriginateResponse)."""
        name = message.get("Event") or ""
        try:
            match name:
                case "UserEvent":
                    return self._user_event(message)
                case "OriginateResponse":
                    return self._originate_response(message)
                case "Newchannel":
                    self._learn_channel(message)
                    return []
                case "Newstate":
                    return self._newstate(message)
                case "DTMFEnd":
                    return self._dtmf(message)
                case "Hangup":
                    return self._hangup(message)
        except (ValueError, KeyError) as exc:
            self.dropped += 1
            log.warning("AMI %s event not understood (%s); ignored: %r", name, exc, message)
        return []

    def originate_failed(self, call_id: uuid.UUID, message: str) -> list[CallEvent]:
        """Asterisk refused the Originate action itself (``Response: Error``)."""
        state = self._calls.get(call_id)
        if state is None or state.outcome is not None:
            return []
        return self._set_outcome(state, DialOutcome.FAILED, None, message)

    def transferred(self, call_id: uuid.UUID, target: str) -> list[CallEvent]:
        """Record a hand-over Asterisk accepted."""
        state = self._calls.get(call_id)
        if state is None:
            return []
        state.transfers.append(target)
        return [CallTransferred(call_id, target)]

    def resync(self, status_events: list[AmiMessage]) -> list[CallEvent]:
        """Reconcile with a ``Status`` listing taken after a reconnect.

        Events sent while AMI was disconnected are lost (Asterisk does not queue them), so:
        channels still listed keep (or regain) their call id - from the ``CALLAGENT_UUID``
        variable the dialplan and Originate set - and are marked answered when up; tracked calls
        no longer listed ended while we were away.
        """
        events: list[CallEvent] = []
        listed: set[uuid.UUID] = set()
        for status in status_events:
            call_id = _call_id(status.variables().get(CALL_ID_VARIABLE))
            uniqueid = status.get("Uniqueid") or ""
            if call_id is None:
                continue
            listed.add(call_id)
            state = self._calls.get(call_id)
            if state is None:
                continue  # a call this node never knew; another node's or pre-restart
            if uniqueid:
                state.uniqueid = uniqueid
                self._by_uniqueid[uniqueid] = call_id
            state.channel = status.get("Channel") or state.channel
            if status.get("ChannelStateDesc") == "Up" or status.get("ChannelState") == "6":
                events += self._answered(state)
        for state in list(self._calls.values()):
            if state.call_id in listed:
                continue
            if state.direction is AmiCallDirection.OUTBOUND and state.outcome is None:
                events += self._set_outcome(state, DialOutcome.FAILED, None, "lost with AMI")
            if state.call_id not in self._calls:
                continue  # finished by the outcome just set
            state.ended = CallEnded(state.call_id, 0, "ended while AMI was disconnected")
            events.append(state.ended)
            self._finish(state)
        return events

    def mark_originate_response_lost(self) -> None:
        """After a reconnect: pending Originates will never get their response (panoramisk
        drops actions in flight with the connection), so a later Hangup decides their outcome."""
        for state in self._calls.values():
            if state.direction is AmiCallDirection.OUTBOUND and state.outcome is None:
                self._lost.add(state.call_id)

    # --- event handlers ---------------------------------------------------------------------

    def _state_for(self, message: AmiMessage) -> CallState | None:
        call_id = self._by_uniqueid.get(message.get("Uniqueid") or "")
        return self._calls.get(call_id) if call_id else None

    def _learn_channel(self, message: AmiMessage) -> None:
        state = self._state_for(message)
        if state is not None and message.get("Channel"):
            state.channel = message["Channel"]

    def _user_event(self, message: AmiMessage) -> list[CallEvent]:
        kind = message.get("UserEvent")
        if kind == INBOUND_EVENT:
            return self._inbound(message)
        if kind == AMD_EVENT:
            return self._amd(message)
        return []

    def _inbound(self, message: AmiMessage) -> list[CallEvent]:
        call_id = _call_id(message.get("CallId"))
        if call_id is None:
            raise ValueError(f"CallId {message.get('CallId')!r} is not a UUID")
        did = message.get("Did") or ""
        caller = message.get("Caller") or ""
        if not _NUMBER.fullmatch(did) or not _NUMBER.fullmatch(caller):
            raise ValueError("Did / Caller are not phone numbers")
        if call_id in self._calls:
            return []  # a repeated event (resync) adds nothing
        state = CallState(
            call_id,
            AmiCallDirection.INBOUND,
            number=did,
            caller=caller,
            channel=message.get("Channel") or "",
            uniqueid=message.get("Uniqueid") or "",
            answered=True,  # the dialplan answers before it announces the call
        )
        self._calls[call_id] = state
        if state.uniqueid:
            self._by_uniqueid[state.uniqueid] = call_id
        return [InboundCallStarted(call_id, did, caller, state.channel)]

    def _amd(self, message: AmiMessage) -> list[CallEvent]:
        call_id = _call_id(message.get("CallId"))
        state = self._calls.get(call_id) if call_id else None
        if state is None:
            return []
        status = AmdStatus(message.get("Status") or "")
        state.amd = AmdResult(state.call_id, status, message.get("Cause") or "")
        return [state.amd]

    def _originate_response(self, message: AmiMessage) -> list[CallEvent]:
        # Seen as an event only when another client's Originate named one of our channels;
        # our own arrive through originate_response(), correlated by ActionID.
        state = self._state_for(message)
        return [] if state is None else self._apply_originate_response(state, message)

    def originate_response(self, call_id: uuid.UUID, message: AmiMessage) -> list[CallEvent]:
        """The OriginateResponse of the Originate placed for ``call_id`` (its ActionID matched;
        its Uniqueid is our ChannelId, or ``<null>`` when no channel could be created)."""
        state = self._calls.get(call_id)
        if state is None:
            return []
        try:
            return self._apply_originate_response(state, message)
        except ValueError as exc:
            self.dropped += 1
            log.warning("OriginateResponse not understood (%s): %r", exc, message)
            return self._set_outcome(state, DialOutcome.FAILED, None, "bad OriginateResponse")

    def _apply_originate_response(self, state: CallState, message: AmiMessage) -> list[CallEvent]:
        reason = int(message.get("Reason") or "0")
        if reason == 4 and not state.channel and message.get("Channel"):
            # Only an answered call's Channel is a channel name; a failed one repeats the dial
            # string (PJSIP/<number>@trunk), which no action could address.
            state.channel = message["Channel"]
        events = self._set_outcome(state, DialOutcome.from_reason(reason), reason, "")
        if reason == 4:
            events += self._answered(state)
        return events

    def _newstate(self, message: AmiMessage) -> list[CallEvent]:
        state = self._state_for(message)
        if state is None:
            return []
        if message.get("Channel"):
            state.channel = message["Channel"]
        desc = message.get("ChannelStateDesc")
        code = message.get("ChannelState")
        if desc == "Up" or code == "6":
            return self._answered(state)
        if desc == "Ringing" or code == "5":
            return [CallRinging(state.call_id)]
        return []

    def _answered(self, state: CallState) -> list[CallEvent]:
        if state.answered:
            return []
        state.answered = True
        events: list[CallEvent] = [CallAnswered(state.call_id)]
        if state.direction is AmiCallDirection.OUTBOUND and state.outcome is None:
            events += self._set_outcome(state, DialOutcome.ANSWERED, None, "")
        return events

    def _set_outcome(
        self, state: CallState, outcome: DialOutcome, reason: int | None, text: str
    ) -> list[CallEvent]:
        if state.outcome is not None:
            if reason is not None and state.outcome.reason is None:
                # Newstate Up decided "answered" first; keep that, but note Asterisk's code.
                state.outcome = OriginateResult(state.call_id, state.outcome.outcome, reason, text)
            return []
        state.outcome = OriginateResult(state.call_id, outcome, reason, text)
        result: list[CallEvent] = [state.outcome]
        self._finish_if_done(state)
        return result

    def _dtmf(self, message: AmiMessage) -> list[CallEvent]:
        state = self._state_for(message)
        if state is None or message.get("Direction", "Received") != "Received":
            return []
        digit = message.get("Digit") or ""
        if len(digit) != 1 or digit not in "0123456789*#ABCD":
            raise ValueError(f"DTMF digit {digit!r}")
        return [DtmfReceived(state.call_id, digit)]

    def _hangup(self, message: AmiMessage) -> list[CallEvent]:
        state = self._state_for(message)
        if state is None:
            return []
        cause = int(message.get("Cause") or "0")
        state.ended = CallEnded(state.call_id, cause, message.get("Cause-txt") or "")
        events: list[CallEvent] = []
        pending = state.direction is AmiCallDirection.OUTBOUND and state.outcome is None
        if pending and state.call_id in self._lost:
            # The OriginateResponse went down with the old AMI connection: the cause decides.
            events += self._set_outcome(state, DialOutcome.from_hangup_cause(cause), None, "")
        events.append(state.ended)
        self._finish_if_done(state)
        return events

    def _finish(self, state: CallState) -> None:
        """Move a call that can change no more to the bounded list of ended calls."""
        self._calls.pop(state.call_id, None)
        self._by_uniqueid.pop(state.uniqueid, None)
        self._lost.discard(state.call_id)
        self._ended[state.call_id] = state
        while len(self._ended) > MAX_ENDED_CALLS:
            self._ended.popitem(last=False)

    def _finish_if_done(self, state: CallState) -> None:
        # Done: hung up with nothing more to learn (an outbound call still waits for its
        # OriginateResponse, which Asterisk sends after the Hangup), or never connected at all.
        hung_up = state.ended is not None and (
            state.direction is AmiCallDirection.INBOUND or state.outcome is not None
        )
        unanswered = state.outcome is not None and state.outcome.outcome is not DialOutcome.ANSWERED
        if hung_up or unanswered:
            self._finish(state)
