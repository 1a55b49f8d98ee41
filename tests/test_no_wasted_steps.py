"""No wasted steps: the model reads what its turn already did, and a model that can rule a call out
of its output is asked once more instead of spending a step on a repeat the guard would refuse."""

from __future__ import annotations

from engine import events as ev
from engine.diagnose.findings import CheckSet, Finding
from engine.dispatch import Dispatcher
from engine.loop import ApprovalAnswer, LoopConfig, Session
from engine.policy.rules import Policy
from engine.testing import ExcludingScriptedModel, ScriptedModel
from engine.toolbox import Toolbox
from engine.tools import python_tool

ran: list[str] = []


def list_pods(namespace: str) -> str:
    """List pods in a namespace."""
    ran.append(f"pods {namespace}")
    return "checkout-7d9f  0/1  CrashLoopBackOff  restarts=14"


def list_events(namespace: str) -> str:
    """Events in a namespace."""
    ran.append(f"events {namespace}")
    return "Warning BackOff pod/checkout-7d9f Back-off restarting failed container"


def restart(name: str) -> str:
    """Restart a deployment."""
    ran.append(f"restart {name}")
    return "restarted"


PODS = {"name": "list_pods", "arguments": {"namespace": "shop"}}
EVENTS = {"name": "list_events", "arguments": {"namespace": "shop"}}


def toolbox(**kw) -> Toolbox:
    return Toolbox([python_tool(list_pods), python_tool(list_events), python_tool(restart, risk="write")], **kw)


async def run(session: Session, text: str = "why is checkout failing?") -> list:
    return [e async for e in session.run_turn(text)]


async def test_each_step_closes_with_what_the_turn_already_did_and_keeps_the_history_as_it_was():
    ran.clear()
    model = ScriptedModel(
        [{"tool_calls": [PODS]}, {"tool_calls": [EVENTS]}, {"text": "checkout crash-loops: BackOff."}]
    )
    await run(Session(model, toolbox(), config=LoopConfig(max_steps=5)))
    first, second, third = (msgs for msgs, _ in model.requests)
    assert not any(m.note for m in first), "nothing done yet, nothing to say"
    note = third[-1]
    assert note.note and note.role == "user"
    assert "already made this turn" in note.content
    assert "- list_pods(namespace=shop) → ok: checkout-7d9f 0/1 CrashLoopBackOff restarts=14" in note.content
    assert "- list_events(namespace=shop) → ok: Warning BackOff" in note.content
    # the note is appended: every message before it is the one the previous step read
    assert third[: len(second) - 1] == second[:-1]


async def test_the_answer_step_offers_no_tools_and_carries_no_checklist_but_the_write_actions():
    model = ScriptedModel([{"tool_calls": [PODS]}, {"text": "done"}])
    await run(Session(model, toolbox(), config=LoopConfig(max_steps=2)))
    msgs, tools = model.requests[1]
    assert tools == [] and not any("already made this turn" in m.content for m in msgs if m.note)
    note = msgs[-1].content
    assert "like restart(name=…)" in note and "- restart(name=…): Restart a deployment." in note, "the writes instead"


async def test_what_the_turn_answered_is_ruled_out_from_the_start_of_each_step():
    ran.clear()
    model = ExcludingScriptedModel([{"tool_calls": [PODS]}, {"tool_calls": [EVENTS]}, {"text": "BackOff."}])
    out = await run(Session(model, toolbox(), config=LoopConfig(max_steps=5)))
    pods, events = ("list_pods", {"namespace": "shop"}), ("list_events", {"namespace": "shop"})
    assert [[(c.name, c.arguments) for c in x] for x in model.excluded] == [[pods], [pods, events]]
    assert not [e for e in out if isinstance(e, ev.Notice) and e.topic.startswith("repeat")], "no second try"
    assert ran == ["pods shop", "events shop"] and out[-1].steps == 3


