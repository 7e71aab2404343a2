"""The air-gapped install, end to end: build the wheelhouse, install from it into a fresh venv
with no package index, fetch the models from it, run the self-check and a simulated call.

Slow (minutes): it builds every wheel callagent needs. Nothing of the repo is used after the
wheelhouse is built: the fresh venv runs from a folder outside the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.voices import flite_phone_wav

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.real_models, pytest.mark.timeout(1800)]


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=1500, check=False
    )
    assert done.returncode == 0, f"{command[:3]} exit {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def test_air_gapped_install_from_the_wheelhouse_answers_a_call(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    run(["bash", str(REPO / "scripts/build_wheelhouse.sh"), str(wheelhouse), "ci"], REPO, env)
    assert list(wheelhouse.glob("llama_cpp_python-*.whl"))
    assert list((wheelhouse / "source").glob("llama_cpp_python-*.tar.gz"))

    # From here on, as on the air-gapped machine: no index, not even pip's cache.
    site = tmp_path / "site"
    site.mkdir()
    offline = {**env, "PIP_NO_INDEX": "1", "PIP_NO_CACHE_DIR": "1", "HF_HUB_OFFLINE": "1"}
    venv = site / ".venv"
    run([sys.executable, "-m", "venv", str(venv)], site, offline)
    pip = [str(venv / "bin/python"), "-m", "pip", "--disable-pip-version-check"]
    run(
        [*pip, "install", "--quiet", "--no-index", "--find-links", str(wheelhouse), "callagent"],
        site,
        offline,
    )
    callagent = str(venv / "bin/callagent")
    models = ["--models", "ci", "--models-dir", str(site / "models")]
    run(
        [
            callagent,
            "models",
            "download",
            "--wheelhouse",
            str(wheelhouse),
            "--profile",
            "ci",
            "--models-dir",
            str(site / "models"),
        ],
        site,
        offline,
    )

    doctor = run([callagent, "doctor", *models], site, offline)
    assert "[fail]" not in doctor.stdout
    assert "self-check llm" in doctor.stdout

    caller = flite_phone_wav("Hello, what do you sell?", tmp_path / "caller.wav")
    call = run([callagent, "call", "--simulate", str(caller), "--json", *models], site, offline)
    report = json.loads(call.stdout)
    assert report["turns"], report
    assert report["turns"][0]["agent_text"].strip()
