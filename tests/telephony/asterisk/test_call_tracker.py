"""Correlation of AMI events to calls, on byte-exact AMI text.

The events are written the way Asterisk writes them and parsed by the sans-IO AMI protocol, so
these tests pin the meaning of each header the tracker relies on. The sequences of unanswered
calls, of the slin hang-up and of the AudioSocket leg are what a real Asterisk 22.10.1 sent
(tests/telephony/asterisk/test_real_asterisk.py prints them), trimmed to the headers that matter.
"""

from __future__ import annotations

import uuid

import pytest

from callagent.telephony.asterisk import call_tracker
from callagent.telephony.asterisk.ami_protocol import AmiMessage
from callagent.telephony.asterisk.call_tracker import (
    MAX_EARLY_DTMF_CHANNELS,
    AmdResult,
    AmdStatus,
    AmiCallDirection,
    CallAnswered,
    CallChannel,
    CallEnded,
    CallRinging,
    CallTracker,
    CallTransferred,
    DialOutcome,
    DtmfReceived,
    InboundCallStarted,
    OriginateResult,
)

from fakes.ami_connection import AmiConnection, Role

CALL = uuid.UUID("6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b")


def parse(text: str) -> list[AmiMessage]:
    """AMI text (``\\n`` line ends, blank line between messages) as messages."""
    conn = AmiConnection(Role.CLIENT)
    conn.receive_data(b"Asterisk Call Manager/11.0.0\r\n" + text.replace("\n", "\r\n").encode())
    messages = []
    while (event := conn.next_event()) is not None:
        if isinstance(event, AmiMessage):
            messages.append(event)
    return messages


def feed(tracker: CallTracker, text: str) -> list[object]:
    return [e for m in parse(text) for e in tracker.handle(m)]


NEWCHANNEL = f"""Event: Newchannel
Privilege: call,all
Channel: PJSIP/trunk-00000001
ChannelState: 0
ChannelStateDesc: Down
Context: callagent-inbound
Exten: s
Priority: 1
Uniqueid: {CALL}
Linkedid: {CALL}

"""
RINGING = f"""Event: Newstate
Privilege: call,all
Channel: PJSIP/trunk-00000001
ChannelState: 5
ChannelStateDesc: Ringing
Uniqueid: {CALL}

"""
UP = RINGING.replace("ChannelState: 5", "ChannelState: 6").replace("Ringing", "Up")


def hangup(cause: int, text: str, uniqueid: str = str(CALL)) -> str:
    return f"""Event: Hangup
Privilege: call,all
Channel: PJSIP/trunk-00000001
Uniqueid: {uniqueid}
Cause: {cause}
Cause-txt: {text}

"""


def originate_response(reason: int, uniqueid: str = str(CALL)) -> AmiMessage:
    """As Asterisk sent it: an answered call's Channel names the channel, a failed one's repeats
    the dial string."""
    (message,) = parse(
        f"""Event: OriginateResponse
Privilege: call,all
ActionID: action/1
Response: {"Success" if reason == 4 else "Failure"}
Channel: {"PJSIP/trunk-00000001" if reason == 4 else "PJSIP/+4930555@trunk"}
Reason: {reason}
Uniqueid: {uniqueid}

"""
    )
    return message


def test_an_answered_outbound_call_from_ring_to_hang_up() -> None:
    tracker = CallTracker()
    tracker.expect_outbound(CALL, "+4930555")
    assert feed(tracker, NEWCHANNEL + RINGING + UP) == [
        CallChannel(CALL, "PJSIP/trunk-00000001"),  # stored as the call's telephony_channel
        CallRinging(CALL),
        CallAnswered(CALL),
        OriginateResult(CALL, DialOutcome.ANSWERED, None, ""),
    ]
    # The OriginateResponse comes back through panoramisk's action result; it adds the code.
    assert tracker.originate_response(CALL, originate_response(4)) == []
    state = tracker.get(CALL)
    assert state is not None
    assert state.outcome == OriginateResult(CALL, DialOutcome.ANSWERED, 4, "")
    assert state.channel == "PJSIP/trunk-00000001"
    amd = f"""Event: UserEvent
Privilege: user,all
Channel: PJSIP/trunk-00000001
Uniqueid: {CALL}
UserEvent: CallagentAmd
CallId: {CALL}
Status: NOTSURE
Cause: TOOLONG-5000

"""
    dtmf = f"""Event: DTMFEnd
Privilege: dtmf,all
Uniqueid: {CALL}
Digit: 7
DurationMs: 120
Direction: Received

Event: DTMFEnd
Privilege: dtmf,all
Uniqueid: {CALL}
Digit: 8
Direction: Sent

"""
    assert feed(tracker, amd + dtmf + hangup(16, "Normal Clearing")) == [
        AmdResult(CALL, AmdStatus.NOTSURE, "TOOLONG-5000"),
        DtmfReceived(CALL, "7"),
        CallEnded(CALL, 16, "Normal Clearing"),
    ]
    assert tracker.active == []
    assert tracker.get(CALL) is state  # still there for late lookups


