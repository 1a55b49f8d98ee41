"""Fakes shipped with the engine so tests and replays drive the real loop.

`ScriptedModel` plays a list of model turns (text and tool calls) from Python or from a JSON
file (`--model scripted:PATH`). It is a real `Model`: it streams text in fragments, reports
usage, and can be told to fail like a provider.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from engine.models import errors
from engine.models.base import Completion, Message, ModelChunk, TextDelta, ToolCall, ToolSpec, Usage, parse_arguments

Script = list[dict[str, Any]]
"""Each entry: {"text": str, "tool_calls": [{"name", "arguments", "id"?}], "error": code?, "delay": s?}."""


class ScriptExhausted(errors.ModelError):
    """The script has no more turns to play."""

    code = "script-exhausted"


class ScriptedModel:
    """Plays scripted model steps in order; each `stream` call consumes one entry."""

    def __init__(
        self,
        script: Script | None = None,
        *,
        name: str = "scripted",
        context_window: int = 32_000,
        chunk: int = 12,
        responder: Callable[[list[Message], list[ToolSpec]], dict[str, Any]] | None = None,
    ) -> None:
        self.name = name
        """Display name."""
        self.context_window = context_window
        """Pretend window size, for context budgeting."""
        self.script: list[dict[str, Any]] = list(script or [])
        """Remaining steps."""
        self.chunk = chunk
        """Characters per streamed text fragment."""
        self.responder = responder
        """Optional function choosing the step from the request (an oracle), used when the script is empty."""
        self.requests: list[tuple[list[Message], list[ToolSpec]]] = []
        """Every request received (messages, tools), for assertions."""
        self.answer_schemas: list[dict[str, Any] | None] = []
        """The answer schema of each request (None when the answer was free text)."""
        self._n = 0

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedModel:
        """Load a script: a JSON list of steps, or {"steps": [...]}."""
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise errors.BadRequest(f"script file not found: {p}") from None
        except json.JSONDecodeError as exc:
            raise errors.BadRequest(f"script {p} is not valid JSON: line {exc.lineno}: {exc.msg}") from None
        except (UnicodeDecodeError, IsADirectoryError, PermissionError) as exc:
            raise errors.BadRequest(f"script {p} cannot be read as UTF-8 JSON: {exc}") from None
        steps = data.get("steps") if isinstance(data, dict) else data
        if not isinstance(steps, list):
            raise errors.BadRequest(f"script {p} must be a list of steps or an object with 'steps'")
        return cls(steps, name=f"scripted:{p.name}")

    def enqueue(self, *steps: dict[str, Any]) -> None:
        """Append steps to play."""
        self.script.extend(steps)

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> int:
        """A deterministic estimate: about four characters a token."""
        chars = sum(len(m.content) + sum(len(json.dumps(c.arguments)) for c in m.tool_calls) for m in messages)
        chars += sum(len(t.description) + len(json.dumps(t.parameters)) for t in tools or [])
        return chars // 4 + 4 * len(messages)

    async def stream(
        self, messages: list[Message], tools: list[ToolSpec], *, answer_schema: dict[str, Any] | None = None
    ) -> AsyncIterator[ModelChunk]:
        """Play the next step (`answer_schema` is recorded, not enforced: scripts say what they say)."""
        self.requests.append((list(messages), list(tools)))
        self.answer_schemas.append(answer_schema)
        if self.script:
            step = self.script.pop(0)
        elif self.responder is not None:
            step = self.responder(messages, tools)
        else:
            raise ScriptExhausted("the scripted model has no more steps", hint="add steps to the script")
        self._n += 1
        if step.get("delay"):
            await asyncio.sleep(float(step["delay"]))
        if step.get("error"):
            raise _error(step["error"], step.get("message", "scripted failure"), step.get("retry_after"))
        text = step.get("text", "")
        for i in range(0, len(text), self.chunk):
            yield TextDelta(text=text[i : i + self.chunk])
            if step.get("token_delay"):
                await asyncio.sleep(float(step["token_delay"]))
        calls = []
        for j, c in enumerate(step.get("tool_calls", [])):
            args, raw, err = parse_arguments(c.get("arguments", {}))
            calls.append(
                ToolCall(
                    id=c.get("id") or f"call_{self._n}_{j}",
                    name=c["name"],
                    arguments=args,
                    raw_arguments=raw,
                    parse_error=err,
                )
            )
        prompt = self.count_tokens(messages, tools)
        yield Completion(
            text=text,
            tool_calls=calls,
            usage=Usage(prompt_tokens=prompt, completion_tokens=max(1, len(text) // 4 + 8 * len(calls))),
            finish_reason="tool_calls" if calls else "stop",
        )


class ExcludingScriptedModel(ScriptedModel):
    """A ScriptedModel that, like the local model, can take a step again with calls ruled out: it
    records what was ruled out (`excluded`) and plays its next scripted step, which the test
    writes as the model's second try."""

    def __init__(self, script: Script | None = None, **kwargs: Any) -> None:
        super().__init__(script, **kwargs)
        self.excluded: list[list[ToolCall]] = []
        """The calls ruled out, per second try."""

    def stream_excluding(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        exclude: list[ToolCall],
        *,
        answer_schema: dict[str, Any] | None = None,
    ) -> AsyncIterator[ModelChunk]:
        """Record `exclude`, then play the next step."""
        self.excluded.append(list(exclude))
        return self.stream(messages, tools, answer_schema=answer_schema)


def _error(code: str, message: str, retry_after: float | None) -> errors.ModelError:
    table: dict[str, type[errors.ModelError]] = {
        "rate-limited": errors.RateLimited,
        "auth": errors.AuthError,
        "context-overflow": errors.ContextOverflow,
        "unavailable": errors.Unavailable,
        "bad-request": errors.BadRequest,
    }
    return table.get(code, errors.ModelError)(message, retry_after=retry_after)
