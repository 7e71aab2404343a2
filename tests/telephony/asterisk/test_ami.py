"""The AMI client (panoramisk) against the AMI simulator running the rendered configuration, with
calls connected to a real AudioSocket server over TCP (docs/telephony.md, "What was verified")."""

from __future__ import annotations

import asyncio
import logging
import uuid

import msgspec
import pytest

from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.telephony.asterisk.ami import (
    AmiActionError,
    AmiClient,
    AmiError,
    AmiNotConnected,
    Backoff,
    SecretFilter,
    TransferMethod,
)
from callagent.telephony.asterisk.call_tracker import (
    AmdResult,
    AmdStatus,
    CallAnswered,
    CallChannel,
    CallEnded,
    CallRinging,
    CallTransferred,
    DialOutcome,
    DtmfReceived,
    InboundCallStarted,
    OriginateResult,
)
from callagent.telephony.asterisk.server import AudioSocketConnection
from callagent.telephony.asterisk.transfer import TransferRefused
from callagent.telephony.call_runner import CallReport, CallRunner, VoiceEngines
from callagent.voice_pipeline.clock import MonotonicClock

from fakes.ami_rig import NUMBER, SECRET, Rig, ToneAgent, rig
from fakes.ami_simulator import NO_CHANNEL, RING_OUT, Callee, Order, SimulatedChannel
from helpers.audio import voice
from helpers.fakes import FakeLanguageModel, FakeSpeechToText, FakeTextToSpeech

pytestmark = pytest.mark.timeout(20)


async def test_login_uses_the_rendered_account_and_keeps_the_connection_alive() -> None:
    async with rig() as r:
        await r.client.wait_connected(2)
        assert r.client.logins == 1
        login = r.sim.actions[0]
        assert (login.name, login["Username"], login["Secret"]) == ("Login", "callagent", SECRET)
        await r.wait_for(lambda: any(a.name == "Ping" for a in r.sim.actions))
        assert r.client.connected


async def test_a_wrong_secret_is_refused_and_retried_with_backoff() -> None:
    async with rig(secret="wrong-secret-0123456789") as r:
        await r.wait_for(lambda: sum(a.name == "Login" for a in r.sim.actions) >= 3)
        assert not r.client.connected
        assert r.client.logins == 0
        with pytest.raises(AmiNotConnected):
            await r.dialer.originate(NUMBER)


async def test_originate_answered_then_conversation_then_hang_up() -> None:
    callee = Callee(utterances=(voice(0.4, 16000),))
    async with rig(callees={NUMBER: callee}, CALLAGENT_TRUNK_CALLER_ID="+4930999") as r:
        await r.client.wait_connected(2)
        call_id = uuid.uuid4()
        result = await r.dialer.originate(NUMBER, call_id=call_id, ring_timeout_s=5)
        assert result.outcome is DialOutcome.ANSWERED
        await r.wait_for(lambda: any(isinstance(e, CallEnded) for e in r.of(call_id)))
        kinds = [type(e) for e in r.of(call_id)]
        assert kinds == [
            CallChannel,
            CallRinging,
            CallAnswered,
            OriginateResult,
            AmdResult,
            CallEnded,
        ]
        amd = next(e for e in r.of(call_id) if isinstance(e, AmdResult))
        assert amd.status is AmdStatus.HUMAN
        ended = r.of(call_id)[-1]
        assert isinstance(ended, CallEnded)
        assert (ended.cause, ended.cause_text) == (16, "Normal Clearing")
        # The AudioSocket call carried the same id, at 16 kHz (c(slin16)), both ways.
        assert r.agent.calls[call_id]["rate"] == 16000
        assert int(r.agent.calls[call_id]["frames"]) > 20  # type: ignore[call-overload]
        channel = next(c for c in r.sim.channels.values() if c.call_id == call_id)
        assert channel.result is not None
        assert channel.result.hung_up_by == "caller"
        assert channel.uniqueid == str(call_id)  # ChannelId: every event names the call
        assert r.of(call_id)[0] == CallChannel(call_id, channel.name)
        originate = next(a for a in r.sim.actions if a.name == "Originate")
        assert originate["Channel"] == f"PJSIP/{NUMBER}@trunk"
        assert originate["Context"] == "callagent-outbound"
        assert originate["Async"] == "true"
        assert originate["Timeout"] == "5000"
        assert originate["CallerID"] == "+4930999"
        assert originate.variables() == {"CALLAGENT_UUID": str(call_id)}
        state = r.client.tracker.get(call_id)
        assert state is not None
        assert state.outcome == OriginateResult(call_id, DialOutcome.ANSWERED, 4, "")
        # Its AudioSocket leg (c(slin16): Dial(AudioSocket/...)) is known for a BlindTransfer.
        assert state.audiosocket_channel == f"AudioSocket/127.0.0.1:{r.server.port}-{call_id}"


