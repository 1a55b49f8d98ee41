"""Answers that can be acted on: the fix an answer proposes is a call of a tool the session can run,
or the answer says plainly that none can; otherwise the user is told, and the model asked once."""

from __future__ import annotations

from engine import events as ev
from engine.answers import check_answer, proposed_call
from engine.loop import LoopConfig, Session
from engine.testing import ScriptedModel
from engine.toolbox import Toolbox
from engine.tools import python_tool


def list_pods(namespace: str) -> str:
    """List pods in a namespace."""
    return "checkout-7d9f  0/1  CrashLoopBackOff  restarts=14"


def rollback_deployment(name: str, namespace: str) -> str:
    """Roll a deployment back to its previous revision."""
    return f"rolled back {name}"


PODS = {"name": "kubernetes.list_pods", "arguments": {"namespace": "shop"}}
PROSE = "checkout-api crash-loops since the deploy renamed PAYMENTS_TIMEOUT_MS. The smallest safe fix: roll back to the previous revision."
CALL = "The smallest safe fix: kubernetes.rollback_deployment(name=checkout-api, namespace=shop)."


def session(script: list[dict], **cfg) -> tuple[Session, ScriptedModel]:
    model = ScriptedModel(script)
    tools = [
        python_tool(list_pods, name="kubernetes.list_pods"),
        python_tool(rollback_deployment, name="kubernetes.rollback_deployment", risk="write"),
    ]
    return Session(model, Toolbox(tools), config=LoopConfig(**cfg)), model


async def run(s: Session) -> list:
    return [e async for e in s.run_turn("checkout-api pods in shop are restarting")]


async def test_a_fix_in_words_is_asked_once_to_become_a_call_of_a_tool():
    s, model = session([{"tool_calls": [PODS]}, {"text": PROSE}, {"text": CALL}])
    out = await run(s)
    (notice,) = [e for e in out if isinstance(e, ev.Notice) and e.topic == "answer-check"]
    assert notice.level == "warning" and "proposes a fix without naming a tool" in notice.text
    note = model.requests[2][0][-1]
    assert (
        note.note
        and "Restate the fix as a call of a tool" in note.content
        and "by its full name with named arguments" in note.content
    )
    assert "pack.action(" not in note.content, "no literal a small model copies as the call"
    answers = [e.text for e in out if isinstance(e, ev.AssistantMessage) and not e.tool_calls]
    assert answers == [PROSE, CALL]
    assert out[-1].reason == "answered" and out[-1].steps == 3


async def test_a_call_of_an_action_no_pack_has_is_named_in_the_notice():
    invented = "Fix: kubernetes.set_env(name=checkout-api, key=PAYMENTS_TIMEOUT_MS)."
    s, model = session(
        [{"text": invented}, {"text": "No available action can set it; a person must edit the ConfigMap."}]
    )
    out = await run(s)
    (notice,) = [e for e in out if isinstance(e, ev.Notice) and e.topic == "answer-check"]
    assert "kubernetes.set_env" in notice.text and "no tool of this session" in notice.text
    assert "names kubernetes.set_env" in model.requests[1][0][-1].content


async def test_the_model_is_asked_once_a_turn():
    s, model = session([{"text": PROSE}, {"text": PROSE}])
    out = await run(s)
    assert len([e for e in out if isinstance(e, ev.Notice) and e.topic == "answer-check"]) == 1
    assert len(model.requests) == 2 and out[-1].reason == "answered"


async def test_an_answer_that_names_a_tool_or_says_none_can_is_left_alone():
    for text in (
        CALL,
        "Roll it back with rollback_deployment(name=checkout-api, namespace=shop).",
        "The fix is a config change no available action can make: a person must restore PAYMENTS_TIMEOUT_MS by hand.",
        "checkout-7d9f is crash-looping (restarts=14).",
    ):
        s, model = session([{"text": text}])
        out = await run(s)
        assert not [e for e in out if isinstance(e, ev.Notice) and e.topic == "answer-check"], text
        assert len(model.requests) == 1


