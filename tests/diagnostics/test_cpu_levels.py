"""Which llama.cpp build a CPU gets: never one that assumes more than the CPU lists, never AMX."""

from __future__ import annotations

from pathlib import Path

import pytest

from callagent.diagnostics.cpu_levels import (
    LEVELS,
    ORDER,
    best_level,
    cmake_args,
    cpu_flags,
    missing_flags,
)

AVX2_MACHINE = frozenset(["fpu", "sse2", "sse4_2", "avx", "avx2", "fma", "f16c", "bmi1", "bmi2"])
# The flags of the Intel Xeon VM where the native build trapped in AMX code (docs/models.md).
AMX_VM = AVX2_MACHINE | {
    *("avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512vbmi"),
    *("avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni"),
    *("amx_tile", "amx_int8", "amx_bf16"),
}
OLD_MACHINE = frozenset(["fpu", "sse2", "sse4_1", "sse4_2", "avx"])


@pytest.mark.parametrize(
    ("flags", "level"),
    [
        (AMX_VM, "avx512"),
        (AVX2_MACHINE, "avx2"),
        (OLD_MACHINE, "baseline"),
        (frozenset(), "baseline"),
    ],
)
def test_each_cpu_gets_the_fastest_level_it_can_run(flags: frozenset[str], level: str) -> None:
    assert best_level(flags) == level
    assert missing_flags(level, flags) == []


def test_avx512_without_bf16_falls_back_to_avx2() -> None:
    # Skylake-X/Ice Lake list AVX-512 but not BF16: the avx512 build would trap there.
    flags = AMX_VM - {"avx512_bf16"}
    assert best_level(flags) == "avx2"
    assert missing_flags("avx512", flags) == ["avx512_bf16"]


@pytest.mark.parametrize("level", ORDER)
def test_no_build_is_native_or_uses_amx(level: str) -> None:
    args = cmake_args(level)
    assert "-DGGML_NATIVE=OFF" in args
    assert not any("NATIVE=ON" in arg or arg.startswith("-march") for arg in args)
    for amx in ("TILE", "INT8", "BF16"):
        assert f"-DGGML_AMX_{amx}=OFF" in args


def test_levels_are_ordered_from_fastest_to_safest() -> None:
    needs = [LEVELS[level][1] for level in ORDER]
    assert needs[0] > needs[1] > needs[2] == frozenset()


def test_cpu_flags_reads_the_kernels_list(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx avx2\nbugs\t\t: spectre\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx", "avx2"}
    assert cpu_flags(tmp_path / "missing") == frozenset()