@pytest.mark.parametrize("order", ["hangup_first", "request_first", "response_first"])
@pytest.mark.parametrize(
    ("sip", "outcome", "reason", "cause"),
    [
        # What a real Asterisk 22.10.1 reported for each callee (docs/telephony.md).
        (486, DialOutcome.BUSY, 0, 17),
        (RING_OUT, DialOutcome.NO_ANSWER, 3, 19),
        (503, DialOutcome.CONGESTION, 0, 34),
        (404, DialOutcome.FAILED, 0, 1),
        (603, DialOutcome.NO_ANSWER, 0, 21),
        (NO_CHANNEL, DialOutcome.FAILED, 0, None),
    ],
)
async def test_each_failure_outcome(
    sip: int, outcome: DialOutcome, reason: int, cause: int | None, order: Order
) -> None:
    async with rig(callees={NUMBER: Callee(sip=sip, order=order)}) as r:
        await r.client.wait_connected(2)
        call_id = uuid.uuid4()
        result = await r.dialer.originate(NUMBER, call_id=call_id, ring_timeout_s=0.3)
        assert (result.outcome, result.reason) == (outcome, reason)
        if cause is not None:
            # The cause arrives with the call's Hangup, before or after the verdict.
            await r.wait_for(lambda: any(isinstance(e, CallEnded) for e in r.of(call_id)))
        await asyncio.sleep(0.05)
        ends = [e for e in r.of(call_id) if isinstance(e, CallEnded)]
        assert [e.cause for e in ends] == ([cause] if cause else [])
        channels = [e.channel for e in r.of(call_id) if isinstance(e, CallChannel)]
        assert channels == ([] if sip == NO_CHANNEL else ["PJSIP/trunk-00000001"])
        assert call_id not in r.agent.calls  # never connected to the agent
        assert r.client.tracker.active == []
        response = next(m for _, m in r.sim.delivered if m.name == "OriginateResponse")
        assert (response["Response"], response["Channel"]) == ("Failure", f"PJSIP/{NUMBER}@trunk")


async def test_a_reason_0_whose_cause_never_comes_fails_after_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("callagent.telephony.asterisk.ami.VERDICT_WAIT_S", 0.2)
    async with rig(callees={NUMBER: Callee(sip=486, order="response_first")}) as r:
        await r.client.wait_connected(2)
        # The channel is announced, but the events that would carry the cause are lost.
        emit = r.sim.emit

        def without_the_cause(event: str, *args: object) -> None:
            if event not in ("HangupRequest", "DialEnd", "Hangup"):
                emit(event, *args)  # type: ignore[arg-type]

        r.sim.emit = without_the_cause  # type: ignore[method-assign]
        call_id = uuid.uuid4()
        result = await r.dialer.originate(NUMBER, call_id=call_id, ring_timeout_s=5)
        assert (result.outcome, result.reason, result.cause) == (DialOutcome.FAILED, 0, None)


async def test_an_originate_the_account_may_not_place_fails_cleanly() -> None:
    def no_originate(text: str) -> str:
        return text.replace("write = call,originate", "write = call")

    async with rig(callees={NUMBER: Callee()}, manager_conf_edit=no_originate) as r:
        await r.client.wait_connected(2)
        result = await r.dialer.originate(NUMBER)
        assert result.outcome is DialOutcome.FAILED
        assert result.message == "Permission denied"