async def test_a_repeat_written_despite_the_exclusion_is_asked_again_and_no_step_is_refused():
    # (the grammar rules out the call as written; grounding can still turn another into it)
    ran.clear()
    model = ExcludingScriptedModel(
        [{"tool_calls": [PODS]}, {"tool_calls": [PODS]}, {"tool_calls": [EVENTS]}, {"text": "BackOff."}]
    )
    out = await run(Session(model, toolbox(), config=LoopConfig(max_steps=5)))
    pods = [("list_pods", {"namespace": "shop"})]
    assert [[(c.name, c.arguments) for c in x] for x in model.excluded][:2] == [pods, pods]
    (notice,) = [e for e in out if isinstance(e, ev.Notice) and e.topic == "repeat-excluded"]
    assert "list_pods(namespace=shop)" in notice.text and "already answered at step 1" in notice.text
    assert ran == ["pods shop", "events shop"]
    assert not [e for e in out if isinstance(e, ev.ToolCallFinished) and e.status == "refused"]
    step2 = [e for e in out if isinstance(e, ev.AssistantMessage) and e.step == 2]
    assert [c["name"] for c in step2[0].tool_calls] == ["list_events"], "the step records the second try"
    assert out[-1].reason == "answered" and out[-1].steps == 3
    steps = [e for e in out if isinstance(e, ev.StepFinished)]
    assert steps[1].completion_tokens == 16, "both tries count"


async def test_a_second_try_that_repeats_again_is_dropped_and_the_next_step_answers():
    ran.clear()
    model = ExcludingScriptedModel(
        [{"tool_calls": [PODS]}, {"tool_calls": [PODS]}, {"tool_calls": [PODS]}, {"text": "crash-looping."}]
    )
    out = await run(Session(model, toolbox(), config=LoopConfig(max_steps=6)))
    assert len(model.excluded) == 2 and ran == ["pods shop"]
    assert not [e for e in out if isinstance(e, ev.ToolCallFinished) and e.status == "refused"], "no refused step"
    (loop,) = [e for e in out if isinstance(e, ev.Notice) and e.topic == "repeat-loop"]
    assert "list_pods(namespace=shop) with it ruled out; step 3 answers" in loop.text
    msgs, tools = model.requests[-1]
    assert tools == [], "the answer step offers no tools"
    note = msgs[-1].content
    assert "name it as one call of these actions" in note and "- restart(name=…): Restart a deployment." in note
    assert "list_pods(" not in note.split("these actions")[-1], "only write actions are named"
    assert out[-1].reason == "answered" and out[-1].steps == 3


async def test_the_second_try_rules_out_every_call_the_turn_already_answered():
    ran.clear()
    model = ExcludingScriptedModel(
        [{"tool_calls": [PODS]}, {"tool_calls": [EVENTS]}, {"tool_calls": [PODS]}, {"text": "BackOff."}]
    )
    await run(Session(model, toolbox(), config=LoopConfig(max_steps=6)))
    ruled = model.excluded[-1]
    assert [(c.name, c.arguments) for c in ruled] == [
        ("list_pods", {"namespace": "shop"}),
        ("list_events", {"namespace": "shop"}),
    ]


async def test_a_model_without_exclusion_gets_the_refusal_and_reads_the_checklist():
    ran.clear()
    model = ScriptedModel(
        [{"tool_calls": [PODS]}, {"tool_calls": [EVENTS]}, {"tool_calls": [PODS]}, {"text": "crash-looping."}]
    )
    out = await run(Session(model, toolbox(), config=LoopConfig(max_steps=5)))
    assert ran == ["pods shop", "events shop"]
    assert [e.status for e in out if isinstance(e, ev.ToolCallFinished)] == ["ok", "ok", "refused"]
    assert (
        "- list_pods(namespace=shop) → refused: repeat of an earlier call; not run" in model.requests[3][0][-1].content
    )


async def test_a_step_with_one_new_call_beside_a_repeat_is_not_taken_again():
    ran.clear()
    model = ExcludingScriptedModel([{"tool_calls": [PODS]}, {"tool_calls": [PODS, EVENTS]}, {"text": "BackOff."}])
    out = await run(Session(model, toolbox(), config=LoopConfig(max_steps=5)))
    assert not [e for e in out if isinstance(e, ev.Notice) and e.topic == "repeat-excluded"], "no second try"
    assert [c.name for c in model.excluded[0]] == ["list_pods"] and ran == ["pods shop", "events shop"]


