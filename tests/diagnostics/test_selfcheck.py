"""The engine self-check: what a user is told when an engine dies, fails, hangs or works."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from callagent.diagnostics.selfcheck import (
    REBUILD_ADVICE,
    EngineCheck,
    check_transcript,
    run_probe,
    self_check,
)
from callagent.modelfiles import ModelProfile

REPO = Path(__file__).resolve().parents[2]


def fake_python(tmp_path: Path, body: str) -> str:
    """An 'interpreter' that behaves like a probe child gone wrong (a real process, real signal)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
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


QEMU = shutil.which("qemu-x86_64")


def _under_qemu(tmp_path: Path, cpu: str, pythonpath: Path | None = None) -> str:
    """An interpreter that runs this venv's Python on an emulated older CPU (qemu-user)."""
    prefix = f"PYTHONPATH={pythonpath}${{PYTHONPATH:+:$PYTHONPATH}} " if pythonpath else ""
    return fake_python(
        tmp_path, f'{prefix}exec {QEMU} -cpu {cpu} {sys.executable} "$@" 2>/dev/null'
    )


def _build_llama() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_llama", REPO / "scripts/build_llama.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.real_models
@pytest.mark.timeout(1200)
@pytest.mark.skipif(QEMU is None and not os.environ.get("CI"), reason="needs Debian's qemu-user")
def test_a_build_for_a_newer_cpu_is_caught_and_the_next_level_down_runs(
    ci_models: ModelProfile, tmp_path: Path
) -> None:
    """What happens on a machine whose CPU lacks what the build uses (the AMX VM's failure
    mode): emulate a Haswell (AVX2, no AVX-512) and run the llm probe there."""
    assert QEMU is not None, "CI must run this test: install Debian's qemu-user"
    builds = _build_llama()
    model = ["--model", str(ci_models.llm_path)]
    # An AVX-512 build: the installed one on AVX-512 machines, else built for the test.
    record = json.loads((Path(sys.prefix) / "callagent-llama-build.json").read_text())
    avx512_path = None
    if record["level"] != "avx512":
        avx512_path = _unpack(builds.find_or_build("avx512", sys.executable), tmp_path / "a512")
    trapped = run_probe(
        "llm", model, python=_under_qemu(tmp_path / "q1", "Haswell", avx512_path), timeout=600
    )
    assert trapped.crashed, trapped.detail
    assert "SIGILL" in trapped.detail
    assert trapped.advice == REBUILD_ADVICE
    # One level down, as `scripts/build_llama.py step-down` installs it: runs on that CPU.
    avx2 = _unpack(builds.find_or_build("avx2", sys.executable), tmp_path / "a2")
    works = run_probe(
        "llm", model, python=_under_qemu(tmp_path / "q2", "Haswell", avx2), timeout=900
    )
    assert works.ok, works.detail
    assert "AVX2 = 1" in str(works.data["system_info"])
    assert "AVX512 = 1" not in str(works.data["system_info"])


def _unpack(wheel: Path, into: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(into)
    return into
