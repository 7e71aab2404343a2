"""The OpenAI-compatible LLM client against the real llama-server with the `ci` model: replies
stream, two calls generate at once, a killed server fails the reply in flight with
EngineUnavailable and answers again after its restart, a bad endpoint stops the start.

One llama-server for the module (two slots); it runs on an event loop of its own in a thread, as
it runs beside callagent's loop, so each test's own loop only holds the client. Without the
binary (`make llama-server`) the tests are skipped on a developer machine and fail in CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from callagent.app.llm_server import start_llm
from callagent.dialog.llm import ChatMessage
from callagent.inference.errors import EngineUnavailable
from callagent.inference.llama_server import (
    LlamaServer,
    LlamaServerError,
    LocalServerLanguageModel,
    find_binary,
)
from callagent.inference.openai_llm import (
    EndpointError,
    OpenAIChatLanguageModel,
    OpenAIChatSettings,
)
from callagent.inference.supervisor import EnginePool
from callagent.settings import SettingsError, load_settings

pytestmark = [pytest.mark.real_models, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")
SYSTEM = "You are Sam, a friendly sales agent for Acme Solar. Answer in one short sentence."


def _messages(user: str) -> list[ChatMessage]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


class ServerThread:
    """llama-server supervised on an event loop in a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.model: LocalServerLanguageModel | None = None

    @property
    def server(self) -> LlamaServer:
        assert self.model is not None
        return self.model.server

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 90.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        if self.model is not None:
            self.run(self.model.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    try:
        find_binary()
    except LlamaServerError as error:
        if os.environ.get("CI"):
            pytest.fail(f"{error}: CI must run the llama-server tests")
        pytest.skip(str(error))
    # As `callagent serve` starts it with [llm] server = "local": the ci model, two slots.
    settings = load_settings(
        environ={"CALLAGENT_LLM_SERVER": "local", "CALLAGENT_LLM_PARALLEL": "2"},
        overrides={("models", "profile"): "ci", ("models", "models_dir"): REPO / "models"},
    )
    harness = ServerThread()
    try:
        model = harness.run(start_llm(settings))
        assert isinstance(model, LocalServerLanguageModel)
        harness.model = model
        yield harness
    finally:
        harness.stop()


def _model(server: ServerThread, **overrides: object) -> OpenAIChatLanguageModel:
    return OpenAIChatLanguageModel(
        OpenAIChatSettings(base_url=server.server.base_url, **overrides)  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def _client(
    server: ServerThread, **overrides: object
) -> AsyncIterator[OpenAIChatLanguageModel]:
    model = _model(server, **overrides)
    try:
        yield model
    finally:
        await model.aclose()


async def test_first_warm_up_fills_every_slot(server: ServerThread) -> None:
    # First in the module: the server's slots are still empty. serve's start-up warm-up must
    # leave the prompt in both, or one of two calls at once evaluates it all from scratch.
    assert server.model is not None
    server.run(server.model.warm_up(SYSTEM))

    async def ask(question: str) -> dict[str, Any]:
        async with _client(server) as model:
            async with contextlib.aclosing(model.stream(_messages(question))) as stream:
                assert "".join([d async for d in stream]).strip()
            assert model.last_timings is not None
            return model.last_timings

    for timings in await asyncio.gather(ask("Who are you?"), ask("What does it cost?")):
        assert timings["cache_n"] > timings["prompt_n"]


async def test_reply_streams_in_pieces(server: ServerThread) -> None:
    async with _client(server) as model:
        deltas = [d async for d in model.stream(_messages("What do you sell?"))]
    assert len(deltas) > 1
    assert "".join(deltas).strip()


async def test_warm_up_leaves_the_system_prompt_in_a_slot(server: ServerThread) -> None:
    async with _client(server) as model:
        await model.warm_up(SYSTEM)
        async with contextlib.aclosing(model.stream(_messages("Is it expensive?"))) as stream:
            reply = "".join([d async for d in stream])
        timings = model.last_timings
    assert reply.strip()
    # The slot kept the warmed system prompt: only the caller's words were evaluated.
    assert timings is not None
    assert timings["cache_n"] > timings["prompt_n"]


async def test_a_warm_up_slower_than_the_stream_timeout_still_warms(server: ServerThread) -> None:
    # The stream-silence limit is for replies; a warm-up evaluates a whole new prompt first
    # (at start, several slots of the default model took longer than the 30 s default).
    prompt = " ".join(f"Fact {n}: the plan number {n} costs {n * 7} dollars." for n in range(50))
    async with _client(server, read_timeout_s=0.01) as model:
        await model.warm_up(prompt)
        timings = model.last_timings
    assert timings is not None
    assert timings["prompt_ms"] > 10  # slower than the stream limit, and still no error


async def test_two_streams_generate_at_once(server: ServerThread) -> None:
    # Long replies that cannot end early, so that the first is still generating when the
    # second asks: with one slot (the in-process model) the second's first words would come
    # only after the first reply's last.
    events: list[tuple[str, str]] = []

    async def talk(name: str, model: OpenAIChatLanguageModel, question: str) -> None:
        async for _ in model.stream(_messages(question)):
            events.append((name, "delta"))
        events.append((name, "end"))

    long = {"max_tokens": 60, "extra_body": {"ignore_eos": True}}
    async with _client(server, **long) as first, _client(server, **long) as second:
        started = asyncio.Event()

        async def first_call() -> None:
            async for _ in first.stream(_messages("Tell me about solar panels.")):
                events.append(("first", "delta"))
                started.set()
            events.append(("first", "end"))

        async def second_call() -> None:
            await started.wait()
            await talk("second", second, "How much does it cost?")

        await asyncio.gather(first_call(), second_call())
    second_started = events.index(("second", "delta"))
    first_ended = events.index(("first", "end"))
    assert second_started < first_ended, "the second reply waited for the first one to end"


async def test_killed_server_fails_the_reply_and_restarts(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="callagent.inference.llama_server")
    restarts = server.server.restarts
    long = {"max_tokens": 400, "extra_body": {"ignore_eos": True}}
    async with _client(server, **long) as model:
        got: list[str] = []

        async def listen() -> None:
            async for delta in model.stream(_messages("Tell me a long story.")):
                got.append(delta)
                if len(got) == 3:
                    pid = server.server.pid
                    assert pid is not None
                    os.kill(pid, signal.SIGKILL)

        with pytest.raises(EngineUnavailable) as failure:
            await listen()
        assert failure.value.engine == "llm"
        assert len(got) >= 3

        async def restarted() -> None:
            # The supervisor counts on its own loop, in the server's thread: poll the count.
            while server.server.restarts == restarts:  # noqa: ASYNC110
                await asyncio.sleep(0.05)

        await asyncio.wait_for(restarted(), 60.0)
        assert server.server.state == "ready"
        assert server.server.last_exit == "killed by SIGKILL"
        assert "killed by SIGKILL" in caplog.text
        # /health and /metrics show the node's own server beside the engine workers.
        pool = EnginePool({})
        pool.watch("llm", server.server)
        shown = pool.status()["llm"]
        assert shown["state"] == "ready"
        assert shown["restarts"] == restarts + 1
        assert shown["last_exit"] == "killed by SIGKILL"
        registry = CollectorRegistry()
        registry.register(pool.collector())
        scraped = generate_latest(registry).decode()
        assert f'callagent_engine_restarts_total{{engine="llm"}} {restarts + 1}.0' in scraped
        assert 'callagent_engine_up{engine="llm"} 1.0' in scraped

        async with contextlib.aclosing(model.stream(_messages("Hello?"))) as stream:
            answer = [d async for d in stream if d]
        assert answer


async def test_unreachable_server_is_engine_unavailable() -> None:
    model = OpenAIChatLanguageModel(OpenAIChatSettings(base_url="http://127.0.0.1:9"))
    try:
        with pytest.raises(EngineUnavailable, match="llm engine unavailable"):
            async for _ in model.stream(_messages("Hello?")):
                pass
    finally:
        await model.aclose()


async def test_bad_endpoint_stops_the_start_naming_the_setting() -> None:
    settings = load_settings(environ={"CALLAGENT_LLM_ENDPOINT": "http://127.0.0.1:9"})
    with pytest.raises(SettingsError, match=r"llm\.endpoint = 'http://127\.0\.0\.1:9'"):
        await start_llm(settings)


async def test_endpoint_that_is_not_an_openai_server_is_named(server: ServerThread) -> None:
    model = _model(server, model="no-such-model")
    try:
        with pytest.raises(EndpointError, match=r"llm\.model = 'no-such-model' is not served"):
            await model.check()
    finally:
        await model.aclose()


def test_malformed_endpoint_is_refused_when_settings_load() -> None:
    with pytest.raises(SettingsError, match=r"llm\.endpoint must be an http"):
        load_settings(environ={"CALLAGENT_LLM_ENDPOINT": "localhost:8080"})
    with pytest.raises(SettingsError, match="exclude each other"):
        load_settings(
            environ={
                "CALLAGENT_LLM_ENDPOINT": "http://10.0.0.5:8080",
                "CALLAGENT_LLM_SERVER": "local",
            }
        )


def test_missing_server_binary_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(LlamaServerError, match="no such file"):
        find_binary(str(tmp_path / "llama-server"))
