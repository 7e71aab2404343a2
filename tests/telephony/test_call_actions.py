"""In-call actions through the whole pipeline on a fake clock (docs/dialog.md "In-call
actions"): a scripted model writes action lines the caller never hears, the rules act on
what the caller says, and the executor records each action the moment it is decided and hands
the call over or hangs up only after the agent's last words were played."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.dialog.conversation import AgentLines, Conversation
from callagent.dialog.purposes import CallPurpose
from callagent.store.services.call_state import CallAction
from callagent.telephony.call_actions import ActionParams, CallActions
from callagent.voice_pipeline.clock import FakeClock
from callagent.voice_pipeline.pipeline import CallLog, PipelineSettings, VoicePipeline
from callagent.voice_pipeline.turns import TurnSettings

from helpers.audio import voice
from helpers.fakes import FakeCall, FakeLanguageModel, FakeSpeechToText, FakeTextToSpeech

# A Monday morning in the agent's zone (the calls here know no customer: the fallback zone).
NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("America/New_York"))


class FakeJournal:
    """The call journal's ``action`` side: what was queued, and when on the call's clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.actions: list[tuple[float, CallAction]] = []

    def action(self, action: CallAction) -> None:
        self.actions.append((self.clock.now(), action))


class Call:
    """One call: fake STT / LLM / TTS, the real conversation, pipeline and executor."""

    def __init__(
        self,
        transcripts: list[str],
        replies: list[str],
        *,
        targets: tuple[str, ...] = ("sales", "support"),
        ami: bool = True,
        purpose: CallPurpose | None = None,
    ) -> None:
        self.clock = FakeClock()
        self.line = FakeCall(self.clock)
        self.stt = FakeSpeechToText(self.clock, transcripts)
        self.tts = FakeTextToSpeech(self.clock)
        self.llm = FakeLanguageModel(self.clock, replies)
        self.journal = FakeJournal(self.clock)
        self.transfers: list[tuple[float, str]] = []
        self.transferred = False
        self.hung_up_at: float | None = None
        params = ActionParams(
            transfer=self._transfer if ami else None,
            transfer_targets=targets,
            fallback_zone="America/New_York",
        )
        self.actions = CallActions(
            uuid.uuid4(),
            params,
            journal=self.journal,  # type: ignore[arg-type]  # the part the executor uses
            via_ami=ami,
            now=lambda: NOW,
        )
        self.log = CallLog()
        self.pipeline = VoicePipeline(
            self.stt,
            self.tts,
            Conversation(DEFAULT_AGENT, self.llm, actions=self.actions, purpose=purpose),
            self.clock,
            PipelineSettings(turns=TurnSettings(end_silence_s=0.4)),
            self.log,
        )

    async def _transfer(self, call_id: uuid.UUID, target: str) -> None:
        assert call_id == self.actions.call_id
        self.transfers.append((self.clock.now(), target))
        self.transferred = True  # Asterisk takes the caller away: the AudioSocket leg ends
        self.line.end()

    async def _hang_up(self) -> None:
        self.hung_up_at = self.clock.now()
        await self.line.hang_up()

    async def hang_up(self) -> None:
        """What the call runner hands the pipeline (telephony/call_runner.py)."""
        await self.actions.end_call(self._hang_up, lambda: self.line.hung_up or self.transferred)

    def spoken(self) -> str:
        return " ".join(self.tts.spoken)

    def taken(self) -> list[str]:
        return [record["type"] for record in self.actions.taken]


@contextlib.asynccontextmanager
async def running(call: Call) -> AsyncIterator[Call]:
    task = asyncio.create_task(
        call.pipeline.run(call.line.inbound(), call.line.send, call.hang_up, sample_rate=8000)
    )
    try:
        await call.line.wait(0.1)
        yield call
    finally:
        if not task.done():
            call.line.end()
            await call.clock.advance(0.02)
        await asyncio.wait_for(task, 5)


async def say(call: Call, seconds: float = 1.0) -> None:
    """The caller speaks, then waits until the agent has answered and gone quiet."""
    turns = len(call.log.turns)
    await call.line.play(voice(seconds))
    await call.line.wait_until(
        lambda: (
            (len(call.log.turns) > turns and call.line.agent_is_silent_since(0.3))
            or call.line.hung_up
        )
    )


def last_agent_audio(call: Call) -> float:
    return call.line.agent_audio_times()[-1]


