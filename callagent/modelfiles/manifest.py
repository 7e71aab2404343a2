"""The model manifest: which model files exist, where they come from, which profiles use them.

Every model callagent runs comes from a pinned PyPI package that ships the weights inside its
wheel, so an install made today and one made in a year get the same bytes, through the same
package index an air-gapped site already mirrors; nothing is fetched from a model hub
(docs/models.md). The manifest (``callagent/modelfiles/manifest.json``, shipped inside the
package so that an install from a wheel knows its models too) names, for each model file, where
it goes under ``models/``, its size and sha256, and where it comes from:

* ``{"package": NAME, "version": V, "member": PATH}``: one member of the wheel ``NAME==V``;
* ``{"parts": [{"package": ..., "version": ..., "member": ...}, ...]}``: raw byte pieces, each a
  member of a wheel, concatenated in order (PyPI caps a file's size, so big weights are split);
* ``{"path": FILE}``: a local file (absolute, or relative to the manifest's folder) that is copied
  and checked, so air-gapped users can bring their own GGUF, Whisper or Piper files.

Profiles name one ``stt``, one ``llm`` and one ``tts`` model each (the ``tts`` one is the voice an
agent speaks with unless it chose another), and optionally ``voices``: more ``tts`` models
installed with the profile, so agents can choose among them (docs/models.md, "Voices"). A ``tts``
model says its ``engine``: ``piper`` (the default; one ``.onnx`` and its ``.json`` config) or
``hibari`` (one ``.onnx``; the ``hibari-tts`` package speaks it). ``models/README.md`` documents
the format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal, NoReturn, TypeAlias

MANIFEST_NAME = "manifest.json"
PACKAGED_MANIFEST = Path(__file__).with_name(MANIFEST_NAME)
"""The manifest of this callagent version. A ``manifest.json`` in the models folder replaces it
(a site that curates its own models); ``manifest.local.json`` there adds to it."""
# An optional, git-ignored overlay in the same folder: its models and profiles are added to (and
# replace same-named ones of) the committed manifest, so a site can add its own models without
# editing a tracked file.
LOCAL_MANIFEST_NAME = "manifest.local.json"
MANIFEST_FORMAT = 1

Kind: TypeAlias = Literal["stt", "llm", "tts"]
KINDS: tuple[Kind, ...] = ("stt", "llm", "tts")
TtsEngine: TypeAlias = Literal["piper", "hibari"]
TTS_ENGINES: tuple[TtsEngine, ...] = ("piper", "hibari")
# ``--profile all`` means every model of the manifest; no profile may take that name.
ALL_PROFILES = "all"

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# PEP 508 project names; versions must be one exact release (no operators, no wildcards).
_PACKAGE_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]*$")


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
    engine: str = ""
    """For ``tts`` models, the engine that speaks it (``piper`` or ``hibari``); else empty."""


@dataclass(frozen=True)
class Manifest:
    """A validated manifest (committed manifest plus the optional local overlay)."""

    path: Path
    models: Mapping[str, ModelSpec]
    profiles: Mapping[str, Mapping[Kind, str]]
    profile_descriptions: Mapping[str, str]
    profile_voices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per profile, the ``tts`` models installed besides its ``tts`` (the default voice)."""

    def models_for(self, profile_names: Iterable[str]) -> list[ModelSpec]:
        """The models the named profiles use, each once, in profile order.

        ``all`` stands for every model of the manifest.
        """
        names: list[str] = []
        for profile in profile_names:
            if profile == ALL_PROFILES:
                wanted: Iterable[str] = self.models
            else:
                kinds = self.profile(profile)
                wanted = [*(kinds[kind] for kind in KINDS), *self.profile_voices.get(profile, ())]
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


