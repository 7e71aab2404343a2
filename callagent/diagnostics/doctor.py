"""``callagent doctor``: everything a user needs to know when something is wrong, in one report.

It looks, in order, at the machine (Python, CPU and the instruction-set level it can run), the
llama.cpp build (which instruction sets it was compiled for, and whether this CPU has them all),
the model files of the profile (present, size, sha256) and the voices installed, the ports
callagent listens on, the database (reachable, schema at the newest migration) and, last, the
engine self-check (:mod:`.selfcheck`: each model does one real job in a child process). Each
finding is ok, warn or fail, with what to do. docs/install.md explains each line.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import platform
import re
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from callagent.diagnostics.cpu_levels import best_level, cpu_flags
from callagent.diagnostics.selfcheck import REBUILD_ADVICE, EngineCheck, self_check
from callagent.modelfiles import ModelFileError, installed_voices, load_manifest, resolve_profile
from callagent.settings import Settings

Status = Literal["ok", "warn", "fail"]

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_LLAMA_CRASHED = 3
"""llama.cpp died from a signal: ``scripts/self_check.sh`` rebuilds it one level lower."""

# ggml's system_info names → the /proc/cpuinfo flag the instructions need.
_GGML_FEATURE_FLAGS = {
    "AVX": "avx",
    "AVX2": "avx2",
    "AVX_VNNI": "avx_vnni",
    "FMA": "fma",
    "F16C": "f16c",
    "BMI2": "bmi2",
    "AVX512": "avx512f",
    "AVX512_VBMI": "avx512vbmi",
    "AVX512_VNNI": "avx512_vnni",
    "AVX512_BF16": "avx512_bf16",
    "AMX_INT8": "amx_int8",
}
_SHOWN_CPU_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16")
_SHOWN_CPU_FLAGS += ("amx_tile", "amx_int8", "amx_bf16")

BUILD_RECORD = "callagent-llama-build.json"
"""Written into the venv by ``scripts/build_llama.py install``: the level and CMAKE_ARGS."""


@dataclass(frozen=True)
class Finding:
    """One line of the report."""

    status: Status
    topic: str
    detail: str
    advice: str = ""

    def render(self) -> str:
        """``[ok]   topic: detail`` plus the advice on the next line."""
        text = f"[{self.status}]{' ' * (5 - len(self.status))}{self.topic}: {self.detail}"
        return text + (f"\n       -> {self.advice}" if self.advice else "")


def machine_findings(flags: frozenset[str] | None = None) -> list[Finding]:
    """Python, platform, CPU model and the instruction-set level this CPU runs."""
    flags = cpu_flags() if flags is None else flags
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    shown = " ".join(flag for flag in _SHOWN_CPU_FLAGS if flag in flags) or "none of note"
    python = f"Python {platform.python_version()} on {platform.system()} {platform.machine()}"
    findings = [Finding("ok", "python", python)]
    if platform.machine() not in ("x86_64", "AMD64"):
        findings.append(
            Finding("warn", "cpu", f"{platform.machine()}: only x86-64 builds were tested")
        )
    findings.append(Finding("ok", "cpu", f"{model}; level {best_level(flags)}; flags: {shown}"))
    return findings


def compiled_features(system_info: str) -> set[str]:
    """The instruction sets a llama.cpp build reports as compiled in (``AVX2 = 1``)."""
    return {name for name, value in re.findall(r"(\w+) = (\d)", system_info) if value == "1"}


def build_findings(
    system_info: str | None, flags: frozenset[str], prefix: Path = Path(sys.prefix)
) -> list[Finding]:
    """Which level llama-cpp-python was built for, and whether this CPU runs all of it."""
    findings: list[Finding] = []
    try:
        record = json.loads((prefix / BUILD_RECORD).read_text())
        findings.append(
            Finding(
                "ok",
                "llama.cpp build",
                f"level {record['level']}, CMAKE_ARGS {record['cmake_args']}",
            )
        )
    except (OSError, ValueError, KeyError):
        findings.append(
            Finding(
                "warn",
                "llama.cpp build",
                "not installed by scripts/build_llama.py: its flags are unknown",
                "`make install` builds it for this CPU's level (never -march=native)",
            )
        )
    if system_info is None:
        return findings
    features = compiled_features(system_info)
    needed = {_GGML_FEATURE_FLAGS[name] for name in features if name in _GGML_FEATURE_FLAGS}
    missing = sorted(needed - flags)
    shown = " ".join(sorted(features & _GGML_FEATURE_FLAGS.keys())) or "none beyond SSE"
    if missing:
        findings.append(
            Finding(
                "fail",
                "llama.cpp instructions",
                f"compiled for {shown}; this CPU lacks {' '.join(missing)}",
                "`.venv/bin/python scripts/build_llama.py install` rebuilds it for this CPU",
            )
        )
    elif "AMX_INT8" in features:
        findings.append(
            Finding(
                "warn",
                "llama.cpp instructions",
                f"compiled with AMX ({shown}): traps on VMs that advertise AMX (docs/models.md)",
                "`.venv/bin/python scripts/build_llama.py install` builds without AMX",
            )
        )
    else:
        findings.append(
            Finding("ok", "llama.cpp instructions", f"compiled for {shown}; all run on this CPU")
        )
    return findings


def model_findings(profile: str, models_dir: Path) -> list[Finding]:
    """The profile's files: present, right size, right sha256."""
    try:
        manifest = load_manifest(models_dir)
        files = sum(len(model.files) for model in manifest.models_for([profile]))
        resolve_profile(profile, models_dir, verify="full")
    except ModelFileError as error:
        return [Finding("fail", f"models ({profile})", str(error).splitlines()[0], _fix(error))]
    # The voices an agent's voice_model may name (docs/models.md, "Voices").
    voices = installed_voices(models_dir, profile).describe()
    return [
        Finding("ok", f"models ({profile})", f"{files} files in {models_dir}, sha256 verified"),
        Finding("ok", f"voices ({profile})", voices),
    ]