async def test_a_machine_is_hung_up_when_configured() -> None:
    callee = Callee(amd_status="MACHINE", amd_cause="LONGGREETING-2100-2000")
    async with rig(callees={NUMBER: callee}, CALLAGENT_AMD_ON_MACHINE="hangup") as r:
        await r.client.wait_connected(2)
        call_id = uuid.uuid4()
        assert (await r.dialer.originate(NUMBER, call_id=call_id)).outcome is DialOutcome.ANSWERED
        await r.wait_for(lambda: any(isinstance(e, CallEnded) for e in r.of(call_id)))
        amd = next(e for e in r.of(call_id) if isinstance(e, AmdResult))
        assert (amd.status, amd.cause) == (AmdStatus.MACHINE, "LONGGREETING-2100-2000")
        assert call_id not in r.agent.calls


async def test_inbound_call_brings_did_and_filtered_caller_id_to_the_audiosocket_side() -> None:
    seen: dict[uuid.UUID, object] = {}
    client_box: list[AmiClient] = []

    async def routing_handler(conn: AudioSocketConnection) -> None:
        # What the call router will do: wait briefly for the AMI announcement of this UUID.
        seen[conn.call_id] = await client_box[0].wait_for_call(conn.call_id, timeout_s=2)
        await agent(conn)

    agent = ToneAgent()
    async with rig(handler=routing_handler) as r:
        client_box.append(r.client)
        await r.client.wait_connected(2)
        channel = await r.sim.inbound_call(
            "+4930123456", "+49170,Did: 666", (voice(0.3, 16000),), final_wait_s=0.2
        )
        call_id = channel.call_id
        assert call_id is not None
        state = seen[call_id]
        assert state is not None
        assert (state.number, state.caller) == ("+4930123456", "+49170666")  # type: ignore[attr-defined]
        started = next(e for e in r.of(call_id) if isinstance(e, InboundCallStarted))
        assert started.channel == channel.name
        await r.wait_for(lambda: any(isinstance(e, CallEnded) for e in r.of(call_id)))
        # A number that is not one of the DIDs is refused by the dialplan.
        other = await r.sim.inbound_call("+4930999999", "+49170")
        assert other.hangup_cause == 1
        assert other.call_id is None
        # The account reads only call, dtmf and user events: dialplan chatter never reaches it.
        assert {e.name for user, e in r.sim.delivered if user == "callagent"} <= {
            "FullyBooted",
            "Newchannel",
            "Newstate",
            "UserEvent",
            "DialBegin",
            "DialEnd",
            "HangupRequest",
            "SoftHangupRequest",
            "Hangup",
        }


async def _live_inbound_call(r: Rig) -> tuple[SimulatedChannel, uuid.UUID, asyncio.Task[object]]:
    long_talk = tuple(voice(0.3, 16000) for _ in range(6))
    task: asyncio.Task[object] = asyncio.create_task(
        r.sim.inbound_call("+4930123456", "+49170", long_talk, pause_after_agent_s=0.3)
    )
    await r.wait_for(lambda: any(isinstance(e, InboundCallStarted) for e in r.events))
    started = next(e for e in r.events if isinstance(e, InboundCallStarted))
    channel = r.sim.live_channel(started.call_id)
    assert channel is not None
    await r.wait_for(lambda: started.call_id in r.agent.calls)
    return channel, started.call_id, task


@pytest.mark.parametrize("method", list(TransferMethod))
async def test_transfer_to_an_allow_listed_target(method: TransferMethod) -> None:
    async with rig() as r:
        await r.client.wait_connected(2)
        channel, call_id, task = await _live_inbound_call(r)
        leg = r.sim.audiosocket_leg(channel)
        assert leg is not None
        await r.dialer.transfer(call_id, "sales", method=method)
        # The caller goes to sales; the agent's AudioSocket leg hangs up.
        assert channel.redirected_to == ("callagent-transfer", "sales")
        assert (leg.redirected_to, leg.hangup_cause) == (None, 16)
        await task
        assert any(isinstance(e, CallTransferred) and e.target == "sales" for e in r.of(call_id))
        await r.wait_for(lambda: any(isinstance(e, CallEnded) for e in r.of(call_id)))
        action = next(a for a in r.sim.actions if a.name == method.value)
        assert (action["Context"], action["Exten"]) == ("callagent-transfer", "sales")
        # Redirect moves the channel it names; BlindTransfer moves the named channel's bridge
        # peer, so it names the AudioSocket leg (DESIGN.md "Known traps").
        named = channel if method is TransferMethod.REDIRECT else leg
        assert action["Channel"] == named.name


