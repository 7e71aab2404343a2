"""The system prompt: byte-stable, so llama.cpp's prefix cache hits (DESIGN.md, "Known traps"),
and unchanged for agent files by the profile fields they leave empty."""

from __future__ import annotations

from pathlib import Path

import msgspec

from callagent.dialog.agent_profile import DEFAULT_AGENT, load_agent_profile
from callagent.dialog.prompt import build_system_prompt

REPO = Path(__file__).resolve().parents[2]


def test_the_system_prompt_is_byte_stable_so_the_prefix_cache_hits() -> None:
    profile = load_agent_profile(REPO / "agents" / "example.yaml")
    again = load_agent_profile(REPO / "agents" / "example.yaml")
    assert build_system_prompt(profile) == build_system_prompt(again)


def test_agent_files_keep_their_exact_prompt() -> None:
    # The new optional profile fields add nothing when empty (prefix caches of existing
    # deployments stay valid).
    empty = msgspec.structs.replace(DEFAULT_AGENT, company_info="", techniques=[], instructions=[])
    assert build_system_prompt(empty) == build_system_prompt(DEFAULT_AGENT)
    assert "Techniques" not in build_system_prompt(DEFAULT_AGENT)
