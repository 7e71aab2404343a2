#!/usr/bin/env python3
"""Build llama.cpp's ``llama-server`` from the source llama-cpp-python vendors, portably.

``[llm] server = "local"`` runs the LLM in llama.cpp's own HTTP server, which serves several
calls at once with continuous batching (docs/models.md, "LLM server"). The server is built from
the llama.cpp inside the llama-cpp-python source package that pyproject.toml pins — the same
llama.cpp the in-process path runs — with the same portable instruction-set options as
``scripts/build_llama.py`` (never ``-march=native``: it traps on VMs that advertise AMX,
docs/models.md "llama.cpp build"). Only the ``llama-server`` target is built, statically linked,
without the web UI download, OpenSSL or curl.

    scripts/build_llama_server.py install [--level auto|avx512|avx2|baseline]
    scripts/build_llama_server.py path                 # the installed binary, or exit 1

The binary is kept in ``$XDG_CACHE_HOME/callagent/llama-server/<level>-<key>/`` (``~/.cache``
by default), keyed on the version, the options and the compiler like the wheels of
build_llama.py, so a second clone or a CI run on the same machine reuses it; ``install`` copies
it to ``<venv>/bin/callagent-llama-server``, where callagent looks for it.

Standard library only: it runs before callagent is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # build_llama beside this file

from build_llama import (
    PACKAGE,
    _choose,
    _compiler,
    cmake_args,
    pinned_version,
)

BINARY_NAME = "callagent-llama-server"
"""The name in the venv's bin/ folder (callagent/inference/llama_server.py looks for it)."""

SERVER_ARGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    # One self-contained binary: nothing to find at run time but libc, libstdc++ and libgomp.
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    # The server's web UI would be downloaded from a model hub at build time: air-gapped
    # installs cannot, and callagent does not use it.
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
)


def server_cmake_args(level: str) -> list[str]:
    """The level's portable options (build_llama.py's) plus the server's own."""
    # LLAVA_BUILD is llama-cpp-python's option; plain llama.cpp would warn about it.
    portable = [arg for arg in cmake_args(level) if not arg.startswith("-DLLAVA_BUILD")]
    return [*portable, *SERVER_ARGS]


def build_key(level: str, version: str) -> str:
    """What the built binary depends on: version, options and compiler."""
    material = json.dumps(["llama-server", version, server_cmake_args(level), _compiler()])
    return hashlib.sha256(material.encode()).hexdigest()[:12]


def cache_root() -> Path:
    """Where built servers are kept between runs and clones."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "callagent" / "llama-server"


def _source(python: str, workdir: Path, version: str, find_links: str | None) -> Path:
    """Fetch the pinned llama-cpp-python source package and unpack its vendored llama.cpp."""
    command = [python, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    if find_links:
        command += ["--no-index", "--find-links", find_links]
    command += ["-d", str(workdir), f"{PACKAGE}=={version}"]
    subprocess.run(command, check=True)
    archive = next(workdir.glob("llama_cpp_python-*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    source = workdir / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    if not (source / "tools" / "server").is_dir():
        raise SystemExit(f"{archive.name} holds no llama.cpp server source at {source}")
    return source


def find_or_build(level: str, python: str, find_links: str | None = None) -> Path:
    """The server binary for ``level``, built now unless the cache has it."""
    version = pinned_version()
    folder = cache_root() / f"{level}-{build_key(level, version)}"
    binary = folder / "llama-server"
    if binary.is_file():
        return binary
    args = server_cmake_args(level)
    jobs = str(os.cpu_count() or 2)
    print(f"building llama-server of {PACKAGE} {version} for level {level}", flush=True)
    print(f"options: {' '.join(args)}; kept in {folder}", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="llama-server-") as tmp:
        work = Path(tmp)
        source = _source(python, work, version, find_links)
        build = work / "build"
        subprocess.run(["cmake", "-S", str(source), "-B", str(build), *args], check=True)
        subprocess.run(
            ["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs], check=True
        )
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        shutil.copy2(build / "bin" / "llama-server", partial / "llama-server")
        record = {"version": version, "level": level, "cmake_args": " ".join(args)}
        (partial / "build.json").write_text(json.dumps(record, indent=2) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    print(f"built llama-server in {time.monotonic() - started:.0f} s", flush=True)
    return binary


def venv_binary(python: str) -> Path:
    """Where ``install`` puts the binary: the venv's bin/ folder (its sys.prefix)."""
    prefix = subprocess.run(
        [python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return Path(prefix) / "bin" / BINARY_NAME


def install(level: str, python: str, find_links: str | None = None) -> Path:
    """Make the venv of ``python`` hold the server of ``level`` (a copy: the cache may go)."""
    binary = find_or_build(level, python, find_links)
    target = venv_binary(python)
    if not (target.is_file() and target.read_bytes() == binary.read_bytes()):
        shutil.copy2(binary, target.with_suffix(".partial"))
        target.with_suffix(".partial").replace(target)
    print(f"llama-server ({level}) installed as {target}")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("install", "path"):
        p = sub.add_parser(name)
        p.add_argument("--python", default=sys.executable, help="the venv's python")
        if name == "install":
            default = os.environ.get("CALLAGENT_LLAMA_LEVEL", "auto")
            p.add_argument(
                "--level", choices=("auto", "avx512", "avx2", "baseline"), default=default
            )
            p.add_argument("--find-links", help="take the source package from this folder only")
    args = parser.parse_args(argv)
    if args.command == "path":
        target = venv_binary(args.python)
        if not target.is_file():
            print(f"{target} is not built: run {sys.argv[0]} install", file=sys.stderr)
            return 1
        print(target)
        return 0
    install(_choose(args.level), args.python, args.find_links)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
