"""The real language model of the ``ci`` profile through llama-cpp-python."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import pytest

from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.dialog.conversation import Conversation
from callagent.dialog.llm import LlamaCppLanguageModel, LlamaSettings
from callagent.dialog.prompt import build_system_prompt
from callagent.dialog.purposes import CallPurpose
from callagent.modelfiles import ModelProfile

pytestmark = pytest.mark.real_models


@pytest.fixture(scope="module")
def llm(ci_models: ModelProfile) -> LlamaCppLanguageModel:
    return LlamaCppLanguageModel(ci_models.llm_path, LlamaSettings(max_tokens=48))


async def test_the_model_streams_an_english_answer_in_pieces(llm: LlamaCppLanguageModel) -> None:
    await llm.warm_up(build_system_prompt(DEFAULT_AGENT))
    conversation = Conversation(DEFAULT_AGENT, llm)
    deltas = [d async for d in conversation.reply("What warranty do your solar panels have?")]
    text = "".join(deltas)
    assert len(deltas) > 3  # streamed, not one block
    assert sum(c.isalpha() for c in text) > 10
    assert text.isascii() or any(w in text.lower() for w in ("the", "a", "we", "you"))


async def test_leaving_the_stream_stops_generation_and_frees_the_model(
    llm: LlamaCppLanguageModel,
) -> None:
    messages = Conversation(DEFAULT_AGENT, llm).messages_for("Tell me a very long story.")
    async with contextlib.aclosing(llm.stream(messages)) as deltas:
        async for _ in deltas:
            break  # the caller barged in
    # The single worker is free again at once: a new request answers promptly.
    async with contextlib.aclosing(llm.stream(messages)) as again:
        first = await asyncio.wait_for(anext(again), timeout=30)
    assert first


async def test_every_call_purposes_prompt_fits_the_model_and_gets_a_spoken_answer(
    llm: LlamaCppLanguageModel,
) -> None:
    """The real ``ci`` model takes each purpose's system prompt with room to spare for the
    conversation (half its context at most), and what the caller hears of its reply is words,
    never action syntax (docs/dialog.md "Call purposes")."""
    short = LlamaCppLanguageModel.__new__(LlamaCppLanguageModel)
    short.__dict__.update(llm.__dict__)  # the same loaded model and worker, shorter replies
    short.settings = dataclasses.replace(llm.settings, max_tokens=20)
    llm = short
    for purpose in CallPurpose:
        conversation = Conversation(
            DEFAULT_AGENT, llm, purpose=purpose, context="- Name: Jane Doe.", recording=True
        )
        messages = conversation.messages_for("Hello?")
        prompt = "".join(m["content"] for m in messages).encode()
        tokens = llm._llama.tokenize(prompt)  # the model's own tokenizer
        assert len(tokens) < llm.settings.n_ctx // 2, purpose
        said = "".join([d async for d in conversation.reply("Hello, who is this?")])
        assert sum(c.isalpha() for c in said) > 3, purpose
        assert "ACTION" not in said
        assert "_" not in said
        assert "AI assistant" in conversation.greeting()


async def test_a_calls_prepare_evaluates_its_prompt_and_context_before_the_first_turn(
    llm: LlamaCppLanguageModel,
) -> None:
    # docs/pipeline.md "Warm prefix": while the greeting plays, llama.cpp evaluates the
    # agent's prompt and this customer's context, so the first reply pays for the caller only.
    context = "- Name: Priya Raman. Earlier calls: asked about heat pumps for a barn."
    conversation = Conversation(DEFAULT_AGENT, llm, context=context)
    await conversation.prepare()
    cached = llm._llama.detokenize(list(llm._llama._input_ids)).decode()
    assert "Priya Raman" in cached
    assert cached.index("Priya Raman") > cached.index(DEFAULT_AGENT.company)