class Denier:
    async def ask(self, request: ev.ApprovalRequested) -> ApprovalAnswer:
        return ApprovalAnswer.to(request, False, "user", "not now")


async def test_a_call_the_human_denied_is_ruled_out_of_the_next_try():
    ran.clear()
    write = {"name": "restart", "arguments": {"name": "checkout"}}
    model = ExcludingScriptedModel(
        [{"tool_calls": [write]}, {"tool_calls": [write]}, {"tool_calls": [PODS]}, {"text": "Not restarted."}]
    )
    box = toolbox(dispatcher=Dispatcher(Policy.safest(), None))
    out = await run(Session(model, box, approver=Denier(), config=LoopConfig(max_steps=5)))
    assert [c.name for c in model.excluded[0]] == ["restart"], "ruled out of the next step from its start"
    assert len([e for e in out if isinstance(e, ev.ApprovalRequested)]) == 1, "the human is asked once"
    assert "restart" not in " ".join(ran)


class OOMCheck:
    """A check of this test's own: an OOMKilled line is a strong finding."""

    def read(self, tool, args, text, data, namespace):
        return [
            Finding("oom_killed", "workload/report", line, 0.9) for line in text.splitlines() if "OOMKilled" in line
        ]

    def weigh(self, finding):
        return finding.weight

    def follow_ups(self, namespace):
        return []


def oom_pods(namespace: str) -> str:
    """List pods in a namespace."""
    ran.append(f"pods {namespace}")
    return "report-7d9f  0/1  OOMKilled  restarts=9"


def get_config(name: str) -> str:
    """A config map."""
    ran.append(f"config {name}")
    return "data: {}"


async def test_once_a_strong_finding_stands_two_steps_that_find_nothing_new_lead_to_the_answer():
    ran.clear()
    box = Toolbox(
        [python_tool(oom_pods), python_tool(list_events), python_tool(get_config), python_tool(restart, risk="write")]
    )
    model = ScriptedModel(
        [
            {"tool_calls": [{"name": "oom_pods", "arguments": {"namespace": "batch"}}]},
            {"tool_calls": [{"name": "list_events", "arguments": {"namespace": "batch"}}]},
            {"tool_calls": [{"name": "get_config", "arguments": {"name": "report"}}]},
            {"text": "report is OOMKilled: raise its memory limit with restart(name=report)."},
            {"tool_calls": [{"name": "get_config", "arguments": {"name": "other"}}]},
        ]
    )
    session = Session(model, box, checks=CheckSet(makers=(OOMCheck,)), config=LoopConfig(max_steps=8))
    out = await run(session, "report keeps restarting")
    (notice,) = [e for e in out if isinstance(e, ev.Notice) and e.topic == "settled"]
    assert notice.text.startswith("Steps 2–3 found nothing new beside oom_killed on workload/report; step 4 answers")
    assert ran == ["pods batch", "events batch", "config report"]
    assert model.requests[3][1] == [], "the answer step offers no tools"
    assert out[-1].reason == "answered" and out[-1].steps == 4


async def test_without_a_strong_finding_the_model_reads_on():
    ran.clear()
    script = [{"tool_calls": [{"name": "list_events", "arguments": {"namespace": n}}]} for n in "abc"]
    model = ScriptedModel([*script, {"text": "nothing found."}])
    session = Session(model, toolbox(), checks=CheckSet(makers=(OOMCheck,)), config=LoopConfig(max_steps=8))
    out = await run(session)
    assert not [e for e in out if isinstance(e, ev.Notice) and e.topic == "settled"]
    assert ran == ["events a", "events b", "events c"]