async def test_blind_transfer_of_the_callers_channel_hands_over_the_agent_as_asterisk_does() -> (
    None
):
    # What a real Asterisk 22.10.1 did, copied by the simulator: the caller's bridge peer - the
    # AudioSocket leg - went to the target and the caller was hung up.
    async with rig() as r:
        await r.client.wait_connected(2)
        channel, call_id, task = await _live_inbound_call(r)
        leg = r.sim.audiosocket_leg(channel)
        assert leg is not None
        await r.client.send_action(
            {
                "Action": "BlindTransfer",
                "Channel": channel.name,
                "Context": "callagent-transfer",
                "Exten": "sales",
            }
        )
        await task
        assert (channel.redirected_to, channel.hangup_cause) == (None, 16)
        assert leg.redirected_to == ("callagent-transfer", "sales")
        await r.wait_for(lambda: any(isinstance(e, CallEnded) for e in r.of(call_id)))
        await r.wait_for(lambda: leg.hangup_cause is not None)


async def test_blind_transfer_needs_the_audiosocket_leg_of_a_dial() -> None:
    # AudioSocket() (slin) puts the caller in no bridge: nothing to transfer from.
    async with rig(CALLAGENT_AUDIOSOCKET_FORMAT="slin") as r:
        await r.client.wait_connected(2)
        channel, call_id, task = await _live_inbound_call(r)
        with pytest.raises(AmiError, match="Redirect"):
            await r.dialer.transfer(call_id, "sales", method=TransferMethod.BLIND_TRANSFER)
        assert not any(a.name == "BlindTransfer" for a in r.sim.actions)
        with pytest.raises(AmiActionError, match="Transfer invalid"):
            await r.client.send_action(
                {
                    "Action": "BlindTransfer",
                    "Channel": channel.name,
                    "Context": "callagent-transfer",
                    "Exten": "sales",
                }
            )
        await r.dialer.transfer(call_id, "sales")  # Redirect works in both modes
        await task
        assert channel.redirected_to == ("callagent-transfer", "sales")


async def test_with_audiosocket_app_a_callers_hang_up_keeps_its_cause() -> None:
    # AudioSocket() (slin): Asterisk reported the caller's BYE as Hangup Cause 0 "Unknown",
    # after a SoftHangupRequest with Cause 16.
    async with rig(CALLAGENT_AUDIOSOCKET_FORMAT="slin") as r:
        await r.client.wait_connected(2)
        channel = await r.sim.inbound_call(
            "+4930123456", "+49170", (voice(0.3, 8000),), final_wait_s=0.2
        )
        assert channel.hangup_cause == 0
        call_id = channel.call_id
        assert call_id is not None
        await r.wait_for(lambda: any(isinstance(e, CallEnded) for e in r.of(call_id)))
        (ended,) = [e for e in r.of(call_id) if isinstance(e, CallEnded)]
        assert (ended.cause, ended.cause_text) == (16, "Normal Clearing")


@pytest.mark.parametrize(
    "target", ["+4990012345", "00900123456", "Sales", "sales ", "sales\r\nAction: Originate", "i"]
)
async def test_transfer_refuses_a_target_not_on_the_allow_list(target: str) -> None:
    async with rig() as r:
        await r.client.wait_connected(2)
        channel, call_id, task = await _live_inbound_call(r)
        with pytest.raises(TransferRefused):
            await r.dialer.transfer(call_id, target)
        assert not any(a.name in ("Redirect", "BlindTransfer") for a in r.sim.actions)
        assert channel.redirected_to is None
        await r.dialer.hangup(call_id)
        await task


async def test_the_dialplan_refuses_a_target_even_past_the_client() -> None:
    # Second fence: if the allow-list in callagent were wrong, Asterisk has no such extension.
    async with rig() as r:
        await r.client.wait_connected(2)
        channel, call_id, task = await _live_inbound_call(r)
        with pytest.raises(AmiActionError, match="does not exist"):
            await r.client.send_action(
                {
                    "Action": "Redirect",
                    "Channel": channel.name,
                    "Context": "callagent-transfer",
                    "Exten": "+4990012345",
                    "Priority": "1",
                }
            )
        await r.dialer.hangup(call_id)
        await task


