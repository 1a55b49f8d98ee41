"""The litellm adapter against recorded provider wire responses (Anthropic, OpenAI, Gemini, Ollama).

A real HTTP server on 127.0.0.1 replays each provider's responses byte for byte; litellm talks
to it through `api_base`, so every parse and translation below is litellm's real code path.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from wire_server import WIRE

from engine import events as ev
from engine.loop import Session
from engine.models.base import Completion, Message, TextDelta, ToolCall, ToolSpec
from engine.models.errors import AuthError, BadRequest, ContextOverflow, RateLimited, Unavailable
from engine.models.litellm_adapter import LiteLLMModel
from engine.toolbox import Toolbox
from engine.tools import python_tool

MODELS = {
    "anthropic": "anthropic/claude-sonnet-4-5",
    "openai": "openai/gpt-4.1",
    "gemini": "gemini/gemini-2.0-flash",
    "ollama": "ollama/qwen3:8b",
}
PROVIDERS = list(MODELS)
KEY = "test-key-0000-not-a-real-secret"

TOOLS = [
    ToolSpec(
        name="get_pods",
        description="List pods in a namespace.",
        parameters={
            "type": "object",
            "properties": {
                "namespace": {"type": "string", "description": "Kubernetes namespace"},
                "selector": {"type": "string", "description": "Label selector, optional"},
            },
            "required": ["namespace"],
        },
    ),
    ToolSpec(
        name="get_logs",
        description="Tail a pod's logs.",
        parameters={
            "type": "object",
            "properties": {
                "pod": {"type": "string"},
                "namespace": {"type": "string"},
                "tail_lines": {"type": "integer", "default": 100},
            },
            "required": ["pod", "namespace"],
        },
    ),
    ToolSpec(
        name="get_events",
        description="Recent Kubernetes events in a namespace.",
        parameters={
            "type": "object",
            "properties": {"namespace": {"type": "string"}, "since_minutes": {"type": "integer"}},
            "required": ["namespace"],
        },
    ),
]
MESSAGES = [
    Message(role="system", content="You are Lantern, an on-call assistant. Investigate before proposing fixes."),
    Message(role="user", content="why is checkout failing?"),
]


class Sleeps(list):
    """Records the waits the adapter asks for instead of sleeping through them."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def model_for(provider: str, wire, case: str | None = None, **kw) -> LiteLLMModel:
    streamed = (
        bool(case)
        and any((WIRE / provider).glob(case + ".sse"))
        or bool(case)
        and any((WIRE / provider).glob(case + ".ndjson"))
    )
    kw.setdefault("stream", streamed)
    kw.setdefault("sleep", Sleeps())
    return LiteLLMModel(MODELS[provider], api_base=wire.url, api_key=KEY, **kw)


async def run(model: LiteLLMModel, messages=MESSAGES, tools=TOOLS) -> tuple[list[str], Completion]:
    deltas, done = [], []
    async for chunk in model.stream(messages, tools):
        if isinstance(chunk, TextDelta):
            deltas.append(chunk.text)
        else:
            done.append(chunk)
    assert len(done) == 1, "a step ends with exactly one Completion"
    return deltas, done[0]


async def play(provider: str, wire, *cases: str, **kw) -> tuple[list[str], Completion, LiteLLMModel]:
    wire.play(provider, *cases)
    model = model_for(provider, wire, cases[-1], **kw)
    deltas, done = await run(model)
    return deltas, done, model


ENDPOINT = {
    "anthropic": "/v1/messages",
    "openai": "/chat/completions",
    "gemini": "/models/gemini-2.0-flash:generateContent",
    "ollama": "/api/chat",
}


