"""The one contract every model provider meets, and the provider-neutral message types."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class ToolCall(BaseModel):
    """A tool call in the one internal shape, whatever the provider's wire format was."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    """Parsed arguments; explicit nulls already removed."""
    raw_arguments: str | None = None
    """The arguments as the provider sent them, when they came as a string."""
    parse_error: str | None = None
    """Set when the arguments could not be parsed; the loop returns it to the model as a tool error."""


class ToolSpec(BaseModel):
    """A tool as offered to a model: name, description, JSON Schema of its parameters."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI function-tool shape litellm expects for every provider."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


Role = Literal["system", "user", "assistant", "tool"]


class Message(BaseModel):
    """One chat message in provider-neutral form."""

    model_config = ConfigDict(frozen=True)

    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    """Tool name, for tool messages."""
    note: bool = False
    """The engine's own note to the model (the context notes, what this turn already did), sent as a
    user message but not the user's words: a rule about "the user's last message" looks past it."""

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI chat shape (litellm translates it for each provider)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.raw_arguments or json.dumps(c.arguments)},
                }
                for c in self.tool_calls
            ]
            if not self.content:
                out["content"] = None
        if self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
            if self.name:
                out["name"] = self.name
        return out


class Usage(BaseModel):
    """What one completion cost."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens served from the provider's (or llama.cpp's) prefix cache."""
    cost_usd: float = 0.0


class TextDelta(BaseModel):
    """A streamed fragment of assistant text."""

    type: Literal["text"] = "text"
    text: str


class Completion(BaseModel):
    """The end of one model step: full text, normalised tool calls, usage."""

    type: Literal["completion"] = "completion"
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    finish_reason: str = "stop"


ModelChunk = TextDelta | Completion


@runtime_checkable
class Model(Protocol):
    """A chat model with tools. Implementations: litellm adapter, local llama.cpp, scripted."""

    name: str
    """provider/model, for display and the store."""
    context_window: int
    """Tokens the model accepts in one request (prompt + answer)."""

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> int:
        """Tokens the request would use, with the provider's own tokenizer where known."""
        ...

    def stream(
        self, messages: list[Message], tools: list[ToolSpec], *, answer_schema: dict[str, Any] | None = None
    ) -> AsyncIterator[ModelChunk]:
        """Stream one step: zero or more TextDelta, then exactly one Completion; raises ModelError.

        With `answer_schema` (a JSON Schema), a final answer must be one JSON value of that shape,
        returned as JSON text in `Completion.text`: models that can constrain their output (the
        local grammar, providers' structured output) enforce it; the caller validates it either way.
        """
        ...


@runtime_checkable
class ExcludingModel(Protocol):
    """A model that can take a step again with exact calls ruled out of its output (the local
    model, through its grammar). The loop asks it when a step repeats a call that would learn
    nothing; a model without it (a provider's API) reads what the turn already did instead."""

    def stream_excluding(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        exclude: list[ToolCall],
        *,
        answer_schema: dict[str, Any] | None = None,
    ) -> AsyncIterator[ModelChunk]:
        """`stream`, with no call in `exclude` (same tool, same arguments) among the possible outputs."""
        ...


@runtime_checkable
class FixingModel(Protocol):
    """A model whose answer can be shaped (the local model, through its grammar): the answer step
    writes the cause in words, then the fix as one call of `fixes` with arguments of the right
    shape, or says that none of them can make it. The completion's text carries the fix as a
    written call (`pack.action(arg=value, …)`), which a face offers with one key."""

    def stream_answer(
        self, messages: list[Message], fixes: list[ToolSpec], exclude: list[ToolCall] | None = None
    ) -> AsyncIterator[ModelChunk]:
        """The answer step, its fix one call of `fixes` (or a statement that none can make it), never
        a call in `exclude` (made this turn already)."""
        ...


def drop_nulls(args: dict[str, Any]) -> dict[str, Any]:
    """Remove explicit nulls: providers send `null` for optional arguments they mean to omit."""
    return {k: v for k, v in args.items() if v is not None}


def parse_arguments(raw: Any) -> tuple[dict[str, Any], str | None, str | None]:
    """Arguments from the wire → (parsed dict without nulls, raw string or None, error or None)."""
    if raw is None or raw == "":
        return {}, None, None
    if isinstance(raw, dict):
        return drop_nulls(raw), None, None
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            return {}, raw, f"arguments are not valid JSON ({exc.msg} at char {exc.pos}): {raw[:200]!r}"
        if isinstance(value, str):
            # Some providers double-encode: a JSON string holding the JSON object.
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        if not isinstance(value, dict):
            return {}, raw, f"arguments must be a JSON object, got {type(value).__name__}: {raw[:200]!r}"
        return drop_nulls(value), raw, None
    return {}, str(raw), f"arguments must be a JSON object, got {type(raw).__name__}"
