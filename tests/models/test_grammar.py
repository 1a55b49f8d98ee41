"""The local model's output contract and prompt: schema, grammar text, parser, ChatML (no model needed)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from engine.models.base import Message, ToolCall, ToolSpec
from engine.models.grammar import ARG_STRING_MAX_CHARS, StepParser, clean_schema, step_gbnf, step_schema, tool_line
from engine.models.local import render_prompt, system_text

LOGS = ToolSpec(
    name="kubernetes.get_pod_logs",
    description="Fetch recent log lines of a pod. Use previous=true after a crash.",
    parameters={
        "type": "object",
        "properties": {
            "namespace": {"type": "string", "description": "namespace"},
            "pod": {"type": "string"},
            "tail": {"type": ["integer", "null"], "default": 200},
            "previous": {"type": "boolean"},
        },
        "required": ["namespace", "pod"],
    },
)
PODS = ToolSpec(
    name="kubernetes.list_pods",
    description="List pods with status and restarts",
    parameters={
        "type": "object",
        "properties": {"namespace": {"type": "string"}, "phase": {"enum": ["Running", "Failed"]}},
    },
)
NOARGS = ToolSpec(name="clock.now", description="The current time.")


def test_step_schema_offers_each_tool_once_sorted_and_an_answer() -> None:
    s = step_schema([PODS, LOGS, NOARGS])
    alts = s["oneOf"]
    names = [a["properties"]["tool"]["const"] for a in alts[:-1]]
    assert names == ["clock.now", "kubernetes.get_pod_logs", "kubernetes.list_pods"]
    assert alts[-1] == {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    logs = alts[1]
    assert list(logs["properties"]) == ["thought", "tool", "arguments"]
    assert logs["properties"]["arguments"]["required"] == ["namespace", "pod"]
    # A nullable optional integer is just an optional integer: omitting it means null to us.
    assert logs["properties"]["arguments"]["properties"]["tail"] == {"type": "integer"}
    assert alts[0]["properties"]["arguments"] == {"type": "object", "properties": {}, "required": []}


def test_step_schema_without_thought_or_tools() -> None:
    s = step_schema([LOGS], thought=False)
    assert list(s["oneOf"][0]["properties"]) == ["tool", "arguments"]
    assert step_schema([])["oneOf"] == [
        {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    ]


def test_gbnf_names_every_tool_and_no_other() -> None:
    g = step_gbnf([PODS, LOGS])
    assert '"\\"kubernetes.list_pods\\""' in g
    assert '"\\"kubernetes.get_pod_logs\\""' in g
    assert "root ::=" in g
    assert "answer" in g
    assert "clock.now" not in g
    # Cached per tool set: the same text comes back for the same tools in another order.
    assert step_gbnf([LOGS, PODS]) == g


def test_clean_schema_reduces_to_the_supported_subset() -> None:
    assert clean_schema({"type": "string", "format": "date-time", "pattern": "^x+$"}) == {
        "type": "string",
        "maxLength": ARG_STRING_MAX_CHARS,
    }
    assert clean_schema({"type": "string", "maxLength": 20, "minLength": 30}) == {
        "type": "string",
        "maxLength": 20,
        "minLength": 20,
    }
    assert clean_schema({"anyOf": [{"type": "integer"}, {"type": "string"}]}) == {
        "anyOf": [{"type": "integer"}, {"type": "string", "maxLength": ARG_STRING_MAX_CHARS}]
    }
    assert clean_schema({"type": ["string", "integer"]})["anyOf"][1] == {"type": "integer"}
    assert clean_schema({"type": "array", "items": {"type": "integer"}}) == {
        "type": "array",
        "items": {"type": "integer"},
        "maxItems": 20,
    }
    assert clean_schema({"type": "object", "additionalProperties": {"type": "string"}}) == {"type": "object"}
    assert clean_schema({"enum": ["a", "b"], "type": "string"}) == {"enum": ["a", "b"]}
    assert clean_schema("nonsense") == {}
    assert clean_schema({"type": "mystery"}) == {}
    # required names that are not properties are dropped (the grammar could never satisfy them)
    assert clean_schema({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "ghost"]})[
        "required"
    ] == ["a"]


def test_tool_line_is_compact() -> None:
    assert (
        tool_line(LOGS)
        == "- kubernetes.get_pod_logs(namespace: str, pod: str, tail?: int, previous?: bool) - Fetch recent log lines of a pod"
    )
    assert (
        tool_line(PODS)
        == '- kubernetes.list_pods(namespace?: str, phase?: "Running"|"Failed") - List pods with status and restarts'
    )
    assert tool_line(NOARGS) == "- clock.now() - The current time"
    long = ToolSpec(name="x.y", description="word " * 80)
    assert len(tool_line(long)) < 140


def _feed_all(text: str, cuts: list[int]) -> tuple[StepParser, str]:
    p = StepParser()
    out = []
    last = 0
    for c in sorted({min(max(c, 0), len(text)) for c in cuts}) + [len(text)]:
        out.append(p.feed(text[last:c]))
        last = c
    return p, "".join(out)


@given(st.text(max_size=80), st.lists(st.integers(0, 400), max_size=12))
def test_parser_streams_the_answer_exactly_however_it_is_split(answer: str, cuts: list[int]) -> None:
    text = json.dumps({"answer": answer})
    p, streamed = _feed_all(text, cuts)
    assert streamed == answer
    assert p.complete and p.is_answer
    assert p.result() == {"answer": answer}


@given(st.text(max_size=40), st.lists(st.integers(0, 200), max_size=8))
def test_parser_streams_the_thought_of_a_call(thought: str, cuts: list[int]) -> None:
    text = json.dumps({"thought": thought, "tool": "a.b", "arguments": {"x": '}{"'}}, ensure_ascii=False)
    p, streamed = _feed_all(text, cuts)
    assert streamed == thought
    assert p.key == "thought" and not p.is_answer
    assert p.complete
    assert p.result() == {"thought": thought, "tool": "a.b", "arguments": {"x": '}{"'}}


def test_parser_on_a_call_without_thought_streams_nothing_and_is_incomplete_until_closed() -> None:
    p = StepParser()
    assert p.feed('{"tool": "a.b", "arguments": {"n": 1') == ""
    assert not p.complete and p.result() is None
    p.feed("}}")
    assert p.complete and p.result() == {"tool": "a.b", "arguments": {"n": 1}}


def test_system_text_lists_tools_sorted_with_reply_format() -> None:
    s = system_text("Be brief.", [PODS, LOGS])
    assert s.startswith("Be brief.\n\n# Tools\n- kubernetes.get_pod_logs(")
    assert s.index("kubernetes.get_pod_logs") < s.index("kubernetes.list_pods")
    assert '{"answer": "<your answer>"}' in s
    assert "# Tools" not in system_text("", [])


def test_prompt_renders_history_in_qwen_chatml() -> None:
    msgs = [
        Message(role="system", content="SYS"),
        Message(role="user", content="why is checkout down?"),
        Message(
            role="assistant",
            content="Check its pods.",
            tool_calls=[ToolCall(id="c1", name="kubernetes.list_pods", arguments={"namespace": "shop"})],
        ),
        Message(role="tool", content="checkout-1 CrashLoopBackOff", tool_call_id="c1", name="kubernetes.list_pods"),
        Message(role="tool", content="second result", tool_call_id="c2"),
        Message(role="assistant", content="It crashes."),
        Message(role="user", content="thanks"),
    ]
    text = render_prompt(msgs, [PODS], thought=True)
    assert text.startswith("<|im_start|>system\nSYS\n\n# Tools\n- kubernetes.list_pods(")
    assert "<|im_start|>user\nwhy is checkout down?<|im_end|>\n" in text
    assert (
        '<|im_start|>assistant\n{"thought": "Check its pods.", "tool": "kubernetes.list_pods", "arguments": {"namespace": "shop"}}<|im_end|>\n'
        in text
    )
    # Consecutive tool results share one user turn, as Qwen2.5's own template renders them.
    assert (
        "<|im_start|>user\n<tool_response>\ncheckout-1 CrashLoopBackOff\n</tool_response>\n"
        "<tool_response>\nsecond result\n</tool_response><|im_end|>\n" in text
    )
    assert '<|im_start|>assistant\n{"answer": "It crashes."}<|im_end|>\n' in text
    assert text.endswith("<|im_start|>user\nthanks<|im_end|>\n<|im_start|>assistant\n")
    assert text.count("<|im_start|>system") == 1


def test_prompt_prefix_is_stable_as_the_conversation_grows() -> None:
    base = [Message(role="system", content="SYS"), Message(role="user", content="q")]
    more = base + [
        Message(
            role="assistant", content="", tool_calls=[ToolCall(id="c1", name="kubernetes.list_pods", arguments={})]
        ),
        Message(role="tool", content="r", tool_call_id="c1"),
    ]
    a = render_prompt(base, [LOGS, PODS])
    b = render_prompt(more, [PODS, LOGS])  # tool order from the toolbox does not matter
    cue = "<|im_start|>assistant\n"
    assert b.startswith(a.removesuffix(cue))


def test_a_step_can_be_required_to_call_a_tool() -> None:
    s = step_schema([LOGS, PODS], answer=False)
    assert all("tool" in a["properties"] for a in s["oneOf"])
    assert "answer" not in step_gbnf([LOGS, PODS], answer=False)
    # With no tools there is nothing to call, so answering stays possible.
    assert step_schema([], answer=False)["oneOf"][0]["required"] == ["answer"]


VERDICT = {
    "type": "object",
    "properties": {
        "answers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"cause": {"enum": ["oom_killed", "node_cordoned"]}},
                "required": ["cause"],
            },
            "maxItems": 3,
        }
    },
    "required": ["answers"],
}


def test_a_structured_answer_is_constrained_to_its_schema() -> None:
    s = step_schema([PODS], thought=False, answer_schema=VERDICT)
    answer = s["oneOf"][-1]["properties"]["answer"]
    assert answer["properties"]["answers"]["items"]["properties"]["cause"] == {"enum": ["oom_killed", "node_cordoned"]}
    assert answer["properties"]["answers"]["maxItems"] == 3
    g = step_gbnf([PODS], thought=False, answer_schema=VERDICT)
    assert "oom_killed" in g and "node_cordoned" in g
    # Without a schema the answer stays free text.
    assert step_schema([PODS], thought=False)["oneOf"][-1]["properties"]["answer"] == {"type": "string"}


def test_structured_answers_render_as_json_values_in_history_and_reply_format() -> None:
    msgs = [
        Message(role="user", content="q"),
        Message(role="assistant", content='{"answers": [{"cause": "oom_killed"}]}'),
        Message(role="user", content="and now?"),
    ]
    text = render_prompt(msgs, [PODS], thought=False, structured=True)
    assert '{"answer": {"answers": [{"cause": "oom_killed"}]}}' in text
    assert "<the JSON value the task asks for>" in text and '"<your answer>"' not in text


def test_the_answer_step_keeps_the_tool_list_so_the_cached_prefix_survives(tmp_path) -> None:
    """A step offering no tools (the turn's last) renders the previous step's tool list when it
    continues that conversation, so llama.cpp re-reads nothing; a fresh conversation does not."""
    from engine.models.local import LocalModel

    m = LocalModel(tmp_path / "none.gguf")
    first = [Message(role="system", content="SYS"), Message(role="user", content="q")]
    p1 = m._prompt_for(first, [PODS, LOGS], False)
    cont = first + [
        Message(
            role="assistant", content="", tool_calls=[ToolCall(id="c1", name="kubernetes.list_pods", arguments={})]
        ),
        Message(role="tool", content="r", tool_call_id="c1"),
    ]
    p2 = m._prompt_for(cont, [], False)
    assert p2.startswith(p1) and "kubernetes.list_pods(" in p2
    other = m._prompt_for([Message(role="user", content="unrelated")], [], False)
    assert "# Tools" not in other


def test_tool_line_keeps_the_first_sentence_whole_past_an_abbreviation() -> None:
    spec = ToolSpec(
        name="k.scale", description="Scale a deployment (kubectl scale); e.g. to 0 to stop it. Second sentence."
    )
    assert tool_line(spec) == "- k.scale() - Scale a deployment (kubectl scale); e.g. to 0 to stop it"


UNDO = ToolSpec(
    name="kubernetes.rollout_undo",
    description="Roll a deployment back.",
    parameters={
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "namespace": {"type": "string"},
            "to_revision": {"type": "integer"},
            "kind": {"enum": ["deployment", "statefulset"]},
            "dry_run": {"type": "boolean"},
        },
        "required": ["name"],
    },
)


def test_invented_optional_arguments_are_left_out_and_named() -> None:
    from engine.models.grammar import ground_arguments

    said = "Roll back deployment payments-api in namespace payments to the previous revision (it was at 17)."
    kept, dropped = ground_arguments(
        {"name": "payments-api", "namespace": "payments", "to_revision": 1, "kind": "deployment", "dry_run": True},
        UNDO,
        said,
    )
    assert kept == {"name": "payments-api", "namespace": "payments", "kind": "deployment", "dry_run": True}
    assert dropped == ["to_revision=1"], "1 is not the 1 inside 17"
    # An enum choice must be a word of the conversation, not part of one.
    assert ground_arguments({"name": "x", "kind": "deployment"}, UNDO, "the deploymentbot of shop")[1] == [
        'kind="deployment"'
    ]
    assert ground_arguments({"name": "x", "kind": "statefulset"}, UNDO, "restart the statefulsets of shop")[1] == []
    # A value the user gave, or that a tool output showed, stays; so does any required argument.
    assert ground_arguments({"name": "x", "to_revision": 7}, UNDO, "back to revision 7")[0] == {
        "name": "x",
        "to_revision": 7,
    }
    assert ground_arguments({"name": "nowhere"}, UNDO, "")[0] == {"name": "nowhere"}
    assert ground_arguments({"name": "a", "namespace": "SHOP"}, UNDO, "pods in shop")[1] == []


def test_tool_line_names_the_object_of_a_generic_name_parameter() -> None:
    spec = ToolSpec(
        name="k.undo",
        description="Roll back.",
        parameters={
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "Deployment name"},
                "namespace": {"type": "string", "description": "Namespace"},
            },
            "required": ["name"],
        },
    )
    assert tool_line(spec) == "- k.undo(name: str (deployment name), namespace?: str) - Roll back"


def test_system_text_ends_the_tool_list_with_the_system_note() -> None:
    s = system_text("", [PODS])
    assert "use that system's tool" in s.split("# Reply")[0]


async def test_the_context_note_after_a_tool_result_does_not_force_another_call() -> None:
    """The compacting builder's note rides at the end of the prompt as a user message; the local
    model must call a tool after the user's message, not after its own note, or a step that wanted
    to answer can only repeat a call (the repeats the guard refused on the first run)."""
    from engine.context.builder import CompactingContext
    from engine.loop import Session
    from engine.models.local import after_user
    from engine.testing import ScriptedModel
    from engine.toolbox import Toolbox
    from engine.tools import python_tool

    def get_pods(namespace: str) -> str:
        """List pods."""
        return "checkout-7d9f 0/1 CrashLoopBackOff restarts=14 exit code 137"

    model = ScriptedModel(
        [{"tool_calls": [{"name": "get_pods", "arguments": {"namespace": "shop"}}]}, {"text": "OOM."}],
        name="local/qwen",
    )
    s = Session(model, Toolbox([python_tool(get_pods)]), context=CompactingContext(model))
    [e async for e in s.run_turn("why is checkout-api in shop failing?")]
    first, second = (msgs for msgs, _ in model.requests)
    assert after_user(first), "the first step answers the user's message: it must call a tool"
    assert second[-1].role == "user" and second[-1].note, "the context note closes the prompt"
    assert not after_user(second), "after a tool result the model may answer"
    assert after_user([*second, Message(role="user", content="thanks")])


def test_a_call_ruled_out_of_the_grammar_cannot_be_written_again() -> None:
    """The local model's second try after a repeat: the exact arguments of the refused call are
    excluded from the schema the grammar is converted from; what stays is a difference worth a
    step (a flag turned on, another choice, an optional left out), never a free string that greedy
    decoding would run on past the excluded value."""
    import jsonschema

    from engine.models.grammar import excluding, params_schema

    def admitted(shapes: list[dict], args: dict) -> bool:
        # the grammar converter admits no property a schema does not name
        return any(jsonschema.Draft202012Validator({**s, "additionalProperties": False}).is_valid(args) for s in shapes)

    asked = {"namespace": "shop", "pod": "checkout-1"}
    shapes = excluding(params_schema(LOGS), [asked])
    assert not admitted(shapes, asked)
    assert admitted(shapes, {**asked, "previous": True}), "the logs of the previous container: the step worth taking"
    assert not admitted(shapes, {**asked, "previous": False}) and not admitted(shapes, {**asked, "tail": 50})
    assert not admitted(shapes, {"namespace": "shop", "pod": "checkout-2"}), "no invented pod names"
    # What the model wrote and what grounding kept of it are both ruled out.
    said = {**asked, "previous": True, "tail": 50}
    both = excluding(params_schema(LOGS), [said, {**asked, "previous": True}])
    assert not admitted(both, said) and not admitted(both, {**asked, "previous": True})
    assert admitted(both, {**asked, "previous": False, "tail": 50})
    # Another choice of an enum; an optional filter left out.
    pods = excluding(params_schema(PODS), [{"namespace": "shop", "phase": "Running"}])
    assert admitted(pods, {"namespace": "shop", "phase": "Failed"}) and admitted(pods, {"namespace": "shop"})
    assert not admitted(pods, {"namespace": "shop", "phase": "Running"}) and not admitted(
        pods, {"namespace": "x", "phase": "Running"}
    )
    # No difference worth a step (only strings, or no parameters): the tool is not offered this time.
    assert excluding(params_schema(NOARGS), [{}]) == []
    find = ToolSpec(
        name="find_tools",
        description="Search tools.",
        parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    )
    alts = step_schema([NOARGS, PODS, find], exclude={"clock.now": [{}], "find_tools": [{"query": "pod logs"}]})[
        "oneOf"
    ]
    assert [a["properties"]["tool"]["const"] for a in alts[:-1]] == ["kubernetes.list_pods"]
    # The grammar text names the tool still, and without exclusions is what it always was.
    g = step_gbnf([LOGS, PODS], exclude={"kubernetes.get_pod_logs": [asked]})
    assert '"\\"kubernetes.get_pod_logs\\""' in g and g != step_gbnf([LOGS, PODS])
    assert step_gbnf([LOGS, PODS], exclude={}) == step_gbnf([LOGS, PODS])