# ----------------------------------------------------------------------------- tool calls


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_tool_call(provider, wire):
    _, done, _ = await play(provider, wire, "tool_call")
    assert [(c.name, c.arguments, c.parse_error) for c in done.tool_calls] == [
        ("get_pods", {"namespace": "checkout"}, None)
    ]
    assert done.tool_calls[0].id
    assert done.finish_reason == "tool_calls"
    assert wire.requests[0].path == ENDPOINT[provider]
    assert done.usage.prompt_tokens > 0 and done.usage.completion_tokens > 0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_parallel_tool_calls(provider, wire):
    _, done, _ = await play(provider, wire, "parallel_tool_calls")
    assert [(c.name, c.arguments) for c in done.tool_calls] == [
        ("get_logs", {"pod": "checkout-7d9f8b6c5-x2kqp", "namespace": "checkout", "tail_lines": 200}),
        ("get_events", {"namespace": "checkout"}),
    ]
    assert len({c.id for c in done.tool_calls}) == 2


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_streamed_tool_call(provider, wire):
    deltas, done, _ = await play(provider, wire, "streamed_tool_call")
    assert len(deltas) >= 2, "text arrives as several deltas"
    assert "".join(deltas) == done.text and "crash" in done.text
    assert [(c.name, c.arguments, c.parse_error) for c in done.tool_calls] == [
        ("get_logs", {"pod": "checkout-7d9f8b6c5-x2kqp", "namespace": "checkout", "tail_lines": 100}, None)
    ]
    assert done.usage.prompt_tokens > 0 and done.usage.completion_tokens > 0
    req = wire.requests[0]
    if provider == "gemini":
        assert req.path == "/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    else:
        assert req.json()["stream"] is True


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_streamed_parallel_tool_calls_assembled_by_index(provider, wire):
    _, done, _ = await play(provider, wire, "streamed_parallel_tool_calls")
    assert [(c.name, c.arguments, c.parse_error) for c in done.tool_calls] == [
        ("get_pods", {"namespace": "checkout"}, None),
        ("get_events", {"namespace": "checkout", "since_minutes": 30}, None),
    ]
    assert len({c.id for c in done.tool_calls}) == 2


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_null_optional_argument_is_dropped(provider, wire):
    _, done, _ = await play(provider, wire, "null_optional_argument")
    (call,) = done.tool_calls
    assert call.arguments == {"namespace": "checkout"} and call.parse_error is None


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_string_encoded_arguments_are_parsed(provider, wire):
    _, done, _ = await play(provider, wire, "string_encoded_arguments")
    (call,) = done.tool_calls
    assert call.arguments == {"namespace": "checkout", "selector": "app=web"} and call.parse_error is None


@pytest.mark.parametrize("provider", ["anthropic", "openai", "ollama"])
async def test_garbled_arguments_become_a_parse_error(provider, wire):
    _, done, _ = await play(provider, wire, "garbled_arguments")
    (call,) = done.tool_calls
    assert call.name == "get_logs"
    assert call.arguments == {}
    assert call.parse_error and "not valid JSON" in call.parse_error
    assert "checkout-7d9f8b6c5-x2kqp" in call.parse_error, "the model sees what it sent"
    if provider == "ollama":
        assert done.text == "", "the unparsed <tool_call> text is not shown as an answer"


async def test_gemini_garbled_string_arguments_become_a_parse_error(wire):
    # Defensive: the documented `args` is an object; a truncated string must still reach the model.
    _, done, _ = await play("gemini", wire, "garbled_string_arguments")
    (call,) = done.tool_calls
    assert call.name == "get_logs" and call.arguments == {}
    assert call.parse_error and "checkout-7d9f8b6c5-x2kqp" in call.parse_error


async def test_gemini_malformed_function_call_is_asked_again(wire):
    # litellm turns finishReason MALFORMED_FUNCTION_CALL into an empty "stop": retry the step.
    _, done, model = await play("gemini", wire, "garbled_arguments", "tool_call")
    assert [c.name for c in done.tool_calls] == ["get_pods"]
    assert len(wire.requests) == 2 and len(model._sleep) == 1


async def test_gemini_malformed_function_call_persisting_is_unavailable(wire):
    wire.play("gemini", "garbled_arguments", "garbled_arguments")
    model = model_for("gemini", wire, "garbled_arguments", max_retries=1)
    with pytest.raises(Unavailable, match="empty reply"):
        await run(model)


# ----------------------------------------------------------------------------- errors

