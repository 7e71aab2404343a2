"""Running Debian's baresip as a real SIP caller that records what it hears.

baresip reads the caller's voice from a wav file (``aufile`` module; a wav header is parsed, not
played) and hangs up when the file ends; the ``sndfile`` module dumps the decoded audio it
received - what a person on the phone would hear - into ``dump-...-dec.wav``. DESIGN.md trap:
``net_interface lo`` fails, the address 127.0.0.1 works. As a callee (no ``target``) it listens
on a given port and answers the first call at once (the account's ``answermode=auto``).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

BARESIP = shutil.which("baresip")
_STATUS = re.compile(r"\[\d+:\d\d:\d\d\] audio=\d+/\d+ \(bit/s\)\s*")


def baresip_available() -> bool:
    """True when baresip is installed."""
    return BARESIP is not None


@dataclass
class BaresipResult:
    returncode: int
    output: str
    heard: np.ndarray
    """What baresip received and decoded, float32 mono."""
    heard_rate: int


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _configure(
    workdir: Path, wav: Path, codec: str, user: str, listen_port: int | None, answer: bool
) -> Path:
    conf = workdir / "baresip"
    (conf / "dump").mkdir(parents=True)
    codec_module = {"g722": "g722.so", "pcmu": "g711.so"}[codec]
    (conf / "config").write_text(
        "\n".join(
            [
                "poll_method epoll",
                f"sip_listen 127.0.0.1:{listen_port or _free_port()}",
                "net_interface 127.0.0.1",
                f"audio_source aufile,{wav}",
                "audio_player aubridge,callagent-test",
                "audio_alert aubridge,callagent-test",
                "module_path /usr/lib/baresip/modules",
                f"module {codec_module}",
                "module aufile.so",
                "module aubridge.so",
                "module sndfile.so",
                "module menu.so",
                "module account.so",
                f"snd_path {conf / 'dump'}",
                "",
            ]
        )
    )
    answer_mode = ";answermode=auto" if answer else ""
    (conf / "accounts").write_text(f"<sip:{user}@127.0.0.1>;regint=0{answer_mode}\n")
    (conf / "contacts").write_text("")
    return conf


async def run_baresip(
    workdir: Path,
    *,
    target: str | None,
    speech: np.ndarray,
    rate: int,
    codec: str = "pcmu",
    timeout_s: float = 40.0,
    user: str = "caller",
    listen_port: int | None = None,
) -> BaresipResult:
    """Dial ``target`` (or, when it is None, answer the first call arriving at ``listen_port``)
    and play ``speech`` (float32 mono at ``rate``: 8000 for PCMU, 16000 for G.722); the call
    lasts as long as the speech. ``user`` is the user part of baresip's own address, i.e. the
    caller id it sends. Returns what baresip heard."""
    assert BARESIP is not None
    wav = workdir / "caller.wav"
    soundfile.write(str(wav), speech.astype(np.float32), rate, subtype="PCM_16")
    conf = _configure(workdir, wav, codec, user, listen_port, answer=target is None)
    dial = ["-e", f"/dial {target}"] if target is not None else []
    process = await asyncio.create_subprocess_exec(
        BARESIP,
        "-f",
        str(conf),
        *dial,
        "-t",
        str(int(timeout_s)),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[bytes] = []
    try:
        async with asyncio.timeout(timeout_s + 5):
            assert process.stdout is not None
            while line := await process.stdout.readline():
                lines.append(line)
                # baresip keeps running after the call; once it has ended (the dump files are
                # closed with the stream), stop it rather than wait for -t.
                if b"terminated" in line:
                    process.terminate()
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    dumps = sorted((conf / "dump").glob("*-dec.wav"))
    if dumps:
        heard, heard_rate = soundfile.read(str(dumps[-1]), dtype="float32")
    else:
        heard, heard_rate = np.zeros(0, dtype=np.float32), rate
    return BaresipResult(
        process.returncode or 0,
        # Without its once-a-tick status line ("[0:00:01] audio=64000/64000 (bit/s)").
        _STATUS.sub("", b"".join(lines).decode(errors="replace"))[-6000:],
        heard,
        int(heard_rate),
    )