async def test_the_caller_never_hears_the_models_action_syntax() -> None:
    call = Call(
        ["That sounds great.", "I'm busy now, call me back tomorrow after three."],
        [
            'ACTION: set_interest(level="hot")\nWonderful, shall we book a survey?',
            'ACTION: schedule_callback(when="tomorrow at three", reason="busy")',
        ],
    )
    async with running(call):
        await say(call)
        await say(call)
    assert call.spoken() == (
        f"{DEFAULT_AGENT.greeting_text()} "
        "Wonderful, shall we book a survey? Sure, I'll call you back tomorrow at 3 pm."
    )
    for text in (*call.tts.spoken, *(t.agent_text for t in call.log.turns)):
        assert "ACTION" not in text
        assert "_" not in text
        assert "(" not in text
    assert call.taken() == ["set_interest", "schedule_callback"]
    callback = call.journal.actions[1][1]
    assert callback.callback_at == dt.datetime(2026, 12, 1, 15, 0, tzinfo=NOW.tzinfo)
    assert call.journal.actions[0][1].interest == "hot"
    assert call.hung_up_at is None  # no action here ends the call


async def test_do_not_call_is_recorded_at_once_and_the_call_ends_after_the_confirmation() -> None:
    call = Call(
        ["Hi, who is this?", "Honestly, just take me off your list, okay?"],
        ["This is Alex from Brightline Solar. How can I help?", "But our panels are great!"],
    )
    async with running(call):
        await say(call)
        await say(call)
        await call.line.wait_until(lambda: call.line.hung_up)
    (decided_at, change) = call.journal.actions[0]
    assert change.do_not_call
    assert change.record == {"type": "set_do_not_call", "source": "rule"}
    confirmation = call.log.turns[-1]
    assert confirmation.agent_text == AgentLines().do_not_call
    # Stored before the confirmation was heard, the line closed after it was played.
    assert confirmation.first_frame_at is not None
    assert decided_at < confirmation.first_frame_at
    assert call.hung_up_at is not None
    assert last_agent_audio(call) < call.hung_up_at
    assert len(call.llm.requests) == 1  # the model never saw the request


async def test_a_request_for_a_person_goes_to_the_first_allowed_target_after_saying_so() -> None:
    call = Call(["Put me through to your manager."], [])
    async with running(call):
        await say(call)
        await call.line.wait_until(lambda: call.line.hung_up)
    assert call.log.turns[-1].agent_text == AgentLines().transfer
    ((transferred_at, target),) = call.transfers
    assert target == "sales"  # "your manager" is no target name: the first one
    assert last_agent_audio(call) < transferred_at
    assert call.actions.taken == [{"type": "transfer", "source": "rule", "target": "sales"}]
    assert call.journal.actions[0][1].transferred_to is None  # AMI reports it when it is done


async def test_the_model_may_name_an_allowed_target_and_nothing_else() -> None:
    call = Call(
        ["I have a question about my bill, who can help with that?"],
        ['ACTION: transfer(target="support")'],
    )
    async with running(call):
        await say(call)
        await call.line.wait_until(lambda: call.line.hung_up)
    assert [target for _, target in call.transfers] == ["support"]
    call = Call(["Who handles billing?"], ['ACTION: transfer(target="+15551234567")'])
    async with running(call):
        await say(call)
        await call.line.wait_until(lambda: call.line.hung_up)
    assert [target for _, target in call.transfers] == ["sales"]  # never a number


async def test_without_ami_a_hand_over_is_recorded_and_the_call_ends() -> None:
    call = Call(["Can I talk to a person?"], [], targets=(), ami=False)
    async with running(call):
        await say(call)
        await call.line.wait_until(lambda: call.line.hung_up)
    (record,) = call.actions.taken
    assert (record["type"], record["simulated"]) == ("transfer", True)
    assert call.journal.actions[0][1].transferred_to == "simulated"
    assert call.transfers == []


async def test_with_ami_but_no_target_the_agent_says_so_and_the_call_goes_on() -> None:
    call = Call(["Can I talk to a person?"], [], targets=())
    async with running(call):
        await say(call)
        await call.line.wait(2.0)
    assert call.log.turns[-1].agent_text == AgentLines().no_transfer
    assert call.actions.taken == []
    assert call.hung_up_at is None


