"""The local provider: clear errors without the model; with it (marked `model`), real steps."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from engine import events as ev
from engine.loop import LoopConfig, Session
from engine.models import errors
from engine.models.base import Completion, Message, Model, TextDelta, ToolSpec
from engine.models.install import is_installed
from engine.models.local import LocalModel
from engine.toolbox import Toolbox
from engine.tools import python_tool
from wiring import make_model


def test_missing_model_is_unavailable_with_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANTERN_CACHE", str(tmp_path))
    with pytest.raises(errors.Unavailable) as err:
        make_model("local")
    assert "not installed" in err.value.message
    assert "lantern model install" in err.value.hint


def test_unverified_model_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANTERN_CACHE", str(tmp_path))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf").write_bytes(b"GGUF")
    with pytest.raises(errors.Unavailable, match="not verified"):
        LocalModel.create("local")


def test_own_gguf_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(errors.Unavailable, match="no model file"):
        LocalModel.create(f"local:{tmp_path / 'missing.gguf'}")


def test_an_answer_that_starts_repeating_itself_is_cut_where_the_repeat_began() -> None:
    from engine.models.grammar import StepParser
    from engine.models.local import _RepeatGuard

    # Words stand in for tokens: a loop of one sentence, as greedy decoding produces.
    sentence = "the deployment was crashing due to the missing configuration setting so the issue may have been resolved".split()
    words = ["checkout-api", "exits:", "PAYMENTS_TIMEOUT_MS", "is", "not", "set."] + sentence + sentence + sentence
    guard, parser, cut = _RepeatGuard(8), StepParser(), None
    parser.feed('{"answer": "')
    for w in words:
        parser.feed(w + " ")
        cut = guard.add(hash(w), len(parser.text))
        if cut is not None:
            break
    assert cut is not None
    said = parser.text[:cut]
    assert said.count("resolved") == 1 and "PAYMENTS_TIMEOUT_MS" in said
    # Text that never repeats a run of 8 is left alone, however long.
    guard = _RepeatGuard(8)
    assert all(guard.add(i, i) is None for i in range(2000))


def test_a_cut_answer_comes_back_with_what_was_said_and_why_it_stopped(tmp_path: Path) -> None:
    from engine.models.grammar import StepParser

    parser = StepParser()
    text = '{"answer": "PAYMENTS_TIMEOUT_MS is not set. It loops. It loops. It loops.'
    parser.feed(text)
    info = {
        "prompt_tokens": 10,
        "completion_tokens": 30,
        "cached_tokens": 0,
        "repeated_at": text.index(" It loops.") + len(" It loops."),
    }
    c = LocalModel.__new__(LocalModel)._completion(parser, info, [], "")
    assert c.finish_reason == "length" and not c.tool_calls
    assert c.text.startswith("PAYMENTS_TIMEOUT_MS is not set. It loops.") and c.text.count("It loops") == 1
    assert "repeating itself" in c.text


async def test_a_broken_file_fails_to_load_with_a_typed_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all")
    m = LocalModel.create(f"local:{bad}")
    assert isinstance(m, Model) and m.context_window == 8192
    # Before loading, counting tokens is an estimate and costs nothing.
    assert 5 < m.count_tokens([Message(role="user", content="hello " * 20)]) < 400
    with pytest.raises(errors.Unavailable, match="could not load"):
        async for _ in m.stream([Message(role="user", content="hi")], []):
            pass


# -- with the real model ---------------------------------------------------------------------
needs_model = pytest.mark.skipif(not is_installed(), reason="the local model is not installed (lantern model install)")

LOGS = ToolSpec(
    name="kubernetes.get_pod_logs",
    description="Fetch recent log lines of one pod.",
    parameters={
        "type": "object",
        "properties": {"namespace": {"type": "string"}, "pod": {"type": "string"}},
        "required": ["namespace", "pod"],
    },
)
PODS = ToolSpec(
    name="kubernetes.list_pods",
    description="List the pods of a namespace with status and restarts.",
    parameters={"type": "object", "properties": {"namespace": {"type": "string"}}, "required": ["namespace"]},
)
ROLLBACK = ToolSpec(
    name="kubernetes.rollback_deployment",
    description="Roll a deployment back to its previous revision.",
    parameters={
        "type": "object",
        "properties": {"namespace": {"type": "string"}, "deployment": {"type": "string"}},
        "required": ["namespace", "deployment"],
    },
)
SYSTEM = Message(role="system", content="You are Lantern, an on-call assistant. Use the tools to gather evidence.")


@pytest.fixture(scope="module")
def model() -> LocalModel:
    return LocalModel.create("local")


@pytest.mark.model
@needs_model
async def test_loading_leaves_the_terminal_descriptors_alone(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # The console draws to fd 1 from its own thread while the weights load: a load that points
    # fds 1 and 2 elsewhere, even for a moment, loses those frames (the header stuck on loading).
    import os

    moved: list[int] = []
    real_dup2 = os.dup2

    def dup2(fd: int, fd2: int, inheritable: bool = True) -> int:
        moved.append(fd2)
        return real_dup2(fd, fd2, inheritable)

    monkeypatch.setattr(os, "dup2", dup2)
    fresh = LocalModel.create("local")
    await fresh.warm()
    assert not {1, 2} & set(moved), f"the load redirected file descriptors {moved}"
    out, err = capfd.readouterr()
    assert "metadata" not in err.lower() and "llama" not in err.lower(), err[:300]


@pytest.mark.model
@needs_model
async def test_one_step_tool_call_then_the_cached_prefix_is_reused(model: LocalModel) -> None:
    msgs = [SYSTEM, Message(role="user", content="Show me the logs of pod checkout-7d9f in namespace shop.")]
    chunks = [c async for c in model.stream(msgs, [PODS, LOGS, ROLLBACK])]
    done = chunks[-1]
    assert isinstance(done, Completion) and all(isinstance(c, TextDelta) for c in chunks[:-1])
    assert [(c.name, c.arguments) for c in done.tool_calls] == [
        ("kubernetes.get_pod_logs", {"namespace": "shop", "pod": "checkout-7d9f"})
    ]
    assert done.tool_calls[0].id.startswith("call_") and done.finish_reason == "tool_calls"
    assert done.usage.prompt_tokens == model.count_tokens(msgs, [PODS, LOGS, ROLLBACK])
    assert done.usage.completion_tokens > 5
    # Same system prompt and tools, another question: the whole system turn comes from the KV cache.
    msgs2 = [SYSTEM, Message(role="user", content="List the pods in namespace payments.")]
    done2 = [c async for c in model.stream(msgs2, [ROLLBACK, LOGS, PODS])][-1]
    assert isinstance(done2, Completion)
    assert done2.tool_calls[0].name == "kubernetes.list_pods"
    assert done2.tool_calls[0].arguments == {"namespace": "payments"}
    system_tokens = len(model.tokenize(msgs2[0].content))
    assert done2.usage.cached_tokens > system_tokens


@pytest.mark.model
@needs_model
async def test_a_call_ruled_out_by_the_grammar_is_not_written_again(model: LocalModel) -> None:
    # The loop's second try after a repeat: the same prompt (all of it cached), the exact call
    # excluded from the grammar llama.cpp samples under; the model writes some other step.
    msgs = [SYSTEM, Message(role="user", content="Show me the logs of pod checkout-7d9f in namespace shop.")]
    first = [c async for c in model.stream(msgs, [PODS, LOGS, ROLLBACK])][-1]
    assert isinstance(first, Completion) and first.tool_calls
    again = [c async for c in model.stream_excluding(msgs, [PODS, LOGS, ROLLBACK], first.tool_calls)][-1]
    assert isinstance(again, Completion)
    assert [(c.name, c.arguments) for c in again.tool_calls] != [(c.name, c.arguments) for c in first.tool_calls]
    assert again.usage.cached_tokens == again.usage.prompt_tokens - 1, "only the generation ran again"


@pytest.mark.model
@needs_model
async def test_answer_streams_and_closing_the_stream_stops_generation(model: LocalModel) -> None:
    msgs = [
        SYSTEM,
        Message(
            role="user",
            content="Explain in detail, step by step, what a Kubernetes CrashLoopBackOff is and every common cause.",
        ),
    ]
    stream = model.stream(msgs, [])
    got = ""
    async for chunk in stream:
        assert isinstance(chunk, TextDelta)
        got += chunk.text
        if len(got) > 12:
            break
    assert got.strip()
    t0 = time.perf_counter()
    await stream.aclose()
    while model.busy and time.perf_counter() - t0 < 10:
        await asyncio.sleep(0.02)
    # It stops at once rather than running on to its token limit (minutes on 2 cores); the
    # latency itself (well under a second) is measured by bench/local_model.py.
    assert not model.busy


@pytest.mark.model
@needs_model
async def test_cancel_during_a_long_prompt_evaluation(model: LocalModel) -> None:
    # A fresh long prompt (nothing cached) takes many seconds to evaluate on 2 cores.
    filler = " ".join(f"line {i}: pod web-{i} restarted with exit code {i % 7}" for i in range(150))
    msgs = [Message(role="system", content=f"Unique {time.time()}"), Message(role="user", content=filler)]
    task = asyncio.ensure_future(anext(model.stream(msgs, [LOGS])))
    await asyncio.sleep(1.5)
    assert model.busy
    t0 = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    while model.busy and time.perf_counter() - t0 < 10:
        await asyncio.sleep(0.02)
    assert not model.busy  # llama.cpp's abort callback stopped the evaluation mid-prompt


@pytest.mark.model
@needs_model
async def test_the_real_loop_runs_a_tool_and_answers(model: LocalModel) -> None:
    def list_pods(namespace: str) -> str:
        """List the pods of a namespace with status and restarts."""
        return "NAME          STATUS            RESTARTS\ncheckout-7d9f CrashLoopBackOff  14\ncart-55c1     Running           0"

    session = Session(
        model, Toolbox([python_tool(list_pods, name="kubernetes.list_pods")]), config=LoopConfig(max_steps=3)
    )
    events = [
        e
        async for e in session.run_turn("Which pod in namespace shop is crashing? Check, then answer in one sentence.")
    ]
    kinds = [e.kind for e in events]
    assert "tool-call-finished" in kinds
    finished = [e for e in events if isinstance(e, ev.StepFinished)]
    assert finished[0].prompt_tokens > 0 and finished[0].completion_tokens > 0
    assert finished[-1].cached_tokens > 0  # step 2 reuses step 1's prefix
    answer = [e for e in events if isinstance(e, ev.AssistantMessage)][-1]
    assert "checkout" in answer.text
    assert events[-1].reason == "answered"


def test_tools_loaded_mid_conversation_keep_the_prompt_prefix(tmp_path: Path) -> None:
    # No weights needed: the prompt text alone. A step that loads tools (find_tools) must not
    # rewrite the system turn, or llama.cpp reads every tool output of the turn again.
    model = LocalModel(tmp_path / "none.gguf")
    a = ToolSpec(name="kubernetes.list_pods", description="List pods.", parameters={"type": "object"})
    b = ToolSpec(name="kubernetes.get_pod_logs", description="Pod logs.", parameters={"type": "object"})
    late = ToolSpec(name="github.compare_commits", description="Compare two commits.", parameters={"type": "object"})
    msgs = [Message(role="system", content="Be brief."), Message(role="user", content="checkout-api crashes")]
    first = model._prompt_for(msgs, [a, b], False)
    step2 = msgs + [Message(role="assistant", content="", tool_calls=[]), Message(role="user", content="more")]
    second = model._prompt_for(step2, [a, b, late], False)
    system_end = first.index("<|im_end|>") + len("<|im_end|>")
    assert second[:system_end] == first[:system_end], "the system turn is unchanged"
    assert "github.compare_commits" not in second[:system_end]
    tail = second[second.rindex("<|im_start|>user") :]
    assert "Tools loaded since" in tail and "github.compare_commits" in tail
    # The answer step (no tools offered) keeps the same prefix; a new conversation lists its own tools.
    answer = model._prompt_for(step2, [], False)
    assert answer[:system_end] == first[:system_end] and "Tools loaded since" not in answer
    other = model._prompt_for([msgs[0], Message(role="user", content="dns fails")], [late], False)
    assert "github.compare_commits" in other[: other.index("<|im_end|>")]
    assert "kubernetes.list_pods" not in other


@pytest.mark.model
@needs_model
async def test_the_answer_step_writes_its_fix_as_one_call_the_grammar_allows(model: LocalModel) -> None:
    # The answer step of a turn whose log names the cause: the cause in words, then the fix as one
    # call of the write actions offered (or what a person must do) — never a fix in prose alone.
    from engine.answers import proposed_call
    from engine.models.base import ToolCall

    set_env = ToolSpec(
        name="kubernetes.set_env",
        description="Set an environment variable of a deployment's container.",
        parameters={
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "Deployment name"},
                "namespace": {"type": "string"},
                "env_name": {"type": "string"},
                "value": {"type": "string"},
            },
            "required": ["name", "namespace", "env_name"],
        },
    )
    restart = ToolSpec(
        name="kubernetes.rollout_restart",
        description="Restart a deployment's pods.",
        parameters={
            "type": "object",
            "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}},
            "required": ["name", "namespace"],
        },
    )
    call = ToolCall(id="c1", name=LOGS.name, arguments={"namespace": "shop", "pod": "checkout-api-6f498c5fdc-744lc"})
    msgs = [
        SYSTEM,
        Message(
            role="user", content="checkout-api pods in namespace shop are crash-looping. Why, and what is the fix?"
        ),
        Message(role="assistant", content="", tool_calls=[call]),
        Message(
            role="tool",
            tool_call_id="c1",
            content="ERROR config: required setting PAYMENTS_TIMEOUT_MS is not set\nFATAL cannot build payments client",
        ),
        Message(role="user", content="Answer now: the cause, then the fix as one call.", note=True),
    ]
    done = [c async for c in model.stream_answer(msgs, [set_env, restart, ROLLBACK])][-1]
    assert isinstance(done, Completion) and not done.tool_calls
    cause, _, fix = done.text.rpartition("\n\n")
    assert cause.strip(), done.text
    offered = proposed_call(done.text, {set_env.name, restart.name, ROLLBACK.name})
    assert offered is not None or fix.startswith("No available action can make the fix"), done.text


def test_a_shaped_fix_leaves_out_the_optional_slots_the_model_filled_with_nothing() -> None:
    from engine.models.local import _fix_of

    spec = ToolSpec(
        name="kubernetes.set_env",
        description="Set an environment variable.",
        parameters={
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "env_name": {"type": "string"},
                "value": {"type": "string"},
                "from_secret": {"type": "string"},
                "unset": {"type": "boolean", "default": False},
                "kind": {"type": "string", "default": "deployment"},
            },
            "required": ["name", "env_name"],
        },
    )
    fix = {
        "tool": "kubernetes.set_env",
        "arguments": {
            "name": "checkout-api",
            "env_name": "X",
            "value": "1",
            "from_secret": "",
            "unset": False,
            "kind": "statefulset",
        },
    }
    assert (
        _fix_of(fix, [spec])
        == "Fix: kubernetes.set_env(name='checkout-api', env_name='X', value='1', kind='statefulset')"
    )
    assert _fix_of({"none": "restore the disk"}, [spec]) == "No available action can make the fix: restore the disk"
