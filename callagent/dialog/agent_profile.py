"""The agent definition a client trains: who the agent is and what it knows.

It is read from a YAML or JSON file (``agent.file``), or built from a client's stored agent and
training by ``profile_builder``. Validation is strict so a typo in a field name is an error, not
a silent default.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Final

import msgspec
import yaml


class AgentProfileError(ValueError):
    """The agent file is missing, unreadable or does not describe a valid agent."""


class AgentProfile(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Everything the agent's system prompt is built from."""

    name: str
    company: str
    personality: str = "friendly and professional"
    language: str = "English"
    purpose: str = "answer questions and help the caller"
    script: str = ""
    product_facts: list[str] = msgspec.field(default_factory=list)
    objection_answers: dict[str, str] = msgspec.field(default_factory=dict)
    goals: list[str] = msgspec.field(default_factory=list)
    # Filled from the client's training (``profile_builder``); empty ones add nothing
    # to the system prompt, so existing agent files keep their exact prompt.
    company_info: str = ""
    techniques: list[str] = msgspec.field(default_factory=list)
    instructions: list[str] = msgspec.field(default_factory=list)
    greeting: str = "Hello, this is {name} from {company}. How can I help you today?"
    """What the agent says first when someone calls it."""
    outbound_greeting: str = ""
    """What the agent says first on a call it placed (``{name}``, ``{company}`` fill in); empty:
    :meth:`outbound_greeting_text` introduces the agent and the reason for the call and asks
    for the customer by name."""
    goodbye: str = "Thank you for your time. Goodbye!"
    voice: str = ""
    """The installed voice the agent speaks with (docs/models.md, "Voices"); empty: the model
    profile's default voice."""
    value_proposition: str = ""
    """Why customers choose the company (``business_info.value_proposition``)."""
    disclose_ai: bool = True
    """The first words of every call say the caller speaks with an AI assistant
    (docs/dialog.md "Compliance"); ``business_info.ai_disclosure: false`` turns it off."""
    ai_disclosure: str = "I'm an AI assistant."
    """The sentence of the greeting that says so (``business_info.ai_disclosure``)."""
    ai_answer: str = "Yes, I'm an AI assistant for {company}."
    """The answer to "are you a robot?" (``business_info.ai_answer``): it must say the agent is
    an AI (:func:`admits_ai`); ``{name}`` and ``{company}`` fill in."""
    recording_notice: str = "This call is recorded."
    """Said in the greeting when calls are recorded (``business_info.recording_notice``)."""

    def __post_init__(self) -> None:
        for field_name in ("name", "company", "greeting", "goodbye"):
            if not getattr(self, field_name).strip():
                raise AgentProfileError(f"agent field '{field_name}' must not be empty")
        if not admits_ai(self.ai_answer):
            raise AgentProfileError(
                "agent field 'ai_answer' must say that the agent is an AI "
                f"(one of: {', '.join(AI_WORDS)})"
            )
        if self.disclose_ai and not admits_ai(self.ai_disclosure):
            raise AgentProfileError(
                "agent field 'ai_disclosure' must say that the agent is an AI "
                f"(one of: {', '.join(AI_WORDS)})"
            )

    def greeting_text(self, *, recording: bool = False) -> str:
        """The greeting with the agent's name and company filled in, the AI disclosure and
        (``recording``) the recording notice before its closing question."""
        text = self.greeting.format(name=self.name, company=self.company, customer="")
        return self.with_notices(_tidy(text), recording=recording)

    def outbound_greeting_text(
        self, customer: str = "", reason: str = "", *, recording: bool = False
    ) -> str:
        """The first words of a call the agent placed: the person who picks up did not call
        and may not be the customer, so the agent says who it is and why it calls, and asks
        for ``customer`` by name (or whether this is a good moment, when the name is not
        known). ``reason`` is the call's purpose in words (start-call's text, or the call
        purpose's own reason, ``dialog/purposes.py``). The AI disclosure (and the recording
        notice) come before the question."""
        name = " ".join(customer.split())[:_MAX_NAME_CHARS]
        if self.outbound_greeting:
            text = self.outbound_greeting.format(
                name=self.name, company=self.company, customer=name
            )
            return self.with_notices(_tidy(text), recording=recording)
        opening = f"Hello, this is {self.name} from {self.company}"
        spoken = _spoken_reason(reason)
        if spoken:
            first = spoken.split(" ", 1)[0].lower()
            opening += f", calling {'to' if first in _REASON_VERBS else 'about'} {spoken}"
        question = f"Am I speaking with {name}?" if name else "Do you have a moment?"
        return self.with_notices(f"{opening}. {question}", recording=recording)

    def with_notices(self, greeting: str, *, recording: bool = False) -> str:
        """``greeting`` with what a caller must hear first put before its closing question:
        that this is an AI assistant (unless the greeting already says so, or the client
        turned it off) and, when the call is recorded, the recording notice."""
        notices: list[str] = []
        if self.disclose_ai and not admits_ai(greeting):
            notices.append(self.ai_disclosure.strip())
        notice = self.recording_notice.strip()
        if recording and notice and notice.lower() not in greeting.lower():
            notices.append(notice)
        if not notices:
            return greeting
        head, question = _split_question(greeting)
        return " ".join(part for part in (head, *notices, question) if part)

    def ai_answer_text(self) -> str:
        """The answer to "are you a robot?", filled in."""
        return self.ai_answer.format(name=self.name, company=self.company)


