"""Agent definition files: what loads, and clear errors for what does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from callagent.dialog.agent_profile import AgentProfileError, load_agent_profile
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
    assert profile.greeting_text() == "Hello, this is Sam from Acme. How can I help you today?"
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
