"""Dialog behaviour on a scripted language model."""

from __future__ import annotations

import pytest

from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.dialog.conversation import Conversation, is_farewell, speakable
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
