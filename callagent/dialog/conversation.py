"""One call's dialog: greeting, history, replies, actions, goodbye.

Implements the voice pipeline's ``Responder``. The history holds what the caller heard, not
what was generated (DESIGN.md practice 7): the pipeline commits each exchange with the
agent's words cut at the barge-in point.

Each caller turn goes first through the rule backstop (:mod:`callagent.dialog.intents`): a
do-not-call request, "are you a robot?", a request for a person, abuse and the caller's goodbye
are answered with fixed lines and acted on without the language model, so nothing the caller or
the model says can talk the agent around them. A callback or appointment the caller asks for
with a time is heard by the scheduling pass (:mod:`callagent.dialog.scheduling_intents`) and
taken and confirmed the same way, on any model. Every other turn goes to the model, which may
begin its reply with an action line (:mod:`callagent.dialog.actions`); the line never reaches
the caller, and the agent confirms the action in fixed words ("Sure, I'll call you back
Tuesday the 8th at 2 pm"). docs/dialog.md has the design and its measurements.

The agent says goodbye and hangs up only when the caller ended the conversation or an action
did (do-not-call, a hand-over, abuse after a warning); a goodbye the model makes up on its own
is not spoken.

A call may have a purpose (``dialog/purposes.py``): its objective is in the system prompt, and
an action the model writes that the purpose does not allow is recorded as skipped, with why,
and not carried out. The first words say that the caller speaks with an AI assistant, and that
the call is recorded when it is (docs/dialog.md "Compliance"); an objection the client trained
an answer for is answered with that answer (``intents.match_objection``).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from callagent.dialog.actions import (
    Action,
    ActionKind,
    ActionLog,
    ActionSink,
    ActionTextFilter,
    ResolvedTime,
)
from callagent.dialog.agent_profile import AgentProfile
from callagent.dialog.intents import Intent, detect, is_lone_bye, is_yes, match_objection
from callagent.dialog.intents import is_farewell as is_farewell
from callagent.dialog.llm import ChatMessage, LanguageModel
from callagent.dialog.prompt import build_system_prompt
from callagent.dialog.purposes import ALWAYS_ALLOWED, PURPOSES, CallPurpose
from callagent.dialog.scheduling_intents import SchedulingMatch, detect_scheduling

log = logging.getLogger(__name__)

# Characters a TTS voice would read out or choke on (markdown, emojis, symbols).
_UNSPEAKABLE = re.compile(r"[*_#`~^<>\[\]{}|\\]|[\U0001F000-\U0001FAFF\u2600-\u27BF]")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
# Turns of at least this many words count as the caller having said something; before that a
# lone "bye" is asked about (intents.is_lone_bye).
_SUBSTANTIVE_WORDS = 3
# What the agent waits for after its own question: a yes to "take you off the list?", a yes to
# "did you want to end the call?", or the time it asked for a callback or an appointment.
_Awaiting = Literal["do_not_call", "bye", "callback", "appointment"]
_NO = re.compile(r"^\W*(?:no|nope|nah|never mind|forget it)\b", re.IGNORECASE)


def speakable(text: str) -> str:
    """Remove what a voice should not read aloud."""
    return _UNSPEAKABLE.sub("", text)


@dataclass(frozen=True, slots=True)
class AgentLines:
    """What the agent says when it acts: fixed words, so an action is always confirmed the
    same way and the caller never hears a model's guess of what was done. ``{company}``,
    ``{when}``, ``{kind}`` and ``{channel}`` are filled in."""

    do_not_call: str = (
        "I understand. I've taken your number off our list, and you won't be called again. Goodbye."
    )
    confirm_do_not_call: str = (
        "Just to be sure: would you like me to take your number off our call list?"
    )
    ai_offer_person: str = "I can also put you through to a person if you prefer."
    ai_follow_up: str = "How can I help you?"
    transfer: str = "Of course. I'll put you through to a colleague now, please hold."
    no_transfer: str = (
        "I'm sorry, there's nobody I can put you through to right now. I can have someone "
        "call you back. When would suit you?"
    )
    abuse_warning: str = "I'm here to help, but please keep it respectful. What can I do for you?"
    abuse_end: str = "I'm going to end the call now. Goodbye."
    callback: str = "Sure, I'll call you back {when}."
    callback_moved: str = "We can only call at certain hours, so I'll call you back {when}."
    callback_ask: str = "Sure. When would be a good time to call you back?"
    appointment: str = "Great, I've booked the {kind} for {when}."
    appointment_moved: str = "That time isn't open, so I've booked the {kind} for {when}."
    appointment_ask: str = "Great. What day and time would suit you for the {kind}?"
    information: str = "Sure, I'll have the information sent to you by {channel}."
    bye_check: str = "Sorry, I didn't quite catch that. Did you want to end the call?"
    bye_check_again: str = "Sorry, the line isn't very clear. How can I help you?"
    not_on_this_call: str = (
        "I'm sorry, I can't arrange that on this call. Is there anything else I can help with?"
    )
    how_can_i_help: str = "How can I help you?"
    say_again: str = "Sorry, could you say that again?"


_CHANNEL_WORDS = {"email": "email", "sms": "text message", "post": "post"}


@dataclass(frozen=True, slots=True)
class _DialogState:
    """What one answer may change in the dialog besides its history."""

    awaiting: _Awaiting | None
    asked_kind: str
    end_call: bool
    abuse_warned: bool
    caller_said_something: bool
    objections_answered: frozenset[str]
    pending_keys: tuple[str, ...]


@dataclass
class _Tentative:
    """An answer the caller may never hear (the pipeline can still withdraw it): the actions it
    decided, held back, and the dialog's state from before it, to go back to if it is dropped."""

    before: _DialogState
    actions: list[Action] = field(default_factory=list)


