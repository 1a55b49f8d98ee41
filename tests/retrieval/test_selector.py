"""ToolSelector: ToolSetChanged with reasons, sticky tools, budgets, and find_tools mid-turn in the real loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.multiturn import catalog_tools
from engine.events import StepStarted, ToolSetChanged
from engine.loop import Session
from engine.retrieval.index import HybridIndex
from engine.retrieval.selector import FIND_TOOLS, ToolSelector, find_tools_tool, schema_tokens
from engine.testing import ScriptedModel
from engine.toolbox import Toolbox
from engine.tools import Tool, ToolOutput


def _tools() -> list[Tool]:
    tools = catalog_tools()

    async def ok(args: dict) -> ToolOutput:
        return ToolOutput(text="done: " + ", ".join(f"{k}={v}" for k, v in sorted(args.items())))

    for t in tools:
        t.handler = ok
    return tools


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Embedding the catalogue once per module keeps the suite cheap; each test syncs into a copy.
    from skills.playbooks import load_playbooks

    d = tmp_path_factory.mktemp("index")
    # The playbooks too, so a test that loads them finds their vectors cached.
    ToolSelector(_tools(), HybridIndex(d), runbooks=[b.doc() for b in load_playbooks()[0]])
    return d


def _selector(index_dir: Path, tmp_path: Path, **kw) -> tuple[ToolSelector, list[Tool]]:
    import shutil

    shutil.copytree(index_dir, tmp_path / "ix")
    tools = _tools()
    sel = ToolSelector(tools, HybridIndex(tmp_path / "ix"), **kw)
    sel.add_tool(find_tools_tool(sel))
    assert sel.index.embedder.passages_embedded == 0  # the copied index is warm
    return sel, tools


def _session(sel: ToolSelector, tools: list[Tool], script: list[dict]) -> Session:
    return Session(ScriptedModel(script), Toolbox([*tools, sel.tools[FIND_TOOLS]], selector=sel))


async def _run(session: Session, text: str) -> list:
    return [e async for e in session.run_turn(text)]


async def test_toolset_changed_has_reasons_and_sticky_tools_stay(index_dir: Path, tmp_path: Path) -> None:
    sel, tools = _selector(index_dir, tmp_path, max_tools=4, sticky_turns=2)
    s = _session(
        sel,
        tools,
        [
            {
                "tool_calls": [
                    {"name": "kubernetes.get_pod_logs", "arguments": {"name": "payments-api-1", "previous": "true"}}
                ]
            },
            {"text": "OOMKilled."},
            {"text": "Here is the channel update."},
        ],
    )
    events = await _run(s, "show the logs of the crashed payments-api pod")
    changed = [e for e in events if isinstance(e, ToolSetChanged)]
    assert len(changed) == 1  # step 2 offered the same set: no event
    first = changed[0]
    assert "kubernetes.get_pod_logs" in first.loaded and first.reasons[FIND_TOOLS] == "pinned"
    assert (
        first.reasons["kubernetes.get_pod_logs"].startswith("matched: ")
        and "logs" in first.reasons["kubernetes.get_pod_logs"]
    )
    assert first.schema_tokens == sum(schema_tokens(sel.tools[n].spec) for n in first.loaded)
    assert first.query == "show the logs of the crashed payments-api pod"

    events = await _run(s, "post an update to the incident channel in slack")
    second = next(e for e in events if isinstance(e, ToolSetChanged))
    assert "slack.post_message" in second.loaded
    assert second.reasons["slack.post_message"] == "asked to post"
    offered = next(e for e in events if isinstance(e, StepStarted)).tools
    assert "kubernetes.get_pod_logs" in offered  # used last turn: sticky
    assert all(n in offered for n in (FIND_TOOLS, "slack.post_message"))
    assert len(offered) <= 1 + 1 + 4


async def test_sticky_window_expires_and_unloads(index_dir: Path, tmp_path: Path) -> None:
    sel, _ = _selector(index_dir, tmp_path, max_tools=3, sticky_turns=1)
    sel.note_used("queue.purge_queue", turn=1)
    first = sel.plan("certificate expiry of api.example.com", turn=1)
    assert first.reasons["queue.purge_queue"] == "used this turn"
    later = sel.plan("certificate expiry of api.example.com", turn=2)
    assert "queue.purge_queue" not in later.names


async def test_budget_caps_retrieved_schemas(index_dir: Path, tmp_path: Path) -> None:
    sel, _ = _selector(index_dir, tmp_path, max_tools=12, threshold=0.0, budget_tokens=250)
    plan = sel.plan("pods of checkout crashlooping in prod")
    retrieved = [n for n in plan.names if n != FIND_TOOLS]
    assert 1 <= len(retrieved) < 12
    assert sum(schema_tokens(sel.tools[n].spec) for n in retrieved[1:]) <= 250


async def test_find_tools_adds_tools_mid_turn(index_dir: Path, tmp_path: Path) -> None:
    sel, tools = _selector(index_dir, tmp_path, max_tools=2, cold_extra=0)
    s = _session(
        sel,
        tools,
        [
            {"tool_calls": [{"name": FIND_TOOLS, "arguments": {"query": "compare two commits of a repo"}}]},
            {
                "tool_calls": [
                    {"name": "github.compare_commits", "arguments": {"repo": "shop", "base": "v1", "head": "v2"}}
                ]
            },
            {"text": "v2 changed the retry policy."},
        ],
    )
    events = await _run(s, "pods of checkout are crashlooping in prod")
    steps = [e for e in events if isinstance(e, StepStarted)]
    assert "github.compare_commits" not in steps[0].tools
    assert "github.compare_commits" in steps[1].tools
    assert all(n in steps[1].tools for n in steps[0].tools)  # within a turn the set only grows
    mid = [e for e in events if isinstance(e, ToolSetChanged) and e.seq > steps[0].seq][0]
    assert mid.loaded[0] == "github.compare_commits" or "github.compare_commits" in mid.loaded
    assert mid.reasons["github.compare_commits"] == "find_tools: compare two commits of a repo"
    assert not mid.unloaded
    finished = [e for e in events if getattr(e, "kind", "") == "tool-call-finished"]
    assert finished[0].tool == FIND_TOOLS and "github.compare_commits" in finished[0].output
    assert finished[1].status == "ok" and finished[1].output == "done: base=v1, head=v2, repo=shop"


async def test_find_tools_rejects_empty_query(index_dir: Path, tmp_path: Path) -> None:
    sel, _ = _selector(index_dir, tmp_path)
    out = await sel.tools[FIND_TOOLS].handler({"query": "  "})
    assert out.status == "error" and "non-empty" in out.text
    assert [n for n, _, _ in sel.find("drain a node for maintenance")][0] == "kubernetes.drain_node"


def test_symptom_reports_load_reads_before_changes_and_commands_load_the_change(
    index_dir: Path, tmp_path: Path
) -> None:
    sel, tools = _selector(index_dir, tmp_path, max_tools=6, cold_extra=0)
    risk = {t.name: t.risk for t in tools}
    report = sel.plan("the nightly cronjob backup did not run")
    report_changes = [n for n in report.names if risk.get(n, "read") != "read"]
    sel.change_penalty = 1.0
    unpenalised = sel.plan("the nightly cronjob backup did not run")
    # Demoted, not banned: fewer change tools take read tools' slots on a symptom report.
    assert len(report_changes) < len([n for n in unpenalised.names if risk.get(n, "read") != "read"])
    sel.change_penalty = 0.5
    # A command names its verb, and a question naming the verb keeps it too.
    assert "kubernetes.drain_node" in sel.plan("drain worker-3").names
    assert "kubernetes.rollout_restart" in sel.plan("restart the checkout deployment").names
    assert "kubernetes.rollout_restart" in sel.plan("why did checkout restart? should we restart it").names


def test_the_verb_of_a_command_picks_the_tool_whatever_else_the_message_says(index_dir: Path, tmp_path: Path) -> None:
    sel, _ = _selector(index_dir, tmp_path, max_tools=6, cold_extra=0)
    # A remark before the command, and a long payload after it, carry the investigation's words.
    assert "kubernetes.rollout_undo" in sel.plan("yeah thats the bad one. roll orders-api back to 56").names
    assert (
        "slack.post_message"
        in sel.plan("tell #incidents checkout pods are OOMKilled at 512Mi, restarted them, limit bump PR coming").names
    )
    # The reason shown in the console names the verb that chose the tool.
    assert (
        sel.plan("yeah thats the bad one. roll orders-api back to 56").reasons["kubernetes.rollout_undo"]
        == "asked to roll back"
    )
    msg = "tell #incidents checkout pods are OOMKilled at 512Mi, restarted them, limit bump PR coming"
    # Two signals each suffice: the verb "tell", and the #channel only two tools take.
    sel.search.config.command = 0.0
    assert "slack.post_message" in sel.plan(msg).names
    assert sel.plan(msg).reasons["slack.post_message"] == "takes #incidents"
    sel.search.config.exact_argument = 0.0
    assert "slack.post_message" not in sel.plan(msg).names


def test_change_verbs_come_from_the_catalogue() -> None:
    from engine.retrieval.selector import change_verbs

    verbs = change_verbs(_tools())
    assert "restart" in verbs["kubernetes.rollout_restart"]
    assert "delet" in verbs["kubernetes.delete_pod"]
    # "pod" and "rollout" name read tools too (list_pods, rollout_history): they ask for nothing.
    assert "pod" not in verbs["kubernetes.delete_pod"]
    assert "rollout" not in verbs["kubernetes.rollout_restart"]
    assert "kubernetes.list_pods" not in verbs


def test_a_symptom_report_brings_the_matching_playbooks_first_checks(index_dir: Path, tmp_path: Path) -> None:
    from skills.playbooks import load_playbooks

    books, errors = load_playbooks()
    assert not errors
    sel, _ = _selector(index_dir, tmp_path, runbooks=[b.doc() for b in books])
    report = sel.plan("profile-svc returns 500 for every request")
    from_book = [n for n, why in report.reasons.items() if why == "runbook: service-errors"]
    assert from_book == ["prometheus.instant_query", "kubernetes.list_pods", "kubernetes.describe_service"]
    assert report.names.index(from_book[0]) < report.names.index(
        next(n for n, why in report.reasons.items() if why.startswith(("matched", "similar")))
    )
    # A command names its own tool: no playbook is consulted, and no slot is taken from it.
    command = sel.plan("restart the api deployment in staging")
    assert not [why for why in command.reasons.values() if why.startswith("runbook")]
    assert "kubernetes.rollout_restart" in command.names
    # Without runbooks the same report loads no tool for that reason.
    sel.set_runbooks([])
    assert not [
        why
        for why in sel.plan("profile-svc returns 500 for every request").reasons.values()
        if why.startswith("runbook")
    ]


def test_playbook_checks_and_front_matter_values(tmp_path: Path) -> None:
    from skills.playbooks import load_playbooks

    (tmp_path / "a.md").write_text(
        "---\nname: a\ntitle: A\nsymptoms: [exit code 137, 502]\nkeywords: [memory, 404]\n---\n"
        "## Checks, in order\n1. `kubernetes.list_pods` then `dns.resolve` and `kubernetes.list_pods` again.\n"
        "## Safe fixes\n- `kubernetes.rollout_undo`\n"
    )
    (tmp_path / "b.md").write_text(
        "---\nname: b\ntitle: B\n---\nno checks here, `kubernetes.list_pods` only in prose\n"
    )
    (tmp_path / "broken.md").write_text("no front matter\n")
    books, errors = load_playbooks([tmp_path])
    by = {b.name: b for b in books}
    assert by["a"].checks == ["kubernetes.list_pods", "dns.resolve"]  # fixes are not checks; once each
    assert by["b"].checks == []
    doc = by["a"].doc()
    assert doc.kind == "runbook" and doc.keywords == ("memory", "404") and "502" in doc.description
    assert len(errors) == 1 and "broken.md" in errors[0]


async def test_the_same_search_again_answers_from_the_first_without_a_refusal(index_dir: Path, tmp_path: Path) -> None:
    sel, tools = _selector(index_dir, tmp_path, max_tools=2, cold_extra=0)
    s = _session(
        sel,
        tools,
        [
            {"tool_calls": [{"name": FIND_TOOLS, "arguments": {"query": "compare two commits of a repo"}}]},
            {"tool_calls": [{"name": FIND_TOOLS, "arguments": {"query": "compare two commits of a repo"}}]},
            {"tool_calls": [{"name": FIND_TOOLS, "arguments": {"query": "Compare two commits of a repo!"}}]},
            {"text": "done"},
        ],
    )
    events = await _run(s, "pods of checkout are crashlooping in prod")
    finished = [e for e in events if getattr(e, "kind", "") == "tool-call-finished"]
    assert [e.status for e in finished] == ["ok", "ok", "ok"], "a repeated search is answered, not refused"
    for again in finished[1:]:
        assert again.output.startswith("Already searched for") and "this turn" in again.output
        assert "github.compare_commits" in again.output


async def test_the_next_turn_does_not_start_from_the_previous_turns_search(index_dir: Path, tmp_path: Path) -> None:
    """The first run: after an approved rollback, the next turn's first step repeated the previous
    turn's find_tools query word for word. The new turn's retrieval query comes from its own
    message; the repeated search is a wasted step (ruled out for a model that can), and answered
    from the first one for a model that cannot."""
    from engine import events as ev
    from engine.testing import ExcludingScriptedModel

    sel, tools = _selector(index_dir, tmp_path, max_tools=3, cold_extra=0)
    search = {"name": FIND_TOOLS, "arguments": {"query": "roll back a deployment"}}
    model = ExcludingScriptedModel(
        [
            {"tool_calls": [search]},
            {"text": "Rolled back."},
            {"tool_calls": [search]},  # turn 2, first try: the previous turn's search, word for word
            {"tool_calls": [{"name": "kubernetes.list_pods", "arguments": {"namespace": "shop"}}]},
            {"text": "All pods are running."},
        ]
    )
    s = Session(model, Toolbox([*tools, sel.tools[FIND_TOOLS]], selector=sel))
    await _run(s, "checkout pods in namespace shop keep restarting since the deploy")
    second = await _run(s, "are the pods healthy now?")
    query = [e for e in second if isinstance(e, ToolSetChanged)][0].query
    assert "healthy" in query and "restarting" not in query and "roll" not in query
    assert [{"query": "roll back a deployment"}] in [[c.arguments for c in x] for x in model.excluded]
    (notice,) = [e for e in second if isinstance(e, ev.Notice) and e.topic == "repeat-excluded"]
    assert "the same search ran at turn 1" in notice.text
    assert [e.tool for e in second if isinstance(e, ev.ToolCallFinished)] == ["kubernetes.list_pods"]
    # A model that cannot rule the call out gets the first search's answer, not a refusal.
    found = await sel.tools[FIND_TOOLS].handler({"query": "Roll back a deployment."})
    assert found.status == "ok" and found.text.startswith("Already searched for") and "at turn 1" in found.text


async def test_the_answer_step_names_the_writes_that_address_the_findings(index_dir: Path, tmp_path: Path) -> None:
    # The turn's question retrieves reads; the answer step's note lists the write actions ranked
    # against what was found (the cause and its line), not against the question.
    from engine.diagnose.findings import CheckSet, Finding
    from engine.loop import LoopConfig

    class RolloutCheck:
        def read(self, tool, args, text, data, namespace):
            return [Finding("deploy_regression", "deployment/checkout", "errors began with the new rollout", 0.9)]

        def weigh(self, finding):
            return finding.weight

        def follow_ups(self, namespace):
            return []

    sel, tools = _selector(index_dir, tmp_path)
    model = ScriptedModel(
        [{"tool_calls": [{"name": "kubernetes.list_pods", "arguments": {"namespace": "shop"}}]}, {"text": "done"}]
    )
    box = Toolbox([*tools, sel.tools[FIND_TOOLS]], selector=sel)
    session = Session(model, box, checks=CheckSet(makers=(RolloutCheck,)), config=LoopConfig(max_steps=2))
    await _run(session, "why are checkout pods failing?")
    first_tools = [t.name for t in model.requests[0][1]]
    assert "kubernetes.rollout_undo" not in first_tools, first_tools
    note = model.requests[1][0][-1].content
    listed = [line[2:].split("(")[0] for line in note.splitlines() if line.startswith("- ")]
    assert listed[0] == "kubernetes.rollout_undo", listed
    assert all(box.risk_of(n) != "read" for n in listed)
