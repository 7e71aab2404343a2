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
* a key the caller presses while the dialplan answers can reach AMI *before* the
  ``CallagentInbound`` event (seen on Asterisk 22.10.1: ``DTMFEnd`` of the first key, then the
  UserEvent): DTMF of a channel no call claims yet is kept (bounded) and reported right after
  the call's announcement;
* AMD's result arrives as the ``CallagentAmd`` UserEvent carrying the call id;
* the AudioSocket leg of a ``Dial(AudioSocket/...)`` call is the ``DestChannel`` of the call
  channel's ``DialBegin`` (``AudioSocket/<host:port>-<call id>``): ``BlindTransfer`` is sent on
  it, since Asterisk transfers the *bridge peer* of the channel it is given (DESIGN.md "Known
  traps").

How an unanswered Originate ended is read from three reports, which a real Asterisk 22.10.1 sent
in varying order (docs/telephony.md "Outbound calls and AMD"): the ``OriginateResponse``
``Reason`` (often 0 whatever happened), the Q.850 ``Cause`` of the channel's ``HangupRequest`` /
``Hangup``, and the ``DialStatus`` of its ``DialEnd``. The cause decides where it says something
(17 busy, 19 no answer, 34 congestion…), then the dial status, then the reason; a call whose
response says only "0" and whose cause has not arrived yet waits for it (:meth:`CallTracker.settle`
bounds the wait). An unanswered call is kept until its ``Hangup`` (within the bounded list of
ended calls), so the cause is stored whichever of the two came first.

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
"""Ended calls remembered for late lookups - and unanswered calls whose ``Hangup`` is still to
come; older ones are forgotten (bounded memory)."""

VERDICT_WAIT_S: Final = 5.0
"""How long an Originate that failed with ``Reason: 0`` waits for its hang-up cause before it
counts as failed (:meth:`CallTracker.settle`; the AMI client runs the timer). Asterisk sent the
cause within milliseconds of the response, before or after it."""

MAX_EARLY_DTMF_CHANNELS: Final = 64
"""Channels whose DTMF is kept until a call claims them; the oldest is forgotten beyond. Only
keys pressed in the moment before the dialplan's announcement land here (and keys on channels
no call of ours will ever claim, which the bound and their ``Hangup`` clear away)."""

MAX_EARLY_DTMF_DIGITS: Final = 16
"""Keys kept per unclaimed channel."""

AUDIOSOCKET_CHANNEL_PREFIX: Final = "AudioSocket/"
"""How ``chan_audiosocket`` names its channels: ``AudioSocket/<host:port>-<uuid>``."""

CAUSE_TEXT: Final[dict[int, str]] = {
    # Asterisk's own texts (main/channel.c, causes[]), for a cause that arrived without one
    # (HangupRequest and SoftHangupRequest carry no Cause-txt).
    1: "Unallocated (unassigned) number",
    3: "No route to destination",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    22: "Number changed",
    27: "Destination out of order",
    28: "Invalid number format",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    58: "Bearer capability not available",
    127: "Interworking, unspecified",
}

_NUMBER = re.compile(r"\+?[0-9*#]{0,32}")


class DialOutcome(enum.Enum):
    """How dialling an originated call ended (OriginateResponse ``Reason``, hang-up cause and
    ``DialStatus``: docs/telephony.md "Outbound calls and AMD"); not the call's business
    outcome, which is :class:`callagent.store.states.CallOutcome`."""

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

    @classmethod
    def decide(cls, reason: int | None, cause: int, dial_status: str) -> DialOutcome:
        """The outcome of an unanswered Originate from everything Asterisk reported.

        A real Asterisk 22.10.1 answered ``Reason: 0`` for a callee's SIP 486 (cause 17, dial
        status BUSY), 503 (cause 34, CONGESTION), 404 (cause 1, NOANSWER) and 603 (cause 21,
        NOANSWER), and ``Reason: 3`` with cause 19 for ringing past the timeout. So the cause
        decides when it means something, then a BUSY / CONGESTION dial status (NOANSWER came
        for a 404 too, so it decides nothing), then the reason.
        """
        if cause in _CAUSES:
            return _CAUSES[cause]
        if dial_status in _DIAL_STATUSES:
            return _DIAL_STATUSES[dial_status]
        return cls.from_reason(reason) if reason is not None else cls.FAILED


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
_DIAL_STATUSES: Final = {"BUSY": DialOutcome.BUSY, "CONGESTION": DialOutcome.CONGESTION}


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
class CallChannel:
    """Asterisk named the channel of an originated call (its ``Newchannel``); an inbound call's
    channel comes with :class:`InboundCallStarted`."""

    call_id: uuid.UUID
    channel: str


@dataclass(frozen=True, slots=True)
class OriginateResult:
    """How an originated call turned out; ``reason`` is Asterisk's code when it was reported,
    ``cause`` the Q.850 hang-up cause that decided it, if one did."""

    call_id: uuid.UUID
    outcome: DialOutcome
    reason: int | None = None
    message: str = ""
    cause: int | None = None


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
    | CallChannel
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
    audiosocket_channel: str = ""
    """The AudioSocket leg the call's channel dialled (``Dial(AudioSocket/...)`` only)."""
    reason: int | None = None
    """The OriginateResponse ``Reason``, once it arrived."""
    cause: int = 0
    """The latest Q.850 cause a ``HangupRequest`` / ``SoftHangupRequest`` / ``Hangup`` gave."""
    dial_status: str = ""
    """The ``DialStatus`` of the originated channel's ``DialEnd``."""


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
        self._awaiting_hangup: dict[str, uuid.UUID] = {}
        """Uniqueids of ended (unanswered) calls whose channel has not sent its Hangup yet."""
        self._lost: set[uuid.UUID] = set()
        self._early_dtmf: OrderedDict[str, list[str]] = OrderedDict()
        """Keys pressed on channels (by Uniqueid) no call claims yet, oldest channel first."""
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
                    return self._learn_channel(message)
                case "Newstate":
                    return self._newstate(message)
                case "DialBegin":
                    self._dial_begin(message)
                    return []
                case "DialEnd":
                    return self._dial_end(message)
                case "DTMFEnd":
                    return self._dtmf(message)
                case "HangupRequest" | "SoftHangupRequest":
                    return self._hangup_request(message)
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
        """Record a hand-over Asterisk accepted - also for a call whose channel has hung up
        already: the caller's ``Hangup`` can arrive before the transfer action's response."""
        state = self.get(call_id)
        if state is None:
            return []
        state.transfers.append(target)
        return [CallTransferred(call_id, target)]

    def verdict_pending(self, call_id: uuid.UUID) -> bool:
        """True while an Originate's response has arrived but its outcome waits for the hang-up
        cause (see :meth:`settle`)."""
        state = self._calls.get(call_id)
        return state is not None and state.reason is not None and state.outcome is None

    def settle(self, call_id: uuid.UUID) -> list[CallEvent]:
        """Decide a pending verdict (:meth:`verdict_pending`) from what has arrived so far: the
        bound on waiting for a hang-up cause that does not come (:data:`VERDICT_WAIT_S`)."""
        state = self._calls.get(call_id)
        if state is None or state.reason is None or state.outcome is not None:
            return []
        return self._decide(state)

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
                if state.reason is not None:
                    events += self._decide(state)  # the response came; the cause never will
                else:
                    events += self._set_outcome(state, DialOutcome.FAILED, None, "lost with AMI")
            if state.call_id not in self._calls:
                continue  # finished by the outcome just set
            state.ended = CallEnded(state.call_id, 0, "ended while AMI was disconnected")
            events.append(state.ended)
            self._finish(state)
        for uniqueid, call_id in list(self._awaiting_hangup.items()):
            if call_id not in listed:  # its Hangup went by while we were away
                del self._awaiting_hangup[uniqueid]
        return events

    def mark_originate_response_lost(self) -> None:
        """After a reconnect: pending Originates will never get their response (panoramisk
        drops actions in flight with the connection), so a later Hangup decides their outcome."""
        for state in self._calls.values():
            if state.direction is AmiCallDirection.OUTBOUND and state.outcome is None:
                self._lost.add(state.call_id)

    # --- event handlers ---------------------------------------------------------------------

    def _state_for(self, message: AmiMessage, key: str = "Uniqueid") -> CallState | None:
        call_id = self._by_uniqueid.get(message.get(key) or "")
        return self._calls.get(call_id) if call_id else None

    def _hanging_up(self, message: AmiMessage) -> CallState | None:
        """The call of a hang-up report: a live one, or an unanswered one that has its outcome
        and waits for its channel's Hangup."""
        state = self._state_for(message)
        if state is not None:
            return state
        call_id = self._awaiting_hangup.get(message.get("Uniqueid") or "")
        return self._ended.get(call_id) if call_id else None

    def _learn_channel(self, message: AmiMessage) -> list[CallEvent]:
        state = self._state_for(message)
        if state is None or not message.get("Channel"):
            return []
        return self._name_channel(state, message["Channel"])

    def _name_channel(self, state: CallState, channel: str) -> list[CallEvent]:
        first = not state.channel
        state.channel = channel
        if first and state.direction is AmiCallDirection.OUTBOUND:
            return [CallChannel(state.call_id, channel)]
        return []

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
        early = self._early_dtmf.pop(state.uniqueid, [])
        return [
            InboundCallStarted(call_id, did, caller, state.channel),
            *(DtmfReceived(call_id, digit) for digit in early),
        ]

    def _amd(self, message: AmiMessage) -> list[CallEvent]:
        call_id = _call_id(message.get("CallId"))
        state = self._calls.get(call_id) if call_id else None
        if state is None:
            return []
        status = AmdStatus(message.get("Status") or "")
        state.amd = AmdResult(state.call_id, status, message.get("Cause") or "")
        return [state.amd]

    def _dial_begin(self, message: AmiMessage) -> None:
        # The call's channel dials its AudioSocket leg (callagent-connect's Dial(AudioSocket/...)).
        state = self._state_for(message)
        dest = message.get("DestChannel") or ""
        if state is not None and dest.startswith(AUDIOSOCKET_CHANNEL_PREFIX):
            state.audiosocket_channel = dest

    def _dial_end(self, message: AmiMessage) -> list[CallEvent]:
        # The originated channel is the *destination* of the Originate's dial (DestUniqueid).
        state = self._state_for(message, "DestUniqueid")
        if state is None or state.direction is not AmiCallDirection.OUTBOUND:
            return []
        state.dial_status = message.get("DialStatus") or ""
        pending = state.reason is not None and state.outcome is None
        return self._decide(state) if pending and state.dial_status in _DIAL_STATUSES else []

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
        events: list[CallEvent] = []
        if reason == 4:
            if not state.channel and message.get("Channel"):
                # Only an answered call's Channel is a channel name; a failed one repeats the
                # dial string (PJSIP/<number>@trunk), which no action could address.
                events += self._name_channel(state, message["Channel"])
            events += self._set_outcome(state, DialOutcome.ANSWERED, reason, "")
            return events + self._answered(state)
        if state.outcome is not None:
            return self._set_outcome(state, state.outcome.outcome, reason, "")  # notes the code
        state.reason = reason
        waits = reason == 0 and state.cause == 0 and not state.dial_status
        if waits and state.channel and state.ended is None:
            # "0" says nothing, and a channel exists whose hang-up cause will: wait for it
            # (Asterisk sent it just before or just after the response; settle() bounds this).
            log.debug("call %s: OriginateResponse Reason 0; waiting for its cause", state.call_id)
            return []
        # No channel was ever created (Asterisk then sends no Hangup at all), or the reason, a
        # cause or a dial status already tell.
        return self._decide(state)

    def _decide(self, state: CallState) -> list[CallEvent]:
        outcome = DialOutcome.decide(state.reason, state.cause, state.dial_status)
        return self._set_outcome(state, outcome, state.reason, "", state.cause or None)

    def _newstate(self, message: AmiMessage) -> list[CallEvent]:
        state = self._state_for(message)
        if state is None:
            return []
        events: list[CallEvent] = []
        if message.get("Channel"):
            events += self._name_channel(state, message["Channel"])
        desc = message.get("ChannelStateDesc")
        code = message.get("ChannelState")
        if desc == "Up" or code == "6":
            return events + self._answered(state)
        if desc == "Ringing" or code == "5":
            return [*events, CallRinging(state.call_id)]
        return events

    def _answered(self, state: CallState) -> list[CallEvent]:
        if state.answered:
            return []
        state.answered = True
        events: list[CallEvent] = [CallAnswered(state.call_id)]
        if state.direction is AmiCallDirection.OUTBOUND and state.outcome is None:
            events += self._set_outcome(state, DialOutcome.ANSWERED, None, "")
        return events

    def _set_outcome(
        self,
        state: CallState,
        outcome: DialOutcome,
        reason: int | None,
        text: str,
        cause: int | None = None,
    ) -> list[CallEvent]:
        if state.outcome is not None:
            if reason is not None and state.outcome.reason is None:
                # Newstate Up (or a hang-up cause) decided first; keep that, note Asterisk's code.
                state.outcome = OriginateResult(
                    state.call_id, state.outcome.outcome, reason, text, state.outcome.cause
                )
            return []
        state.outcome = OriginateResult(state.call_id, outcome, reason, text, cause)
        result: list[CallEvent] = [state.outcome]
        self._finish_if_done(state)
        return result

    def _dtmf(self, message: AmiMessage) -> list[CallEvent]:
        if message.get("Direction", "Received") != "Received":
            return []
        digit = message.get("Digit") or ""
        if len(digit) != 1 or digit not in "0123456789*#ABCD":
            raise ValueError(f"DTMF digit {digit!r}")
        state = self._state_for(message)
        if state is None:
            self._keep_early_dtmf(message.get("Uniqueid") or "", digit)
            return []
        return [DtmfReceived(state.call_id, digit)]

    def _keep_early_dtmf(self, uniqueid: str, digit: str) -> None:
        """A key on a channel no call claims (yet): kept for the call that may announce it."""
        if not uniqueid:
            return
        digits = self._early_dtmf.setdefault(uniqueid, [])
        if len(digits) < MAX_EARLY_DTMF_DIGITS:
            digits.append(digit)
        while len(self._early_dtmf) > MAX_EARLY_DTMF_CHANNELS:
            self._early_dtmf.popitem(last=False)

    def _hangup_request(self, message: AmiMessage) -> list[CallEvent]:
        """``HangupRequest`` / ``SoftHangupRequest``: the cause of the hang-up to come, when they
        carry one. A callee's 486 arrived as ``HangupRequest Cause: 17`` before the Originate's
        response; with ``AudioSocket()`` a caller's BYE gave a ``HangupRequest`` without a cause,
        ``SoftHangupRequest Cause: 16`` and then ``Hangup Cause: 0`` (docs/telephony.md)."""
        state = self._hanging_up(message)
        cause = int(message.get("Cause") or "0")
        if state is None or cause == 0:
            return []
        state.cause = cause
        if state.reason is not None and state.outcome is None:
            return self._decide(state)
        return []

    def _hangup(self, message: AmiMessage) -> list[CallEvent]:
        self._early_dtmf.pop(message.get("Uniqueid") or "", None)  # no call will claim it now
        state = self._hanging_up(message)
        if state is None or state.ended is not None:
            return []
        cause = int(message.get("Cause") or "0")
        text = message.get("Cause-txt") or ""
        if cause == 0 and state.cause:
            # Hangup said "0 Unknown" after a request that named the cause: that one is it.
            cause, text = state.cause, CAUSE_TEXT.get(state.cause, "")
        state.cause = cause or state.cause
        state.ended = CallEnded(state.call_id, cause, text)
        self._awaiting_hangup.pop(state.uniqueid, None)
        events: list[CallEvent] = []
        if state.direction is AmiCallDirection.OUTBOUND and state.outcome is None:
            if state.reason is not None:
                events += self._decide(state)  # the response came first and waited for this
            elif state.call_id in self._lost:
                # The OriginateResponse went down with the old AMI connection: the cause decides.
                events += self._set_outcome(
                    state, DialOutcome.decide(None, cause, state.dial_status), None, "", cause
                )
        events.append(state.ended)
        if state.call_id in self._calls:
            self._finish_if_done(state)
        return events

    def _finish(self, state: CallState) -> None:
        """Move a call that can change no more to the bounded list of ended calls; one whose
        channel has not hung up yet stays reachable for that Hangup (its cause is stored)."""
        self._calls.pop(state.call_id, None)
        self._by_uniqueid.pop(state.uniqueid, None)
        self._lost.discard(state.call_id)
        if state.ended is None and state.channel and state.uniqueid:
            self._awaiting_hangup[state.uniqueid] = state.call_id
        self._ended[state.call_id] = state
        while len(self._ended) > MAX_ENDED_CALLS:
            _, forgotten = self._ended.popitem(last=False)
            self._awaiting_hangup.pop(forgotten.uniqueid, None)

    def _finish_if_done(self, state: CallState) -> None:
        # Done: hung up with nothing more to learn (an outbound call still waits for its
        # OriginateResponse, which Asterisk may send after the Hangup), or never connected at
        # all - whose Hangup, if its channel existed, is still awaited by _finish.
        hung_up = state.ended is not None and (
            state.direction is AmiCallDirection.INBOUND or state.outcome is not None
        )
        unanswered = state.outcome is not None and state.outcome.outcome is not DialOutcome.ANSWERED
        if hung_up or unanswered:
            self._finish(state)
