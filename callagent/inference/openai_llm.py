"""Streaming chat replies from an OpenAI-compatible server: llama.cpp's ``llama-server`` (run by
callagent itself or on a bigger box) or vLLM, shared by several callagent nodes.

The server does the batching: each request streams in a slot of its own, so a second call's
reply no longer waits for the first one's (docs/models.md, "LLM server"). The reply comes as
server-sent events (``stream: true``), read on the event loop by httpx — no thread, no model in
this process.

A server that cannot be reached, answers with an error or drops the stream mid-reply raises
:class:`~callagent.inference.errors.EngineUnavailable`, like a crashed worker process: the call
then apologises and hands the caller on (docs/inference.md).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from callagent.dialog.llm import ChatMessage
from callagent.inference.errors import EngineUnavailable

ENGINE = "llm"
WARM_UP_TIMEOUT_S = 600.0
"""How long a warm-up (a whole prompt evaluated, one token answered) may take."""


class EndpointError(RuntimeError):
    """The configured endpoint does not answer as an OpenAI-compatible chat server; the message
    names the setting (raised at start-up by :meth:`OpenAIChatLanguageModel.check`)."""


@dataclass(frozen=True, slots=True)
class OpenAIChatSettings:
    """Where the server is and how to sample.

    ``base_url`` ends before ``/v1`` (``http://10.0.0.5:8080``). ``model`` may stay empty: the
    first model the server lists is asked for (llama-server serves one; vLLM wants its name).
    Sampling matches :class:`~callagent.dialog.llm.LlamaSettings`, so a reply reads the same
    in or out of process. ``setting`` is the name the error messages give for ``base_url``.
    """

    base_url: str
    api_key: str = ""
    model: str = ""
    max_tokens: int = 80
    temperature: float = 0.4
    top_p: float = 0.9
    repeat_penalty: float = 1.1
    seed: int = 7
    connect_timeout_s: float = 3.0
    # A slot may have to wait for a busy batch; a stream with no event for this long is dead.
    read_timeout_s: float = 30.0
    setting: str = "llm.endpoint"
    # Server-specific request fields merged into every request (vLLM's or llama.cpp's own,
    # e.g. ``{"ignore_eos": True}``).
    extra_body: Mapping[str, Any] = field(default_factory=dict)


class OpenAIChatLanguageModel:
    """A :class:`~callagent.dialog.llm.LanguageModel` served over HTTP."""

    def __init__(self, settings: OpenAIChatSettings) -> None:
        self.settings = settings
        self._base = settings.base_url.rstrip("/")
        self._model = settings.model
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: llama.cpp's ``timings`` of the last finished reply (``cache_n``: prompt tokens found
        #: in the slot's cache, ``prompt_n``: evaluated ones); None from other servers.
        self.last_timings: dict[str, Any] | None = None

    def _warm_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(WARM_UP_TIMEOUT_S, connect=self.settings.connect_timeout_s)

    def _http(self) -> httpx.AsyncClient:
        # httpx's connection pool belongs to the loop that opened it: a new loop (a test, a
        # restarted service) gets a client of its own.
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            s = self.settings
            headers = {"Authorization": f"Bearer {s.api_key}"} if s.api_key else {}
            self._client = httpx.AsyncClient(
                headers=headers,
                timeout=httpx.Timeout(s.read_timeout_s, connect=s.connect_timeout_s),
                # One connection per concurrent call: never let the pool queue a reply.
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
            )
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def check(self) -> str:
        """Ask the server which models it serves; return the one requests will name.

        Raises :class:`EndpointError` naming the setting when the URL is not an
        OpenAI-compatible server (unreachable, refused, not JSON, no model).
        """
        name = self.settings.setting
        url = f"{self._base}/v1/models"
        try:
            response = await self._http().get(url)
        except httpx.HTTPError as error:
            raise EndpointError(f"{name} = {self._base!r}: cannot reach {url}: {error!r}") from None
        if response.status_code in (401, 403):
            raise EndpointError(
                f"{name} = {self._base!r}: the server refused the API key (HTTP "
                f"{response.status_code}); set llm.api_key"
            )
        try:
            response.raise_for_status()
            models = [str(m["id"]) for m in response.json()["data"]]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
            raise EndpointError(
                f"{name} = {self._base!r}: GET /v1/models did not answer like an "
                f"OpenAI-compatible server (HTTP {response.status_code}): {error!r}"
            ) from None
        if self._model:
            if models and self._model not in models:
                raise EndpointError(
                    f"llm.model = {self._model!r} is not served at {self._base!r} "
                    f"(it serves {', '.join(models)})"
                )
            return self._model
        if not models:
            raise EndpointError(f"{name} = {self._base!r} serves no model")
        self._model = models[0]
        return self._model

    def _body(self, messages: list[ChatMessage], max_tokens: int, stream: bool) -> dict[str, Any]:
        s = self.settings
        body: dict[str, Any] = {
            "messages": list(messages),
            "stream": stream,
            "max_tokens": max_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": s.seed,
            # llama.cpp's own fields (other servers ignore them): keep the slot's KV cache so
            # the next turn of the call evaluates only its new words; the slot for a request is
            # the idle one whose cache shares the longest prefix with it (the server's
            # --slot-prompt-similarity), so a call's turns find their own slot again.
            "cache_prompt": True,
            "repeat_penalty": s.repeat_penalty,
        }
        if self._model:
            body["model"] = self._model
        body.update(s.extra_body)
        return body

    async def stream(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        """Yield the reply to ``messages`` as text deltas.

        Leaving early (the caller barged in) closes the connection, and llama-server stops
        generating for it. Raises :class:`EngineUnavailable` when the server is unreachable,
        answers with an error, or the stream ends before the reply does.
        """
        url = f"{self._base}/v1/chat/completions"
        body = self._body(messages, self.settings.max_tokens, stream=True)
        self.last_timings = None
        try:
            async with self._http().stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    detail = (await response.aread())[:300].decode(errors="replace")
                    raise EngineUnavailable(
                        ENGINE, f"{url} answered HTTP {response.status_code}: {detail}"
                    )
                finished = False
                async for line in response.aiter_lines():
                    delta, done = self._event(line)
                    if delta:
                        yield delta
                    if done:
                        finished = True
                        break
                if not finished:
                    raise EngineUnavailable(ENGINE, f"{url} ended the reply stream mid-reply")
        except httpx.TimeoutException as error:
            raise EngineUnavailable(ENGINE, f"{url}: no answer in time ({error!r})") from error
        except httpx.HTTPError as error:
            # Connection refused, reset, or closed mid-body: the server is gone or restarting.
            raise EngineUnavailable(ENGINE, f"{url}: {error!r}") from error

    def _event(self, line: str) -> tuple[str, bool]:
        """One server-sent-event line → (text delta, whether the reply is complete)."""
        if not line.startswith("data:"):
            return "", False  # blank separators, comments (": ping"), event names
        data = line[5:].strip()
        if data == "[DONE]":
            return "", True
        try:
            event = json.loads(data)
        except ValueError:
            raise EngineUnavailable(
                ENGINE, f"unreadable event from the server: {data[:200]!r}"
            ) from None
        if "error" in event:
            raise EngineUnavailable(ENGINE, f"the server failed the reply: {event['error']}")
        if "timings" in event:
            self.last_timings = event["timings"]
        choices = event.get("choices") or []
        if not choices:
            return "", False  # a usage-only event
        return (choices[0].get("delta") or {}).get("content") or "", False

    async def warm_up(self, system_prompt: str, *, context: str = "") -> None:
        """Have the server evaluate ``system_prompt`` (and the call's ``context`` after it, as a
        second system message) into a slot's cache, one token generated, so the call's first
        turn pays only for the caller's words: that turn's request shares the longest prefix
        with this slot, so the server hands it the same one."""
        messages: list[ChatMessage] = [{"role": "system", "content": system_prompt}]
        if context:
            messages.append({"role": "system", "content": context})
        messages.append({"role": "user", "content": "Hello."})
        await self._warm(messages, slot=None)

    async def _warm(self, messages: list[ChatMessage], slot: int | None) -> None:
        url = f"{self._base}/v1/chat/completions"
        body = self._body(messages, 1, stream=False)
        if slot is not None:
            body["id_slot"] = slot  # llama.cpp: this slot, not the best-matching idle one
        try:
            # A warm-up evaluates a whole prompt before it answers, so the stream-silence limit
            # does not fit it: the first one at start, four slots of the default model's
            # ~600-token prompt, took longer than 30 s on 2 idle cores (bench/bench_capacity.py).
            response = await self._http().post(url, json=body, timeout=self._warm_timeout())
        except httpx.HTTPError as error:
            raise EngineUnavailable(ENGINE, f"{url}: {error!r}") from error
        if response.status_code != 200:
            raise EngineUnavailable(
                ENGINE, f"{url} answered HTTP {response.status_code}: {response.text[:300]}"
            )
        self.last_timings = response.json().get("timings")
