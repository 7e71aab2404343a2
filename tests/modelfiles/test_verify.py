"""Verification of the model files on disk and resolving a profile to the engines' paths."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from callagent.modelfiles import ModelFileError, ModelProfile, resolve_profile, verify

from helpers.model_wheels import (
    GGUF,
    ONNX,
    install_directly,
    manifest_dict,
    write_manifest,
)

REPO = Path(__file__).resolve().parents[2]


def test_resolve_profile_gives_engine_paths(models_dir: Path) -> None:
    install_directly(models_dir)
    profile = resolve_profile("tiny", models_dir, verify="full")
    assert profile == ModelProfile(
        stt_dir=models_dir / "stt-small",
        llm_path=models_dir / "llm-small.gguf",
        tts_model=models_dir / "piper/v.onnx",
        tts_config=models_dir / "piper/v.onnx.json",
        name="tiny",
        stt_model="stt-small",
        llm_model="llm-small",
        tts_voice="voice",
    )


def test_missing_file_names_the_file_and_the_fix(models_dir: Path) -> None:
    install_directly(models_dir)
    (models_dir / "llm-small.gguf").unlink()
    with pytest.raises(ModelFileError) as caught:
        resolve_profile("tiny", models_dir)
    assert str(caught.value) == (
        "models/llm-small.gguf is missing: run `scripts/download_models.sh --profile tiny`"
    )
    # Without verification, resolving never touches the disk.
    assert resolve_profile("tiny", models_dir, verify=False).llm_path.name == "llm-small.gguf"


def test_several_problems_are_listed_together(models_dir: Path) -> None:
    with pytest.raises(ModelFileError) as caught:
        resolve_profile("tiny", models_dir)
    message = str(caught.value)
    assert message.startswith("5 model files are missing or corrupt:")
    assert "models/stt-small/model.bin is missing" in message
    assert message.endswith("run `scripts/download_models.sh --profile tiny`")


def test_fix_names_a_non_default_models_dir(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    write_manifest(other, manifest_dict())
    with pytest.raises(ModelFileError, match=f"--models-dir {re.escape(str(other))}`"):
        resolve_profile("tiny", other)


def test_wrong_size_is_corrupt(models_dir: Path) -> None:
    install_directly(models_dir)
    (models_dir / "piper/v.onnx").write_bytes(ONNX[:-1])
    with pytest.raises(ModelFileError, match=r"models/piper/v.onnx is corrupt \(size 199"):
        resolve_profile("tiny", models_dir)


def test_wrong_sha_is_found_by_full_verification(models_dir: Path) -> None:
    install_directly(models_dir)
    (models_dir / "llm-small.gguf").write_bytes(b"X" + GGUF[1:])  # same size, other bytes
    resolve_profile("tiny", models_dir, verify=True)  # a size check cannot see it
    with pytest.raises(ModelFileError, match=r"llm-small.gguf is corrupt \(sha256 .*expected"):
        resolve_profile("tiny", models_dir, verify="full")


def test_full_verification_caches_hashes_per_size_and_mtime(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_directly(models_dir)
    hashed: list[Path] = []
    real_sha = verify._sha256_file

    def counting(path: Path) -> str:
        hashed.append(path)
        return real_sha(path)

    monkeypatch.setattr(verify, "_sha256_file", counting)
    resolve_profile("tiny", models_dir, verify="full")
    assert len(hashed) == 5
    assert (models_dir / ".verified.json").is_file()
    hashed.clear()
    resolve_profile("tiny", models_dir, verify="full")
    assert hashed == []
    # A changed file (new mtime) is hashed again, and the corruption is found.
    gguf = models_dir / "llm-small.gguf"
    gguf.write_bytes(b"X" + GGUF[1:])
    stat = gguf.stat()
    os.utime(gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with pytest.raises(ModelFileError, match="corrupt"):
        resolve_profile("tiny", models_dir, verify="full")
    assert hashed == [gguf]


@pytest.mark.real_models
def test_real_ci_files_are_present_and_intact() -> None:
    """The real-file check: the ci profile's files in models/, sha256 included.

    Needs ``scripts/download_models.sh --profile ci`` first (CI runs it before the tests).
    """
    profile = resolve_profile("ci", REPO / "models", verify="full")
    names = sorted(path.name for path in profile.stt_dir.iterdir())
    assert {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"} <= set(names)
    with profile.llm_path.open("rb") as gguf:
        assert gguf.read(4) == b"GGUF"
