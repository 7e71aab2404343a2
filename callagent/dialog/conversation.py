"""One call's dialog: greeting, history, replies, goodbye.

Implements the voice pipeline's ``Responder``. The history holds what the caller heard, not
what was generated (DESIGN.md practice 7): the pipeline commits each exchange with the
agent's words cut at the barge-in point.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator

from callagent.dialog.agent_profile import AgentProfile
from callagent.dialog.llm import ChatMessage, LanguageModel
from callagent.dialog.prompt import build_system_prompt

log = logging.getLogger(__name__)

# The caller is ending the call. Small models are unreliable at noticing this, so it is
# decided here, and the agent answers with the client's own goodbye line.
_FAREWELL = re.compile(
    r"\b(good ?bye|bye(?: bye)?|hang up|that'?s all|talk (?:to you )?later|"
    r"have a (?:good|nice|great) (?:day|evening|one))\b",
    re.IGNORECASE,
)
# Characters a TTS voice would read out or choke on (markdown, emojis, symbols).
_UNSPEAKABLE = re.compile(r"[*_#`~^<>\[\]{}|\\]|[\U0001F000-\U0001FAFF\u2600-\u27BF]")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


def is_farewell(caller_text: str) -> bool:
    """True when the caller is saying goodbye: a farewell among the last few words, and no
    question after it ("bye — oh wait, how much is it?" is not the end of the call)."""
    text = caller_text.strip()
    if not text or text.endswith("?"):
        return False
    return _FAREWELL.search(" ".join(text.split()[-5:])) is not None


def speakable(text: str) -> str:
    """Remove what a voice should not read aloud."""
    return _UNSPEAKABLE.sub("", text)


class Conversation:
    """Dialog state of one call, driven by the voice pipeline."""

    def __init__(
        self,
        profile: AgentProfile,
        llm: LanguageModel,
        *,
        max_history_messages: int = 16,
        max_sentences: int = 3,
        context: str | None = None,
        greeting: str | None = None,
    ) -> None:
        self.profile = profile
        # The opening line of this call: a call the agent placed opens differently from one it
        # answers (AgentProfile.outbound_greeting_text); None: the profile's greeting.
        self._greeting = greeting
        self._llm = llm
        self._system_prompt = build_system_prompt(profile)
        # What this call is about and what the records say about the caller
        # (``customer_context``, docs/telephony.md "Routing"). It changes per call, so it goes
        # *after* the byte-stable system prompt: the model's prefix cache still covers the
        # agent's prompt.
        self._context = context.strip() if context else ""
        self._history: list[ChatMessage] = []
        self._max_history = max_history_messages
        self._max_sentences = max_sentences
        self._end_call = False
        self._pending_keys: list[str] = []
        self._generated = ""  # the model's raw text of the reply in progress

    @property
    def history(self) -> list[ChatMessage]:
        """The exchanges so far, as the caller heard them."""
        return list(self._history)

    @property
    def end_call_requested(self) -> bool:
        return self._end_call

    def greeting(self) -> str:
        if self._greeting is not None:
            return self._greeting
        return self.profile.greeting_text()

    def messages_for(self, caller_text: str) -> list[ChatMessage]:
        """The LLM request for a caller turn: system prompt first (byte-stable), then the
        most recent history, then the caller's words."""
        history = self._history[-self._max_history :]
        # A chat template wants the history to start with the user; drop a leading reply.
        while history and history[0]["role"] == "assistant":
            history = history[1:]
        if self._pending_keys:
            caller_text = f"{caller_text} (The caller pressed: {' '.join(self._pending_keys)})"
        messages: list[ChatMessage] = [{"role": "system", "content": self._system_prompt}]
        if self._context:
            messages.append({"role": "system", "content": self._context})
        return [*messages, *history, {"role": "user", "content": caller_text}]

    async def reply(self, caller_text: str) -> AsyncIterator[str]:
        if is_farewell(caller_text):
            self._end_call = True
            yield self.profile.goodbye
            return
        messages = self.messages_for(caller_text)
        self._pending_keys.clear()
        produced = ""
        self._generated = ""
        # aclosing: leaving early must stop the model now, not when the generator is collected.
        async with contextlib.aclosing(self._llm.stream(messages)) as deltas:
            async for delta in deltas:
                self._generated += delta
                text = speakable(delta)
                if not text:
                    continue
                produced += text
                yield text
                if len(_SENTENCE_END.findall(produced)) >= self._max_sentences:
                    # Long monologues are bad on the phone; stop generating (frees the model).
                    break
        if not produced.strip():
            # What the caller said is personal data: its words only at DEBUG.
            log.warning("the model produced no speakable reply; asking the caller to repeat")
            log.debug("no speakable reply to %r", caller_text)
            yield "Sorry, could you say that again?"

    def commit_turn(self, caller_text: str, heard_text: str, interrupted: bool) -> None:
        generated, self._generated = self._generated, ""
        if not interrupted and " ".join(speakable(generated).split()) == heard_text:
            # All of it was heard: keep the model's own text, byte for byte, so the next
            # request's prompt matches what llama.cpp has evaluated (prefix cache).
            heard_text = generated.strip()
        if caller_text:
            if self._history and self._history[-1]["role"] == "user":
                # The agent's previous answer was never heard: one caller turn, not two.
                self._history[-1]["content"] += " " + caller_text
            else:
                self._history.append({"role": "user", "content": caller_text})
        if heard_text:
            if interrupted:
                heard_text += " —"
            if self._history and self._history[-1]["role"] == "assistant":
                self._history[-1]["content"] += " " + heard_text
            else:
                self._history.append({"role": "assistant", "content": heard_text})

    def dtmf(self, digit: str) -> None:
        self._pending_keys.append(digit)