def hangup_request(cause: int | None, tech_cause: int | None = None) -> str:
    """A HangupRequest as Asterisk sent it: the cause of a SIP rejection (no Cause-txt), or no
    cause at all (a caller's BYE with ``AudioSocket()``)."""
    lines = [f"Cause: {cause}"] if cause is not None else []
    lines += [f"TechCause: {tech_cause}"] if tech_cause is not None else []
    body = "".join(f"{line}\n" for line in lines)
    return f"""Event: HangupRequest
Privilege: call,all
Channel: PJSIP/trunk-00000001
ChannelState: 0
ChannelStateDesc: Down
Uniqueid: {CALL}
{body}
"""


def dial_end(status: str) -> str:
    """The originated channel's DialEnd: it is the dial's *destination* (DestUniqueid)."""
    return f"""Event: DialEnd
Privilege: call,all
DestChannel: PJSIP/trunk-00000001
DestChannelState: 0
DestChannelStateDesc: Down
DestUniqueid: {CALL}
DialStatus: {status}

"""


def hangup_with_tech(cause: int, text: str, tech_cause: int) -> str:
    return hangup(cause, text).replace("\n\n", f"\nTechCause: {tech_cause}\n\n")


RESPONSE = "OriginateResponse"
"""Where in a sequence the Originate's response reaches the tracker (through panoramisk's
action result, not as an event)."""

DIAL_BEGIN = f"""Event: DialBegin
Privilege: call,all
DestChannel: PJSIP/trunk-00000001
DestUniqueid: {CALL}
DialString: +4930555@trunk

"""
DIAL_STATE_RINGING = f"""Event: DialState
Privilege: call,all
DestChannel: PJSIP/trunk-00000001
DestUniqueid: {CALL}
DialStatus: RINGING

"""

# What a real Asterisk 22.10.1 sent after NEWCHANNEL + DIAL_BEGIN for each callee, in the order
# seen once (the response's place varied between runs: every place is tried below).
UNANSWERED = {
    "busy (SIP 486)": (
        [
            hangup_request(17, 486),
            RESPONSE,
            dial_end("BUSY"),
            hangup_with_tech(17, "User busy", 486),
        ],
        0,
        DialOutcome.BUSY,
        (17, "User busy"),
    ),
    "congestion (SIP 503)": (
        [
            hangup_request(34, 503),
            dial_end("CONGESTION"),
            hangup_with_tech(34, "Circuit/channel congestion", 503),
            RESPONSE,
        ],
        0,
        DialOutcome.CONGESTION,
        (34, "Circuit/channel congestion"),
    ),
    "unallocated (SIP 404)": (
        [
            RESPONSE,
            hangup_request(1, 404),
            dial_end("NOANSWER"),
            hangup_with_tech(1, "Unallocated (unassigned) number", 404),
        ],
        0,
        DialOutcome.FAILED,
        (1, "Unallocated (unassigned) number"),
    ),
    "declined (SIP 603)": (
        [
            hangup_request(21, 603),
            dial_end("NOANSWER"),
            RESPONSE,
            hangup_with_tech(21, "Call Rejected", 603),
        ],
        0,
        DialOutcome.NO_ANSWER,
        (21, "Call Rejected"),
    ),
    "rang past the timeout": (
        [
            RINGING,
            DIAL_STATE_RINGING,
            RESPONSE,
            hangup_with_tech(19, "User alerting, no answer", 480),
        ],
        3,
        DialOutcome.NO_ANSWER,
        (19, "User alerting, no answer"),
    ),
}


def orders(sequence: list[str]) -> list[list[str]]:
    """``sequence`` with the response moved to every place after the channel's own ringing."""
    events = [e for e in sequence if e != RESPONSE]
    first = sum(e in (RINGING, DIAL_STATE_RINGING) for e in events)
    return [[*events[:i], RESPONSE, *events[i:]] for i in range(first, len(events) + 1)]


