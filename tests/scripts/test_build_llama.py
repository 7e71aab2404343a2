"""scripts/build_llama.py: a built wheel is keyed on its flags, so a flag change never reinstalls
an old build (pip's own cache keys on the source alone, docs/install.md)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "build_llama.py"


@pytest.fixture
def build_llama(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    spec = importlib.util.spec_from_file_location("build_llama", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_level_has_its_own_key(build_llama: ModuleType) -> None:
    version = build_llama.pinned_version()
    keys = {
        level: build_llama.build_key(level, version) for level in ("avx512", "avx2", "baseline")
    }
    assert len(set(keys.values())) == 3
    assert build_llama.build_key("avx2", version) == keys["avx2"]
    assert build_llama.build_key("avx2", "0.0.1") != keys["avx2"]


def test_a_cached_wheel_of_the_same_flags_is_reused_and_no_other(
    build_llama: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build_llama, "_compiler", lambda: "cc 1.0")
    version = build_llama.pinned_version()
    folder = build_llama.cache_root() / f"avx2-{build_llama.build_key('avx2', version)}"
    folder.mkdir(parents=True)
    cached = folder / f"llama_cpp_python-{version}-py3-none-linux_x86_64.whl"
    cached.write_bytes(b"wheel")
    builds: list[list[str]] = []
    monkeypatch.setattr(build_llama.subprocess, "run", lambda cmd, **_: builds.append(cmd))
    assert build_llama.find_or_build("avx2", sys.executable) == cached
    assert builds == []
    with pytest.raises(StopIteration):  # the stub builds nothing: the point is that it tried
        build_llama.find_or_build("baseline", sys.executable)
    assert len(builds) == 1
    assert "--no-cache-dir" in builds[0]


def test_pin_comes_from_pyproject(build_llama: ModuleType) -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"llama-cpp-python=={build_llama.pinned_version()}"' in pyproject


def test_show_lists_the_levels_and_what_is_installed(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "show"], capture_output=True, text=True, check=True
    )
    assert "cpu level:" in done.stdout
    for level in ("avx512", "avx2", "baseline"):
        assert level in done.stdout


def test_the_installed_venv_records_its_level() -> None:
    # `make install` ran scripts/build_llama.py: the venv says which build it holds.
    record = json.loads((Path(sys.prefix) / "callagent-llama-build.json").read_text())
    assert record["level"] in ("avx512", "avx2", "baseline")
    assert "-DGGML_NATIVE=OFF" in record["cmake_args"]