async def test_the_callers_goodbye_is_played_then_the_call_ends() -> None:
    call = Call(["How much is a system?", "Okay, thanks, bye."], ["Nine to fifteen thousand."])
    async with running(call):
        await say(call)
        await say(call)
        await call.line.wait_until(lambda: call.line.hung_up)
    assert call.log.turns[-1].agent_text == DEFAULT_AGENT.goodbye
    assert call.taken() == ["end_call"]
    assert call.hung_up_at is not None
    assert last_agent_audio(call) < call.hung_up_at


async def test_a_caller_saying_hi_twice_is_not_told_goodbye_nor_hung_up_on() -> None:
    """Reproduces a call seen with the default profile: the caller said "Hi." twice and was
    told goodbye and hung up on. Whisper tiny.en hears a synthetic "Hi." as "Bye." (measured
    with flite's slt and kal voices through a µ-law line): the second turn arrives as "Bye."."""
    call = Call(["Hi.", "Bye."], ["Hello! How can I help you today?", "Goodbye!"])
    async with running(call):
        await say(call, 0.4)
        await say(call, 0.4)
        await call.line.wait(3.0)
    assert [t.agent_text for t in call.log.turns] == [
        "Hello! How can I help you today?",
        AgentLines().bye_check,
    ]
    assert call.hung_up_at is None
    assert call.taken() == []
    assert "oodbye" not in call.spoken()


async def test_a_goodbye_the_model_makes_up_is_never_said_and_ends_nothing() -> None:
    call = Call(["Hi.", "Hi."], ["Hi! Goodbye!", "Hello again. Have a nice day, goodbye."])
    async with running(call):
        await say(call, 0.4)
        await say(call, 0.4)
        await call.line.wait(3.0)
    spoken = call.spoken().lower()
    assert "bye" not in spoken
    assert "nice day" not in spoken
    assert [t.agent_text for t in call.log.turns] == ["Hi!", "Hello again."]
    assert call.hung_up_at is None


async def test_an_action_the_calls_purpose_forbids_is_recorded_as_skipped_and_not_done() -> None:
    """docs/dialog.md "Call purposes": a support call books no demo. The record reaches the
    call's journal with why, and nothing a booking would change comes with it."""
    call = Call(
        ["Sure, show me a demo on Tuesday at ten."],
        ['ACTION: book_appointment(when="Tuesday at ten", kind="demo")'],
        purpose=CallPurpose.CUSTOMER_SUPPORT,
    )
    async with running(call):
        await say(call)
        await call.line.wait(2.0)
    assert call.log.turns[-1].agent_text == AgentLines().not_on_this_call
    ((_, change),) = call.journal.actions
    assert change.record["type"] == "book_appointment"
    assert change.record["skipped"] == "not allowed on a customer support call"
    assert change.callback_at is None
    assert call.hung_up_at is None


async def test_a_callback_the_rule_took_and_the_model_writes_again_is_one_row() -> None:
    """docs/dialog.md "The scheduling pass": the rule hears "call me back tomorrow after
    three"; the caller confirms and the model writes the same callback - one row, not two."""
    call = Call(
        ["I'm busy, call me back tomorrow after three.", "Yes, tomorrow at three."],
        ['ACTION: schedule_callback(when="tomorrow at three")\nGreat.'],
    )
    async with running(call):
        await say(call)
        await say(call)
    assert call.taken() == ["schedule_callback"]
    ((_, change),) = call.journal.actions
    assert change.record["source"] == "rule"
    assert change.callback_at == dt.datetime(2026, 12, 1, 15, 0, tzinfo=NOW.tzinfo)
    assert [t.agent_text for t in call.log.turns[-2:]] == [
        "Sure, I'll call you back tomorrow at 3 pm.",
        "Sure, I'll call you back tomorrow at 3 pm.",
    ]


async def test_a_second_callback_at_another_time_is_its_own_row() -> None:
    call = Call(["Call me back tomorrow at three.", "Actually, call me back on Friday at ten."], [])
    async with running(call):
        await say(call)
        await say(call)
    assert call.taken() == ["schedule_callback", "schedule_callback"]
    assert [change.callback_at for _, change in call.journal.actions] == [
        dt.datetime(2026, 12, 1, 15, 0, tzinfo=NOW.tzinfo),
        dt.datetime(2026, 12, 4, 10, 0, tzinfo=NOW.tzinfo),
    ]