AI_WORDS: Final = (
    "AI",
    "artificial intelligence",
    "virtual assistant",
    "automated",
    "bot",
    "robot",
    "computer",
    "machine",
)
"""What a disclosure or an answer to "are you a robot?" must name (any one of them)."""
_AI_WORDS_RX = re.compile(
    r"\b(?:A\.?I\.?|artificial intelligence|virtual (?:assistant|agent)|automated|(?:ro)?bot|"
    r"computer|machine)\b",
    re.IGNORECASE,
)
_DENIAL_RX = re.compile(
    r"^\W*no\b|\b(?:not|n't|never)\s+(?:an?\s+)?(?:A\.?I\.?|(?:ro)?bot|machine|computer|"
    r"automated)\b|\bI(?:'m| am)\s+(?:a\s+)?(?:real|human|person)\b",
    re.IGNORECASE,
)


def admits_ai(text: str) -> bool:
    """Whether ``text`` says the speaker is an AI and does not deny it ("No, I'm a real
    person" and "I'm not a robot" do not count)."""
    return bool(_AI_WORDS_RX.search(text)) and not _DENIAL_RX.search(text)


def _split_question(text: str) -> tuple[str, str]:
    """``text`` as what comes before its closing question, and that question ("" when it does
    not end with one)."""
    stripped = text.strip()
    if not stripped.endswith("?"):
        return stripped, ""
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s)", stripped)]
    if not ends:
        return "", stripped
    return stripped[: ends[-1]].strip(), stripped[ends[-1] :].strip()


def _tidy(text: str) -> str:
    """A filled-in template without the gaps an empty placeholder leaves ("Hi , this")."""
    text = re.sub(r"[ \t]+([,.!?;:])", r"\1", " ".join(text.split()))
    return re.sub(r"([,;:])(?=[,.!?;:])", "", text)


_MAX_NAME_CHARS = 60
_MAX_REASON_CHARS = 100
# A purpose that starts with one of these reads "calling to <purpose>" ("follow up on the
# quote"), any other "calling about <purpose>" ("your solar enquiry").
_REASON_VERBS = frozenset(
    [
        "ask",
        "book",
        "check",
        "confirm",
        "discuss",
        "follow",
        "introduce",
        "offer",
        "remind",
        "reschedule",
        "schedule",
        "see",
        "talk",
        "tell",
        "thank",
        "update",
    ]
)


def _spoken_reason(reason: str) -> str:
    """A call's purpose as words to say: its first sentence, without the final stop and with a
    lower-case start (unless it starts with an acronym); "" when it is too long to say."""
    text = " ".join(reason.split())
    for stop in (". ", "! ", "? "):
        text = text.split(stop, 1)[0]
    text = text.rstrip(" .!?;:,")
    if not text or len(text) > _MAX_REASON_CHARS:
        return ""
    if not text[1:2].isupper():
        text = text[0].lower() + text[1:]
    return text


def load_agent_profile(path: Path) -> AgentProfile:
    """Read an agent definition from a ``.yaml``/``.yml`` or ``.json`` file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise AgentProfileError(f"cannot read agent file {path}: {error.strerror}") from error
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise AgentProfileError(f"agent file {path} is not valid: {error}") from error
    if not isinstance(raw, dict):
        raise AgentProfileError(f"agent file {path} must hold a mapping of fields")
    try:
        return msgspec.convert(raw, AgentProfile)
    except msgspec.ValidationError as error:
        raise AgentProfileError(f"agent file {path}: {error}") from error


DEFAULT_AGENT = AgentProfile(
    name="Alex",
    company="Brightline Solar",
    purpose="help callers learn about home solar panels and book a free site survey",
    script=(
        "Greet the caller, ask what made them interested in solar, answer their questions, "
        "and offer a free, no-obligation site survey."
    ),
    product_facts=[
        "Brightline installs rooftop solar panels for homes.",
        "A typical home system costs between 9,000 and 15,000 dollars before incentives.",
        "Panels come with a 25 year warranty.",
        "The free site survey takes about 45 minutes.",
    ],
    objection_answers={
        "too expensive": "Most customers finance the system and pay less per month than "
        "their old electricity bill.",
        "not interested": "No problem at all. May I send you a short brochure by email?",
    },
    goals=["Book a free site survey.", "Learn the caller's name and best callback time."],
)
