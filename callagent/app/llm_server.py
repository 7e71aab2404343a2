"""Settings → the dialog's LLM when it is a server: llama-server run by this node
(``[llm] server = "local"``) or an OpenAI-compatible endpoint shared by several nodes
(``[llm] endpoint = URL``). docs/models.md, "LLM server"; docs/configuration.md, ``[llm]``."""

from __future__ import annotations

import logging
from pathlib import Path

from callagent.dialog.llm import LanguageModel, LlamaSettings
from callagent.inference.llama_server import (
    LlamaServerSettings,
    find_binary,
    start_local_server,
)
from callagent.inference.openai_llm import OpenAIChatLanguageModel, OpenAIChatSettings
from callagent.modelfiles import resolve_profile
from callagent.settings import Settings, SettingsError

log = logging.getLogger(__name__)


def chat_settings(settings: Settings, base_url: str) -> OpenAIChatSettings:
    """Sampling as in-process (:class:`LlamaSettings`' defaults), the endpoint's access."""
    sampling = LlamaSettings()
    llm = settings.llm
    return OpenAIChatSettings(
        base_url=base_url,
        api_key=llm.api_key,
        model=llm.model,
        max_tokens=sampling.max_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        repeat_penalty=sampling.repeat_penalty,
        seed=sampling.seed,
        read_timeout_s=llm.timeout_s,
    )


async def start_llm(settings: Settings) -> OpenAIChatLanguageModel | None:
    """The LLM server's client, the server started first when it is ours; None when the LLM
    runs in-process (the default).

    A remote endpoint is asked for its models before anything else starts: a wrong URL, key or
    model name stops the start with a :class:`SettingsError` naming the setting.
    """
    llm = settings.llm
    if llm.remote:
        from callagent.inference.openai_llm import EndpointError

        model = OpenAIChatLanguageModel(chat_settings(settings, llm.endpoint))
        try:
            name = await model.check()
        except EndpointError as error:
            await model.aclose()
            raise SettingsError(str(error)) from None
        log.info("LLM: %s at %s (remote)", name, llm.endpoint)
        return model
    if llm.server != "local":
        return None
    models = settings.models
    profile = resolve_profile(models.profile, Path(models.models_dir))
    server = LlamaServerSettings(
        binary=find_binary(llm.server_binary),
        model_path=profile.llm_path,
        parallel=llm.parallel,
        n_ctx=LlamaSettings().n_ctx,
        threads=models.llm_threads,
        port=llm.port,
    )
    local = await start_local_server(server, chat_settings(settings, "http://unused"))
    log.info("LLM: llama-server at %s with %d slots (local)", local.server.base_url, llm.parallel)
    return local


async def close_llm(model: LanguageModel) -> None:
    """Close a server LLM's connections (and stop the server when it is ours)."""
    if isinstance(model, OpenAIChatLanguageModel):
        await model.aclose()