@pytest.mark.parametrize("callee", list(UNANSWERED))
def test_an_unanswered_call_gets_its_outcome_and_its_cause_whatever_the_order(
    callee: str,
) -> None:
    sequence, reason, outcome, (cause, text) = UNANSWERED[callee]
    for order in orders(sequence):
        tracker = CallTracker()
        tracker.expect_outbound(CALL, "+4930555")
        events = feed(tracker, NEWCHANNEL + DIAL_BEGIN)
        for step in order:
            if step == RESPONSE:
                events += tracker.originate_response(CALL, originate_response(reason))
            else:
                events += feed(tracker, step)
        where = f"{callee}, response at {order.index(RESPONSE)}"
        (result,) = [e for e in events if isinstance(e, OriginateResult)]
        assert (result.outcome, result.reason) == (outcome, reason), where
        # The cause rides along when it was known at the verdict (the reason 3 of a ring
        # timeout decides before the Hangup that carries it).
        assert result.cause in (cause, None) if reason == 3 else result.cause == cause, where
        assert [e for e in events if isinstance(e, CallEnded)] == [CallEnded(CALL, cause, text)]
        assert events[0] == CallChannel(CALL, "PJSIP/trunk-00000001"), where
        assert tracker.active == [], where  # nothing left behind...
        assert not tracker.verdict_pending(CALL)
        state = tracker.get(CALL)
        assert state is not None
        assert state.ended == CallEnded(CALL, cause, text)  # ...and still there for lookups


def test_a_busy_callee_is_busy_as_soon_as_the_response_follows_the_cause() -> None:
    # The order seen most: the 486's HangupRequest, then the response. The outcome does not
    # wait for the Hangup, and the Hangup still brings the cause after it.
    tracker = CallTracker()
    tracker.expect_outbound(CALL, "+4930555")
    feed(tracker, NEWCHANNEL + DIAL_BEGIN + hangup_request(17, 486))
    assert tracker.originate_response(CALL, originate_response(0)) == [
        OriginateResult(CALL, DialOutcome.BUSY, 0, "", 17)
    ]
    assert tracker.active == []
    assert feed(tracker, dial_end("BUSY") + hangup_with_tech(17, "User busy", 486)) == [
        CallEnded(CALL, 17, "User busy")
    ]


def test_a_reason_0_waits_for_the_cause_and_settle_bounds_the_wait() -> None:
    tracker = CallTracker()
    tracker.expect_outbound(CALL, "+4930555")
    feed(tracker, NEWCHANNEL + DIAL_BEGIN)
    assert tracker.originate_response(CALL, originate_response(0)) == []
    assert tracker.verdict_pending(CALL)
    assert [s.call_id for s in tracker.active] == [CALL]
    # The cause never came (the AMI client calls settle() after VERDICT_WAIT_S).
    assert tracker.settle(CALL) == [OriginateResult(CALL, DialOutcome.FAILED, 0, "")]
    assert tracker.settle(CALL) == []
    assert tracker.active == []


@pytest.mark.parametrize("uniqueid", [str(CALL), "<null>"])
def test_no_channel_at_all_is_a_failure_at_once(uniqueid: str) -> None:
    # An endpoint Asterisk cannot dial: no Newchannel, no Hangup, only a Failure with Reason 0
    # (whose Uniqueid was the ChannelId on a real Asterisk 22.10.1; <null> without one).
    tracker = CallTracker()
    tracker.expect_outbound(CALL, "+4930555")
    assert tracker.originate_response(CALL, originate_response(0, uniqueid)) == [
        OriginateResult(CALL, DialOutcome.FAILED, 0, "")
    ]
    assert tracker.active == []
    assert not tracker.verdict_pending(CALL)


def test_a_hangup_awaited_after_the_outcome_is_forgotten_past_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(call_tracker, "MAX_ENDED_CALLS", 2)
    tracker = CallTracker()
    tracker.expect_outbound(CALL, "+4930555")
    feed(tracker, NEWCHANNEL + RINGING)
    assert tracker.originate_response(CALL, originate_response(3))
    for _ in range(2):  # two more calls end: the first falls off the list of ended calls
        other = uuid.uuid4()
        tracker.expect_outbound(other, "+4930666")
        tracker.originate_response(other, originate_response(0, "<null>"))
    assert tracker.get(CALL) is None
    assert feed(tracker, hangup(19, "User alerting, no answer")) == []


