"""The system prompt: byte-stable, so llama.cpp's prefix cache hits (DESIGN.md, "Known traps"),
and unchanged for agent files by the profile fields they leave empty."""

from __future__ import annotations

from pathlib import Path

import msgspec

from callagent.dialog.actions import ACTION_INSTRUCTIONS
from callagent.dialog.agent_profile import DEFAULT_AGENT, load_agent_profile
from callagent.dialog.prompt import build_profile_prompt, build_system_prompt
from callagent.dialog.purposes import PURPOSES, CallPurpose

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


def test_each_purpose_has_its_own_byte_stable_prompt_that_starts_with_the_general_one() -> None:
    """One stable prompt per (agent, purpose), each the general prompt (the one warmed when the
    agent's profile is built) plus the purpose's few sentences: llama.cpp's prefix cache keeps
    all of the general prompt across calls of any purpose (docs/dialog.md "Call purposes")."""
    general = build_system_prompt(DEFAULT_AGENT)
    prompts = {purpose: build_system_prompt(DEFAULT_AGENT, purpose) for purpose in CallPurpose}
    assert len(set(prompts.values())) == len(CallPurpose)
    for purpose, prompt in prompts.items():
        assert prompt == build_system_prompt(DEFAULT_AGENT, purpose)
        assert prompt.startswith(general + "\n\n")
        assert PURPOSES[purpose].objective in prompt[len(general) :]
    assert general == f"{build_profile_prompt(DEFAULT_AGENT)}\n\n{ACTION_INSTRUCTIONS}"


def test_a_purpose_prompt_names_the_actions_it_does_not_allow() -> None:
    support = build_system_prompt(DEFAULT_AGENT, CallPurpose.CUSTOMER_SUPPORT)
    assert support.endswith("Not on this call: book_appointment, set_interest.")
    sales = build_system_prompt(DEFAULT_AGENT, CallPurpose.SALES_OUTREACH)
    assert "Not on this call" not in sales


def test_the_prompt_tells_the_model_it_is_an_ai_and_to_use_what_it_was_taught() -> None:
    prompt = build_system_prompt(DEFAULT_AGENT)
    assert "You are an AI assistant, not a human" in prompt
    assert "never claim to be a person" in prompt
    assert "When the caller raises one of these objections, give this answer:" in prompt
    assert "never make up other prices or figures" in prompt
