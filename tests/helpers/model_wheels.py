"""Fake model files and the small wheels that carry them, for the model-files tests.

The STT model.bin is split over two wheels, as Whisper base and the Qwen GGUFs are in the real
manifest; downloads run against a ``--wheelhouse`` folder of these wheels, so no test touches
the network.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path
from typing import Any

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
