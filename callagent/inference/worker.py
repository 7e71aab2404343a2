"""The engine worker process: ``python -m callagent.inference.worker --fd N --spec JSON``.

It builds one engine with the factory the spec names (the same in-process classes the call
process would use: WhisperSpeechToText, LlamaCppLanguageModel, a VoiceLibrary of Piper/hibari
voices), says ``ready`` on the socket it inherited as fd ``N`` and then serves requests until
that socket closes - the call process is gone, so it exits too. Each request runs in a task of
its own on the worker's event loop; the engine keeps its own inference thread, as in-process
(docs/inference.md "The messages").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from callagent.inference.wire import (
    CONTROL,
    FrameDecoder,
    GarbledMessage,
    WireError,
    decode_body,
    encode,
)

log = logging.getLogger("callagent.inference.worker")

START_FAILED = 3
"""Exit code of a worker whose engine could not be built (it said why in a ``fatal``)."""


@dataclass
class ServedEngine:
    """What a factory returns: the engine(s) this worker serves."""

    stt: Any = None
    """A ``SpeechToText``."""
    llm: Any = None
    """A ``LanguageModel``."""
    tts: Any = None
    """The default ``TextToSpeech``."""
    voices: Any = None
    """A ``VoiceLibrary`` (every installed voice), or None."""
    handlers: dict[str, Callable[..., Awaitable[None]]] | None = None
    """Extra operations (tests' fake engines): ``handler(message, emit)``."""

    def info(self) -> dict[str, Any]:
        """What the call process learns at ``ready``."""
        info: dict[str, Any] = {"pid": os.getpid()}
        if self.tts is not None:
            info["sample_rate"] = int(self.tts.sample_rate)
        return info


Emit = Callable[[dict[str, Any]], None]


async def _transcribe(engine: ServedEngine, message: dict[str, Any], emit: Emit) -> None:
    transcript = await engine.stt.transcribe(message["pcm"], int(message["rate"]))
    emit(
        {
            "kind": "result",
            "data": {
                "text": transcript.text,
                "no_speech_prob": transcript.no_speech_prob,
                "avg_logprob": transcript.avg_logprob,
            },
        }
    )


async def _stream(engine: ServedEngine, message: dict[str, Any], emit: Emit) -> None:
    async with contextlib.aclosing(engine.llm.stream(message["messages"])) as deltas:
        async for delta in deltas:
            emit({"kind": "chunk", "data": delta})
    emit({"kind": "end"})


async def _warm_up(engine: ServedEngine, message: dict[str, Any], emit: Emit) -> None:
    if message.get("context"):
        await engine.llm.warm_up(message["system_prompt"], context=message["context"])
    else:
        await engine.llm.warm_up(message["system_prompt"])
    emit({"kind": "end"})


async def _voice(engine: ServedEngine, message: dict[str, Any], emit: Emit) -> Any:
    name = str(message.get("voice", ""))
    if engine.voices is None or not name.strip():
        return engine.tts
    return await engine.voices.tts_for(name)


async def _voice_info(engine: ServedEngine, message: dict[str, Any], emit: Emit) -> None:
    tts = await _voice(engine, message, emit)
    emit({"kind": "result", "data": {"sample_rate": int(tts.sample_rate)}})


async def _synthesize(engine: ServedEngine, message: dict[str, Any], emit: Emit) -> None:
    tts = await _voice(engine, message, emit)
    async with contextlib.aclosing(tts.synthesize(message["text"])) as chunks:
        async for chunk in chunks:
            emit({"kind": "chunk", "data": chunk})
    emit({"kind": "end"})


OPERATIONS: dict[str, Callable[[ServedEngine, dict[str, Any], Emit], Awaitable[None]]] = {
    "transcribe": _transcribe,
    "stream": _stream,
    "warm_up": _warm_up,
    "voice": _voice_info,
    "synthesize": _synthesize,
}


def build(spec: dict[str, Any]) -> ServedEngine:
    """Call the spec's ``factory`` (``"module:function"``) with its ``kwargs``."""
    module_name, _, function = str(spec["factory"]).partition(":")
    factory = getattr(importlib.import_module(module_name), function)
    engine = factory(**spec.get("kwargs", {}))
    if not isinstance(engine, ServedEngine):
        raise TypeError(f"{spec['factory']} returned {type(engine).__name__}, not ServedEngine")
    return engine


async def serve(fd: int, spec: dict[str, Any]) -> int:
    """Build the engine, say ready, serve until the call process closes the socket."""
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)

    def send(request_id: int, message: dict[str, Any]) -> None:
        if not writer.is_closing():
            writer.write(encode(request_id, message))

    try:
        # Loading a model takes seconds; the loop has nothing else to do yet, but the engines'
        # constructors are sync and some start their own loops' work (VoiceLibrary).
        engine = build(spec)
    except Exception as error:
        log.exception("engine %s could not be built", spec.get("engine"))
        send(CONTROL, {"kind": "fatal", "message": f"{type(error).__name__}: {error}"})
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
        return START_FAILED
    send(CONTROL, {"kind": "ready", "info": engine.info()})
    await writer.drain()

    tasks: dict[int, asyncio.Task[None]] = {}

    async def run(request_id: int, message: dict[str, Any]) -> None:
        def emit(response: dict[str, Any]) -> None:
            send(request_id, response)

        try:
            op = message.get("op")
            operation = OPERATIONS.get(str(op))
            extra = (engine.handlers or {}).get(str(op))
            if extra is not None:
                await extra(message, emit)
            elif operation is not None:
                await operation(engine, message, emit)
            else:
                emit({"kind": "error", "message": f"unknown operation {op!r}"})
        except asyncio.CancelledError:
            pass  # the call process stopped listening (barge-in): nothing to answer
        except Exception as error:
            log.exception("request %d (%s) failed", request_id, message.get("op"))
            emit({"kind": "error", "message": f"{type(error).__name__}: {error}"})
        finally:
            tasks.pop(request_id, None)
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    decoder = FrameDecoder()
    try:
        while data := await reader.read(65536):
            decoder.receive_data(data)
            while (frame := decoder.next_frame()) is not None:
                request_id, body = frame
                try:
                    message = decode_body(body)
                except GarbledMessage as error:
                    log.warning("request %d: %s", request_id, error)
                    send(request_id, {"kind": "error", "message": str(error)})
                    continue
                if message.get("op") == "cancel":
                    task = tasks.get(request_id)
                    if task is not None:
                        task.cancel()
                    continue
                tasks[request_id] = asyncio.create_task(
                    run(request_id, message), name=f"request-{request_id}"
                )
    except (WireError, ConnectionError) as error:
        log.error("connection to the call process broken: %s", error)
    for task in list(tasks.values()):
        task.cancel()
    writer.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    parser = argparse.ArgumentParser(prog="python -m callagent.inference.worker")
    parser.add_argument("--fd", type=int, required=True, help="inherited socket to serve on")
    parser.add_argument("--spec", required=True, help="JSON: engine, factory, kwargs")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec)
    # Ctrl-C in a terminal and systemd's stop signal go to the whole process group: the server
    # then winds down and lets its live calls finish, and its workers must keep serving them.
    # A worker ends when the server closes its socket (or dies): end of file below.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=os.environ.get("CALLAGENT_WORKER_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s %(levelname)s [{spec.get('engine', '?')} worker] %(name)s: "
        "%(message)s",
        stream=sys.stderr,
    )
    return asyncio.run(serve(args.fd, spec))


if __name__ == "__main__":
    # Run the module under its own name, not as __main__: the factories return that module's
    # ServedEngine, and a second copy of this module would not know it.
    from callagent.inference.worker import main as worker_main

    sys.exit(worker_main())
