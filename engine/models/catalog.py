"""What we know about a provider model before calling it: context window, key variable, pricing source.

The numbers come from litellm's own model map. When litellm is already imported we ask
`litellm.get_model_info`; otherwise we read the JSON map shipped inside the litellm package
directly, because importing litellm takes seconds and the console must not pay that to start.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

PROVIDERS = ("anthropic", "openai", "gemini", "ollama", "ollama_chat")
"""Provider prefixes this adapter supports (`ollama` is sent as `ollama_chat`, the /api/chat route)."""

KEY_ENV = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
    "gemini": "GEMINI_API_KEY",
}
"""The environment variable litellm reads each provider's key from (Ollama needs none)."""

FALLBACK_WINDOW = {
    "anthropic": 200_000,
    "openai": 128_000,
    "gemini": 1_048_576,
    "ollama": 8_192,
    "ollama_chat": 8_192,
}
"""Context windows used when litellm's map does not know the model."""

DEFAULT_WINDOW = 8_192
"""Context window for an unknown provider and model: small, so we never overfill."""


@lru_cache(maxsize=1)
def _model_map() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "model_prices_and_context_window_backup.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def split(model: str) -> tuple[str, str]:
    """'anthropic/claude-x' → ('anthropic', 'claude-x'); a bare name has provider ''."""
    provider, sep, rest = model.partition("/")
    return (provider, rest) if sep else ("", model)


def model_info(model: str) -> dict[str, Any]:
    """litellm's entry for `model` (max_input_tokens, costs, ...), or {} when it has none."""
    provider, bare = split(model)
    litellm = sys.modules.get("litellm")
    # get_model_info for Ollama asks the Ollama server (/api/show); never do I/O here.
    if litellm is not None and provider not in ("ollama", "ollama_chat"):
        try:
            return dict(litellm.get_model_info(model))
        except Exception:  # noqa: BLE001 - unknown model: fall through to the map
            pass
    table = _model_map()
    for key in (model, bare, f"{provider}/{bare}"):
        entry = table.get(key)
        if isinstance(entry, dict) and (
            not provider or entry.get("litellm_provider") in (provider, None, "ollama") or key == model
        ):
            return dict(entry)
    return {}


def context_window(model: str) -> int:
    """Input tokens the model accepts, from litellm's model info with a per-provider fallback."""
    info = model_info(model)
    for field in ("max_input_tokens", "max_tokens"):
        value = info.get(field)
        if isinstance(value, int) and value > 0:
            return value
    return FALLBACK_WINDOW.get(split(model)[0], DEFAULT_WINDOW)


def key_env(model: str) -> str | None:
    """The environment variable that holds this provider's key, or None when it needs none."""
    return KEY_ENV.get(split(model)[0])
