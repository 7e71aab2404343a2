"""The call placer start-call hands calls to: it starts an AMI Originate named by the call session
id and returns at once (against the AMI simulator, tests/fakes/ami_rig.py)."""

from __future__ import annotations

import uuid

import pytest

from callagent.telephony.asterisk.call_tracker import (
    CallAnswered,
    CallEnded,
    DialOutcome,
    OriginateResult,
)
from callagent.telephony.asterisk.placer import AmiCallPlacer
from callagent.telephony.outbound import CallPlacer, OutboundCallRequest

from fakes.ami_rig import NUMBER, rig
from fakes.ami_simulator import Callee
from helpers.audio import voice

pytestmark = pytest.mark.timeout(20)


async def test_the_call_placer_starts_dialling_and_returns_at_once() -> None:
    def request(number: str) -> OutboundCallRequest:
        return OutboundCallRequest(
            call_session_id=uuid.uuid4(),
            client_id=uuid.uuid4(),
            agent_id=uuid.uuid4(),
            customer_id=uuid.uuid4(),
            phone_number=number,
            call_type="outbound",
        )

    callee = Callee(ring_s=0.3, utterances=(voice(0.3, 16000),))
    async with rig(callees={NUMBER: callee}) as r:
        placer = AmiCallPlacer(r.dialer)
        assert isinstance(placer, CallPlacer)
        not_yet = await placer.place_call(request(NUMBER))  # before the login
        assert (not_yet.placed, not_yet.reason) == (False, "Asterisk's AMI is not connected")
        await r.client.wait_connected(2)
        wanted = request(NUMBER)
        placed = await placer.place_call(wanted)
        assert (placed.placed, placed.telephony_call_id) == (True, str(wanted.call_session_id))
        assert not any(isinstance(e, CallAnswered) for e in r.of(wanted.call_session_id))
        # The call session id is the call id: AMI events and the AudioSocket UUID carry it.
        await r.wait_for(
            lambda: any(isinstance(e, CallEnded) for e in r.of(wanted.call_session_id))
        )
        result = next(e for e in r.of(wanted.call_session_id) if isinstance(e, OriginateResult))
        assert result.outcome is DialOutcome.ANSWERED
        assert wanted.call_session_id in r.agent.calls
        bad = await placer.place_call(request("0800 FLOWERS"))
        assert not bad.placed
        assert "not a phone number" in bad.reason