def test_with_audiosocket_app_a_callers_hang_up_takes_the_cause_of_its_request() -> None:
    # AudioSocket() (slin): the caller's BYE gave HangupRequest (no cause), SoftHangupRequest
    # Cause 16, then Hangup Cause 0 "Unknown".
    tracker = CallTracker()
    feed(tracker, INBOUND)
    soft = hangup_request(16).replace("Event: HangupRequest", "Event: SoftHangupRequest")
    text = hangup_request(None) + soft + hangup(0, "Unknown")
    assert feed(tracker, text.replace(str(CALL), "1700000000.7")) == [
        CallEnded(CALL, 16, "Normal Clearing")
    ]


def test_a_hangup_with_its_own_cause_keeps_it() -> None:
    tracker = CallTracker()
    feed(tracker, INBOUND)
    text = hangup_request(16) + hangup(17, "User busy")
    assert feed(tracker, text.replace(str(CALL), "1700000000.7")) == [
        CallEnded(CALL, 17, "User busy")
    ]


def test_the_audiosocket_leg_is_learnt_from_the_dial_of_the_calls_channel() -> None:
    tracker = CallTracker()
    feed(tracker, INBOUND)
    leg = f"AudioSocket/127.0.0.1:40729-{CALL}"
    dial = f"""Event: DialBegin
Privilege: call,all
Channel: PJSIP/trunk-00000007
Uniqueid: 1700000000.7
DestChannel: {leg}
DestUniqueid: 1700000000.8
DialString: 127.0.0.1:40729/{CALL}/c(slin16)

"""
    assert feed(tracker, dial) == []
    state = tracker.get(CALL)
    assert state is not None
    assert (state.channel, state.audiosocket_channel) == ("PJSIP/trunk-00000007", leg)


def test_a_transfer_answered_after_the_callers_hang_up_is_still_recorded() -> None:
    tracker = CallTracker()
    feed(tracker, INBOUND)
    feed(tracker, hangup(16, "Normal Clearing", "1700000000.7"))
    assert tracker.active == []
    assert tracker.transferred(CALL, "sales") == [CallTransferred(CALL, "sales")]
    assert tracker.transferred(uuid.uuid4(), "sales") == []  # a call never seen: nothing


INBOUND = f"""Event: UserEvent
Privilege: user,all
Channel: PJSIP/trunk-00000007
Uniqueid: 1700000000.7
UserEvent: CallagentInbound
CallId: {CALL}
Did: +4930123456
Caller: +49170555

"""


def test_inbound_call_is_announced_by_the_dialplan_and_followed_by_uniqueid() -> None:
    tracker = CallTracker()
    text = f"""Event: UserEvent
Privilege: user,all
Channel: PJSIP/trunk-00000007
Uniqueid: 1700000000.7
UserEvent: CallagentInbound
CallId: {CALL}
Did: +4930123456
Caller: +49170555

"""
    assert feed(tracker, text) == [
        InboundCallStarted(CALL, "+4930123456", "+49170555", "PJSIP/trunk-00000007")
    ]
    state = tracker.get(CALL)
    assert state is not None
    assert state.direction is AmiCallDirection.INBOUND
    assert feed(tracker, text) == []  # a repeat adds nothing
    assert feed(tracker, hangup(16, "Normal Clearing", "1700000000.7")) == [
        CallEnded(CALL, 16, "Normal Clearing")
    ]


def early_key(digit: str, uniqueid: str = "1700000000.7") -> str:
    return f"""Event: DTMFEnd
Privilege: dtmf,all
Channel: PJSIP/trunk-00000007
Uniqueid: {uniqueid}
Digit: {digit}
DurationMs: 120
Direction: Received

"""


def test_a_key_pressed_before_the_dialplan_announces_the_call_is_reported_with_it() -> None:
    """Asterisk 22.10.1 sent the first key's ``DTMFEnd`` before the ``CallagentInbound``
    UserEvent when the caller pressed it as the call was answered (docs/telephony.md)."""
    tracker = CallTracker()
    assert feed(tracker, early_key("1")) == []
    assert feed(tracker, INBOUND) == [
        InboundCallStarted(CALL, "+4930123456", "+49170555", "PJSIP/trunk-00000007"),
        DtmfReceived(CALL, "1"),
    ]
    assert feed(tracker, early_key("2")) == [DtmfReceived(CALL, "2")]
    assert tracker.dropped == 0