@dataclass
class _Decision:
    """What the agent says for one caller turn without the model, and what it does."""

    text: str
    actions: list[Action] = field(default_factory=list)
    ends_call: bool = False
    awaiting: _Awaiting | None = None


class FarewellGuard:
    """Drops the goodbyes from a streamed reply (the model's own idea: the call is not ending).

    Words pass at once, except from a word that may begin a goodbye ("good", "have", "talk",
    …): those wait for the next words to say whether it is one ("have a great day") or not
    ("have a look"). A goodbye is dropped with the punctuation right after it.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self.dropped: list[str] = []

    def push(self, text: str) -> str:
        """Add text; what may be spoken now."""
        self._buffer += text
        return self._drain(final=False)

    def flush(self) -> str:
        """The end of the reply."""
        return self._drain(final=True)

    def _drain(self, *, final: bool) -> str:
        out: list[str] = []
        while True:
            words = list(_WORD.finditer(self._buffer))
            # The last word may still grow ("good" → "goodbye") unless the text goes on.
            open_end = not final and bool(words) and words[-1].end() == len(self._buffer)
            held = None
            for i, word in enumerate(words):
                match = _farewell_at(words, i, open_end)
                if match == "prefix" and not final:
                    held = word.start()
                    break
                if isinstance(match, int):
                    end = _PUNCTUATION.match(self._buffer, words[match].end())
                    assert end is not None
                    out.append(self._buffer[: word.start()])
                    self.dropped.append(self._buffer[word.start() : end.end()])
                    self._buffer = self._buffer[end.end() :]
                    break
            else:
                if open_end:
                    held = words[-1].start()
                else:
                    out.append(self._buffer)
                    self._buffer = ""
                    return "".join(out)
            if held is not None:
                out.append(self._buffer[:held])
                self._buffer = self._buffer[held:]
                return "".join(out)


_WORD = re.compile(r"[A-Za-z']+")
_PUNCTUATION = re.compile(r"[.!,;:…]*")
_GOOD = frozenset({"good", "nice", "great", "lovely", "wonderful"})
_TIME = frozenset({"day", "evening", "one", "weekend", "night", "afternoon"})
#: Goodbyes in the model's words, word by word (each position: the words it may be).
_FAREWELLS: tuple[tuple[frozenset[str], ...], ...] = (
    (frozenset({"goodbye", "bye", "farewell"}),),
    (frozenset({"good"}), frozenset({"bye"})),
    (frozenset({"talk"}), frozenset({"to"}), frozenset({"you"}), frozenset({"soon"})),
    (frozenset({"have"}), frozenset({"a"}), _GOOD, _TIME),
)


def _farewell_at(
    words: list[re.Match[str]], start: int, open_end: bool
) -> int | Literal["prefix"] | None:
    """Whether a goodbye starts at ``words[start]``: the index of its last word, "prefix"
    when the words so far may still become one, or None."""
    said = [w.group().lower() for w in words[start:]]
    maybe = False
    for phrase in _FAREWELLS:
        for offset, allowed in enumerate(phrase):
            if offset == len(said):
                maybe = True  # every word so far fits and the phrase goes on
                break
            word = said[offset]
            last = start + offset == len(words) - 1
            if word in allowed:
                if offset == len(phrase) - 1:
                    if last and open_end:
                        maybe = True  # "good" may become "goodbye"; its "!" is to come
                        break
                    return start + offset
                continue
            if last and open_end and any(a.startswith(word) for a in allowed):
                maybe = True
            break
    return "prefix" if maybe else None


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
        actions: ActionSink | None = None,
        lines: AgentLines | None = None,
        purpose: CallPurpose | None = None,
        recording: bool = False,
    ) -> None:
        self.profile = profile
        # What the call is for (dialog/purposes.py); None: the agent's general job, every
        # action allowed. Its prompt is byte-stable per (agent, purpose).
        self.purpose = purpose
        # The call is recorded: the greeting says so (docs/dialog.md "Compliance").
        self._recording = recording
        # The opening line of this call: a call the agent placed opens differently from one it
        # answers (AgentProfile.outbound_greeting_text); None: the profile's greeting.
        self._greeting = greeting
        self._llm = llm
        self._system_prompt = build_system_prompt(profile, purpose)
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
        # The reply in progress: the text its history entry gets when it was heard in full
        # (the model's own bytes, action line included, so the next request's prompt matches
        # what llama.cpp evaluated), and what the caller was to hear of it.
        self._exact = ""
        self._exact_spoken = ""
        self._actions: ActionSink = actions if actions is not None else ActionLog()
        self._lines = lines or AgentLines()
        self._awaiting: _Awaiting | None = None
        # What the agent asked a time for ("demo", "appointment"), while awaiting it.
        self._asked_kind = ""
        self._abuse_warned = False
        self._caller_said_something = False
        self._objections_answered: set[str] = set()
        # The answer under way when the pipeline may still withdraw it (``reply(tentative=True)``).
        self._tentative: _Tentative | None = None

    @property
    def history(self) -> list[ChatMessage]:
        """The exchanges so far, as the caller heard them."""
        return list(self._history)

    @property
    def end_call_requested(self) -> bool:
        return self._end_call

    def greeting(self) -> str:
        """The first words of the call: the route's opening (a call the agent placed) or the
        profile's greeting, with the AI disclosure and, when recorded, the recording notice."""
        if self._greeting is not None:
            return self.profile.with_notices(self._greeting, recording=self._recording)
        return self.profile.greeting_text(recording=self._recording)

    async def prepare(self) -> None:
        """Evaluate this call's prefix - the agent's system prompt and the customer's context -
        into the model's cache while the greeting plays, so the first reply pays only for the
        caller's words (docs/pipeline.md "Warm prefix"). A failure only costs speed."""
        try:
            if self._context:
                await self._llm.warm_up(self._system_prompt, context=self._context)
            else:
                await self._llm.warm_up(self._system_prompt)
        except Exception:
            log.warning("warming the model for the call failed", exc_info=True)

    def allows(self, kind: ActionKind) -> bool:
        """Whether this call's purpose allows an action of ``kind`` (dialog/purposes.py)."""
        if self.purpose is None:
            return True
        return kind in ALWAYS_ALLOWED or kind in PURPOSES[self.purpose].allowed

    def messages_for(self, caller_text: str) -> list[ChatMessage]:
        """The LLM request for a caller turn: system prompt first (byte-stable), then the
        most recent history, then the caller's words."""
        history = self._history[-self._max_history :]
        # A chat template wants the history to start with the user; drop a leading reply.
        while history and history[0]["role"] == "assistant":
            history = history[1:]
        if self._pending_keys:
            caller_text = f"{caller_text} (The caller pressed: {' '.join(self._pending_keys)})"
        return [*self._prefix(), *history, {"role": "user", "content": caller_text}]

    def _prefix(self) -> list[ChatMessage]:
        """What every request of the call starts with: the byte-stable system prompt, then the
        call's context."""
        messages: list[ChatMessage] = [{"role": "system", "content": self._system_prompt}]
        if self._context:
            messages.append({"role": "system", "content": self._context})
        return messages

    async def reply(self, caller_text: str, *, tentative: bool = False) -> AsyncIterator[str]:
        """Stream the answer to ``caller_text``.

        With ``tentative`` the voice pipeline may still drop the answer before the caller hears
        any of it (the caller went on talking: docs/pipeline.md "End of turn"), so what it
        decides to do - do-not-call, a hand-over, a callback - is only carried out at
        :meth:`reply_heard`, and :meth:`reply_withdrawn` forgets it all. Without it (a caller
        of the dialog that never withdraws) actions are taken the moment they are decided.
        """
        if self._tentative is not None:
            # The previous answer's fate was never told: it was not heard.
            self.reply_withdrawn()
        if tentative:
            self._tentative = _Tentative(self._state())
        self._exact = self._exact_spoken = ""
        awaiting, self._awaiting = self._awaiting, None
        decision = self._by_rule(caller_text, awaiting)
        if len(caller_text.split()) >= _SUBSTANTIVE_WORDS:
            self._caller_said_something = True
        if decision is not None:
            self._pending_keys.clear()
            self._awaiting = decision.awaiting
            for action in decision.actions:
                self._take(action)
            if decision.ends_call:
                self._end_call = True
            self._exact = self._exact_spoken = decision.text
            yield decision.text
            return
        async for text in self._model_reply(caller_text):
            yield text

    # --- the rule backstop ----------------------------------------------------------------------

    def _by_rule(self, caller_text: str, awaiting: _Awaiting | None) -> _Decision | None:
        """The turn answered by the rules (intents), or None for the model to answer."""
        lines = self._lines
        found = {match.intent for match in detect(caller_text)}
        if found:
            # Which rule fired is no personal data; the words that fired it are (DEBUG).
            log.info("rules: %s", ", ".join(sorted(found)))
            log.debug("rules on %r", caller_text)
        if Intent.DO_NOT_CALL in found or (awaiting == "do_not_call" and is_yes(caller_text)):
            action = Action.make(ActionKind.SET_DO_NOT_CALL, source="rule")
            return _Decision(lines.do_not_call, [action], ends_call=True)
        # "Are you a robot?" is answered truthfully before anything else is said, in the
        # client's words if it set them (AgentProfile.ai_answer, which must admit it).
        disclosure = self.profile.ai_answer_text() if Intent.AI_QUESTION in found else ""
        if Intent.TRANSFER_REQUEST in found:
            return self._transfer(disclosure, "rule")
        if Intent.ABUSE in found:
            if self._abuse_warned:
                action = Action.make(ActionKind.END_CALL, source="rule")
                return _Decision(_join(disclosure, lines.abuse_end), [action], ends_call=True)
            self._abuse_warned = True
            return _Decision(_join(disclosure, lines.abuse_warning))
        timed = self._by_scheduling(caller_text, awaiting)
        if Intent.FAREWELL in found or (awaiting == "bye" and is_yes(caller_text)):
            if is_lone_bye(caller_text) and not self._caller_said_something:
                # Possibly a "Hi." Whisper heard as "Bye." (intents.is_lone_bye): ask - and a
                # second one is no answer to the question ("Hi." said twice), so the call goes
                # on; only a yes or a goodbye in more words ends it.
                check = lines.bye_check if awaiting is None else lines.bye_check_again
                return _Decision(_join(disclosure, check), awaiting="bye")
            action = Action.make(ActionKind.END_CALL, source="rule")
            if timed is not None and timed.actions:
                # "Call me back tomorrow at three, bye": taken and confirmed, then goodbye.
                text = _join(timed.text, self.profile.goodbye)
                return _Decision(text, [*timed.actions, action], ends_call=True)
            return _Decision(self.profile.goodbye, [action], ends_call=True)
        if timed is not None:
            return _Decision(_join(disclosure, timed.text), timed.actions, awaiting=timed.awaiting)
        if disclosure:
            offer = lines.ai_offer_person if self._actions.can_transfer else ""
            return _Decision(_join(disclosure, offer, lines.ai_follow_up))
        if not found and self.purpose is not CallPurpose.CUSTOMER_SUPPORT:
            # The client trained an answer to this objection: it is what the agent says, the
            # first time it is raised on the call (later, the model answers in its own words).
            # Not on a support call: "the repair is too expensive" wants help, not a pitch.
            pending = (
                k for k in self.profile.objection_answers if k not in self._objections_answered
            )
            objection = match_objection(caller_text, pending)
            if objection is not None:
                self._objections_answered.add(objection)
                log.info("rules: trained objection answer")
                return _Decision(self.profile.objection_answers[objection])
        return None

    def _by_scheduling(self, caller_text: str, awaiting: _Awaiting | None) -> _Decision | None:
        """A callback or appointment the caller asks for, heard by the scheduling pass
        (``dialog/scheduling_intents.py``) whatever the model would write: taken with the time
        the caller said and confirmed in fixed words; without a time the agent asks for one.
        A time said right after the agent asked for it is the answer."""
        last = next((m["content"] for m in reversed(self._history) if m["role"] == "assistant"), "")
        match = detect_scheduling(caller_text, last)
        if match is None and awaiting in ("callback", "appointment") and not _NO.match(caller_text):
            match = SchedulingMatch(awaiting, self._asked_kind, needs_time=True)
        if match is None:
            return None
        log.info("rules: %s", match.what)
        log.debug("scheduling rule on %r", match.matched)
        callback = match.what == "callback"
        kind = ActionKind.SCHEDULE_CALLBACK if callback else ActionKind.BOOK_APPOINTMENT
        arguments = {"when": caller_text} if callback else {"when": caller_text, "kind": match.kind}
        action = Action.make(kind, arguments, "rule")
        resolved = self._actions.resolve_time(caller_text)
        if resolved is None and match.needs_time:
            return None  # a bare "yes" to the agent's offer: the model answers it
        if not self.allows(kind):
            # Like the model's actions (_by_model): recorded as skipped, with why.
            assert self.purpose is not None
            why = f"not allowed on a {PURPOSES[self.purpose].label} call"
            log.info("the caller asked for %s: %s", kind.value, why)
            return _Decision(self._lines.not_on_this_call, [action.skip(why)])
        return self._confirm_timed(action, resolved)

    def _confirm_timed(self, action: Action, resolved: ResolvedTime | None) -> _Decision:
        """A callback or appointment with its time taken and the words that confirm it; or,
        with no time understood, the question for one (nothing is taken)."""
        lines = self._lines
        callback = action.kind is ActionKind.SCHEDULE_CALLBACK
        kind = " ".join(action.get("kind").split()[:4]) or "appointment"
        if resolved is None:
            self._asked_kind = kind
            if callback:
                return _Decision(lines.callback_ask, awaiting="callback")
            return _Decision(lines.appointment_ask.format(kind=kind), awaiting="appointment")
        if callback:
            line = lines.callback_moved if resolved.moved else lines.callback
        else:
            line = lines.appointment_moved if resolved.moved else lines.appointment
        text = line.format(when=resolved.spoken, kind=kind)
        return _Decision(text, [action.resolved(resolved.at)])

    def _transfer(
        self, before: str, source: Literal["rule", "model"], target: str = ""
    ) -> _Decision:
        if not self._actions.can_transfer:
            return _Decision(_join(before, self._lines.no_transfer))
        arguments = {"target": target} if target else {}
        action = Action.make(ActionKind.TRANSFER, arguments, source)
        return _Decision(_join(before, self._lines.transfer), [action], ends_call=True)

    # --- the model ------------------------------------------------------------------------------

    async def _model_reply(self, caller_text: str) -> AsyncIterator[str]:
        messages = self.messages_for(caller_text)
        self._pending_keys.clear()
        actions = ActionTextFilter()
        guard = FarewellGuard()
        produced = ""
        generated = ""
        handled = 0
        capped = False
        decision: _Decision | None = None
        # aclosing: leaving early must stop the model now, not when the generator is collected.
        async with contextlib.aclosing(self._llm.stream(messages)) as deltas:
            async for delta in deltas:
                generated += delta
                text = guard.push(speakable(actions.push(delta)))
                if len(actions.actions) > handled:
                    decision = self._by_model(actions.actions[handled:], caller_text)
                    handled = len(actions.actions)
                    if decision is not None:
                        break  # the action's own words replace the rest of the reply
                if text:
                    produced += text
                    self._note(generated, produced)
                    yield text
                if len(_SENTENCE_END.findall(produced)) >= self._max_sentences:
                    # Long monologues are bad on the phone; stop generating (frees the model).
                    capped = True
                    break
        if capped:
            generated = _through_last_sentence(generated)
        elif decision is None:
            rest = guard.push(speakable(actions.flush())) + guard.flush()
            if len(actions.actions) > handled:
                decision = self._by_model(actions.actions[handled:], caller_text)
            if rest.strip():
                produced += rest
                yield rest
        if actions.removed:
            log.info("the model's action syntax was kept from the caller")
            log.debug("removed from the reply: %r", actions.removed)
        if guard.dropped:
            # The call is not ending: a goodbye the model made up is not said (module docstring).
            log.info("the model said goodbye on its own; not spoken")
            log.debug("dropped: %r", guard.dropped)
            generated = ""  # the history must not hold words the caller did not hear
        self._note(generated, produced)
        if decision is not None:
            self._awaiting = decision.awaiting
            for action in decision.actions:
                self._take(action)
            if decision.ends_call:
                self._end_call = True
            exact = f"{generated.rstrip()}\n{decision.text}" if generated else ""
            self._note(exact, _join(produced, decision.text))
            yield (" " if produced else "") + decision.text
            return
        if not produced.strip():
            if guard.dropped:
                yield self._lines.how_can_i_help
                return
            # What the caller said is personal data: its words only at DEBUG.
            log.warning("the model produced no speakable reply; asking the caller to repeat")
            log.debug("no speakable reply to %r", caller_text)
            yield self._lines.say_again

    def _by_model(self, actions: list[Action], caller_text: str) -> _Decision | None:
        """Carry out what the model decided; the words that confirm it, or None when the
        model's own reply goes on (an action with nothing to say, or one that is refused)."""
        lines = self._lines
        for action in actions:
            kind = action.kind
            if not self.allows(kind):
                # Enforced here, not only asked for in the prompt: the model may write any
                # action. Recorded as skipped, with why; the caller hears it cannot be done.
                assert self.purpose is not None
                why = f"not allowed on a {PURPOSES[self.purpose].label} call"
                log.info("the model wanted %s: %s", kind.value, why)
                self._take(action.skip(why))
                if kind is ActionKind.SET_INTEREST:
                    continue  # nothing the caller was told: the model's words go on
                return _Decision(lines.not_on_this_call)
            if kind is ActionKind.SET_INTEREST:
                if action.get("level"):
                    self._take(action)
                continue
            if kind is ActionKind.END_CALL:
                # Only the caller or an action ends a call (module docstring); the caller's
                # goodbye is the rules' to hear, and they did not.
                log.info("the model wanted to end the call; the caller did not: going on")
                continue
            if kind is ActionKind.SET_DO_NOT_CALL:
                # The rules did not hear a do-not-call request: the model may have misread the
                # caller (measured: 3 false ones in 25 turns, docs/dialog.md), so ask first.
                return _Decision(lines.confirm_do_not_call, awaiting="do_not_call")
            if kind is ActionKind.TRANSFER:
                return self._transfer("", "model", action.get("target"))
            if kind is ActionKind.SEND_INFORMATION:
                channel = action.get("channel") or "email"
                self._take(Action.make(kind, {"channel": channel}, "model"))
                return _Decision(lines.information.format(channel=_CHANNEL_WORDS[channel]))
            if kind in (ActionKind.SCHEDULE_CALLBACK, ActionKind.BOOK_APPOINTMENT):
                return self._timed(action, caller_text)
        return None

    def _timed(self, action: Action, caller_text: str) -> _Decision:
        """A callback or an appointment: taken once its time is understood - from the caller's
        own words first (they keep "next" and "after", which the model drops), else from the
        model's - and confirmed with the resolved time; without a time the agent asks."""
        resolved = self._actions.resolve_time(caller_text)
        if resolved is None and action.get("when"):
            resolved = self._actions.resolve_time(action.get("when"))
        return self._confirm_timed(action, resolved)

    def _take(self, action: Action) -> None:
        if self._tentative is not None:
            self._tentative.actions.append(action)  # until the caller hears the answer
            return
        log.info("action: %s (%s)", action.kind.value, action.source)
        self._actions.take(action)

    def _state(self) -> _DialogState:
        return _DialogState(
            awaiting=self._awaiting,
            asked_kind=self._asked_kind,
            end_call=self._end_call,
            abuse_warned=self._abuse_warned,
            caller_said_something=self._caller_said_something,
            objections_answered=frozenset(self._objections_answered),
            pending_keys=tuple(self._pending_keys),
        )

    def _note(self, exact: str, spoken: str) -> None:
        self._exact, self._exact_spoken = exact, spoken

    # --- the pipeline's side --------------------------------------------------------------------

    def reply_heard(self) -> None:
        """The tentative answer is committed - its first audio is on its way to the caller, or
        its turn is over - so what it decided is carried out now."""
        tentative, self._tentative = self._tentative, None
        for action in tentative.actions if tentative is not None else ():
            self._take(action)

    def reply_withdrawn(self) -> None:
        """The tentative answer was dropped unheard: none of its actions is taken, and the
        dialog is as it was before it (the caller's words come back as part of a longer turn)."""
        tentative, self._tentative = self._tentative, None
        if tentative is None:
            return
        before = tentative.before
        self._awaiting, self._asked_kind = before.awaiting, before.asked_kind
        self._end_call, self._abuse_warned = before.end_call, before.abuse_warned
        self._caller_said_something = before.caller_said_something
        self._objections_answered = set(before.objections_answered)
        self._pending_keys = list(before.pending_keys)
        self._exact = self._exact_spoken = ""
        if tentative.actions:
            kinds = ", ".join(action.kind.value for action in tentative.actions)
            log.info("answer withdrawn before the caller heard it; not taken: %s", kinds)

    def commit_turn(self, caller_text: str, heard_text: str, interrupted: bool) -> None:
        exact, spoken = self._exact, self._exact_spoken
        self._exact = self._exact_spoken = ""
        if not interrupted and exact and " ".join(spoken.split()) == heard_text:
            # All of it was heard: keep the model's own text, byte for byte, so the next
            # request's prompt matches what llama.cpp has evaluated (prefix cache).
            heard_text = exact.strip()
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

    def last_words(self, caller_text: str) -> None:
        """The caller said ``caller_text`` and hung up before the agent answered
        (docs/dialog.md "Last words"): it joins the history as the last caller turn, and the
        rules take what needs no spoken confirmation - a do-not-call request (or a yes to
        "take you off the list?"), and a callback whose time resolves. A hand-over, an
        appointment (its slot may have moved, and nobody could confirm it) or anything the
        model would decide is not taken: the caller is gone."""
        if self._tentative is not None:
            self.reply_withdrawn()  # an answer to these words that was never heard
        text = caller_text.strip()
        if not text:
            return
        awaiting, self._awaiting = self._awaiting, None
        if self._history and self._history[-1]["role"] == "user":
            self._history[-1]["content"] += " " + text  # its answer was never heard
        else:
            self._history.append({"role": "user", "content": text})
        found = {match.intent for match in detect(text)}
        if Intent.DO_NOT_CALL in found or (awaiting == "do_not_call" and is_yes(text)):
            log.info("rules: do_not_call, in the caller's last words")
            self._take(Action.make(ActionKind.SET_DO_NOT_CALL, source="rule"))
            return
        timed = self._by_scheduling(text, awaiting)
        for action in timed.actions if timed is not None else ():
            if action.kind is ActionKind.SCHEDULE_CALLBACK:
                log.info("rules: callback, in the caller's last words")
                self._take(action)


def _through_last_sentence(text: str) -> str:
    """``text`` up to and including its last sentence end."""
    ends = list(_SENTENCE_END.finditer(text))
    return text[: ends[-1].end()] if ends else text


def _join(*parts: str) -> str:
    return " ".join(part.strip() for part in parts if part.strip())
