"""Checking the model files on disk against the manifest, and resolving a profile to paths.

:func:`resolve_profile` turns a profile into the paths the engines load and checks the files:
size always; sha256 too with ``verify="full"``, cached in a stamp file so start-up stays fast.
A missing or corrupt file raises :class:`ModelFileError` naming the file and the command that
fixes it (``models/README.md``, "Verification at start-up").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeAlias

from callagent.modelfiles.manifest import (
    ALL_PROFILES,
    MANIFEST_NAME,
    FileSpec,
    Manifest,
    ModelFileError,
    ModelProfile,
    ModelSpec,
    load_manifest,
)

# Cache of verified sha256 sums keyed by (path, size, mtime): hashing the 1 GB model costs seconds,
# re-checking a stamp costs a stat(), and start-up must stay fast (models/README.md).
STAMP_NAME = ".verified.json"
DOWNLOAD_SCRIPT = "scripts/download_models.sh"
VerifyMode: TypeAlias = bool | Literal["full"]

_CHUNK = 1 << 20
# The folder the download script fills by default (the repo's models/, beside the package).
_REPO_MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


class _Stamps:
    """The sha256 cache in ``models/.verified.json``, keyed by (path, size, mtime_ns)."""

    def __init__(self, models_dir: Path) -> None:
        self.path = models_dir / STAMP_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        self.dirty = False
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("files"), dict):
                self.entries = data["files"]

    def known_sha(self, rel: str, stat: os.stat_result) -> str | None:
        entry = self.entries.get(rel)
        if (
            isinstance(entry, dict)
            and entry.get("size") == stat.st_size
            and entry.get("mtime_ns") == stat.st_mtime_ns
            and isinstance(entry.get("sha256"), str)
        ):
            return str(entry["sha256"])
        return None

    def record(self, rel: str, stat: os.stat_result, sha: str) -> None:
        self.entries[rel] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        # A read-only models folder must still work: the cache is an optimisation only.
        with contextlib.suppress(OSError):
            _write_atomic_text(self.path, json.dumps({"files": self.entries}, indent=1) + "\n")
        self.dirty = False


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _file_problem(spec: FileSpec, models_dir: Path, stamps: _Stamps, *, full: bool) -> str | None:
    """Why the file on disk is not the one the manifest names, or None when it is."""
    target = models_dir / spec.path
    shown = _display(target)
    try:
        stat = target.stat()
    except FileNotFoundError:
        return f"{shown} is missing"
    except OSError as exc:
        return f"{shown} cannot be read ({exc.strerror})"
    if not target.is_file():
        return f"{shown} is not a file"
    if stat.st_size != spec.size:
        return f"{shown} is corrupt (size {stat.st_size}, expected {spec.size})"
    if not full:
        return None
    sha = stamps.known_sha(spec.path, stat)
    if sha is None:
        sha = _sha256_file(target)
        stamps.record(spec.path, stat, sha)
    if sha != spec.sha256:
        return f"{shown} is corrupt (sha256 {sha[:12]}…, expected {spec.sha256[:12]}…)"
    return None


def verify_profiles(
    profile_names: Sequence[str],
    models_dir: Path,
    *,
    verify: VerifyMode = "full",
    manifest_path: Path | None = None,
) -> list[ModelProfile]:
    """Resolve and check several profiles (``all`` checks every model of the manifest)."""
    manifest = load_manifest(models_dir, manifest_path=manifest_path)
    names = list(profile_names)
    if ALL_PROFILES in names:
        _verify_models(manifest.models.values(), models_dir, names, verify, manifest_path)
        names = [name for name in names if name != ALL_PROFILES] or sorted(manifest.profiles)
    return [
        _resolve(manifest, name, models_dir, verify=verify, manifest_path=manifest_path)
        for name in names
    ]


def resolve_profile(
    name: str,
    models_dir: Path,
    *,
    verify: VerifyMode = True,
    manifest_path: Path | None = None,
) -> ModelProfile:
    """Resolve profile ``name`` to the paths of its files under ``models_dir``.

    ``verify=False`` only resolves; ``True`` checks every file exists with the right size (a
    stat() each); ``"full"`` also checks sha256, hashing only files whose (size, mtime) the stamp
    file has not seen. Raises :class:`ModelFileError` naming each bad file and the command that
    fixes it, and for an unknown profile, listing the known ones.
    """
    manifest = load_manifest(models_dir, manifest_path=manifest_path)
    return _resolve(manifest, name, models_dir, verify=verify, manifest_path=manifest_path)


def _resolve(
    manifest: Manifest,
    name: str,
    models_dir: Path,
    *,
    verify: VerifyMode,
    manifest_path: Path | None,
) -> ModelProfile:
    kinds = manifest.profile(name)
    stt = manifest.models[kinds["stt"]]
    llm = manifest.models[kinds["llm"]]
    tts = manifest.models[kinds["tts"]]
    if verify:
        _verify_models((stt, llm, tts), models_dir, [name], verify, manifest_path)
    onnx = next(spec for spec in tts.files if spec.path.endswith(".onnx"))
    config = next(spec for spec in tts.files if spec.path.endswith(".json"))
    return ModelProfile(
        stt_dir=models_dir / PurePosixPath(stt.files[0].path).parent,
        llm_path=models_dir / llm.files[0].path,
        tts_model=models_dir / onnx.path,
        tts_config=models_dir / config.path,
        name=name,
        stt_model=stt.name,
        llm_model=llm.name,
        tts_voice=tts.name,
    )


def _verify_models(
    models: Iterable[ModelSpec],
    models_dir: Path,
    profile_names: Sequence[str],
    verify: VerifyMode,
    manifest_path: Path | None,
) -> None:
    stamps = _Stamps(models_dir)
    problems = [
        problem
        for model in models
        for spec in model.files
        if (problem := _file_problem(spec, models_dir, stamps, full=verify == "full"))
    ]
    stamps.save()
    if not problems:
        return
    fix = f"run `{_fix_command(profile_names, models_dir, manifest_path)}`"
    if len(problems) == 1:
        raise ModelFileError(f"{problems[0]}: {fix}")
    listing = "\n".join(f"  {problem}" for problem in problems)
    raise ModelFileError(f"{len(problems)} model files are missing or corrupt:\n{listing}\n{fix}")


def _fix_command(profile_names: Sequence[str], models_dir: Path, manifest_path: Path | None) -> str:
    words = [DOWNLOAD_SCRIPT]
    for name in profile_names:
        words += ["--profile", name]
    if models_dir.resolve() not in {Path("models").resolve(), _REPO_MODELS_DIR}:
        words += ["--models-dir", str(models_dir)]
    if (
        manifest_path is not None
        and manifest_path.resolve() != (models_dir / MANIFEST_NAME).resolve()
    ):
        words += ["--manifest", str(manifest_path)]
    return " ".join(words)


def _display(path: Path) -> str:
    """``models/x`` when under the current directory (as users type it), else absolute."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 10**9 else f"{size / 1e9:.2f} GB"


def _write_atomic_text(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", suffix=".partial", delete=False
    ) as handle:
        handle.write(text)
    try:
        Path(handle.name).chmod(0o644)
        os.replace(handle.name, path)
    finally:
        Path(handle.name).unlink(missing_ok=True)
