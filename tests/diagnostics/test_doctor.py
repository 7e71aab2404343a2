"""`callagent doctor`'s findings, each checked against the real thing it looks at."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from callagent.diagnostics.doctor import (
    build_findings,
    compiled_features,
    database_finding,
    model_findings,
    port_finding,
)
from callagent.store.db import migrate_url

SYSTEM_INFO = (
    "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = {} | OPENMP = 1 |"
)
AVX2_CPU = frozenset({"sse3", "avx", "avx2", "f16c", "fma"})


def test_compiled_features_reads_llamas_system_info() -> None:
    assert compiled_features(SYSTEM_INFO.format(0)) == {
        "SSE3",
        "AVX",
        "AVX2",
        "F16C",
        "FMA",
        "OPENMP",
    }


def test_a_build_for_instructions_the_cpu_lacks_fails(tmp_path: Path) -> None:
    findings = build_findings(SYSTEM_INFO.format(1), AVX2_CPU, prefix=tmp_path)
    verdict = findings[-1]
    assert verdict.status == "fail"
    assert "lacks avx512f" in verdict.detail
    assert "build_llama.py install" in verdict.advice


def test_an_amx_build_is_a_warning_even_where_it_runs(tmp_path: Path) -> None:
    info = SYSTEM_INFO.format(0) + " AMX_INT8 = 1 |"
    verdict = build_findings(info, AVX2_CPU | {"amx_int8"}, prefix=tmp_path)[-1]
    assert verdict.status == "warn"
    assert "AMX" in verdict.detail


def test_a_build_that_fits_is_ok_and_its_recorded_flags_are_shown(tmp_path: Path) -> None:
    record = {"level": "avx2", "cmake_args": "-DGGML_NATIVE=OFF -DGGML_AVX2=ON"}
    (tmp_path / "callagent-llama-build.json").write_text(json.dumps(record))
    findings = build_findings(SYSTEM_INFO.format(0), AVX2_CPU, prefix=tmp_path)
    assert [finding.status for finding in findings] == ["ok", "ok"]
    assert "level avx2" in findings[0].detail
    assert "-DGGML_NATIVE=OFF" in findings[0].detail


def test_an_unrecorded_build_is_a_warning(tmp_path: Path) -> None:
    assert build_findings(None, AVX2_CPU, prefix=tmp_path)[0].status == "warn"


def test_missing_models_name_the_file_and_the_fix(tmp_path: Path) -> None:
    finding = model_findings("ci", tmp_path)[0]
    assert finding.status == "fail"
    assert "missing" in finding.detail
    assert "download_models.sh" in finding.advice


def test_the_report_lists_the_installed_voices() -> None:
    models = Path(__file__).resolve().parents[2] / "models"
    findings = {finding.topic: finding for finding in model_findings("ci", models)}
    voices = findings["voices (ci)"]
    assert voices.status == "ok"
    assert voices.detail == "en_US-joe-medium (joe, default), en_US-heart-hibari (heart)"


def test_ports_free_and_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = port_finding("127.0.0.1", port, "HTTP")
        assert busy.status == "warn"
        assert "in use" in busy.detail
    assert port_finding("127.0.0.1", port, "HTTP").status == "ok"
    assert port_finding("192.0.2.1", port, "HTTP").status == "fail"  # not an address of ours


def test_database_states(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'callagent.db'}"
    fresh = database_finding(url)
    assert fresh.status == "ok"
    assert "not created yet" in fresh.detail
    assert not (tmp_path / "callagent.db").exists()  # the doctor never creates one
    asyncio.run(migrate_url(url))
    migrated = database_finding(url)
    assert migrated.status == "ok"
    assert "(newest)" in migrated.detail


def test_an_unreachable_database_fails_without_showing_its_password() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    finding = database_finding(f"postgresql+asyncpg://user:secret@127.0.0.1:{port}/db")
    assert finding.status == "fail"
    assert "secret" not in finding.detail
    assert "user:***@" in finding.detail


@pytest.mark.real_models
def test_doctor_on_the_ci_models_reports_no_failure(tmp_path: Path) -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "callagent.cli",
            "doctor",
            "--models",
            "ci",
            "--models-dir",
            str(repo / "models"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for line in (
        "[ok]   cpu:",
        "[ok]   llama.cpp instructions:",
        "[ok]   models (ci):",
        "[ok]   self-check llm:",
        "[ok]   self-check tts:",
        "[ok]   self-check stt:",
    ):
        assert line in done.stdout
