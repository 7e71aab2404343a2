"""Settings → the components' parameter objects, the agent and the environment of the models."""

from __future__ import annotations

import os

import pytest

from callagent.app.components import agent_profile, pipeline_settings, use_local_models_only
from callagent.dialog.agent_profile import DEFAULT_AGENT
from callagent.settings import load_settings


def test_models_are_never_fetched_from_a_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    use_local_models_only()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    # A value the operator chose is kept.
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    use_local_models_only()
    assert os.environ["HF_HUB_OFFLINE"] == "0"


def test_turn_taking_settings_reach_the_pipeline() -> None:
    settings = load_settings(
        environ={"CALLAGENT_END_SILENCE_S": "0.8", "CALLAGENT_VAD_AGGRESSIVENESS": "3"}
    )
    parameters = pipeline_settings(settings)
    assert parameters.turns.end_silence_s == 0.8
    assert parameters.vad.aggressiveness == 3


def test_the_end_of_turn_pauses_reach_the_pipeline() -> None:
    turns = pipeline_settings(load_settings(environ={})).turns
    assert (turns.use_words, turns.complete_silence_s, turns.incomplete_silence_s) == (
        True,
        0.25,
        1.5,
    )
    settings = load_settings(
        environ={
            "CALLAGENT_END_OF_TURN_WORDS": "false",
            "CALLAGENT_COMPLETE_SILENCE_S": "0.2",
            "CALLAGENT_INCOMPLETE_SILENCE_S": "1.2",
        }
    )
    turns = pipeline_settings(settings).turns
    assert (turns.use_words, turns.complete_silence_s, turns.incomplete_silence_s) == (
        False,
        0.2,
        1.2,
    )


def test_silence_and_call_length_limits_reach_the_pipeline() -> None:
    limits = pipeline_settings(load_settings(environ={})).limits
    assert (limits.silence_prompt_s, limits.silence_end_s, limits.max_call_s) == (10, 10, 1800)
    assert limits.silence_prompt == "Are you still there?"
    settings = load_settings(
        environ={
            "CALLAGENT_SILENCE_PROMPT_S": "0",
            "CALLAGENT_MAX_CALL_S": "0",
            "CALLAGENT_SILENCE_GOODBYE": "Bye then.",
        }
    )
    limits = pipeline_settings(settings).limits
    assert (limits.silence_prompt_s, limits.max_call_s) == (None, None)  # 0: off
    assert limits.silence_goodbye == "Bye then."


def test_without_an_agent_file_the_demo_agent_answers() -> None:
    assert agent_profile(load_settings(environ={})) is DEFAULT_AGENT