async def test_an_answer_after_a_write_this_turn_is_not_checked():
    write = {"name": "kubernetes.rollback_deployment", "arguments": {"name": "checkout-api", "namespace": "shop"}}
    s, model = session([{"tool_calls": [write]}, {"text": "Rolled back; the fix: wait for the pods to settle."}])
    out = await run(s)
    assert not [e for e in out if isinstance(e, ev.Notice) and e.topic == "answer-check"]
    # the call it already made is not offered again; a different one named after a write is
    s, model = session([{"tool_calls": [write]}, {"text": f"Rolled back. {CALL}"}])
    assert not [e for e in await run(s) if isinstance(e, ev.FixOffered)]
    other = "Then kubernetes.rollback_deployment(name=payments, namespace=shop)."
    s, model = session([{"tool_calls": [write]}, {"text": other}])
    (offer,) = [e for e in await run(s) if isinstance(e, ev.FixOffered)]
    assert offer.arguments == {"name": "payments", "namespace": "shop"}


async def test_on_the_last_step_the_user_is_told_and_nothing_more_runs():
    s, model = session([{"tool_calls": [PODS]}, {"text": PROSE}], max_steps=2)
    out = await run(s)
    (notice,) = [e for e in out if isinstance(e, ev.Notice) and e.topic == "answer-check"]
    assert "no step of this turn is left" in notice.text
    assert len(model.requests) == 2 and out[-1].reason == "answered"


def test_the_check_reads_calls_and_tool_names_without_a_model():
    known = ["kubernetes.rollback_deployment", "kubernetes.list_pods", "find_tools"]
    assert check_answer(CALL, known).named == ["kubernetes.rollback_deployment"]
    assert check_answer("use rollback_deployment", known).problem == ""
    assert check_answer("The fix is to increase the memory limit to 512Mi.", known).problem.startswith("proposes a fix")
    assert check_answer("see kubectl.patch(deploy) for the fix", known).unknown == ["kubectl.patch"]
    assert check_answer("fixed", known).problem == "" and check_answer("", known).problem == ""


async def test_a_fix_written_as_a_call_is_offered_to_the_faces_and_runs_through_the_pipeline():
    s, model = session([{"tool_calls": [PODS]}, {"text": CALL}])
    out = await run(s)
    (offer,) = [e for e in out if isinstance(e, ev.FixOffered)]
    assert offer.tool == "kubernetes.rollback_deployment" and offer.risk == "write"
    assert offer.arguments == {"name": "checkout-api", "namespace": "shop"}
    assert offer.written == "kubernetes.rollback_deployment(name=checkout-api, namespace=shop)"
    # the one key runs it as the person's own call: the same dispatcher, no model step
    ran = [e async for e in s.run_call("run the proposed fix", offer.tool, offer.arguments)]
    (done,) = [e for e in ran if isinstance(e, ev.ToolCallFinished)]
    assert done.status == "ok" and "rolled back checkout-api" in done.output
    assert len(model.requests) == 2


async def test_a_read_a_restated_fix_or_a_call_missing_its_arguments_is_not_offered():
    for text in (
        "Look again with kubernetes.list_pods(namespace=shop).",
        "The fix: kubernetes.rollback_deployment(name=checkout-api).",
        "The fix: kubernetes.rollback_deployment(checkout-api, shop).",
        PROSE,
    ):
        s, _ = session([{"text": text}, {"text": "No available action can make it; a person must."}])
        out = await run(s)
        assert not [e for e in out if isinstance(e, ev.FixOffered)], text
    # asked once to restate, the restated answer's call is offered
    s, _ = session([{"text": PROSE}, {"text": CALL}])
    assert [e.tool for e in await run(s) if isinstance(e, ev.FixOffered)] == ["kubernetes.rollback_deployment"]


def test_the_arguments_of_a_written_call_are_read_as_values():
    known = ["kubernetes.set_resources", "kubernetes.list_pods"]
    text = (
        'Fix: `set_resources(namespace="batch", name=report-worker, container: worker, '
        "limits={memory: 512Mi, cpu: '1'}, replicas=2, dry_run=false)` then watch."
    )
    call = proposed_call(text, known)
    assert call is not None and call.tool == "kubernetes.set_resources"
    assert call.arguments == {
        "namespace": "batch",
        "name": "report-worker",
        "container": "worker",
        "limits": {"memory": "512Mi", "cpu": "1"},
        "replicas": 2,
        "dry_run": False,
    }
    assert proposed_call("kubernetes.set_resources(name=x, limits={memory: 1Gi", known) is None
    assert proposed_call("nothing to call here", known) is None


