"""The instruction-set levels llama.cpp is built for, and which one a CPU can run.

Standard library only: ``scripts/build_llama.py`` imports it before callagent is installed, and
``callagent doctor`` uses it to compare the installed build with the CPU. Why levels and not
``-march=native``: on an Intel Xeon VM that advertises AMX, the native build dies with SIGILL in
llama.cpp's AMX path, with or without ``-DGGML_AMX_*=OFF`` (docs/models.md, "llama.cpp build").

* ``avx512``  — AVX2 plus AVX-512 F/BW/VL/DQ/CD, VBMI, VNNI, BF16 (Zen 4/5, Sapphire Rapids);
* ``avx2``    — AVX, AVX2, FMA, F16C, BMI2: every x86-64 CPU since 2013 (x86-64-v3), and the
  level of the portable wheel a wheelhouse carries;
* ``baseline`` — plain x86-64 (SSE2), for anything older; slow.
"""

from __future__ import annotations

from pathlib import Path

COMMON_ARGS = (
    # The multimodal library we do not use halves the build time when off; AMX is off because
    # the VMs that advertise it are where it traps.
    "-DLLAVA_BUILD=OFF",
    "-DGGML_NATIVE=OFF",
    "-DGGML_AMX_TILE=OFF",
    "-DGGML_AMX_INT8=OFF",
    "-DGGML_AMX_BF16=OFF",
)

_AVX2_ARGS = (
    "-DGGML_AVX=ON",
    "-DGGML_AVX2=ON",
    "-DGGML_FMA=ON",
    "-DGGML_F16C=ON",
    "-DGGML_BMI2=ON",
)
_AVX2_FLAGS = frozenset({"avx", "avx2", "fma", "f16c", "bmi2"})

LEVELS: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    # level: (cmake options, /proc/cpuinfo flags the CPU must list to run it)
    "avx512": (
        (
            *_AVX2_ARGS,
            "-DGGML_AVX512=ON",
            "-DGGML_AVX512_VBMI=ON",
            "-DGGML_AVX512_VNNI=ON",
            "-DGGML_AVX512_BF16=ON",
        ),
        _AVX2_FLAGS
        | {
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512dq",
            "avx512cd",
            "avx512vbmi",
            "avx512_vnni",
            "avx512_bf16",
        },
    ),
    "avx2": (_AVX2_ARGS, _AVX2_FLAGS),
    "baseline": (
        (
            "-DGGML_SSE42=OFF",
            "-DGGML_AVX=OFF",
            "-DGGML_AVX2=OFF",
            "-DGGML_FMA=OFF",
            "-DGGML_F16C=OFF",
            "-DGGML_BMI2=OFF",
        ),
        frozenset(),
    ),
}
ORDER = ("avx512", "avx2", "baseline")
"""Fastest first; ``step-down`` moves one place to the right."""


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The instruction-set flags the kernel reports (it hides those the OS cannot run)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def best_level(flags: frozenset[str]) -> str:
    """The fastest level whose instructions the CPU lists."""
    for level in ORDER:
        if LEVELS[level][1] <= flags:
            return level
    return "baseline"


def cmake_args(level: str) -> list[str]:
    """The full ``CMAKE_ARGS`` of a level."""
    return [*COMMON_ARGS, *LEVELS[level][0]]


def missing_flags(level: str, flags: frozenset[str]) -> list[str]:
    """The CPU flags ``level`` needs that ``flags`` lacks (empty: the CPU runs it)."""
    return sorted(LEVELS[level][1] - flags)