def load_manifest(models_dir: Path, *, manifest_path: Path | None = None) -> Manifest:
    """Read and validate the manifest, plus ``manifest.local.json`` beside it.

    The manifest is ``manifest_path`` when given, else ``models_dir/manifest.json`` when that
    exists, else :data:`PACKAGED_MANIFEST` (the overlay is then looked for in ``models_dir``).
    Raises :class:`ManifestError` naming the file and the bad field.
    """
    path = manifest_path if manifest_path is not None else models_dir / MANIFEST_NAME
    overlay_dir = path.parent
    if manifest_path is None and not path.is_file():
        path = PACKAGED_MANIFEST
    models, profiles, descriptions, voices = _read_manifest_file(path)
    local_path = overlay_dir / LOCAL_MANIFEST_NAME
    if local_path.is_file():
        local_models, local_profiles, local_descriptions, local_voices = _read_manifest_file(
            local_path
        )
        models.update(local_models)
        profiles.update(local_profiles)
        descriptions.update(local_descriptions)
        for name in local_profiles:  # a profile the overlay redefines takes its voices too
            voices.pop(name, None)
        voices.update(local_voices)
    manifest = Manifest(path, models, profiles, descriptions, voices)
    _check_cross_references(manifest)
    return manifest


def _read_manifest_file(
    path: Path,
) -> tuple[
    dict[str, ModelSpec], dict[str, dict[Kind, str]], dict[str, str], dict[str, tuple[str, ...]]
]:
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
    voices: dict[str, tuple[str, ...]] = {}
    for name, value in where.mapping(top["profiles"], "profiles").items():
        field = f"profiles[{name!r}]"
        if name == ALL_PROFILES:
            where.fail(field, f"{ALL_PROFILES!r} is reserved for every model of the manifest")
        entry = where.mapping(value, field, required=KINDS, optional=("description", "voices"))
        profiles[name] = {kind: where.string(entry[kind], f"{field}.{kind}") for kind in KINDS}
        descriptions[name] = where.string(entry.get("description", ""), f"{field}.description")
        listed = entry.get("voices", [])
        if not isinstance(listed, list):
            where.fail(f"{field}.voices", "must be a list of tts model names")
        voices[name] = tuple(
            where.string(item, f"{field}.voices[{index}]") for index, item in enumerate(listed)
        )
    return models, profiles, descriptions, voices


def _parse_model(where: _Where, name: str, value: object, base_dir: Path) -> ModelSpec:
    field = f"models[{name!r}]"
    if not _PACKAGE_RE.match(name):
        where.fail(field, "model names use letters, digits, '.', '_' and '-'")
    entry = where.mapping(
        value, field, required=("kind", "files"), optional=("description", "license", "engine")
    )
    kind = entry["kind"]
    if kind not in KINDS:
        where.fail(f"{field}.kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    engine = ""
    if kind == "tts":
        engine = where.string(entry.get("engine", "piper"), f"{field}.engine")
        if engine not in TTS_ENGINES:
            where.fail(
                f"{field}.engine", f"must be one of {', '.join(TTS_ENGINES)}, got {engine!r}"
            )
    elif "engine" in entry:
        where.fail(f"{field}.engine", "only tts models name an engine")
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
        engine=engine,
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
        # Only an exact pin gives the same bytes every time (docs/models.md).
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
    elif model.engine == "hibari":
        if len(paths) != 1 or paths[0].suffix != ".onnx":
            where.fail(f"{field}.files", "a hibari voice is exactly one .onnx file")
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
            if kind == "tts" and named.engine != "piper":
                # The default voice is what the engine self-check speaks (diagnostics/selfcheck).
                where.fail(field, f"the default voice must be a Piper voice, not {named.engine}")
        for index, model_name in enumerate(manifest.profile_voices.get(name, ())):
            field = f"profiles[{name!r}].voices[{index}]"
            named = manifest.models.get(model_name)
            if named is None:
                where.fail(field, f"names unknown model {model_name!r}")
            if named.kind != "tts":
                where.fail(field, f"{model_name!r} is a {named.kind} model, not tts")
    names: dict[str, str] = {}
    for model in manifest.models.values():
        if model.kind != "tts":
            continue
        voice = voice_name(model)
        other = names.setdefault(voice.lower(), model.name)
        if other != model.name:
            where.fail(f"models[{model.name!r}]", f"voice {voice!r} is also model {other!r}")


def voice_name(model: ModelSpec) -> str:
    """The name a user picks a ``tts`` model by: its ``.onnx`` file's name without the suffix,
    e.g. ``en_US-joe-medium`` (Piper's own naming: language, speaker, quality)."""
    onnx = next(spec for spec in model.files if spec.path.endswith(".onnx"))
    return PurePosixPath(onnx.path).stem


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