def test_a_shaped_fix_is_written_as_a_call_the_answer_reader_reads_back():
    from engine.models.base import ToolSpec
    from engine.models.grammar import answer_fix_schema, fix_text

    set_env = ToolSpec(
        name="kubernetes.set_env",
        description="Set an environment variable",
        parameters={
            "type": "object",
            "properties": {"name": {"type": "string"}, "env_name": {"type": "string"}, "value": {"type": "string"}},
            "required": ["name", "env_name"],
        },
    )
    schema = answer_fix_schema([set_env])
    (call, none) = schema["properties"]["fix"]["oneOf"]
    assert call["properties"]["tool"] == {"const": "kubernetes.set_env"} and none["required"] == ["none"]
    args = {"name": "checkout-api", "env_name": "PAYMENTS_TIMEOUT_MS", "value": "30000", "labels": {"a": "b'c"}}
    text = "checkout-api exits: PAYMENTS_TIMEOUT_MS is not set.\n\n" + fix_text(
        {"tool": "kubernetes.set_env", "arguments": args}
    )
    got = proposed_call(text, {"kubernetes.set_env"})
    assert got is not None and got.tool == "kubernetes.set_env" and got.arguments == args
    said = fix_text({"none": "restore the volume from last night's snapshot"})
    assert check_answer("The disk is gone. " + said, {"kubernetes.set_env"}).none_can


class FixingScriptedModel(ScriptedModel):
    """A scripted model that, like the local one, can shape its answer's fix: it records the actions
    offered to the answer step and plays the next scripted step."""

    def __init__(self, script: list[dict]) -> None:
        super().__init__(script)
        self.fixes: list[list[str]] = []

    def stream_answer(self, messages, fixes, exclude=None):
        self.fixes.append([t.name for t in fixes])
        self.made = [(c.name, c.arguments) for c in exclude or []]
        return self.stream(messages, [])


async def test_the_answer_step_of_a_model_that_can_shape_its_fix_is_given_the_write_actions():
    model = FixingScriptedModel(
        [
            {"tool_calls": [PODS]},
            {
                "text": "Crash-looping since the deploy.\n\nFix: kubernetes.rollback_deployment(name='checkout-api', namespace='shop')"
            },
        ]
    )
    tools = [
        python_tool(list_pods, name="kubernetes.list_pods"),
        python_tool(rollback_deployment, name="kubernetes.rollback_deployment", risk="write"),
    ]
    s = Session(model, Toolbox(tools), config=LoopConfig(max_steps=2))
    out = await run(s)
    assert model.fixes == [["kubernetes.rollback_deployment"]], "only the answer step, with the writes"
    assert model.made == [("kubernetes.list_pods", {"namespace": "shop"})], "the calls made this turn are ruled out"
    (offer,) = [e for e in out if isinstance(e, ev.FixOffered)]
    assert offer.tool == "kubernetes.rollback_deployment" and offer.arguments == {
        "name": "checkout-api",
        "namespace": "shop",
    }


def test_a_fix_already_made_this_turn_is_not_a_fix_the_answer_can_offer():
    from engine.models.base import ToolSpec
    from engine.models.grammar import answer_fix_schema

    def spec(name: str, props: dict) -> ToolSpec:
        return ToolSpec(
            name=name, description=name, parameters={"type": "object", "properties": props, "required": list(props)}
        )

    set_image = spec("kubernetes.set_image", {"name": {"type": "string"}, "image": {"type": "string"}})
    restart = spec("kubernetes.rollout_restart", {"name": {"type": "string"}})
    made = {"kubernetes.set_image": [{"name": "checkout-api", "image": "checkout-api:2.5.0"}]}
    schema = answer_fix_schema([set_image, restart], made)
    tools = [c["properties"].get("tool", {}).get("const") for c in schema["properties"]["fix"]["oneOf"]]
    assert tools == ["kubernetes.rollout_restart", None], "set_image changed nothing this turn: not offered again"
    assert schema["properties"]["answer"]["maxLength"] > 200