def _fix(error: ModelFileError) -> str:
    lines = str(error).splitlines()
    return lines[-1] if len(lines) > 1 else ""


def port_finding(host: str, port: int, what: str, setting: str = "network.host") -> Finding:
    """Can callagent listen at ``host:port`` (the address from ``setting``)?"""
    topic = f"port {host}:{port} ({what})"
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            return Finding(
                "warn",
                topic,
                "in use",
                "fine if callagent serve is running; otherwise another program holds it",
            )
        return Finding("fail", topic, f"cannot listen: {error.strerror}", f"check {setting}")
    return Finding("ok", topic, "free")


async def _database_state(url: str) -> tuple[str | None, str | None]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.ext.asyncio import create_async_engine

    from callagent.store.db import alembic_config

    # Alembic announces every plugin and context at INFO: noise in a one-line finding.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            current = await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()
    return current, head


def database_finding(url: str) -> Finding:
    """Reachable, and at the newest migration? Never creates a database."""
    shown = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
    sqlite_file = url.partition(":///")[2] if url.startswith("sqlite") else ""
    if sqlite_file and sqlite_file != ":memory:" and not Path(sqlite_file).exists():
        return Finding("ok", "database", f"{shown}: not created yet (callagent serve creates it)")
    try:
        current, head = asyncio.run(_database_state(url))
    except Exception as error:
        return Finding(
            "fail",
            "database",
            f"{shown}: {type(error).__name__}: {str(error).splitlines()[0]}",
            "check database.url and that the server is running",
        )
    if current != head:
        return Finding(
            "warn",
            "database",
            f"{shown}: schema at {current or 'nothing'}, newest is {head}",
            "callagent serve migrates it at start",
        )
    return Finding("ok", "database", f"{shown}: schema at {head} (newest)")


def engine_finding(check: EngineCheck) -> Finding:
    """A self-check verdict as a report line."""
    detail = f"{check.detail} ({check.seconds:.1f} s)"
    return Finding("ok" if check.ok else "fail", f"self-check {check.engine}", detail, check.advice)


def diagnose(
    settings: Settings,
    *,
    engines: bool = True,
    emit: Callable[[Finding], None] = lambda finding: print(finding.render(), flush=True),
) -> int:
    """Print the report line by line (the engine lines last) and return the exit code."""
    flags = cpu_flags()
    models_dir = Path(settings.models.models_dir)
    findings: list[Finding] = []

    def report(items: Sequence[Finding]) -> None:
        for finding in items:
            findings.append(finding)
            emit(finding)

    report(machine_findings(flags))
    checks: list[EngineCheck] = []
    model_report = model_findings(settings.models.profile, models_dir)
    if engines and all(finding.status != "fail" for finding in model_report):
        # Run now: the build finding needs what the library says it was compiled for.
        profile = resolve_profile(settings.models.profile, models_dir, verify=False)
        checks = self_check(profile, llm_threads=settings.models.llm_threads)
    infos = [str(check.data["system_info"]) for check in checks if "system_info" in check.data]
    report(build_findings(infos[0] if infos else None, flags))
    report(model_report)
    network = settings.network
    audiosocket = (network.audiosocket_bind, network.audiosocket_port)
    report([port_finding(*audiosocket, "AudioSocket", "network.audiosocket_bind")])
    report([port_finding(network.host, network.http_port, "HTTP")])
    report([database_finding(settings.database.url)])
    report([engine_finding(check) for check in checks])
    if any(check.crashed and check.advice == REBUILD_ADVICE for check in checks):
        return EXIT_LLAMA_CRASHED
    return EXIT_PROBLEM if any(f.status == "fail" for f in findings) else EXIT_OK
