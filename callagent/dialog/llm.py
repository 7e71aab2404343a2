"""Streaming chat completion with a local GGUF model through llama-cpp-python.

Generation runs in one worker thread (DESIGN.md practice 5: inference never on the event
loop); tokens are handed to the loop as they come. Leaving the stream early — the caller
barged in — stops generation in the worker at the next token.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypedDict


class ChatMessage(TypedDict):
    """One message of the conversation, in the OpenAI/llama.cpp chat format."""

    role: Literal["system", "user", "assistant"]
    content: str


class LanguageModel(Protocol):
    """Anything that streams a chat reply."""

    def stream(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        """Yield the reply to ``messages`` as text deltas."""
        ...

    async def warm_up(self, system_prompt: str, *, context: str = "") -> None:
        """Prepare for requests that start with ``system_prompt`` - followed by a second system
        message ``context`` when it is given - e.g. fill a prefix cache."""
        ...


@dataclass(frozen=True, slots=True)
class LlamaSettings:
    """llama.cpp options.

    One thread by default: during a call the LLM generates while Piper speaks the previous
    clause, and on 2 cores a 2-thread llama.cpp (OpenMP, spinning) then collapses from ~60 to
    ~2 tokens/s; one thread keeps ~30 tokens/s under that load (docs/pipeline.md).
    """

    n_ctx: int = 2048
    n_threads: int = 1
    max_tokens: int = 80
    temperature: float = 0.4
    top_p: float = 0.9
    repeat_penalty: float = 1.1
    seed: int = 7


_DONE = object()


class LlamaCppLanguageModel:
    """A GGUF chat model; the model's own chat template formats the messages."""

    def __init__(
        self,
        model_path: Path,
        settings: LlamaSettings | None = None,
        executor: Executor | None = None,
    ) -> None:
        from llama_cpp import Llama

        self.settings = settings or LlamaSettings()
        self._llama = Llama(
            model_path=str(model_path),
            n_ctx=self.settings.n_ctx,
            n_threads=self.settings.n_threads,
            seed=self.settings.seed,
            verbose=False,
        )
        # One worker: the model holds one KV cache, so requests take turns. Consecutive
        # requests share the system prompt, which llama.cpp keeps evaluated.
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm")

    async def stream(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def generate() -> None:
            try:
                for delta in self._deltas(messages):
                    if stop.is_set():
                        break
                    emit(delta)
            except BaseException as error:  # handed to the awaiting side, raised there
                emit(error)
            finally:
                emit(_DONE)

        worker = loop.run_in_executor(self._executor, generate)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, str)
                yield item
        finally:
            stop.set()
            # Let the worker notice the stop flag; its result (or error) was already delivered.
            worker.add_done_callback(lambda f: f.exception())

    async def warm_up(self, system_prompt: str, *, context: str = "") -> None:
        """Evaluate the system prompt (and the call's context after it) once, so the first
        caller turn finds it cached: llama.cpp reuses the longest common token prefix of
        consecutive requests; one token is generated and dropped."""
        messages: list[ChatMessage] = [{"role": "system", "content": system_prompt}]
        if context:
            messages.append({"role": "system", "content": context})
        messages.append({"role": "user", "content": "Hello."})
        async with contextlib.aclosing(self.stream(messages)) as deltas:
            async for _ in deltas:
                break

    def _deltas(self, messages: list[ChatMessage]) -> Iterator[str]:
        s = self.settings
        chunks: Any = self._llama.create_chat_completion(
            messages=list(messages),  # type: ignore[arg-type]
            stream=True,
            max_tokens=s.max_tokens,
            temperature=s.temperature,
            top_p=s.top_p,
            repeat_penalty=s.repeat_penalty,
        )
        try:
            for chunk in chunks:
                content = chunk["choices"][0]["delta"].get("content")
                if content:
                    yield content
        finally:
            chunks.close()
