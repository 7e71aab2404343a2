#!/usr/bin/env python3
"""Build and install llama-cpp-python so that it runs on the machine it is installed on.

llama-cpp-python ships only a source package; pip compiles llama.cpp at install time. Its default
build (``GGML_NATIVE=ON``, ``-march=native``) trusts every instruction set the CPU advertises, and
on an Intel Xeon VM that advertises AMX the AMX path dies with SIGILL (``tilezero`` in
``ggml_backend_amx_mul_mat``) — also with ``-DGGML_AMX_*=OFF`` as long as ``-march=native`` is on
(docs/models.md, "llama.cpp build"). So this script never builds native. It picks one of three
portable instruction-set *levels* from the CPU's flags, builds with explicit ``-DGGML_*`` options
and AMX off, and keys the built wheel on those options: pip's own wheel cache keys a built wheel
by its source only, and a machine that once built a native wheel would otherwise reinstall it
after the flags change.

    scripts/build_llama.py install [--level auto|avx512|avx2|baseline]
    scripts/build_llama.py wheel --level avx2 --out DIR      # for a wheelhouse (other machines)
    scripts/build_llama.py step-down                          # one level safer, after a crash
    scripts/build_llama.py show                               # the level this CPU gets, and why

Levels: :mod:`callagent.diagnostics.cpu_levels`; measured speeds: docs/models.md.

Standard library only: it runs before callagent is installed. Wheels live in
``$XDG_CACHE_HOME/callagent/llama-wheels/<level>-<key>/`` (``~/.cache`` by default), outside
the clone, so a second clone or a rerun on the same machine reuses them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # runs before callagent is installed

from callagent.diagnostics.cpu_levels import (  # noqa: E402
    ORDER,
    best_level,
    cmake_args,
    cpu_flags,
    missing_flags,
)

PACKAGE = "llama-cpp-python"


def pinned_version() -> str:
    """The llama-cpp-python version pyproject.toml pins: one place to change it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name, sep, version = requirement.partition("==")
        if name.strip() == PACKAGE and sep:
            return version.strip()
    raise SystemExit(f"pyproject.toml does not pin {PACKAGE}==VERSION")


def _compiler() -> str:
    try:
        out = subprocess.run(["cc", "--version"], capture_output=True, text=True, check=False)
        return out.stdout.splitlines()[0] if out.stdout else "cc ?"
    except OSError:
        return "no cc"


def build_key(level: str, version: str) -> str:
    """What the built wheel depends on: version, options and compiler."""
    material = json.dumps([version, cmake_args(level), _compiler()])
    return hashlib.sha256(material.encode()).hexdigest()[:12]


def cache_root() -> Path:
    """Where built wheels are kept between runs and clones."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "callagent" / "llama-wheels"


def find_or_build(level: str, python: str, find_links: str | None = None) -> Path:
    """The wheel for ``level``, built now unless the cache has it."""
    version = pinned_version()
    folder = cache_root() / f"{level}-{build_key(level, version)}"
    wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
    if wheels:
        return wheels[-1]
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    env = dict(os.environ, CMAKE_ARGS=" ".join(cmake_args(level)))
    # --no-cache-dir: never take (or leave) a wheel in pip's source-keyed cache.
    command = [python, "-m", "pip", "wheel", "--no-cache-dir", "--no-deps", "-w", str(partial)]
    if find_links:
        command += ["--no-index", "--find-links", find_links]
    command.append(f"{PACKAGE}=={version}")
    print(f"building {PACKAGE} {version} for level {level} ({env['CMAKE_ARGS']})", flush=True)
    print("this takes 3-7 minutes on 2 cores; the wheel is kept in", folder, flush=True)
    subprocess.run(command, env=env, check=True)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return next(folder.glob("llama_cpp_python-*.whl"))


def _marker(python: str) -> Path:
    # In the venv's root (its sys.prefix; the interpreter itself may be a symlink out of the
    # venv): the level installed there, so `install` is idempotent and `step-down` knows
    # where it starts from. `callagent doctor` reads it as sys.prefix/BUILD_RECORD.
    prefix = subprocess.run(
        [python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return Path(prefix) / "callagent-llama-build.json"


def installed(python: str) -> dict[str, str] | None:
    """What ``install`` last put into the venv of ``python``."""
    try:
        return json.loads(_marker(python).read_text())
    except (OSError, ValueError):
        return None


def install(level: str, python: str, find_links: str | None = None) -> None:
    """Make the venv of ``python`` hold the wheel of ``level`` (no-op when it already does)."""
    version = pinned_version()
    key = build_key(level, version)
    current = installed(python)
    if current and current.get("key") == key and current.get("level") == level:
        probe = [
            python,
            "-c",
            "import importlib.metadata as m; print(m.version('llama_cpp_python'))",
        ]
        out = subprocess.run(probe, capture_output=True, text=True, check=False)
        if out.stdout.strip() == version:
            print(f"{PACKAGE} {version} ({level}) already installed")
            return
    wheel = find_or_build(level, python, find_links)
    command = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall"]
    subprocess.run([*command, str(wheel)], check=True)
    record = {
        "level": level,
        "key": key,
        "version": version,
        "cmake_args": " ".join(cmake_args(level)),
    }
    _marker(python).write_text(json.dumps(record, indent=2) + "\n")
    print(f"installed {PACKAGE} {version} built for {level}")


def _choose(requested: str) -> str:
    if requested != "auto":
        return requested
    return best_level(cpu_flags())


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    choices = ("auto", *ORDER)
    level_help = "instruction-set level (auto: the fastest this CPU lists)"
    for name in ("install", "wheel", "step-down", "show"):
        p = sub.add_parser(name)
        p.add_argument("--python", default=sys.executable, help="the venv's python")
        p.add_argument("--find-links", help="build from this folder only (air-gapped)")
        if name in ("install", "wheel"):
            default = os.environ.get("CALLAGENT_LLAMA_LEVEL", "auto")
            p.add_argument("--level", choices=choices, default=default, help=level_help)
        if name == "wheel":
            p.add_argument("--out", type=Path, required=True, help="copy the wheel here")
    args = parser.parse_args(argv)

    if args.command == "show":
        flags = cpu_flags()
        level = best_level(flags)
        print(f"cpu level: {level}")
        for name in ORDER:
            missing = missing_flags(name, flags)
            print(f"  {name:9} {'ok' if not missing else 'missing ' + ' '.join(missing)}")
        print(f"installed: {installed(args.python)}")
        return 0
    if args.command == "step-down":
        current = (installed(args.python) or {}).get("level", best_level(cpu_flags()))
        position = ORDER.index(current) if current in ORDER else 0
        if position + 1 >= len(ORDER):
            print(f"{PACKAGE} is already built for the baseline level; nothing safer exists")
            return 1
        install(ORDER[position + 1], args.python, args.find_links)
        return 0
    level = _choose(args.level)
    if args.command == "install":
        install(level, args.python, args.find_links)
        return 0
    wheel = find_or_build(level, args.python, args.find_links)
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(wheel, args.out / wheel.name)
    print(args.out / wheel.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