def test_keys_of_channels_no_call_claims_are_bounded_and_cleared_by_their_hang_up() -> None:
    tracker = CallTracker()
    feed(tracker, "".join(early_key(d, "9.9") for d in "1234567890" * 3))
    feed(tracker, hangup(16, "Normal Clearing", "9.9"))
    for n in range(MAX_EARLY_DTMF_CHANNELS + 10):
        feed(tracker, early_key("5", f"8.{n}"))
    # The hung-up channel's keys and the oldest channels' are gone; a late announcement of
    # one of those gets no keys, the newest still gets its one key.
    for uniqueid, keys in (("9.9", 0), ("8.0", 0), (f"8.{MAX_EARLY_DTMF_CHANNELS + 9}", 1)):
        call = uuid.uuid4()
        text = INBOUND.replace(str(CALL), str(call)).replace(
            "Uniqueid: 1700000000.7", f"Uniqueid: {uniqueid}"
        )
        assert feed(tracker, text)[1:] == [DtmfReceived(call, "5")] * keys


@pytest.mark.parametrize(
    "body",
    [
        "UserEvent: CallagentInbound\nCallId: not-a-uuid\nDid: 1\nCaller: 2\n",
        f"UserEvent: CallagentInbound\nCallId: {CALL}\nDid: 1;2\nCaller: 2\n",
        f"UserEvent: CallagentAmd\nCallId: {CALL}\nStatus: MAYBE\n",
    ],
)
def test_malformed_user_events_are_dropped_and_counted(body: str) -> None:
    tracker = CallTracker()
    tracker.expect_outbound(CALL, "+4930555")
    assert feed(tracker, f"Event: UserEvent\nUniqueid: 1.1\n{body}\n") == []
    assert tracker.dropped == 1


def test_events_of_unknown_channels_are_ignored() -> None:
    tracker = CallTracker()
    assert feed(tracker, NEWCHANNEL + UP + hangup(16, "x")) == []
    assert tracker.dropped == 0


def test_after_a_reconnect_a_lost_originate_response_is_decided_by_the_hangup_cause() -> None:
    tracker = CallTracker()
    tracker.expect_outbound(CALL, "+4930555")
    feed(tracker, NEWCHANNEL + RINGING)
    tracker.mark_originate_response_lost()
    assert feed(tracker, hangup(17, "User busy")) == [
        OriginateResult(CALL, DialOutcome.BUSY, None, "", 17),
        CallEnded(CALL, 17, "User busy"),
    ]
    assert tracker.active == []


def test_resync_relinks_live_calls_and_ends_vanished_ones() -> None:
    tracker = CallTracker()
    gone = uuid.uuid4()
    tracker.expect_outbound(CALL, "+4930555")
    tracker.expect_outbound(gone, "+4930666")
    status = parse(
        f"""Event: Status
Channel: PJSIP/trunk-00000009
ChannelState: 6
ChannelStateDesc: Up
Uniqueid: {CALL}
Variable: CALLAGENT_UUID={CALL}

"""
    )
    events = tracker.resync(status)
    assert events == [
        CallAnswered(CALL),
        OriginateResult(CALL, DialOutcome.ANSWERED, None, ""),
        OriginateResult(gone, DialOutcome.FAILED, None, "lost with AMI"),
    ]
    assert [s.call_id for s in tracker.active] == [CALL]
    state = tracker.get(CALL)
    assert state is not None
    assert state.channel == "PJSIP/trunk-00000009"


def test_reason_and_cause_tables() -> None:
    assert DialOutcome.from_reason(4) is DialOutcome.ANSWERED
    assert DialOutcome.from_reason(1) is DialOutcome.NO_ANSWER
    assert DialOutcome.from_reason(99) is DialOutcome.FAILED
    assert DialOutcome.from_hangup_cause(42) is DialOutcome.CONGESTION
    assert DialOutcome.from_hangup_cause(16) is DialOutcome.FAILED
    # Observed on a real Asterisk: the cause decides, then BUSY / CONGESTION, then the reason.
    assert DialOutcome.decide(0, 17, "BUSY") is DialOutcome.BUSY
    assert DialOutcome.decide(0, 34, "CONGESTION") is DialOutcome.CONGESTION
    assert DialOutcome.decide(0, 1, "NOANSWER") is DialOutcome.FAILED  # a 404
    assert DialOutcome.decide(3, 19, "") is DialOutcome.NO_ANSWER
    assert DialOutcome.decide(3, 17, "") is DialOutcome.BUSY  # rang, then 486
    assert DialOutcome.decide(0, 0, "BUSY") is DialOutcome.BUSY
    assert DialOutcome.decide(5, 0, "") is DialOutcome.BUSY  # as documented for other versions
    assert DialOutcome.decide(0, 16, "") is DialOutcome.FAILED
    assert DialOutcome.decide(None, 0, "") is DialOutcome.FAILED