async def test_hangup_and_dtmf_both_ways() -> None:
    async with rig() as r:
        await r.client.wait_connected(2)
        channel, call_id, task = await _live_inbound_call(r)
        await r.dialer.play_dtmf(call_id, "12#")
        assert channel.dtmf_played == ["1", "2", "#"]
        with pytest.raises(ValueError, match="DTMF"):
            await r.dialer.play_dtmf(call_id, "1\r\nAction: Originate")
        r.sim.press(channel, "5")
        await r.wait_for(lambda: any(isinstance(e, DtmfReceived) for e in r.of(call_id)))
        assert next(e for e in r.of(call_id) if isinstance(e, DtmfReceived)).digit == "5"
        await r.dialer.hangup(call_id, cause=16)
        finished = await task
        assert finished is channel
        assert channel.hangup_cause == 16
        ended = [e for e in r.of(call_id) if isinstance(e, CallEnded)]
        assert [e.cause for e in ended] == [16]


async def test_ami_disconnect_mid_call_then_reconnect_keeps_the_call() -> None:
    async with rig() as r:
        await r.client.wait_connected(2)
        channel, call_id, task = await _live_inbound_call(r)
        await r.sim.drop_sessions()
        await r.wait_for(lambda: r.client.logins == 2)
        # The AudioSocket call was not touched, and AMI still knows which channel it is.
        assert channel.hangup_cause is None
        assert any(a.name == "Status" for a in r.sim.actions)
        await r.dialer.play_dtmf(call_id, "9")
        assert channel.dtmf_played == ["9"]
        await r.dialer.hangup(call_id)
        await task
        await r.wait_for(lambda: any(isinstance(e, CallEnded) for e in r.of(call_id)))


async def test_a_call_that_ended_while_ami_was_away_is_ended_on_reconnect() -> None:
    async with rig() as r:
        await r.client.wait_connected(2)
        channel, call_id, task = await _live_inbound_call(r)
        await r.sim.stop_listening()
        r.sim.hang_up(channel, 16)  # the caller hangs up while nobody listens
        await task
        await r.sim.start()
        await r.wait_for(lambda: r.client.logins == 2)
        await r.wait_for(lambda: any(isinstance(e, CallEnded) for e in r.of(call_id)))
        ended = next(e for e in r.of(call_id) if isinstance(e, CallEnded))
        assert ended.cause_text == "ended while AMI was disconnected"


async def test_an_originate_in_flight_survives_an_ami_drop() -> None:
    callee = Callee(ring_s=0.6, utterances=(voice(0.3, 16000),))
    async with rig(callees={NUMBER: callee}) as r:
        await r.client.wait_connected(2)
        call_id = uuid.uuid4()
        originate = asyncio.create_task(r.dialer.originate(NUMBER, call_id=call_id))
        await r.wait_for(lambda: any(a.name == "Originate" for a in r.sim.actions))
        await r.sim.drop_sessions()  # the OriginateResponse will go to a dead session
        result = await originate
        assert result.outcome is DialOutcome.ANSWERED
        assert r.client.logins == 2
        # One call, not two: nothing was replayed on the new connection.
        assert sum(a.name == "Originate" for a in r.sim.actions) == 1
        await r.wait_for(lambda: any(isinstance(e, CallEnded) for e in r.of(call_id)))


async def test_a_malformed_event_ends_nothing() -> None:
    async with rig() as r:
        await r.client.wait_connected(2)
        channel, call_id, task = await _live_inbound_call(r)
        r.sim.emit("Hangup", "call", ("Uniqueid", channel.uniqueid), ("Cause", "sixteen"))
        r.sim.emit("UserEvent", "user", ("UserEvent", "CallagentInbound"), ("CallId", "x"))
        r.sim.emit("DTMFEnd", "dtmf", ("Uniqueid", channel.uniqueid), ("Digit", "XY"))
        await r.wait_for(lambda: r.client.tracker.dropped == 3)
        assert r.client.connected
        assert r.client.logins == 1
        assert not any(isinstance(e, CallEnded) for e in r.of(call_id))
        await r.dialer.hangup(call_id)
        await task


