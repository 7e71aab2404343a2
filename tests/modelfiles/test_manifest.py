"""The model manifest: validation errors name the field, the local overlay, the real manifest."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from callagent.modelfiles import ManifestError, ModelFileError, load_manifest, resolve_profile
from callagent.modelfiles.manifest import PACKAGED_MANIFEST

from helpers.model_wheels import (
    GGUF,
    file_entry,
    install_directly,
    manifest_dict,
    write_manifest,
)

REPO = Path(__file__).resolve().parents[2]


def _set(path: list[Any], value: Any) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return mutate


_DELETE = object()
_LLM_FILE = ["models", "llm-small", "files", 0]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_set(["format"], 2), "format: must be 1"),
        (_set(["profiles"], _DELETE), "missing required field 'profiles'"),
        (_set([*_LLM_FILE, "sha256"], "abc"), "models['llm-small'].files[0].sha256: must be 64"),
        (_set([*_LLM_FILE, "size"], -1), "models['llm-small'].files[0].size"),
        (_set([*_LLM_FILE, "size"], "12"), "models['llm-small'].files[0].size"),
        (_set([*_LLM_FILE, "path"], "/etc/passwd"), "files[0].path: must be a relative path"),
        (_set([*_LLM_FILE, "path"], "../x.gguf"), "files[0].path: must be a relative path"),
        (_set([*_LLM_FILE, "path"], "llm.bin"), "an llm model is exactly one .gguf file"),
        (_set([*_LLM_FILE, "sha"], "0" * 64), "unknown field 'sha'"),
        (_set([*_LLM_FILE, "source", "version"], ">=1.0"), "source.version: must be one exact"),
        (_set([*_LLM_FILE, "source", "member"], _DELETE), "missing required field 'member'"),
        (_set([*_LLM_FILE, "source"], {"url": "x"}), "files[0].source: must be"),
        (
            _set(["models", "stt-small", "files", 0, "source", "parts"], []),
            "source.parts: must be a non-empty list",
        ),
        (_set(["models", "voice", "kind"], "asr"), "models['voice'].kind: must be one of"),
        (_set(["profiles", "tiny", "llm"], "nope"), "profiles['tiny'].llm: names unknown model"),
        (_set(["profiles", "tiny", "llm"], "voice"), "'voice' is a tts model, not llm"),
        (_set(["profiles", "tiny", "tts"], _DELETE), "profiles['tiny']: missing required field"),
        (
            _set(["profiles", "all"], {"stt": "stt-small", "llm": "llm-small", "tts": "voice"}),
            "'all' is reserved",
        ),
        (
            _set(["models", "stt-small", "files", 1, "path"], "elsewhere/config.json"),
            "one folder of files",
        ),
    ],
)
def test_manifest_errors_name_the_field(models_dir: Path, mutate: Any, expected: str) -> None:
    data = copy.deepcopy(manifest_dict())
    mutate(data)
    write_manifest(models_dir, data)
    with pytest.raises(ManifestError) as caught:
        load_manifest(models_dir)
    assert expected in str(caught.value)
    assert "manifest.json" in str(caught.value)


def test_manifest_duplicate_destination_is_rejected(models_dir: Path) -> None:
    data = manifest_dict()
    data["models"]["llm-two"] = copy.deepcopy(data["models"]["llm-small"])
    write_manifest(models_dir, data)
    with pytest.raises(ManifestError, match="also listed by"):
        load_manifest(models_dir)


def test_manifest_not_json_and_missing(models_dir: Path, tmp_path: Path) -> None:
    (models_dir / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match=r"not valid JSON \(line 1"):
        load_manifest(models_dir)
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path, manifest_path=tmp_path / "nowhere.json")


def test_a_models_folder_without_a_manifest_uses_the_packaged_one(tmp_path: Path) -> None:
    # An install from a wheel (air-gapped) has no repo checkout: it still knows its models.
    manifest = load_manifest(tmp_path / "models")
    assert manifest.path == PACKAGED_MANIFEST
    assert {"ci", "default"} <= set(manifest.profiles)


def test_unknown_profile_lists_the_known_ones(models_dir: Path) -> None:
    install_directly(models_dir)
    with pytest.raises(ModelFileError, match=r"unknown model profile 'big'.*other, tiny"):
        resolve_profile("big", models_dir)


def test_local_overlay_adds_models_and_profiles(models_dir: Path) -> None:
    overlay = {
        "format": 1,
        "models": {
            "my-llm": {
                "kind": "llm",
                "files": [file_entry("mine.gguf", GGUF, {"path": "/srv/mine.gguf"})],
            }
        },
        "profiles": {"mine": {"stt": "stt-small", "llm": "my-llm", "tts": "voice"}},
    }
    (models_dir / "manifest.local.json").write_text(json.dumps(overlay))
    manifest = load_manifest(models_dir)
    assert set(manifest.profiles) == {"tiny", "other", "mine"}
    assert manifest.models["my-llm"].files[0].local == Path("/srv/mine.gguf")


def test_real_manifest_is_valid_and_keeps_the_agreed_paths() -> None:
    manifest = load_manifest(REPO / "models")
    assert {"ci", "default", "server"} <= set(manifest.profiles)
    profile = resolve_profile("ci", REPO / "models", verify=False)
    models = REPO / "models"
    assert profile.stt_dir == models / "whisper-tiny.en"
    assert profile.llm_path == models / "smollm2-135m-instruct-q4_1.gguf"
    assert profile.tts_model == models / "piper/en_US-joe-medium.onnx"
    assert profile.tts_config == models / "piper/en_US-joe-medium.onnx.json"
    for spec in (spec for model in manifest.models.values() for spec in model.files):
        assert spec.parts, f"{spec.path}: the committed manifest only names pinned packages"
