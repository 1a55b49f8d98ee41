"""Models behind one contract (engine.models.base): the embedded local model, litellm's
providers, and the scripted model of tests and replays."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from engine.models.errors import BadRequest, Unavailable

if TYPE_CHECKING:
    from engine.config import Config
    from engine.models.base import Model


def make_model(name: str, cfg: Config | None = None) -> Model:
    """Build the model named by `name` ('local', 'scripted:PATH', or a litellm id)."""
    if name.startswith("scripted:"):
        from engine.testing import ScriptedModel

        return ScriptedModel.from_file(name.split(":", 1)[1])
    if name == "local" or name.startswith("local:"):
        try:
            mod = importlib.import_module("engine.models.local")
        except ImportError as exc:
            raise Unavailable(
                f"the embedded local model is not available: {exc}",
                hint="run `make run` (or `lantern model install`) to install it",
            ) from None
        return mod.LocalModel.create(name)
    if "/" not in name:
        raise BadRequest(
            f"unknown model {name!r}",
            hint="use 'local', 'scripted:PATH', or provider/model such as anthropic/claude-sonnet-4-5",
        )
    from engine.models.litellm_adapter import LiteLLMModel

    return LiteLLMModel(name, api_base=(cfg.ollama_url if cfg and name.startswith("ollama") else None))
