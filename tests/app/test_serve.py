"""``callagent serve`` as a user runs it: a subprocess on the ``ci`` models, stopped with SIGTERM.

The wiring itself (:func:`callagent.app.serve.start_telephony`) is tested in-process in
tests/telephony/test_serve.py.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from callagent.telephony.asterisk.loopback_caller import rms, simulate_call

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.real_models
async def test_serve_answers_health_checks_and_audiosocket_calls_then_stops_cleanly(
    tmp_path: Path,
) -> None:
    http_port, audio_port = free_port(), free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callagent.cli",
        "serve",
        "--http-port",
        str(http_port),
        "--audiosocket-port",
        str(audio_port),
        cwd=tmp_path,  # nothing may depend on the current folder but the models
        env={
            "CALLAGENT_MODELS_DIR": str(REPO / "models"),
            "CALLAGENT_MODELS": "ci",
            "CALLAGENT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/db.sqlite",
            "PATH": "/usr/bin:/bin",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        health = await wait_for_health(http_port, server)
        assert health["status"] == "ok"
        result = await simulate_call(
            "127.0.0.1", audio_port, [], max_wait_for_agent_s=20, final_wait_s=0.5
        )
        assert rms(result.agent_pcm) > 100  # the agent greeted the caller
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(server.communicate(), 30)
    assert server.returncode == 0, output.decode()[-3000:]


async def wait_for_health(port: int, server: asyncio.subprocess.Process) -> dict[str, object]:
    """Poll ``GET /health`` until the server answers (model loading takes seconds)."""

    def get() -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return dict(json.loads(response.read()))

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and server.returncode is None:
        try:
            return await asyncio.to_thread(get)
        except OSError:
            await asyncio.sleep(0.5)
    raise AssertionError(f"no health answer; server exit code {server.returncode}")