async def test_values_that_would_inject_ami_headers_never_leave() -> None:
    async with rig() as r:
        await r.client.wait_connected(2)
        sent = len(r.sim.actions)
        for bad in ("+49 30 555", "555\r\nAction: Originate", "PJSIP/1@evil"):
            with pytest.raises(ValueError, match="not a phone number"):
                await r.dialer.originate(bad)
        with pytest.raises(ValueError, match="caller name"):
            await r.dialer.originate(NUMBER, caller_name="Eve\r\nAction: Hangup")
        with pytest.raises(ValueError, match="line break"):
            await r.client.send_action({"Action": "Ping", "X": "a\r\nAction: Originate"})
        assert len(r.sim.actions) == sent


async def test_a_real_call_runner_converses_on_an_originated_call() -> None:
    clock = MonotonicClock()
    stt = FakeSpeechToText(clock, ["How long does the survey take?"])  # type: ignore[arg-type]
    tts = FakeTextToSpeech(clock, seconds_per_word=0.1)  # type: ignore[arg-type]
    llm = FakeLanguageModel(clock, ["About an hour, tops."])  # type: ignore[arg-type]
    reports: list[CallReport] = []
    profile = msgspec.structs.replace(DEFAULT_AGENT, greeting="Hello there.")
    runner = CallRunner(
        VoiceEngines(stt, tts, llm), profile, clock, on_call_finished=reports.append
    )
    callee = Callee(utterances=(voice(0.8, 16000),), pause_after_agent_s=0.3, final_wait_s=0.8)
    async with rig(callees={NUMBER: callee}, handler=runner) as r:
        await r.client.wait_connected(2)
        call_id = uuid.uuid4()
        assert (await r.dialer.originate(NUMBER, call_id=call_id)).outcome is DialOutcome.ANSWERED
        await r.wait_for(lambda: bool(reports), timeout_s=12)
        await r.wait_for(lambda: any(isinstance(e, CallEnded) for e in r.of(call_id)))
    (report,) = reports
    assert report.call_id == call_id
    data = report.to_json()
    # Every greeting discloses the AI (docs/dialog.md "Compliance").
    assert data["greeting"] == "Hello there. I'm an AI assistant."
    assert [t["caller_text"] for t in data["turns"]] == ["How long does the survey take?"]
    assert data["turns"][0]["agent_text"] == "About an hour, tops."
    assert tts.spoken[:4] == ["Hello there.", "I'm an AI assistant.", "About an hour,", "tops."]


async def test_the_ami_secret_never_reaches_the_log_when_the_login_goes_unanswered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An AMI port that takes the Login and hangs up before answering it: panoramisk then logs
    # the whole pending Login action, Secret included (DESIGN.md "Known traps").
    secret = "Very-Secret-AMI-pw-0123"
    logins: list[bytes] = []

    async def hang_up_on_login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        logins.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    server = await asyncio.start_server(hang_up_on_login, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = AmiClient(
        "127.0.0.1", port, "callagent", secret, backoff=Backoff(initial_s=0.05, max_s=0.05)
    )
    try:
        with caplog.at_level(logging.DEBUG):
            await client.start()
            async with asyncio.timeout(5):
                while len(logins) < 2:  # noqa: ASYNC110 - filled by the server's handler
                    await asyncio.sleep(0.01)
            await client.close()
    finally:
        server.close()
        await server.wait_closed()
    assert secret.encode() in logins[0]  # the secret did go to the server...
    assert "Action: Login" in caplog.text  # ...and panoramisk did log the action...
    assert secret not in caplog.text  # ...without it
    assert "Secret: ********" in caplog.text


def test_secret_headers_are_masked_in_every_form_panoramisk_prints_an_action() -> None:
    mask = SecretFilter().mask  # no secret registered: the header alone is enough
    as_lines = "Action: Login\r\nSecret: pw-1!x\r\nUsername: callagent\r\n"
    assert mask(as_lines) == "Action: Login\r\nSecret: ********\r\nUsername: callagent\r\n"
    as_repr = "{'Action': 'Login', 'Secret': 'pw-1!x', 'Username': 'u'}"
    assert mask(as_repr) == "{'Action': 'Login', 'Secret': '********', 'Username': 'u'}"
    assert mask('{"secret": "a\\"b"}') == "{\"secret\": '********'}"
    registered = SecretFilter()
    registered.secrets.add("pw-1!x")
    assert registered.mask("login with pw-1!x failed") == "login with ******** failed"
