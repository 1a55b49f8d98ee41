"""One adapter for every hosted provider (Anthropic, OpenAI, Gemini, Ollama), through litellm.

litellm translates requests and responses; this module makes the result the same whatever the
provider: tool calls become `ToolCall`s (nulls dropped, string-encoded arguments parsed, bad
ones carried as `parse_error`), streams become TextDelta... then one Completion with Usage,
and every failure becomes one of the typed errors in `engine.models.errors`, retried with
backoff when the provider says it is worth it.

litellm takes seconds to import, so it is imported inside the methods that need it, never at
module import; and it must not fetch its price map over the network, hence the environment
variable below.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from engine.models import catalog
from engine.models.base import Completion, Message, ModelChunk, TextDelta, ToolCall, ToolSpec, Usage, parse_arguments
from engine.models.errors import AuthError, BadRequest, ContextOverflow, ModelError, RateLimited, Unavailable

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

CACHE_CONTROL = {"type": "ephemeral"}
"""Anthropic's prompt-cache breakpoint marker."""

_OVERFLOW = re.compile(
    r"prompt is too long|maximum context length|context[_ ]length[_ ]exceeded|context window"
    r"|exceeds the maximum number of tokens|input length exceeds the context length"
    r"|too many tokens|reduce the length of the messages",
    re.IGNORECASE,
)
_RATE = re.compile(r"rate[ _-]?limit|usage limit|quota|too many requests|resource[_ ]exhausted", re.IGNORECASE)
_AUTH = re.compile(r"api[ _-]?key|unauthori[sz]ed|authentication|permission denied|invalid x-api-key", re.IGNORECASE)
_TRY_AGAIN = re.compile(r"(?:try again|retry) in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)
_RETRY_DELAY = re.compile(r'"retryDelay"\s*:\s*"(\d+(?:\.\d+)?)s"')
_SECRETS = [
    re.compile(r"sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{12,}"),
    re.compile(r"AIza[0-9A-Za-z_\-]{20,}"),
    re.compile(r"([?&](?:key|api_key)=)[^&\s\"']+"),
    re.compile(
        r"((?:x-api-key|x-goog-api-key|authorization|api-key)[\"']?\s*[:=]\s*[\"']?)(?:Bearer\s+)?[^\s\"',}]+",
        re.IGNORECASE,
    ),
]
_DOWNLOADS_TOKENIZER = re.compile(r"llama-2|llama-3|replicate|command-r")
_TEXT_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


_warming: threading.Thread | None = None


def loaded() -> bool:
    """Whether litellm has finished importing (so using it costs no start-up time)."""
    module = sys.modules.get("litellm")
    return module is not None and getattr(module, "_lantern_ready", False)


def prewarm() -> None:
    """Start importing litellm in a background thread, so the first model call does not wait."""
    global _warming
    if loaded() or (_warming is not None and _warming.is_alive()):
        return
    _warming = threading.Thread(target=_litellm, name="litellm-import", daemon=True)
    _warming.start()


def _litellm() -> Any:
    """Import litellm once, configured for offline-safe use."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.drop_params = True
    # Lets litellm repair provider quirks, e.g. Anthropic refusing a history with tool calls
    # when a step offers no tools (litellm adds a placeholder tool).
    litellm.modify_params = True
    litellm._lantern_ready = True
    return litellm


def canonical(value: Any) -> Any:
    """A copy whose dicts have sorted keys, so any JSON encoding of it is byte-stable."""
    return json.loads(json.dumps(value, sort_keys=True, ensure_ascii=False))


def redact(text: str, *secrets: str | None) -> str:
    """`text` with API keys (given ones, the providers' env vars, and key-shaped strings) removed."""
    values = [s for s in secrets if s and len(s) >= 6]
    values += [os.environ[v] for v in catalog.KEY_ENV.values() if len(os.environ.get(v, "")) >= 6]
    for value in values:
        text = text.replace(value, "***")
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


@dataclass
class _Slot:
    """A tool call being assembled from stream deltas."""

    id: str | None = None
    name: str = ""
    args: list[str] = field(default_factory=list)


class _Assembler:
    """Collects deltas (text and tool-call fragments keyed by index) into one Completion."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.slots: list[_Slot] = []
        self.by_index: dict[int, _Slot] = {}
        self.usage: Any = None
        self.finish: str | None = None

    def tool_delta(self, tc: Any) -> None:
        """Merge one tool-call delta; a new id at a known index starts a new call."""
        fn = _get(tc, "function") or {}
        index = _get(tc, "index")
        call_id = _get(tc, "id")
        name = _get(fn, "name")
        args = _get(fn, "arguments")
        slot = self.by_index.get(index) if index is not None else None
        if slot is None or (call_id and slot.id and call_id != slot.id):
            slot = _Slot()
            self.slots.append(slot)
            self.by_index[index if index is not None else -len(self.slots)] = slot
        if call_id and not slot.id:
            slot.id = call_id
        if name and not slot.name:
            slot.name = name
        if args:
            slot.args.append(args if isinstance(args, str) else json.dumps(args))

    def calls(self) -> list[ToolCall]:
        """The assembled calls, arguments parsed, unparseable ones marked with parse_error."""
        out = []
        for n, slot in enumerate(self.slots):
            raw = "".join(slot.args)
            args, raw_s, err = parse_arguments(raw)
            if not slot.name:
                err = err or "the tool call had no tool name"
            out.append(
                ToolCall(
                    id=slot.id or f"call_{uuid.uuid4().hex[:12]}_{n}",
                    name=from_wire_name(slot.name) if slot.name else "unknown",
                    arguments=args,
                    raw_arguments=raw_s,
                    parse_error=err,
                )
            )
        return out


def to_wire_name(name: str) -> str:
    """Tool names as providers accept them (^[a-zA-Z0-9_-]{1,64}$): `pack.action` → `pack__action`."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", name.replace(".", "__"))[:64]


def from_wire_name(name: str) -> str:
    """The tool name a provider echoed back, as Lantern knows it (`pack__action` → `pack.action`)."""
    return name.replace("__", ".", 1) if "__" in name else name


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


class _EmptyReply(Unavailable):
    """The provider ended the step with neither text nor a tool call (Gemini's malformed call)."""


class LiteLLMModel:
    """A hosted chat model (anthropic/, openai/, gemini/, ollama/ ...) behind the Model protocol."""

    def __init__(
        self,
        model: str,
        api_base: str | None = None,
        api_key: str | None = None,
        *,
        max_tokens: int = 8192,
        temperature: float | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
        max_wait: float = 60.0,
        stream: bool = True,
        context_window: int | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        provider, bare = catalog.split(model)
        if not provider or not bare:
            raise BadRequest(
                f"model {model!r} has no provider prefix",
                hint="use provider/model, e.g. anthropic/claude-sonnet-4-5, openai/gpt-4.1, gemini/gemini-2.5-flash, ollama/qwen3:8b",
            )
        self.name = model
        """provider/model as the user named it."""
        self.provider = "ollama" if provider == "ollama_chat" else provider
        """anthropic, openai, gemini, ollama, or another litellm provider."""
        # Plain `ollama/` goes to /api/generate, which has no tool calling; /api/chat does.
        self.wire_model = f"ollama_chat/{bare}" if self.provider == "ollama" else model
        """The model id handed to litellm."""
        if api_base and "://" not in api_base:
            # OLLAMA_HOST is often host:port with no scheme; litellm needs a URL.
            api_base = ("http://" if self.provider == "ollama" else "https://") + api_base
        self.api_base = api_base.rstrip("/") if api_base else None
        """Endpoint override (a proxy, a local Ollama, a recorded-wire test server)."""
        self._api_key = api_key
        self.max_tokens = max_tokens
        """Cap on the answer's tokens per step."""
        self.temperature = temperature
        """Sampling temperature; None leaves the provider's default."""
        self.timeout = timeout
        """Seconds before one request counts as unavailable."""
        self.max_retries = max_retries
        """Retries for rate limits and outages before the error reaches the loop."""
        self.max_wait = max_wait
        """Total seconds of waiting the retries may spend, whatever retry-after asks."""
        self.streaming = stream
        """Stream the reply (False asks for one whole response; some Ollama models need it)."""
        self.context_window = context_window or catalog.context_window(
            self.wire_model if self.provider != "ollama" else model
        )
        """Input tokens the model accepts (litellm's model info, else a per-provider fallback)."""
        self._sleep = sleep if sleep is not None else asyncio.sleep

    def __repr__(self) -> str:
        return f"LiteLLMModel({self.name!r}, api_base={self.api_base!r})"

    # ----------------------------------------------------------------- requests

    def request(
        self, messages: list[Message], tools: list[ToolSpec], *, answer_schema: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The keyword arguments for litellm.acompletion (no secrets; the key is added at call time).

        An `answer_schema` travels as structured output (`response_format`, which litellm maps to
        each provider's form) on a step that offers no tools: providers differ on mixing the two,
        and a step with tools may still call one.
        """
        anthropic = self.provider == "anthropic"
        wire_messages: list[dict[str, Any]] = []
        for m in messages:
            d = m.to_openai()
            if m.tool_calls:
                # Send arguments we parsed, re-encoded canonically; a call we could not parse
                # goes back as {} (its tool result carries the parse error to the model).
                d["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {
                            "name": to_wire_name(c.name),
                            "arguments": "{}"
                            if c.parse_error
                            else json.dumps(c.arguments, sort_keys=True, ensure_ascii=False),
                        },
                    }
                    for c in m.tool_calls
                ]
            if m.role == "tool" and d.get("name"):
                d["name"] = to_wire_name(d["name"])
            if anthropic and m.role == "system" and m.content:
                d["content"] = [{"type": "text", "text": m.content, "cache_control": dict(CACHE_CONTROL)}]
            wire_messages.append(d)
        last = wire_messages[-1] if wire_messages else None
        if (
            anthropic
            and last
            and last["role"] in ("user", "tool")
            and isinstance(last.get("content"), str)
            and last["content"]
        ):
            # Third breakpoint: the whole conversation so far, which the next step extends,
            # so each step reads the previous one's prefix from the cache.
            last["content"] = [{"type": "text", "text": last["content"], "cache_control": dict(CACHE_CONTROL)}]
        # Sorted by name with sorted keys: the same tool set always encodes to the same bytes,
        # so the provider's prefix cache keeps hitting from one step to the next.
        wire_tools = [
            canonical(t.model_copy(update={"name": to_wire_name(t.name)}).to_openai())
            for t in sorted(tools, key=lambda t: t.name)
        ]
        if anthropic and wire_tools:
            wire_tools[-1]["cache_control"] = dict(CACHE_CONTROL)
        kwargs: dict[str, Any] = {
            "model": self.wire_model,
            "messages": wire_messages,
            "max_tokens": self.max_tokens,
            "timeout": self.timeout,
            # Retries are ours (typed, bounded, retry-after aware); the OpenAI SDK must not add its own.
            "max_retries": 0,
            "num_retries": 0,
        }
        if wire_tools:
            kwargs["tools"] = wire_tools
        elif answer_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": answer_schema, "strict": False},
            }
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.provider == "ollama":
            # Ollama silently truncates prompts beyond num_ctx; make the server's window ours.
            kwargs["num_ctx"] = self.context_window
        if self.streaming:
            kwargs["stream"] = True
            kwargs["stream_options"] = {"include_usage": True}
        return kwargs

    def _key(self) -> str | None:
        if self._api_key:
            return self._api_key
        env = catalog.key_env(self.name)
        if env and not os.environ.get(env):
            raise AuthError(f"no API key for {self.name}", hint=f"set {env} (or pick another model with --model)")
        return None

    # ------------------------------------------------------------------ tokens

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> int:
        """Tokens the request would use, counted by litellm's tokenizer for this model."""
        kwargs = self.request(messages, tools or [])
        # litellm picks the tokenizer by bare name: Anthropic's own for claude-*, tiktoken's
        # encoding for gpt-*, cl100k for the rest (Gemini and Ollama have none offline).
        name = (
            catalog.split(self.wire_model)[1] if self.provider in ("anthropic", "openai", "gemini") else self.wire_model
        )
        if not loaded():
            # Importing litellm takes seconds; never freeze the caller for a gauge. Estimate
            # now, and load litellm in the background so later counts use the tokenizer.
            prewarm()
            return _estimate(kwargs)
        try:
            litellm = _litellm()
            self._register(litellm)
            before = litellm.disable_hf_tokenizer_download
            # Some names (llama-3, command-r ...) make litellm download a tokenizer: never here.
            litellm.disable_hf_tokenizer_download = before or bool(_DOWNLOADS_TOKENIZER.search(name.lower()))
            try:
                return int(litellm.token_counter(model=name, messages=kwargs["messages"], tools=kwargs.get("tools")))
            finally:
                litellm.disable_hf_tokenizer_download = before
        except Exception:  # noqa: BLE001 - a tokenizer problem must not stop the turn
            return _estimate(kwargs)

    # ----------------------------------------------------------------- stream

    async def stream(
        self, messages: list[Message], tools: list[ToolSpec], *, answer_schema: dict[str, Any] | None = None
    ) -> AsyncIterator[ModelChunk]:
        """One step: TextDelta per content delta, then one Completion; retries what is retryable."""
        kwargs = self.request(messages, tools, answer_schema=answer_schema)
        attempt = 0
        waited = 0.0
        while True:
            emitted = False
            try:
                # aclosing: when the loop closes this stream (a cancelled turn), close the
                # request's generator now rather than whenever it is garbage-collected.
                async with contextlib.aclosing(self._once(kwargs, offered=bool(tools))) as chunks:
                    async for chunk in chunks:
                        emitted = True
                        yield chunk
                return
            except ModelError as err:
                # A reply already half shown cannot be taken back; only retry clean failures.
                if not err.retryable or emitted or attempt >= self.max_retries:
                    raise
                delay = err.retry_after if err.retry_after is not None else min(8.0, 0.5 * 2**attempt)
                if waited + delay > self.max_wait:
                    raise
                await self._sleep(delay)
                waited += delay
                attempt += 1

    def _register(self, litellm: Any) -> None:
        # litellm looks up unknown Ollama models by a blocking POST to /api/show on
        # localhost:11434 (not our api_base), several times per call; telling it what we
        # know (free, tool-capable, our window) keeps it off the wire and the event loop.
        if self.provider == "ollama" and self.wire_model not in litellm.model_cost:
            # Written into the map directly: litellm.register_model itself asks /api/show first.
            litellm.model_cost[self.wire_model] = {
                "max_tokens": self.max_tokens,
                "max_input_tokens": self.context_window,
                "max_output_tokens": self.max_tokens,
                "input_cost_per_token": 0.0,
                "output_cost_per_token": 0.0,
                "litellm_provider": "ollama_chat",
                "mode": "chat",
                "supports_function_calling": True,
            }
            invalidate = getattr(getattr(litellm, "utils", None), "_invalidate_model_cost_lowercase_map", None)
            if callable(invalidate):
                invalidate()

    async def _once(self, kwargs: dict[str, Any], *, offered: bool) -> AsyncGenerator[ModelChunk, None]:
        key = self._key()
        # The first call imports litellm; do it in a thread so the event loop (and the UI) keeps running.
        litellm = _litellm() if loaded() else await asyncio.to_thread(_litellm)
        self._register(litellm)
        acc = _Assembler()
        call = dict(kwargs)
        if key:
            call["api_key"] = key
        response: Any = None
        try:
            response = await litellm.acompletion(**call)
            if self.streaming:
                async for chunk in response:
                    u = getattr(chunk, "usage", None)
                    if u:
                        acc.usage = u
                    for choice in getattr(chunk, "choices", None) or []:
                        delta = choice.delta
                        text = getattr(delta, "content", None)
                        if text:
                            acc.text.append(text)
                            yield TextDelta(text=text)
                        for tc in getattr(delta, "tool_calls", None) or []:
                            acc.tool_delta(tc)
                        if choice.finish_reason:
                            acc.finish = choice.finish_reason
            else:
                acc.usage = getattr(response, "usage", None)
                choice = response.choices[0]
                msg = choice.message
                if msg.content:
                    acc.text.append(msg.content)
                    yield TextDelta(text=msg.content)
                for tc in msg.tool_calls or []:
                    acc.tool_delta(tc)
                acc.finish = choice.finish_reason
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - every provider failure becomes a typed error
            raise self.map_error(exc) from None
        finally:
            # A cancelled turn closes this generator mid-stream: drop the HTTP stream too.
            aclose = getattr(response, "aclose", None) if self.streaming else None
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # noqa: BLE001 - closing a dead stream may fail; nothing to do
                    pass
        yield self._completion(acc, litellm, offered=offered)

    def _completion(self, acc: _Assembler, litellm: Any, *, offered: bool) -> Completion:
        text = "".join(acc.text)
        calls = acc.calls()
        if not calls and offered and self.provider == "ollama":
            text, calls = _text_tool_calls(text)
        if offered and not calls and not text.strip() and self.provider == "gemini":
            # litellm maps Gemini's MALFORMED_FUNCTION_CALL to an empty "stop"; ask again.
            raise _EmptyReply(
                f"{self.name} returned an empty reply (Gemini does this for a malformed function call)",
                hint="try again, or rephrase the request",
            )
        finish = "tool_calls" if calls else (acc.finish or "stop")
        return Completion(text=text, tool_calls=calls, usage=self._usage(acc.usage, litellm), finish_reason=finish)

    def _usage(self, u: Any, litellm: Any) -> Usage:
        if u is None:
            return Usage()
        details = _get(u, "prompt_tokens_details")
        cached = _get(details, "cached_tokens") or _get(u, "cache_read_input_tokens") or 0
        cost = 0.0
        if self.provider != "ollama":  # local models cost nothing, and pricing would ask the server
            try:
                response = litellm.ModelResponse(model=self.wire_model, usage=u)
                cost = float(litellm.completion_cost(completion_response=response, model=self.wire_model) or 0.0)
            except Exception:  # noqa: BLE001 - unknown price: report zero, never fail the step
                cost = 0.0
        return Usage(
            prompt_tokens=int(_get(u, "prompt_tokens") or 0),
            completion_tokens=int(_get(u, "completion_tokens") or 0),
            cached_tokens=int(cached),
            cost_usd=cost,
        )

    # ----------------------------------------------------------------- errors

    def map_error(self, exc: BaseException) -> ModelError:
        """Any exception from litellm or the transport → one typed ModelError, with no secret in it."""
        if isinstance(exc, ModelError):
            return exc
        litellm = _litellm()
        raw = str(exc)
        detail = redact(_provider_message(raw), self._api_key)
        headers = _headers(exc)
        status = getattr(exc, "status_code", None)
        retry_after = _retry_after(headers, raw)
        who = self.name
        env = catalog.key_env(self.name)
        auth_hint = f"check {env}: the provider refused the key" if env else "check the endpoint's credentials"

        overflow = ContextOverflow(
            f"{who}: the request does not fit the context window: {detail}",
            hint="compact the conversation or start a new session",
        )
        if isinstance(exc, litellm.ContextWindowExceededError):
            return overflow
        if isinstance(exc, litellm.RateLimitError) or status == 429:
            return RateLimited(
                f"{who} is rate-limiting requests: {detail}", hint=_wait_hint(retry_after), retry_after=retry_after
            )
        if _OVERFLOW.search(raw):
            return overflow
        if isinstance(exc, (litellm.AuthenticationError, litellm.PermissionDeniedError)) or status in (401, 403):
            return AuthError(f"{who}: authentication failed: {detail}", hint=auth_hint)
        if isinstance(exc, litellm.Timeout) or isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            return Unavailable(
                f"{who} timed out after {self.timeout:g}s", hint="the provider is slow or unreachable; try again"
            )
        if self.provider == "ollama" and isinstance(exc, litellm.APIConnectionError):
            # litellm reports every Ollama HTTP error as a connection error with status 500;
            # the body and headers still say what happened.
            if retry_after is not None or _RATE.search(detail):
                return RateLimited(
                    f"{who} is rate-limiting requests: {detail}", hint=_wait_hint(retry_after), retry_after=retry_after
                )
            if "not found" in detail and "pull" in detail:
                return BadRequest(f"{who}: {detail}", hint=f"run `ollama pull {self.name.split('/', 1)[1]}`")
            if "{" not in detail and re.search(r"timed out|timeout", detail, re.IGNORECASE):
                return Unavailable(
                    f"{who} timed out after {self.timeout:g}s", hint="the model may still be loading; try again"
                )
            if "{" not in detail and re.search(
                r"cannot connect|connect call failed|refused|all connection attempts failed", detail, re.IGNORECASE
            ):
                return Unavailable(
                    f"{who}: cannot reach Ollama at {self.api_base or 'http://localhost:11434'}",
                    hint="start it with `ollama serve`",
                )
            return Unavailable(f"{who}: {detail}", hint="is `ollama serve` running?", retry_after=retry_after)
        if isinstance(
            exc, (litellm.BadRequestError, litellm.NotFoundError, litellm.UnprocessableEntityError)
        ) or status in (400, 404, 422):
            if _AUTH.search(detail) and "key" in detail.lower():
                return AuthError(f"{who}: authentication failed: {detail}", hint=auth_hint)
            return BadRequest(f"{who} refused the request: {detail}")
        if isinstance(
            exc, (litellm.ServiceUnavailableError, litellm.InternalServerError, litellm.APIConnectionError)
        ) or (isinstance(status, int) and status >= 500):
            return Unavailable(
                f"{who} is unavailable: {detail}",
                hint="the provider is down or overloaded; try again shortly",
                retry_after=retry_after,
            )
        if isinstance(exc, OSError):
            return Unavailable(f"{who}: connection failed: {detail}", hint="check the network or the api_base")
        return ModelError(f"{who}: {type(exc).__name__}: {detail}")


def _estimate(kwargs: dict[str, Any]) -> int:
    """About four characters per token: the fallback when no tokenizer is at hand."""
    text = json.dumps(kwargs["messages"], ensure_ascii=False) + json.dumps(
        kwargs.get("tools") or [], ensure_ascii=False
    )
    return len(text) // 4 + 1


def _text_tool_calls(text: str) -> tuple[str, list[ToolCall]]:
    """Tool calls a local model wrote as text (`<tool_call>{...}</tool_call>`) because the
    server's template did not parse them; unparseable ones keep a parse_error for the model."""
    calls: list[ToolCall] = []
    for n, m in enumerate(_TEXT_TOOL_CALL.finditer(text)):
        body = m.group(1).strip()
        try:
            obj = json.loads(body)
        except json.JSONDecodeError as exc:
            name = re.search(r'"name"\s*:\s*"([^"]+)"', body)
            calls.append(
                ToolCall(
                    id=f"call_text_{uuid.uuid4().hex[:8]}_{n}",
                    name=from_wire_name(name.group(1)) if name else "unknown",
                    raw_arguments=body,
                    parse_error=f"the tool call was not valid JSON ({exc.msg} at char {exc.pos}): {body[:200]!r}; "
                    'send it again as {"name": ..., "arguments": {...}}',
                )
            )
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            continue
        args, raw, err = parse_arguments(obj.get("arguments", obj.get("parameters")))
        calls.append(
            ToolCall(
                id=f"call_text_{uuid.uuid4().hex[:8]}_{n}",
                name=from_wire_name(str(obj["name"])),
                arguments=args,
                raw_arguments=raw,
                parse_error=err,
            )
        )
    if calls:
        text = _TEXT_TOOL_CALL.sub("", text).strip()
    return text, calls


def _provider_message(raw: str) -> str:
    """The provider's own error message out of litellm's exception text."""
    start = raw.find("{")
    if start >= 0:
        try:
            body, _ = json.JSONDecoder().raw_decode(raw[start:])
        except ValueError:
            body = None
        if isinstance(body, dict):
            err = body.get("error", body)
            if isinstance(err, dict) and isinstance(err.get("message"), str):
                return err["message"].strip()
            if isinstance(err, str):
                return err.strip()
            if isinstance(body.get("message"), str):
                return body["message"].strip()
    text = re.sub(r"^(?:litellm\.\w+:\s*)+", "", raw.strip())
    text = re.sub(r"^\w*(?:Exception|Error)\s*-\s*", "", text)
    return text.strip()[:500] or raw[:500]


def _headers(exc: BaseException) -> dict[str, str]:
    for source in (
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
        getattr(exc, "headers", None),
    ):
        if source:
            try:
                return {str(k).lower(): str(v) for k, v in dict(source).items()}
            except (TypeError, ValueError):
                continue
    return {}


def _retry_after(headers: dict[str, str], raw: str) -> float | None:
    """Seconds the provider asked us to wait: retry-after-ms, retry-after, Gemini RetryInfo, or the message."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    m = _RETRY_DELAY.search(raw)
    if m:
        return float(m.group(1))
    m = _TRY_AGAIN.search(raw)
    if m:
        return float(m.group(1)) / (1000.0 if m.group(2).lower() == "ms" else 1.0)
    return None


def _wait_hint(retry_after: float | None) -> str:
    return f"wait {retry_after:g}s and try again" if retry_after is not None else "wait a little and try again"
