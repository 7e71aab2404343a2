"""Agent definition files: what loads, and clear errors for what does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from callagent.dialog.agent_profile import AgentProfile, AgentProfileError, load_agent_profile
from callagent.dialog.prompt import build_system_prompt

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_example_agent_loads(tmp_path: Path) -> None:
    profile = load_agent_profile(REPO / "agents" / "example.yaml")
    assert profile.name
    assert profile.greeting_text().count("{") == 0


def test_json_works_like_yaml(tmp_path: Path) -> None:
    path = tmp_path / "agent.json"
    path.write_text('{"name": "Sam", "company": "Acme", "product_facts": ["We sell anvils."]}')
    profile = load_agent_profile(path)
    assert (
        profile.greeting_text()
        == "Hello, this is Sam from Acme. I'm an AI assistant. How can I help you today?"
    )
    assert "We sell anvils." in build_system_prompt(profile)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name: Sam\ncompany: Acme\nproduct_fatcs: []\n", "product_fatcs"),
        ("name: Sam\n", "company"),
        ("name: ''\ncompany: Acme\n", "name"),
        ("name: [unclosed\n", "not valid"),
        ("- just\n- a list\n", "mapping"),
        ("name: Sam\ncompany: Acme\nobjection_answers: [1, 2]\n", "objection_answers"),
    ],
)
def test_bad_agent_files_name_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(content)
    with pytest.raises(AgentProfileError, match=message):
        load_agent_profile(path)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AgentProfileError, match="cannot read agent file"):
        load_agent_profile(tmp_path / "nope.yaml")


SAM = AgentProfile(name="Sam", company="Acme")


@pytest.mark.parametrize(
    ("customer", "reason", "expected"),
    [
        (
            "Jane Doe",
            "follow up on the roof quote",
            "Hello, this is Sam from Acme, calling to follow up on the roof quote."
            " I'm an AI assistant. Am I speaking with Jane Doe?",
        ),
        (
            "",
            "Your solar enquiry. She asked for prices!",
            "Hello, this is Sam from Acme, calling about your solar enquiry."
            " I'm an AI assistant. Do you have a moment?",
        ),
        (
            "Jane  Doe ",
            "",
            "Hello, this is Sam from Acme. I'm an AI assistant. Am I speaking with Jane Doe?",
        ),
        ("", "", "Hello, this is Sam from Acme. I'm an AI assistant. Do you have a moment?"),
        # An acronym keeps its capitals; a purpose too long to say is left to the dialog.
        (
            "",
            "HVAC service visit",
            "Hello, this is Sam from Acme, calling about HVAC service visit."
            " I'm an AI assistant. Do you have a moment?",
        ),
        ("", "x" * 101, "Hello, this is Sam from Acme. I'm an AI assistant. Do you have a moment?"),
    ],
)
def test_a_call_the_agent_placed_opens_with_who_calls_why_and_for_whom(
    customer: str, reason: str, expected: str
) -> None:
    assert SAM.outbound_greeting_text(customer, reason) == expected
    assert (
        SAM.greeting_text()
        == "Hello, this is Sam from Acme. I'm an AI assistant. How can I help you today?"
    )


def test_an_agents_own_outbound_greeting_wins() -> None:
    profile = AgentProfile(
        name="Sam", company="Acme", outbound_greeting="Hi, {name} of {company} here."
    )
    assert (
        profile.outbound_greeting_text("Jane", "a quote")
        == "Hi, Sam of Acme here. I'm an AI assistant."
    )
