"""Correlation of AMI events to calls, on byte-exact AMI text.

The events are written the way Asterisk writes them and parsed by the sans-IO AMI protocol, so
these tests pin the meaning of each header the tracker relies on.
"""

from __future__ import annotations

import uuid

import pytest

from callagent.telephony.asterisk.ami_protocol import AmiMessage
from callagent.telephony.asterisk.call_tracker import (
    AmdResult,
    AmdStatus,
    AmiCallDirection,
    CallAnswered,
    CallEnded,
    CallRinging,
    CallTracker,
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
Uniqueid: {CALL}

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
    (message,) = parse(
        f"""Event: OriginateResponse
Privilege: call,all
ActionID: action/1
Response: {"Success" if reason == 4 else "Failure"}
Channel: PJSIP/+4930555@trunk
Reason: {reason}
Uniqueid: {uniqueid}

"""
    )
    return message


def test_an_answered_outbound_call_from_ring_to_hang_up() -> None:
    tracker = CallTracker()
    tracker.expect_outbound(CALL, "+4930555")
    assert feed(tracker, NEWCHANNEL + RINGING + UP) == [
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


@pytest.mark.parametrize(
    ("reason", "cause", "outcome"),
    [(5, 17, DialOutcome.BUSY), (3, 19, DialOutcome.NO_ANSWER), (8, 34, DialOutcome.CONGESTION)],
)
def test_failed_outbound_calls_hang_up_then_report(
    reason: int, cause: int, outcome: DialOutcome
) -> None:
    tracker = CallTracker()
    tracker.expect_outbound(CALL, "+4930555")
    assert feed(tracker, NEWCHANNEL + hangup(cause, "x")) == [CallEnded(CALL, cause, "x")]
    assert tracker.active  # Asterisk sends the OriginateResponse after the Hangup
    assert tracker.originate_response(CALL, originate_response(reason)) == [
        OriginateResult(CALL, outcome, reason, "")
    ]
    assert tracker.active == []


def test_no_channel_at_all_is_a_failure_with_a_null_uniqueid() -> None:
    tracker = CallTracker()
    tracker.expect_outbound(CALL, "+4930555")
    assert tracker.originate_response(CALL, originate_response(0, "<null>")) == [
        OriginateResult(CALL, DialOutcome.FAILED, 0, "")
    ]
    assert tracker.active == []


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
        OriginateResult(CALL, DialOutcome.BUSY, None, ""),
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
