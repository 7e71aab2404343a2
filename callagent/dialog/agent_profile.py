"""The agent definition a client trains: who the agent is and what it knows.

It is read from a YAML or JSON file (``agent.file``), or built from a client's stored agent and
training by ``profile_builder``. Validation is strict so a typo in a field name is an error, not
a silent default.
"""

from __future__ import annotations

import json
from pathlib import Path

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
    goodbye: str = "Thank you for your time. Goodbye!"

    def __post_init__(self) -> None:
        for field_name in ("name", "company", "greeting", "goodbye"):
            if not getattr(self, field_name).strip():
                raise AgentProfileError(f"agent field '{field_name}' must not be empty")

    def greeting_text(self) -> str:
        """The greeting with the agent's name and company filled in."""
        return self.greeting.format(name=self.name, company=self.company)


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
