"""The engine self-check: what a user is told when an engine dies, fails, hangs or works."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from callagent.diagnostics.selfcheck import (
    REBUILD_ADVICE,
    EngineCheck,
    check_transcript,
    run_probe,
    self_check,
)
from callagent.modelfiles import ModelProfile


def fake_python(tmp_path: Path, body: str) -> str:
    """An 'interpreter' that behaves like a probe child gone wrong (a real process, real signal)."""
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_llama_killed_by_sigill_names_the_cause_and_the_rebuild(tmp_path: Path) -> None:
    check = run_probe("llm", [], python=fake_python(tmp_path, "kill -ILL $$"), timeout=30)
    assert not check.ok
    assert check.crashed
    assert "llama.cpp (LLM) died with SIGILL" in check.detail
    assert "illegal instruction" in check.detail
    assert check.advice == REBUILD_ADVICE


def test_an_out_of_memory_kill_does_not_suggest_a_rebuild(tmp_path: Path) -> None:
    check = run_probe("llm", [], python=fake_python(tmp_path, "kill -KILL $$"), timeout=30)
    assert check.crashed
    assert "SIGKILL" in check.detail
    assert check.advice != REBUILD_ADVICE


def test_a_hanging_engine_is_reported_not_waited_for(tmp_path: Path) -> None:
    check = run_probe("tts", [], python=fake_python(tmp_path, "sleep 30"), timeout=1)
    assert not check.ok
    assert "Piper (TTS) did not finish within 1 s" in check.detail


def test_a_missing_model_file_is_a_failure_with_its_error(tmp_path: Path) -> None:
    check = run_probe("llm", ["--model", str(tmp_path / "none.gguf")], timeout=120)
    assert not check.ok
    assert not check.crashed
    assert check.detail.startswith("llama.cpp (LLM) failed:")
    assert "none.gguf" in check.detail


def test_whisper_that_hears_something_else_fails() -> None:
    heard = EngineCheck("stt", True, "", data={"text": "Banana boat."})
    assert not check_transcript(heard).ok
    right = EngineCheck("stt", True, "", data={"text": "Thank you for calling, how can I help?"})
    assert check_transcript(right).ok


@pytest.mark.real_models
def test_every_engine_of_the_ci_profile_passes(ci_models: ModelProfile) -> None:
    checks = self_check(ci_models)
    assert [check.engine for check in checks] == ["llm", "tts", "stt"]
    for check in checks:
        assert check.ok, check.detail
    assert "AVX" in str(checks[0].data["system_info"]) or "SSE" in str(
        checks[0].data["system_info"]
    )
    assert "calling" in str(checks[2].data["text"]).lower()