async def test_a_read_the_backend_refused_is_not_run_again_with_the_same_arguments():
    from engine.tools import Tool, ToolOutput

    async def missing(args: dict) -> ToolOutput:
        ran.append(f"describe {args['name']}")
        return ToolOutput(text='services "ledger-svc" not found', data={"status": 404})

    ran.clear()
    tool = Tool(
        "describe_service",
        "Describe a service",
        {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        missing,
    )
    call = {"name": "describe_service", "arguments": {"name": "ledger-svc"}}
    model = ScriptedModel([{"tool_calls": [call]}, {"tool_calls": [call]}, {"text": "The service does not exist."}])
    out = await run(Session(model, Toolbox([tool]), config=LoopConfig(max_steps=5)))
    finished = [e for e in out if isinstance(e, ev.ToolCallFinished)]
    assert [(e.status, e.error_kind) for e in finished] == [("error", "client"), ("refused", "")]
    assert ran == ["describe ledger-svc"]


async def test_an_answer_without_words_is_said_to_be_none_with_the_findings_instead():
    box = Toolbox([python_tool(oom_pods)])
    model = ScriptedModel([{"tool_calls": [{"name": "oom_pods", "arguments": {"namespace": "batch"}}]}, {"text": "{"}])
    out = await run(Session(model, box, checks=CheckSet(makers=(OOMCheck,)), config=LoopConfig(max_steps=5)))
    (notice,) = [e for e in out if isinstance(e, ev.Notice) and e.topic == "no-answer"]
    assert notice.level == "warning" and "no usable answer ('{')" in notice.text
    assert "oom_killed on workload/report (report-7d9f  0/1  OOMKilled" in notice.text


async def test_three_steps_of_one_tool_with_other_arguments_each_lead_to_the_answer():
    ran.clear()
    script = [{"tool_calls": [{"name": "list_events", "arguments": {"namespace": n}}]} for n in "abcd"]
    model = ScriptedModel([*script[:3], {"text": "BackOff in a."}, script[3]])
    out = await run(Session(model, toolbox(), config=LoopConfig(max_steps=8)))
    (notice,) = [e for e in out if isinstance(e, ev.Notice) and e.topic == "repeat-loop"]
    assert notice.text == "Steps 1–3 each asked only for list_events; step 4 answers with the evidence it has."
    assert ran == ["events a", "events b", "events c"] and model.requests[3][1] == []
    assert out[-1].reason == "answered" and out[-1].steps == 4


async def test_the_same_call_written_without_an_argument_the_dispatcher_fills_in_is_ruled_out_too():
    # describe(name=api, namespace=shop) answered; the session's namespace is shop, so the call with
    # the namespace left out would be the same one: both are ruled out of the next step.
    def describe(name: str, namespace: str = "default") -> str:
        """Describe a service."""
        ran.append(f"describe {namespace}/{name}")
        return f"service {name}"

    ran.clear()
    call = {"name": "describe", "arguments": {"name": "api", "namespace": "shop"}}
    model = ExcludingScriptedModel([{"tool_calls": [call]}, {"tool_calls": [EVENTS]}, {"text": "done"}])
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "namespace": {"type": "string", "default": "default"}},
        "required": ["name"],
    }
    box = Toolbox(
        [python_tool(describe, parameters=schema), python_tool(list_events)],
        dispatcher=Dispatcher(Policy.permissive(), None, kube=lambda: (None, "shop")),
    )
    await run(Session(model, box, config=LoopConfig(max_steps=4)))
    ruled = [(c.name, c.arguments) for c in model.excluded[0]]
    assert ("describe", {"name": "api", "namespace": "shop"}) in ruled and ("describe", {"name": "api"}) in ruled
    assert ("describe", {"namespace": "shop"}) not in ruled, "a call without its required name is not the same call"


async def test_the_answer_steps_example_call_carries_the_object_the_strongest_finding_names():
    # report is OOMKilled in batch: the note's example call is written with name='report' and the
    # session's namespace, which a small model copies instead of inventing a name.
    def set_memory(name: str, namespace: str, memory: str) -> str:
        """Set a workload's memory limit."""
        return "set"

    box = Toolbox([python_tool(oom_pods), python_tool(set_memory, risk="write")])
    model = ScriptedModel(
        [{"tool_calls": [{"name": "oom_pods", "arguments": {"namespace": "batch"}}]}, {"text": "done"}]
    )
    s = Session(model, box, checks=CheckSet(makers=(OOMCheck,)), config=LoopConfig(max_steps=2))
    s.diagnoser.namespace = "batch"
    await run(s)
    note = model.requests[1][0][-1].content
    assert "like set_memory(name='report', namespace='batch', memory=…)" in note, note