RETRY_AFTER = {"anthropic": 7.0, "openai": 2.5, "gemini": 5.0, "ollama": 4.0}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rate_limit_waits_retry_after_then_succeeds(provider, wire):
    _, done, model = await play(provider, wire, "rate_limit", "tool_call")
    assert model._sleep == [RETRY_AFTER[provider]]
    assert len(wire.requests) == 2
    assert [c.name for c in done.tool_calls] == ["get_pods"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rate_limit_surfaces_typed_with_retry_after(provider, wire):
    wire.play(provider, "rate_limit")
    model = model_for(provider, wire, "rate_limit", max_retries=0)
    with pytest.raises(RateLimited) as info:
        await run(model)
    err = info.value
    assert err.retryable and err.retry_after == RETRY_AFTER[provider]
    assert f"{RETRY_AFTER[provider]:g}s" in err.hint
    assert KEY not in err.message and KEY not in str(err)


async def test_rate_limit_wait_is_capped(wire):
    wire.play("anthropic", "rate_limit")
    model = model_for("anthropic", wire, "rate_limit", max_wait=3.0)
    with pytest.raises(RateLimited):
        await run(model)
    assert model._sleep == [] and len(wire.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_context_overflow_is_typed_and_not_retried(provider, wire):
    wire.play(provider, "context_overflow")
    model = model_for(provider, wire, "context_overflow")
    with pytest.raises(ContextOverflow) as info:
        await run(model)
    assert len(wire.requests) == 1 and model._sleep == []
    body = (WIRE / provider / "context_overflow.http").read_text().split("\n\n", 1)[1]
    provider_message = json.loads(body)["error"]
    provider_message = provider_message if isinstance(provider_message, str) else provider_message["message"]
    assert provider_message in info.value.message


@pytest.mark.parametrize(
    ("provider", "env"),
    [("anthropic", "ANTHROPIC_API_KEY"), ("openai", "OPENAI_API_KEY"), ("gemini", "GEMINI_API_KEY")],
)
async def test_refused_key_is_auth_error_naming_the_variable(provider, env, wire):
    wire.play(provider, "auth_error")
    model = model_for(provider, wire, "auth_error")
    with pytest.raises(AuthError) as info:
        await run(model)
    assert env in info.value.hint and KEY not in str(info.value)
    assert len(wire.requests) == 1, "auth errors are not retried"


async def test_openai_key_in_error_text_is_redacted(wire, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-abcdefghijklmnop1234567890wxyz")
    wire.play("openai", "auth_error")
    model = LiteLLMModel(MODELS["openai"], api_base=wire.url, stream=False, sleep=Sleeps())
    with pytest.raises(AuthError) as info:
        await run(model)
    assert "abcdefghijklmnop" not in info.value.message
    assert wire.requests[0].headers["authorization"] == "Bearer sk-proj-abcdefghijklmnop1234567890wxyz"


@pytest.mark.parametrize(
    ("provider", "env"),
    [("anthropic", "ANTHROPIC_API_KEY"), ("openai", "OPENAI_API_KEY"), ("gemini", "GEMINI_API_KEY")],
)
async def test_missing_key_fails_before_any_request(provider, env, wire, monkeypatch):
    monkeypatch.delenv(env, raising=False)
    model = LiteLLMModel(MODELS[provider], api_base=wire.url, sleep=Sleeps())
    with pytest.raises(AuthError) as info:
        await run(model)
    assert env in info.value.hint and wire.requests == []


async def test_ollama_needs_no_key(wire, monkeypatch):
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    wire.play("ollama", "tool_call")
    model = LiteLLMModel(MODELS["ollama"], api_base=wire.url, stream=False, sleep=Sleeps())
    _, done = await run(model)
    assert done.tool_calls[0].name == "get_pods"


@pytest.mark.parametrize(
    ("provider", "case"),
    [("anthropic", "overloaded"), ("openai", "server_error"), ("gemini", "server_error"), ("ollama", "server_busy")],
)
async def test_outage_is_retried_with_backoff(provider, case, wire):
    _, done, model = await play(provider, wire, case, case, "tool_call")
    assert [c.name for c in done.tool_calls] == ["get_pods"]
    assert model._sleep == [0.5, 1.0], "exponential backoff when the provider gives no retry-after"


@pytest.mark.parametrize(
    ("provider", "case"),
    [("anthropic", "overloaded"), ("openai", "server_error"), ("gemini", "server_error"), ("ollama", "server_busy")],
)
async def test_outage_after_retries_is_unavailable(provider, case, wire):
    wire.play(provider, case, case)
    model = model_for(provider, wire, case, max_retries=1)
    with pytest.raises(Unavailable):
        await run(model)
    assert len(wire.requests) == 2


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_slow_provider_times_out_as_unavailable(provider, wire):
    wire.play(provider, "tool_call", delay=2.0)
    model = model_for(provider, wire, "tool_call", timeout=0.5, max_retries=0)
    with pytest.raises(Unavailable) as info:
        await run(model)
    assert "timed out" in info.value.message


async def test_ollama_not_running_says_how_to_start_it(litellm_loaded):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    model = LiteLLMModel(MODELS["ollama"], api_base=f"http://127.0.0.1:{port}", max_retries=0, sleep=Sleeps())
    with pytest.raises(Unavailable) as info:
        await run(model)
    assert "cannot reach Ollama" in info.value.message and "ollama serve" in info.value.hint


async def test_anthropic_error_event_mid_stream_is_retried(wire):
    # Anthropic can answer 200 and then send `event: error` (overloaded) inside the stream.
    wire.play("anthropic", "stream_overloaded", "streamed_tool_call")
    model = model_for("anthropic", wire, "streamed_tool_call")
    deltas, done = await run(model)
    assert "".join(deltas) == done.text and "crash" in done.text
    assert [c.name for c in done.tool_calls] == ["get_logs"]
    assert len(wire.requests) == 2 and model._sleep == [0.5]


async def test_error_after_text_was_shown_is_not_retried(wire):
    # Text already on screen cannot be taken back, so the step fails instead of repeating it.
    wire.play("anthropic", "stream_overloaded_after_text", "streamed_tool_call")
    model = model_for("anthropic", wire, "stream_overloaded_after_text")
    seen = []
    with pytest.raises(Unavailable, match="Overloaded"):
        async for chunk in model.stream(MESSAGES, TOOLS):
            seen.append(chunk)
    assert [c.text for c in seen] == ["Looking at the checkout pods"]
    assert len(wire.requests) == 1


async def test_gemini_thought_signature_goes_back_with_the_call(wire):
    # Gemini 2.5+/3 reject a history whose function calls lost their thoughtSignature.
    wire.play("gemini", "streamed_thought_signature", "tool_call")
    model = LiteLLMModel("gemini/gemini-2.5-flash", api_base=wire.url, api_key=KEY, sleep=Sleeps())
    _, done = await run(model)
    (call,) = done.tool_calls
    assert call.name == "get_pods" and call.arguments == {"namespace": "checkout"}
    history = MESSAGES + [
        Message(role="assistant", content="", tool_calls=[call]),
        Message(role="tool", tool_call_id=call.id, name="get_pods", content="checkout-7d9f 0/1 CrashLoopBackOff"),
    ]
    model.streaming = False
    await run(model, history)
    sent = wire.requests[1].json()["contents"]
    part = sent[-2]["parts"][0]
    assert part["function_call"]["name"] == "get_pods"
    assert part["thoughtSignature"].startswith("CpwCAdHtim")
    assert sent[-1]["parts"][0]["function_response"]["name"] == "get_pods"


async def test_ollama_missing_model_says_how_to_pull(wire):
    wire.play("ollama", "model_not_found")
    model = model_for("ollama", wire, "model_not_found")
    with pytest.raises(BadRequest) as info:
        await run(model)
    assert "ollama pull qwen3:8b" in info.value.hint


async def test_connection_refused_is_unavailable(litellm_loaded):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    model = LiteLLMModel(
        MODELS["openai"], api_base=f"http://127.0.0.1:{port}", api_key=KEY, max_retries=0, sleep=Sleeps()
    )
    with pytest.raises(Unavailable):
        await run(model)


# ----------------------------------------------------------------------------- prefix and cache


async def test_anthropic_request_carries_cache_breakpoints(wire):
    await play("anthropic", wire, "tool_call")
    body = wire.requests[0].json()
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert all("cache_control" not in t for t in body["tools"][:-1]), "one breakpoint: the end of the tool block"
    assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}, "and the conversation so far"
    assert json.dumps(body).count("cache_control") == 3, "Anthropic allows at most four"
    assert wire.requests[0].headers["x-api-key"] == KEY


async def test_anthropic_tool_result_breakpoint_and_history_with_garbled_call(wire):
    # The loop sends a garbled call back with its parse error: litellm must accept that history.
    bad = ToolCall(
        id="toolu_bad", name="get_logs", raw_arguments='{"pod": "x', parse_error="arguments are not valid JSON"
    )
    history = MESSAGES + [
        Message(role="assistant", content="", tool_calls=[bad]),
        Message(role="tool", tool_call_id="toolu_bad", name="get_logs", content="error: arguments are not valid JSON"),
    ]
    wire.play("anthropic", "final_answer")
    model = model_for("anthropic", wire, "final_answer")
    _, done = await run(model, history)
    assert "DATABASE_URL" in done.text
    sent = wire.requests[0].json()["messages"]
    assert sent[-2]["content"][-1] == {"type": "tool_use", "id": "toolu_bad", "name": "get_logs", "input": {}}
    result = sent[-1]["content"][-1]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_bad"
    assert result["content"][-1]["cache_control"] == {"type": "ephemeral"}


@pytest.mark.parametrize("provider", ["openai", "gemini", "ollama"])
async def test_other_providers_get_no_cache_control(provider, wire):
    await play(provider, wire, "tool_call")
    assert b"cache_control" not in wire.requests[0].body


def _prefix(provider: str, body: dict) -> str:
    if provider == "anthropic":
        return json.dumps([body["tools"], body["system"]])
    if provider == "gemini":
        return json.dumps([body["tools"], body["system_instruction"]])
    return json.dumps([body["tools"], body["messages"][0]])


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_prompt_prefix_is_byte_identical_across_calls(provider, wire):
    # Same tools offered in another order with keys in another order: same bytes on the wire.
    shuffled = [
        ToolSpec(name=t.name, description=t.description, parameters=dict(reversed(list(t.parameters.items()))))
        for t in reversed(TOOLS)
    ]
    wire.play(provider, "tool_call", "tool_call")
    model = model_for(provider, wire, "tool_call")
    await run(model, MESSAGES, TOOLS)
    await run(
        model,
        MESSAGES + [Message(role="assistant", content="Looking."), Message(role="user", content="and now?")],
        shuffled,
    )
    first, second = (r.json() for r in wire.requests)
    assert _prefix(provider, first) == _prefix(provider, second)
    raw_first, raw_second = (r.body for r in wire.requests)
    tools_bytes = json.dumps(first["tools"], separators=(",", ":")).encode()
    if tools_bytes in raw_first:  # compact encoders: the tool block is literally the same bytes
        assert tools_bytes in raw_second


@pytest.mark.parametrize(
    ("provider", "cached"), [("anthropic", 1856), ("openai", 1920), ("gemini", 2011), ("ollama", 0)]
)
async def test_cache_hits_are_reported(provider, cached, wire):
    _, done, _ = await play(provider, wire, "tool_call")
    assert done.usage.cached_tokens == cached


@pytest.mark.parametrize(("provider", "cached"), [("anthropic", 1856), ("openai", 2048), ("gemini", 2011)])
async def test_streamed_cache_hits_are_reported(provider, cached, wire):
    _, done, _ = await play(provider, wire, "streamed_tool_call")
    assert done.usage.cached_tokens == cached


@pytest.mark.parametrize("provider", ["anthropic", "openai", "gemini"])
@pytest.mark.parametrize("case", ["tool_call", "streamed_tool_call"])
async def test_cost_comes_from_litellm_prices(provider, case, wire, litellm_loaded):
    _, done, model = await play(provider, wire, case)
    u = done.usage
    info = litellm_loaded.get_model_info(model.wire_model)
    fresh = u.prompt_tokens - u.cached_tokens
    # Never more than list price for every prompt token, never less than the answer's price.
    assert u.completion_tokens * info["output_cost_per_token"] <= u.cost_usd
    assert (
        u.cost_usd
        <= (fresh + u.cached_tokens) * info["input_cost_per_token"] * 1.25
        + u.completion_tokens * info["output_cost_per_token"]
        + 1e-12
    )


async def test_local_ollama_costs_nothing(wire):
    _, local, _ = await play("ollama", wire, "tool_call")
    assert local.usage.cost_usd == 0


async def test_anthropic_history_with_tool_calls_but_no_tools_offered(wire):
    # Anthropic refuses tool_use blocks when no tools are declared; the adapter still sends it.
    call = ToolCall(id="toolu_1", name="get_pods", arguments={"namespace": "checkout"})
    history = MESSAGES + [
        Message(role="assistant", content="", tool_calls=[call]),
        Message(role="tool", tool_call_id="toolu_1", name="get_pods", content="checkout-7d9f 0/1 CrashLoopBackOff"),
    ]
    wire.play("anthropic", "final_answer")
    _, done = await run(model_for("anthropic", wire, "final_answer"), history, [])
    assert "DATABASE_URL" in done.text
    assert wire.requests[0].json()["tools"], "litellm declares a placeholder tool"


# ----------------------------------------------------------------------------- tokens and windows


@pytest.mark.parametrize("provider", PROVIDERS)
def test_count_tokens_uses_litellm_offline(provider, litellm_loaded):
    model = LiteLLMModel(MODELS[provider], api_key=KEY)
    bare = model.count_tokens(MESSAGES)
    with_tools = model.count_tokens(MESSAGES, TOOLS)
    longer = model.count_tokens(
        MESSAGES + [Message(role="user", content="the checkout pods restart every few minutes " * 20)]
    )
    assert 10 < bare < with_tools and bare < longer


def test_count_tokens_uses_each_providers_tokenizer(litellm_loaded):
    text = "kubectl -n checkout get pods -o jsonpath={.items[*].status.containerStatuses[0].restartCount} ÜÖ 日本語"
    msgs = [Message(role="user", content=text)]
    wire_msgs = [{"role": "user", "content": text}]
    claude = LiteLLMModel("anthropic/claude-sonnet-4-5").count_tokens(msgs)
    gpt = LiteLLMModel("openai/gpt-4.1").count_tokens(msgs)
    assert claude == litellm_loaded.token_counter(model="claude-sonnet-4-5", messages=wire_msgs)
    assert gpt == litellm_loaded.token_counter(model="gpt-4.1", messages=wire_msgs)
    assert claude != gpt, "Anthropic's tokenizer and OpenAI's o200k split this text differently"


def test_context_windows_come_from_litellm_model_info(litellm_loaded):
    assert LiteLLMModel("anthropic/claude-sonnet-4-5").context_window == 200_000
    assert (
        LiteLLMModel("openai/gpt-4.1").context_window
        == litellm_loaded.get_model_info("openai/gpt-4.1")["max_input_tokens"]
    )
    assert (
        LiteLLMModel("gemini/gemini-2.0-flash").context_window
        == litellm_loaded.get_model_info("gemini/gemini-2.0-flash")["max_input_tokens"]
    )
    assert LiteLLMModel("openai/some-future-model").context_window == 128_000
    assert LiteLLMModel("ollama/some-local-model").context_window == 8_192
    assert LiteLLMModel("openai/gpt-4.1", context_window=50_000).context_window == 50_000


async def test_ollama_server_window_matches_ours(wire):
    await play("ollama", wire, "tool_call")
    body = wire.requests[0].json()
    assert body["options"]["num_ctx"] == LiteLLMModel(MODELS["ollama"]).context_window


def test_adapter_meets_the_model_protocol():
    from engine.models.base import Model

    for name in MODELS.values():
        model = LiteLLMModel(name)
        assert isinstance(model, Model) and model.name == name and model.context_window > 0


def test_model_without_provider_is_refused():
    with pytest.raises(BadRequest, match="provider"):
        LiteLLMModel("claude-sonnet-4-5")


def test_count_tokens_before_litellm_loads_estimates_and_warms_up():
    code = (
        "import engine.models.litellm_adapter as a\n"
        "from engine.models.base import Message\n"
        "m = a.LiteLLMModel('openai/gpt-4.1', api_key='x')\n"
        "msgs = [Message(role='user', content='why is checkout failing? ' * 40)]\n"
        "first = m.count_tokens(msgs)\n"
        "assert not a.loaded() and a._warming is not None, 'the import runs in the background'\n"
        "a._warming.join()\n"
        "assert a.loaded()\n"
        "import litellm\n"
        "exact = m.count_tokens(msgs)\n"
        "assert exact == litellm.token_counter(model='gpt-4.1', messages=[{'role': 'user', 'content': msgs[0].content}])\n"
        "print(first, exact)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    first, exact = map(int, out.stdout.split())
    assert 0.5 < first / exact < 2, "the estimate is in the right range"


async def test_closing_a_stream_midway_is_clean(wire):
    wire.play("openai", "streamed_tool_call", "tool_call")
    model = model_for("openai", wire, "streamed_tool_call")
    stream = model.stream(MESSAGES, TOOLS)
    first = await stream.__anext__()
    assert isinstance(first, TextDelta)
    await stream.aclose()  # what the loop does when a turn is cancelled
    model.streaming = False
    _, done = await run(model)
    assert done.tool_calls[0].name == "get_pods"


def test_importing_the_adapter_does_not_import_litellm():
    code = (
        "import sys, engine.models.litellm_adapter as a;"
        "m = a.LiteLLMModel('anthropic/claude-sonnet-4-5');"
        "assert m.context_window == 200000, m.context_window;"
        "print('litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- the real loop


def get_logs(pod: str, namespace: str, tail_lines: int = 100) -> str:
    """Tail a pod's logs."""
    return f"{namespace}/{pod}: FATAL missing DATABASE_URL"


async def test_loop_returns_garbled_arguments_to_the_model_and_continues(wire):
    wire.play("anthropic", "garbled_arguments", "streamed_final_answer")
    model = model_for("anthropic", wire, "streamed_final_answer")
    session = Session(model, Toolbox([python_tool(get_logs)]))
    out = [e async for e in session.run_turn("why is checkout failing?")]
    finished = [e for e in out if isinstance(e, ev.ToolCallFinished)]
    assert [f.status for f in finished] == ["refused"]
    assert "not valid JSON" in finished[0].output
    assert out[-1].reason == "answered"
    second = wire.requests[1].json()["messages"]
    blocks = second[-1]["content"]
    tool_result = blocks[0]
    assert tool_result["type"] == "tool_result" and "not valid JSON" in json.dumps(tool_result)
    # the engine's closing note (what this turn already did) follows the result in the same turn
    assert blocks[-1]["type"] == "text" and "already made this turn" in blocks[-1]["text"]


async def test_only_loopback_is_contacted(wire, monkeypatch):
    import socket

    hosts: list[str] = []
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host, *a, **k):
        hosts.append(str(host))
        return real_getaddrinfo(host, *a, **k)

    def connect(self, addr):
        if isinstance(addr, tuple):
            hosts.append(str(addr[0]))
        return real_connect(self, addr)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    for provider in PROVIDERS:
        wire.reset()
        await play(provider, wire, "streamed_tool_call")
        LiteLLMModel(MODELS[provider]).count_tokens(MESSAGES, TOOLS)
    assert hosts and set(hosts) <= {"127.0.0.1"}, set(hosts)
    assert wire.side_requests == [], "litellm asked Ollama's /api/show on its own"


# ----------------------------------------------------------------------------- small parts


def test_retry_after_sources():
    from engine.models.litellm_adapter import _retry_after

    assert _retry_after({"retry-after-ms": "1500", "retry-after": "9"}, "") == 1.5
    assert _retry_after({"retry-after": "12"}, "") == 12.0
    import email.utils
    import time

    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < _retry_after({"retry-after": later}, "") <= 30
    assert _retry_after({}, '"retryDelay": "17s"') == 17.0
    assert _retry_after({}, "Please try again in 350ms.") == 0.35
    assert _retry_after({"retry-after": "soon"}, "") is None


def test_redact_removes_keys_in_any_shape():
    from engine.models.litellm_adapter import redact

    text = (
        "POST https://generativelanguage.googleapis.com/v1beta/models/x:generateContent?key=AIzaSyD-abcdefghijklmnopqrstuv1234 "
        "x-api-key: sk-ant-api03-abcdefghijklmnopqrstuvwxyz Authorization: Bearer my-own-token-123456 custom-secret-value"
    )
    out = redact(text, "custom-secret-value")
    for secret in ("AIzaSyD-abcdefghijklmnop", "sk-ant-api03-abcdefghij", "my-own-token-123456", "custom-secret-value"):
        assert secret not in out
    assert "generativelanguage.googleapis.com" in out


def test_lantern_ask_runs_on_ollama_through_the_adapter(wire, tmp_path):
    # The whole path a user takes: OLLAMA_HOST (host:port, no scheme) → config → make_model → loop.
    import os

    wire.play("ollama", "streamed_tool_call", "streamed_final_answer")
    env = dict(os.environ, OLLAMA_HOST=wire.url.removeprefix("http://"), LANTERN_HOME=str(tmp_path))
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "LANTERN_MODEL"):
        env.pop(var, None)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "console.cli",
            "ask",
            "--json",
            "--model",
            "ollama/qwen3:8b",
            "why is checkout failing?",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    events = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    kinds = [e["kind"] for e in events]
    assert "tool-call-finished" in kinds and kinds[-1] == "turn-finished"
    assert "crash-looping" in "".join(e.get("text", "") for e in events if e["kind"] == "assistant-message")
    assert [r.path for r in wire.requests] == ["/api/chat", "/api/chat"]
    assert wire.requests[1].json()["messages"][-1]["role"] == "tool", wire.requests[1].json()["messages"]


def test_lantern_ask_reports_a_provider_error_as_an_event(wire, tmp_path):
    import os

    wire.play("ollama", "model_not_found")
    env = dict(os.environ, OLLAMA_HOST=wire.url, LANTERN_HOME=str(tmp_path))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "console.cli",
            "ask",
            "--json",
            "--model",
            "ollama/qwen3:8b",
            "why is checkout failing?",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode != 0
    events = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]  # stdout stays pure JSON
    errors = [e for e in events if e["kind"] == "error"]
    assert errors and "ollama pull qwen3:8b" in json.dumps(errors[0])
    assert len(wire.requests) == 1, "a missing model is not retried"


def test_dotted_tool_names_travel_as_wire_names_and_come_back():
    """Providers refuse '.' in tool names: `pack.action` goes out as `pack__action` and returns as `pack.action`."""
    from engine.models.base import Message, ToolCall, ToolSpec
    from engine.models.litellm_adapter import LiteLLMModel, from_wire_name, to_wire_name

    m = LiteLLMModel("openai/gpt-4o-mini", api_key="sk-test")
    spec = ToolSpec(name="kubernetes.get_pod_logs", description="logs", parameters={"type": "object", "properties": {}})
    history = [
        Message(role="user", content="logs?"),
        Message(role="assistant", tool_calls=[ToolCall(id="c1", name="kubernetes.get_pod_logs", arguments={})]),
        Message(role="tool", content="ok", tool_call_id="c1", name="kubernetes.get_pod_logs"),
    ]
    req = m.request(history, [spec])
    assert req["tools"][0]["function"]["name"] == "kubernetes__get_pod_logs"
    assert req["messages"][1]["tool_calls"][0]["function"]["name"] == "kubernetes__get_pod_logs"
    assert req["messages"][2]["name"] == "kubernetes__get_pod_logs"
    assert from_wire_name(to_wire_name("kubernetes.get_pod_logs")) == "kubernetes.get_pod_logs"
    assert from_wire_name("read_runbook") == "read_runbook"


async def test_a_structured_answer_goes_out_as_response_format_on_the_answer_step(wire):
    """`answer_schema` on a step without tools reaches the provider as its structured-output
    request; on a step that offers tools it is left out (providers differ on mixing the two)."""
    schema = {
        "type": "object",
        "properties": {"cause": {"enum": ["oom_killed", "node_cordoned"]}},
        "required": ["cause"],
    }
    wire.play("openai", "final_answer")
    model = model_for("openai", wire, "final_answer")
    async for _ in model.stream(MESSAGES, [], answer_schema=schema):
        pass
    body = wire.requests[0].json()
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == schema
    assert "response_format" not in model.request(MESSAGES, TOOLS, answer_schema=schema)
