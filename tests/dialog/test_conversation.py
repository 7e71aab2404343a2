"""Dialog behaviour on a scripted language model."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import msgspec
import pytest

from callagent.dialog.actions import ActionKind, ActionLog
from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.dialog.conversation import AgentLines, Conversation, is_farewell, speakable
from callagent.dialog.purposes import CallPurpose
from callagent.voice_pipeline.clock import FakeClock

from helpers.fakes import FakeLanguageModel


async def collect(conversation: Conversation, text: str) -> str:
    return "".join([d async for d in conversation.reply(text)])


@pytest.fixture
def llm() -> FakeLanguageModel:
    model = FakeLanguageModel(FakeClock(), [])
    model.first_token_delay_s = model.token_delay_s = 0.0
    return model


async def test_reply_streams_the_model_after_the_stable_system_prompt(
    llm: FakeLanguageModel,
) -> None:
    llm.replies = ["Yes we do."]
    conversation = Conversation(DEFAULT_AGENT, llm)
    assert await collect(conversation, "Do you install panels?") == "Yes we do."
    (request,) = llm.requests
    assert request[0]["role"] == "system"
    assert "Brightline Solar" in request[0]["content"]
    assert request[-1] == {"role": "user", "content": "Do you install panels?"}


async def test_the_greeting_then_turns_build_the_history_the_caller_heard(
    llm: FakeLanguageModel,
) -> None:
    llm.replies = ["First answer.", "Second answer."]
    conversation = Conversation(DEFAULT_AGENT, llm)
    conversation.commit_turn("", conversation.greeting(), interrupted=False)
    await collect(conversation, "one")
    conversation.commit_turn("one", "First", interrupted=True)
    await collect(conversation, "two")
    # The request for turn two carries what was heard of turn one, not what was generated;
    # the leading greeting is left out so the history starts with the caller.
    assert llm.requests[1][1:] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "First —"},
        {"role": "user", "content": "two"},
    ]


def test_a_call_the_agent_placed_opens_with_the_routes_greeting(llm: FakeLanguageModel) -> None:
    opening = DEFAULT_AGENT.outbound_greeting_text("Jane Doe", "follow up on the survey")
    assert Conversation(DEFAULT_AGENT, llm, greeting=opening).greeting() == opening
    assert Conversation(DEFAULT_AGENT, llm).greeting() == DEFAULT_AGENT.greeting_text()


async def test_an_unheard_answer_merges_the_callers_words_into_one_turn(
    llm: FakeLanguageModel,
) -> None:
    conversation = Conversation(DEFAULT_AGENT, llm)
    conversation.commit_turn("I want", "", interrupted=True)
    conversation.commit_turn("a quote", "Sure.", interrupted=False)
    assert conversation.history == [
        {"role": "user", "content": "I want a quote"},
        {"role": "assistant", "content": "Sure."},
    ]


async def test_goodbye_needs_no_model_and_asks_to_hang_up(llm: FakeLanguageModel) -> None:
    conversation = Conversation(DEFAULT_AGENT, llm)
    assert await collect(conversation, "Okay, thanks. Bye!") == DEFAULT_AGENT.goodbye
    assert conversation.end_call_requested
    assert llm.requests == []


async def test_long_answers_are_cut_after_three_sentences(llm: FakeLanguageModel) -> None:
    llm.replies = ["One. Two. Three. Four. Five."]
    conversation = Conversation(DEFAULT_AGENT, llm)
    assert await collect(conversation, "tell me") == "One. Two. Three."
    assert llm.stopped_early == 1


async def test_markdown_and_emojis_are_not_read_aloud(llm: FakeLanguageModel) -> None:
    llm.replies = ["**Great** question! 😀 We have #1 panels."]
    conversation = Conversation(DEFAULT_AGENT, llm)
    assert await collect(conversation, "hi") == "Great question!  We have 1 panels."


async def test_an_empty_model_answer_becomes_a_polite_request_to_repeat(
    llm: FakeLanguageModel,
) -> None:
    llm.replies = ["***"]
    conversation = Conversation(DEFAULT_AGENT, llm)
    assert await collect(conversation, "hi") == "Sorry, could you say that again?"


async def test_pressed_keys_are_told_to_the_model_once(llm: FakeLanguageModel) -> None:
    llm.replies = ["Noted.", "Okay."]
    conversation = Conversation(DEFAULT_AGENT, llm)
    conversation.dtmf("1")
    await collect(conversation, "option")
    await collect(conversation, "next")
    assert "pressed: 1" in llm.requests[0][-1]["content"]
    assert "pressed" not in llm.requests[1][-1]["content"]


@pytest.mark.parametrize(
    ("text", "farewell"),
    [
        ("Goodbye", True),
        ("ok bye bye", True),
        ("that's all, thanks", True),
        ("have a nice day", True),
        ("I'm not buying anything", False),
        ("Bye. Oh wait, how much is it?", False),
        ("Bye, and then I asked them about the price of the panels in the end", False),
        ("tell me about the byelaws", False),
    ],
)
def test_farewells_are_recognised(text: str, farewell: bool) -> None:
    assert is_farewell(text) is farewell


def test_speakable_keeps_ordinary_punctuation() -> None:
    assert speakable("It's $9,000 - or 9.5k, really?") == "It's $9,000 - or 9.5k, really?"


async def test_a_fully_heard_answer_is_kept_as_the_model_wrote_it(llm: FakeLanguageModel) -> None:
    # Byte-identical history keeps llama.cpp's prefix cache valid for the next turn.
    llm.replies = ["Yes,  we do.\n\nIt is *easy*."]
    conversation = Conversation(DEFAULT_AGENT, llm)
    spoken = await collect(conversation, "hi")
    conversation.commit_turn("hi", " ".join(spoken.split()), interrupted=False)
    assert conversation.history[-1]["content"] == "Yes,  we do.\n\nIt is *easy*."


# --- actions: the rule backstop and the model's action line (docs/dialog.md) ----------------

NEW_YORK = ZoneInfo("America/New_York")
MONDAY_MORNING = dt.datetime(2026, 11, 30, 10, 0, tzinfo=NEW_YORK)


def sink(*, can_transfer: bool = True) -> ActionLog:
    return ActionLog(can_transfer=can_transfer, tz=NEW_YORK, now=lambda: MONDAY_MORNING)


async def test_do_not_call_is_set_at_once_confirmed_and_ends_the_call_whatever_the_model(
    llm: FakeLanguageModel,
) -> None:
    llm.replies = ["I'd love to tell you more about our panels!"]
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    said = await collect(conversation, "I'm busy, and please don't ever call me again.")
    assert said == AgentLines().do_not_call
    assert [(a.kind, a.source) for a in actions.taken] == [(ActionKind.SET_DO_NOT_CALL, "rule")]
    assert conversation.end_call_requested
    assert llm.requests == []  # nothing the model says can talk the agent around it


async def test_the_agent_says_it_is_an_ai_and_never_denies_it(llm: FakeLanguageModel) -> None:
    llm.replies = ["No, I'm a real person, I promise."]
    conversation = Conversation(DEFAULT_AGENT, llm, actions=sink(can_transfer=False))
    said = await collect(conversation, "Wait, are you a robot?")
    assert said == "Yes, I'm an AI assistant for Brightline Solar. How can I help you?"
    assert llm.requests == []
    assert not conversation.end_call_requested


async def test_a_request_for_a_person_hands_the_call_over_after_saying_so(
    llm: FakeLanguageModel,
) -> None:
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    said = await collect(conversation, "Are you a bot? Let me talk to a human!")
    assert said == "Yes, I'm an AI assistant for Brightline Solar. " + AgentLines().transfer
    assert [a.kind for a in actions.taken] == [ActionKind.TRANSFER]
    assert conversation.end_call_requested


async def test_without_anyone_to_hand_over_to_the_agent_says_so_and_stays(
    llm: FakeLanguageModel,
) -> None:
    actions = sink(can_transfer=False)
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    assert await collect(conversation, "Can I talk to a person?") == AgentLines().no_transfer
    assert actions.taken == []
    assert not conversation.end_call_requested


async def test_abuse_gets_one_warning_and_then_the_call_ends(llm: FakeLanguageModel) -> None:
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    assert await collect(conversation, "You stupid bot.") == AgentLines().abuse_warning
    assert not conversation.end_call_requested
    assert await collect(conversation, "Shut up.") == AgentLines().abuse_end
    assert [a.kind for a in actions.taken] == [ActionKind.END_CALL]
    assert conversation.end_call_requested


async def test_the_callers_goodbye_is_an_end_call_action(llm: FakeLanguageModel) -> None:
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    assert await collect(conversation, "That's all I needed, thanks, bye.") == DEFAULT_AGENT.goodbye
    assert [(a.kind, a.source) for a in actions.taken] == [(ActionKind.END_CALL, "rule")]


async def test_a_lone_bye_before_anything_was_said_is_asked_about(
    llm: FakeLanguageModel,
) -> None:
    """Whisper tiny.en hears a synthetic "Hi." as "Bye." (measured): a call must not end on
    it. A yes to the question ends the call; anything else goes on."""
    llm.replies = ["Great, how can I help?"]
    conversation = Conversation(DEFAULT_AGENT, llm, actions=sink())
    assert await collect(conversation, "Hi.") == "Great, how can I help?"
    assert await collect(conversation, "Bye.") == AgentLines().bye_check
    assert not conversation.end_call_requested
    assert await collect(conversation, "Yes.") == DEFAULT_AGENT.goodbye
    assert conversation.end_call_requested


async def test_a_bye_after_a_real_exchange_ends_the_call(llm: FakeLanguageModel) -> None:
    llm.replies = ["About nine to fifteen thousand dollars."]
    conversation = Conversation(DEFAULT_AGENT, llm)
    await collect(conversation, "How much does a system cost?")
    assert await collect(conversation, "Bye.") == DEFAULT_AGENT.goodbye
    assert conversation.end_call_requested


async def test_a_goodbye_the_model_makes_up_is_not_said_and_the_call_goes_on(
    llm: FakeLanguageModel,
) -> None:
    llm.replies = ["Hello there! Have a great day. Goodbye!", "Goodbye!"]
    conversation = Conversation(DEFAULT_AGENT, llm)
    said = await collect(conversation, "Hi.")
    assert said.strip() == "Hello there!"
    conversation.commit_turn("Hi.", " ".join(said.split()), interrupted=False)
    assert conversation.history[-1]["content"] == "Hello there!"  # what was heard
    assert await collect(conversation, "Hi.") == AgentLines().how_can_i_help
    assert not conversation.end_call_requested


async def test_the_models_end_call_alone_does_not_end_the_call(llm: FakeLanguageModel) -> None:
    llm.replies = ["ACTION: end_call()\nThanks for your time."]
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    assert (await collect(conversation, "Hmm, okay.")).strip() == "Thanks for your time."
    assert actions.taken == []
    assert not conversation.end_call_requested


async def test_a_callback_from_the_model_gets_its_time_from_the_callers_words(
    llm: FakeLanguageModel,
) -> None:
    # The model drops "after"; the caller's own words resolve (dialog/when.py). Said without
    # "call me back", so the scheduling rule leaves the turn to the model.
    llm.replies = ['ACTION: schedule_callback(when="tomorrow at three", reason="busy")']
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    said = await collect(conversation, "I'm busy now, tomorrow after three would suit me.")
    assert said == "Sure, I'll call you back tomorrow at 3 pm."
    (action,) = actions.taken
    assert action.kind is ActionKind.SCHEDULE_CALLBACK
    assert action.at == dt.datetime(2026, 12, 1, 15, 0, tzinfo=NEW_YORK)
    assert "ACTION" not in said
    assert "_" not in said
    # The history keeps the model's bytes, the action line with them.
    conversation.commit_turn("...", said, interrupted=False)
    assert conversation.history[-1]["content"].startswith("ACTION: schedule_callback(")
    assert conversation.history[-1]["content"].endswith(said)


async def test_an_appointment_without_a_time_is_asked_for(llm: FakeLanguageModel) -> None:
    llm.replies = ['ACTION: book_appointment(when="soon", kind="demo")\nGreat!']
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    said = await collect(conversation, "Yes, I'd like a demo.")
    assert said == "Great. What day and time would suit you for the demo?"
    assert actions.taken == []


async def test_a_do_not_call_only_the_model_heard_is_asked_about_first(
    llm: FakeLanguageModel,
) -> None:
    # The 1.5B model marked "I don't want to stop calling my mom" as do-not-call (measured).
    llm.replies = ["ACTION: set_do_not_call()\nSure, I won't call your mom anymore."]
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    said = await collect(conversation, "I'd hate for you to lose my business over the bills.")
    assert said == AgentLines().confirm_do_not_call
    assert actions.taken == []
    assert not conversation.end_call_requested
    assert await collect(conversation, "Yes, please.") == AgentLines().do_not_call
    assert [a.kind for a in actions.taken] == [ActionKind.SET_DO_NOT_CALL]
    assert conversation.end_call_requested


async def test_interest_is_noted_and_the_models_words_go_on(llm: FakeLanguageModel) -> None:
    llm.replies = ['ACTION: set_interest(level="hot")\nWonderful! Shall we book the survey?']
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    said = await collect(conversation, "That sounds great.")
    assert said.strip() == "Wonderful! Shall we book the survey?"
    assert [str(a) for a in actions.taken] == ['set_interest(level="hot")']


async def test_information_is_recorded_and_confirmed(llm: FakeLanguageModel) -> None:
    llm.replies = ['ACTION: send_information(channel="email")']
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    said = await collect(conversation, "Send me a brochure by email.")
    assert said == "Sure, I'll have the information sent to you by email."
    assert [str(a) for a in actions.taken] == ['send_information(channel="email")']


# --- call purposes, compliance, the trained answers (docs/dialog.md) -------------------------


async def test_an_action_the_calls_purpose_does_not_allow_is_skipped_with_why(
    llm: FakeLanguageModel,
) -> None:
    """A support call books no demo, whatever the model writes: recorded as skipped, and the
    caller is told it cannot be arranged - never that it was."""
    llm.replies = ['ACTION: book_appointment(when="Tuesday at ten", kind="demo")\nBooked!']
    actions = sink()
    conversation = Conversation(
        DEFAULT_AGENT, llm, actions=actions, purpose=CallPurpose.CUSTOMER_SUPPORT
    )
    said = await collect(conversation, "Fine, show me the new panels on Tuesday at ten.")
    assert said == AgentLines().not_on_this_call
    (action,) = actions.taken
    assert action.kind is ActionKind.BOOK_APPOINTMENT
    assert action.skipped == "not allowed on a customer support call"
    assert action.to_record()["skipped"] == "not allowed on a customer support call"
    assert not conversation.end_call_requested
    assert llm.requests[0][0]["content"].endswith("book_appointment, set_interest.")


async def test_a_skipped_interest_note_lets_the_models_words_go_on(
    llm: FakeLanguageModel,
) -> None:
    llm.replies = ['ACTION: set_interest(level="hot")\nGlad it works again!']
    actions = sink()
    conversation = Conversation(
        DEFAULT_AGENT, llm, actions=actions, purpose=CallPurpose.CUSTOMER_SUPPORT
    )
    assert (await collect(conversation, "Great, it works now.")).strip() == "Glad it works again!"
    assert [(a.kind, bool(a.skipped)) for a in actions.taken] == [(ActionKind.SET_INTEREST, True)]


async def test_do_not_call_and_a_person_are_allowed_on_every_purpose(
    llm: FakeLanguageModel,
) -> None:
    for purpose in CallPurpose:
        actions = sink()
        conversation = Conversation(DEFAULT_AGENT, llm, actions=actions, purpose=purpose)
        assert await collect(conversation, "Put me through to your manager.") == (
            AgentLines().transfer
        )
        actions = sink()
        conversation = Conversation(DEFAULT_AGENT, llm, actions=actions, purpose=purpose)
        await collect(conversation, "Take me off your list.")
        assert [(a.kind, a.skipped) for a in actions.taken] == [(ActionKind.SET_DO_NOT_CALL, "")]
    llm.replies = ['ACTION: transfer(target="billing")']
    actions = sink()
    support = Conversation(
        DEFAULT_AGENT, llm, actions=actions, purpose=CallPurpose.CUSTOMER_SUPPORT
    )
    assert await collect(support, "The invoice people, please.") == AgentLines().transfer
    assert [a.skipped for a in actions.taken] == [""]


async def test_the_first_words_say_it_is_an_ai_and_that_the_call_is_recorded(
    llm: FakeLanguageModel,
) -> None:
    recorded = Conversation(DEFAULT_AGENT, llm, recording=True)
    assert recorded.greeting() == (
        "Hello, this is Alex from Brightline Solar. I'm an AI assistant. This call is recorded. "
        "How can I help you today?"
    )
    opening = DEFAULT_AGENT.outbound_greeting_text("Jane Doe", "follow up on the survey")
    placed = Conversation(DEFAULT_AGENT, llm, greeting=opening, recording=True)
    assert placed.greeting() == (
        "Hello, this is Alex from Brightline Solar, calling to follow up on the survey. "
        "I'm an AI assistant. This call is recorded. Am I speaking with Jane Doe?"
    )
    assert "recorded" not in Conversation(DEFAULT_AGENT, llm).greeting()


async def test_the_answer_to_are_you_a_robot_is_the_agents_own(llm: FakeLanguageModel) -> None:
    profile = msgspec.structs.replace(
        DEFAULT_AGENT, ai_answer="Yes - I'm {name}, a virtual assistant, not a person."
    )
    conversation = Conversation(profile, llm, actions=sink(can_transfer=False))
    assert await collect(conversation, "You're not a real person, are you?") == (
        "Yes - I'm Alex, a virtual assistant, not a person. How can I help you?"
    )
    assert llm.requests == []


async def test_a_caller_whose_hi_is_heard_as_bye_twice_is_not_told_goodbye(
    llm: FakeLanguageModel,
) -> None:
    """Whisper tiny.en hears a synthetic "Hi." as "Bye." and "Hi there." as "Bye there."
    (measured, docs/dialog.md): none of it may end the call."""
    llm.replies = ["Hi! How can I help?"]
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    assert await collect(conversation, "Bye.") == AgentLines().bye_check
    assert await collect(conversation, "Bye.") == AgentLines().bye_check_again
    assert await collect(conversation, "Bye there.") == "Hi! How can I help?"
    assert actions.taken == []
    assert not conversation.end_call_requested
    assert await collect(conversation, "Yes, goodbye.") == DEFAULT_AGENT.goodbye
    assert conversation.end_call_requested


async def test_a_trained_objection_is_answered_with_the_trained_answer(
    llm: FakeLanguageModel,
) -> None:
    llm.replies = ["Well, prices vary a lot.", "I hear you."]
    conversation = Conversation(DEFAULT_AGENT, llm)
    trained = DEFAULT_AGENT.objection_answers["too expensive"]
    assert await collect(conversation, "Honestly it's all too expensive for us.") == trained
    assert llm.requests == []
    # A question about it is the model's to answer; a second time, the model's own words.
    assert await collect(conversation, "Why is it too expensive?") == "Well, prices vary a lot."
    assert await collect(conversation, "Still too expensive.") == "I hear you."


async def test_a_support_call_gets_no_sales_answer_to_an_objection(llm: FakeLanguageModel) -> None:
    llm.replies = ["I'm sorry to hear that. Let me see what I can do."]
    conversation = Conversation(DEFAULT_AGENT, llm, purpose=CallPurpose.CUSTOMER_SUPPORT)
    said = await collect(conversation, "The repair you quoted is too expensive.")
    assert said == "I'm sorry to hear that. Let me see what I can do."


# --- the scheduling pass (docs/dialog.md "The scheduling pass") --------------------------------

PROSE = "Of course! I'd be happy to help you with that."
"""What a small model says instead of an action line (measured with the ci model)."""


def assert_no_action_syntax(said: str) -> None:
    for syntax in ("ACTION", "(", "_", "book_appointment", "schedule_callback"):
        assert syntax not in said, said


async def test_a_callback_the_model_misses_is_taken_at_the_time_said_and_confirmed(
    llm: FakeLanguageModel,
) -> None:
    llm.replies = [PROSE]
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    said = await collect(conversation, "I'm busy right now. Call me back tomorrow after three.")
    assert said == "Sure, I'll call you back tomorrow at 3 pm."
    assert_no_action_syntax(said)
    (action,) = actions.taken
    assert action.kind is ActionKind.SCHEDULE_CALLBACK
    assert action.source == "rule"
    assert action.at == dt.datetime(2026, 12, 1, 15, 0, tzinfo=NEW_YORK)
    assert not conversation.end_call_requested


async def test_a_demo_the_caller_agrees_to_is_booked_at_the_time_said_and_confirmed(
    llm: FakeLanguageModel,
) -> None:
    llm.replies = ["Solar panels are a great choice for a house.", PROSE]
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    await collect(conversation, "Hi, I'm interested in solar panels for my house.")
    said = await collect(conversation, "Yes, a demo next Tuesday at two.")
    (action,) = actions.taken
    assert action.kind is ActionKind.BOOK_APPOINTMENT
    assert action.get("kind") == "demo"
    assert action.source == "rule"
    assert action.at is not None
    # On a Monday, "next Tuesday" is the coming one (dialog/when.py).
    assert action.at == dt.datetime(2026, 12, 1, 14, 0, tzinfo=NEW_YORK)
    assert said == "Great, I've booked the demo for tomorrow at 2 pm."
    assert_no_action_syntax(said)


async def test_a_callback_without_a_time_is_asked_when_and_the_answer_is_taken(
    llm: FakeLanguageModel,
) -> None:
    llm.replies = [PROSE, PROSE]
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    said = await collect(conversation, "Sorry, I'm driving, can you call me back?")
    assert said == AgentLines().callback_ask
    assert actions.taken == []
    conversation.commit_turn("Sorry, I'm driving, can you call me back?", said, False)
    said = await collect(conversation, "Tomorrow at ten is good.")
    assert said == "Sure, I'll call you back tomorrow at 10 am."
    (action,) = actions.taken
    assert action.at == dt.datetime(2026, 12, 1, 10, 0, tzinfo=NEW_YORK)
    assert llm.requests == []  # neither turn needed the model


async def test_an_offered_demo_accepted_with_a_time_is_booked(llm: FakeLanguageModel) -> None:
    llm.replies = ["We could show you the panels. Would you like a free demo?"]
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    offer = await collect(conversation, "What do you sell?")
    conversation.commit_turn("What do you sell?", offer, False)
    said = await collect(conversation, "Sure, Thursday at eleven works.")
    assert said == "Great, I've booked the demo for Thursday the 3rd of December at 11 am."
    (action,) = actions.taken
    assert action.at == dt.datetime(2026, 12, 3, 11, 0, tzinfo=NEW_YORK)


@pytest.mark.parametrize(
    "text",
    [
        "My husband will call you back.",
        "Don't call me back tomorrow.",
        "I called you back yesterday at three.",
        "When would you call back?",
    ],
)
async def test_callback_words_that_ask_for_no_callback_are_the_models_to_answer(
    llm: FakeLanguageModel, text: str
) -> None:
    llm.replies = ["I see, thanks for letting me know."]
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    said = await collect(conversation, text)
    assert said == "I see, thanks for letting me know."
    assert actions.taken == []


async def test_a_callback_in_a_goodbye_is_taken_confirmed_and_then_the_call_ends(
    llm: FakeLanguageModel,
) -> None:
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    said = await collect(conversation, "Call me back on Friday at four. Bye!")
    assert said.startswith("Sure, I'll call you back Friday the 4th of December at 4 pm.")
    assert said.endswith(DEFAULT_AGENT.goodbye)
    assert [a.kind for a in actions.taken] == [ActionKind.SCHEDULE_CALLBACK, ActionKind.END_CALL]
    assert conversation.end_call_requested


async def test_a_demo_the_calls_purpose_does_not_allow_is_skipped_by_the_rule_too(
    llm: FakeLanguageModel,
) -> None:
    actions = sink()
    conversation = Conversation(
        DEFAULT_AGENT, llm, actions=actions, purpose=CallPurpose.CUSTOMER_SUPPORT
    )
    said = await collect(conversation, "Yes, a demo next Tuesday at two.")
    assert said == AgentLines().not_on_this_call
    (action,) = actions.taken
    assert action.kind is ActionKind.BOOK_APPOINTMENT
    assert action.skipped == "not allowed on a customer support call"
    assert action.at is None


async def test_a_withdrawn_answer_takes_nothing_and_leaves_the_dialog_as_it_was(
    llm: FakeLanguageModel,
) -> None:
    # The voice pipeline asks tentatively: the caller may go on talking before hearing it.
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    conversation.dtmf("5")
    pieces = conversation.reply("Please don't call me again.", tentative=True)
    assert "".join([p async for p in pieces]) == AgentLines().do_not_call
    assert actions.taken == []
    conversation.reply_withdrawn()
    assert not conversation.end_call_requested
    pieces = conversation.reply("Call me back tomorrow at three.", tentative=True)
    assert "call you back" in "".join([p async for p in pieces])
    conversation.reply_withdrawn()
    llm.replies = ["They start at ten thousand dollars."]
    await collect(conversation, "What do the panels cost?")
    assert actions.taken == []
    assert "(The caller pressed: 5)" in llm.requests[0][-1]["content"]  # still told once


async def test_a_tentative_answer_acts_once_it_is_heard(llm: FakeLanguageModel) -> None:
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    pieces = conversation.reply("Can I talk to a person please?", tentative=True)
    assert "".join([p async for p in pieces]) == AgentLines().transfer
    assert actions.taken == []
    conversation.reply_heard()
    assert [a.kind for a in actions.taken] == [ActionKind.TRANSFER]
    assert conversation.end_call_requested
    conversation.reply_heard()  # told twice: still taken once
    assert len(actions.taken) == 1


async def test_preparing_a_call_warms_the_model_with_its_prompt_and_context(
    llm: FakeLanguageModel,
) -> None:
    conversation = Conversation(DEFAULT_AGENT, llm, context="- Name: Jane Doe.")
    await conversation.prepare()
    prompt = conversation.messages_for("Hi")[0]["content"]
    assert llm.warmed == [(prompt, "- Name: Jane Doe.")]
    assert llm.requests == []  # no answer was asked for


@pytest.mark.parametrize(
    ("last_words", "taken"),
    [
        ("Look, just call me back tomorrow at three.", [ActionKind.SCHEDULE_CALLBACK]),
        ("Stop calling me.", [ActionKind.SET_DO_NOT_CALL]),
        ("Can I talk to a manager?", []),  # a hand-over needs the caller on the line
        ("Book me a demo tomorrow at three.", []),  # nobody heard which slot it would be
        ("Call me back sometime.", []),  # no time to call back at
    ],
)
async def test_the_callers_last_words_take_only_what_needs_no_answer(
    llm: FakeLanguageModel, last_words: str, taken: list[ActionKind]
) -> None:
    """docs/dialog.md "Last words": the caller hung up before the agent answered."""
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    conversation.last_words(last_words)
    assert [action.kind for action in actions.taken] == taken
    if taken == [ActionKind.SCHEDULE_CALLBACK]:
        assert actions.taken[0].at == dt.datetime(2026, 12, 1, 15, 0, tzinfo=NEW_YORK)
    assert conversation.history == [{"role": "user", "content": last_words}]
    assert not conversation.end_call_requested
    assert llm.requests == []


async def test_a_yes_to_take_me_off_the_list_said_as_the_caller_hangs_up_is_taken(
    llm: FakeLanguageModel,
) -> None:
    llm.replies = ["ACTION: set_do_not_call()"]  # only the model heard it: the agent asks
    actions = sink()
    conversation = Conversation(DEFAULT_AGENT, llm, actions=actions)
    asked = await collect(conversation, "I get too many of these calls.")
    assert asked == AgentLines().confirm_do_not_call
    conversation.commit_turn("I get too many of these calls.", asked, interrupted=False)
    conversation.last_words("Yes.")
    assert [action.kind for action in actions.taken] == [ActionKind.SET_DO_NOT_CALL]
