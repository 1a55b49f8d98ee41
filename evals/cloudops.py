"""Replay evaluation on Cloud-OpsBench cases: the real engine investigates a recorded cluster.

Each case directory holds the alert, the truth and the recorded outputs of the benchmark's 10
read-only tools. The engine runs with its real toolbox (retrieval, guard, policy, critic) over
the replay executor, then must answer with its top 3 (taxonomy, root cause, object).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.jsonfile import load_json
from engine.models.base import Message, ToolSpec


@dataclass
class Case:
    """One benchmark case."""

    id: str
    category: str
    query: str
    namespace: str
    truth: dict[str, str]
    paths: list[list[str]]
    dir: Path


@dataclass
class CaseResult:
    """What the engine did on one case and how it scored."""

    case: str
    category: str
    answers: list[dict[str, str]] = field(default_factory=list)
    evidence: str = ""
    """What the model quoted as the evidence for its answer (structured answers)."""
    checks: list[dict[str, str]] = field(default_factory=list)
    """The engine's own top findings (engine.diagnose) at the end of the turn, as answers: what
    the checks alone would have said, scored beside the model."""
    hit1: bool = False
    hit3: bool = False
    checks_hit1: bool = False
    checks_hit3: bool = False
    calls: list[str] = field(default_factory=list)
    alignment: float = 0.0
    tokens: int = 0
    seconds: float = 0.0
    error: str = ""
    notices: list[str] = field(default_factory=list)
    """Files of the case read as absent (empty, cut off, binary)."""


def load_cases(root: Path, limit: int | None = None, notices: list[str] | None = None) -> list[Case]:
    """Cases under `root` (category/n/metadata.json), ordered so a limit samples every category. A
    case whose metadata cannot be read (empty, cut off, binary, no truth) is left out with a line
    in `notices`: it cannot be scored."""
    by_cat: dict[str, list[Case]] = defaultdict(list)
    for meta in sorted(root.glob("*/*/metadata.json")):
        local: list[str] = []
        m = load_json(meta, {}, local, expect=dict)
        truth = m.get("result")
        if not isinstance(truth, dict) or not {"root_cause", "fault_object"} <= truth.keys():
            if notices is not None:
                notices.append(
                    f"{meta.parent.parent.name}/{meta.parent.name}: "
                    + (local[0] if local else "metadata.json has no truth: left out")
                )
            continue
        proc = m.get("process") if isinstance(m.get("process"), dict) else {}
        paths = [p for k, p in sorted(proc.items()) if k.startswith("path") and isinstance(p, list)]
        by_cat[meta.parent.parent.name].append(
            Case(
                f"{meta.parent.parent.name}/{meta.parent.name}",
                meta.parent.parent.name,
                str(m.get("query", "")),
                m.get("namespace") or "default",
                truth,
                paths,
                meta.parent,
            )
        )
    ordered: list[Case] = []
    while any(by_cat.values()):
        for cat in sorted(by_cat):
            if by_cat[cat]:
                ordered.append(by_cat[cat].pop(0))
    return ordered[:limit] if limit else ordered


def load_candidates(root: Path) -> dict[str, Any]:
    """The allowed labels (candidates.json); empty lists when it cannot be read."""
    data = load_json(root / "candidates.json", {}, expect=dict)
    for k in ("root_causes", "taxonomies", "services", "nodes", "namespaces"):
        data.setdefault(k, [])
    return data


def task_prompt(case: Case, cands: dict[str, Any]) -> str:
    """The user message: the alert, the scope, the labels by the kind of object they name, the format."""
    by_target: dict[str, list[str]] = defaultdict(list)
    for c in cands["root_causes"]:
        by_target[c.get("target", "service")].append(c["root_cause"])
    labels = "\n".join(f"- on a {t}: {', '.join(rs)}" for t, rs in by_target.items())
    return (
        f"Alert: {case.query}\nNamespace: {case.namespace}. Services: {', '.join(cands.get('services', []))}. "
        f"Nodes: {', '.join(cands.get('nodes', []))}.\n"
        "Investigate with the tools (read-only): start broad (the pods and the recent events of the namespace), "
        "then look closer at what is failing. Then give your final answer as JSON only: "
        '{"evidence": "<the error or state that shows the cause, quoted from a tool output>", '
        '"answers": [{"root_cause": R, "object": "service/NAME" or "node/NAME" or "namespace/NAME", "taxonomy": T}]} '
        "with up to 3 answers, most likely first.\n"
        f"Root causes, by the object they name:\n{labels}\nTaxonomies: {', '.join(cands['taxonomies'])}."
    )


def answer_schema(cands: dict[str, Any]) -> dict[str, Any]:
    """The final answer's JSON Schema: 1 to 3 (root cause, object, taxonomy) triples from the
    candidates, each root cause paired only with objects of the kind it names (a service, a
    node or a namespace), so a model that constrains its output cannot answer off the list."""
    objects = {
        "service": [f"service/{s}" for s in cands.get("services", [])],
        "node": [f"node/{n}" for n in cands.get("nodes", [])],
        "namespace": [f"namespace/{n}" for n in cands.get("namespaces", [])],
    }
    taxonomies = list(cands.get("taxonomies", {}))
    groups = []
    for target, objs in objects.items():
        causes = [c["root_cause"] for c in cands.get("root_causes", []) if c.get("target", "service") == target]
        if not causes or not objs:
            continue
        props: dict[str, Any] = {"root_cause": {"enum": causes}, "object": {"enum": objs}}
        if taxonomies:
            props["taxonomy"] = {"enum": taxonomies}
        groups.append({"type": "object", "properties": props, "required": list(props)})
    item = groups[0] if len(groups) == 1 else {"anyOf": groups}
    return {
        "type": "object",
        "properties": {
            # Written first: the error line the answer rests on, quoted from a tool output, so the
            # labels a model picks next are conditioned on the evidence it has just restated.
            "evidence": {"type": "string", "maxLength": EVIDENCE_MAX_CHARS},
            "answers": {"type": "array", "items": item, "minItems": 1, "maxItems": 3},
        },
        "required": ["evidence", "answers"],
    }


EVIDENCE_MAX_CHARS = 240
"""The evidence sentence of a structured answer (one quoted line, not an essay)."""


def parse_answers(text: str) -> list[dict[str, str]]:
    """The answers from the model's final text (the last JSON object or list in it)."""
    for m in reversed(list(re.finditer(r"\{.*\}|\[.*\]", text, re.S))):
        try:
            data = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        items = data.get("answers", data) if isinstance(data, dict) else data
        if isinstance(items, dict):
            items = [items]
        out = [
            {k: str(a.get(k, "")).strip() for k in ("taxonomy", "root_cause", "object")}
            for a in items
            if isinstance(a, dict)
        ]
        if out:
            return out[:3]
    return []


def triage(case: Case) -> list[dict[str, Any]]:
    """The opening reads of a Kubernetes triage, run before the model's first step: the
    namespace's pods and events, the nodes, and the firing alerts. Where each recorded fault
    shows is the model's to find; these only give it the broad first look an on-call engineer
    takes (every expert path in the dev set starts with the pods)."""
    ns = case.namespace
    return [
        {"name": "cloudops.GetResources", "arguments": {"resource_type": "pods", "namespace": ns}},
        {"name": "cloudops.GetResources", "arguments": {"resource_type": "events", "namespace": ns}},
        {"name": "cloudops.GetClusterConfiguration", "arguments": {}},
        {"name": "cloudops.GetAlerts", "arguments": {}},
    ]


def parse_evidence(text: str) -> str:
    """The evidence sentence of a structured answer ('' when there is none)."""
    try:
        data = json.loads(text)
    except ValueError:
        return ""
    return str(data.get("evidence", "")) if isinstance(data, dict) else ""


def _norm_obj(s: str) -> str:
    s = s.strip().lower()
    return s if "/" in s else f"service/{s}"


def is_hit(answer: dict[str, str], truth: dict[str, str]) -> bool:
    """Right root cause on the right object."""
    return (
        answer.get("root_cause", "").strip().lower() == truth["root_cause"].lower()
        and _norm_obj(answer.get("object", "")) == truth["fault_object"].lower()
    )


def _strip_pod_hash(v: str) -> str:
    return re.sub(r"-[a-z0-9]{8,10}(-[a-z0-9]{5})?$", "", v)


def call_step(tool: str, args: dict[str, Any]) -> str:
    """A tool call in the experts' path notation: Tool::value::value (namespace and flags left out)."""
    parts = [tool.rsplit(".", 1)[-1]]
    for k, v in args.items():
        if k == "namespace" or isinstance(v, bool) or v in ("", None):
            continue
        parts.append(_strip_pod_hash(str(v)))
    return "::".join(parts)


def step_matches(call: str, expert: str) -> bool:
    """Same tool, and every value the expert's step names is among the call's values."""
    c_tool, *c_vals = call.split("::")
    e_tool, *e_vals = expert.split("::")
    return c_tool == e_tool and all(v in c_vals for v in e_vals if v)


def alignment(calls: list[str], paths: list[list[str]]) -> float:
    """Best share of an expert path covered in order (LCS / path length) over the experts' paths."""
    best = 0.0
    for path in paths:
        path = list(dict.fromkeys(path))  # some recorded paths repeat themselves verbatim
        if not path:
            continue
        n, m = len(calls), len(path)
        dp = [[0] * (m + 1) for _ in range(n + 1)]
        for i in range(n):
            for j in range(m):
                dp[i + 1][j + 1] = dp[i][j] + 1 if step_matches(calls[i], path[j]) else max(dp[i][j + 1], dp[i + 1][j])
        best = max(best, dp[n][m] / m)
    return round(best, 3)


async def run_case(
    case: Case,
    cands: dict[str, Any],
    model: Any,
    make_tools: Callable[[Path], list[Any]],
    *,
    max_steps: int = 10,
    opening: bool = True,
    diagnose: bool = True,
) -> CaseResult:
    """Run the real engine on one case and score it (`opening`: start with the triage reads;
    `diagnose`: the engine's checks read each output and the findings ask for follow-up reads)."""
    from engine.config import Config
    from engine.loop import LoopConfig, Session
    from engine.store import Store
    from skills.registry import checks_for
    from skills.replay import cloudops_pack
    from wiring import attach, build_context_for, build_toolbox, make_reviewer

    res = CaseResult(case.id, case.category)
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="lantern-eval-") as tmp:
            async with Store(Path(tmp) / "eval.db") as store:
                cfg = Config(model=getattr(model, "name", "eval"), max_steps=max_steps)
                tools = make_tools(case.dir)
                res.notices = _notices(tools)
                toolbox = build_toolbox(cfg, extra_tools=tools, include_packs=False)
                # The guarded dispatcher (argument checks, repeat guard, policy, audit), as in a live session.
                await attach(toolbox, store, cfg)
                session = Session(
                    model,
                    toolbox,
                    sink=store,
                    context=build_context_for(model, cfg),
                    reviewer=make_reviewer(model, cfg, None),
                    config=LoopConfig(
                        max_steps=max_steps,
                        answer_schema=answer_schema(cands),
                        opening=triage(case) if opening else [],
                        diagnose=diagnose,
                        follow_up_rounds=3,
                    ),
                    checks=checks_for([cloudops_pack()]),
                )
                await store.create_session(session.id, model=getattr(model, "name", "eval"), context=None)
                final = await _investigate(session, task_prompt(case, cands), res)
                if session.diagnoser is not None:
                    res.checks = benchmark_answers(session.diagnoser.ranked(), cands)
        res.answers = parse_answers(final)
        res.evidence = parse_evidence(final)
    except Exception as exc:  # noqa: BLE001 - one broken case must not stop the run
        res.error = f"{type(exc).__name__}: {exc}"
    res.hit1 = bool(res.answers) and is_hit(res.answers[0], case.truth)
    res.hit3 = any(is_hit(a, case.truth) for a in res.answers[:3])
    res.checks_hit1 = bool(res.checks) and is_hit(res.checks[0], case.truth)
    res.checks_hit3 = any(is_hit(a, case.truth) for a in res.checks[:3])
    res.alignment = alignment(res.calls, case.paths)
    res.seconds = round(time.perf_counter() - t0, 2)
    return res


BENCHMARK_LABELS: dict[str, str] = {
    "image_not_found": "incorrect_image_reference",
    "image_pull_unauthorized": "missing_image_pull_secret",
    "service_no_endpoints": "service_selector_mismatch",
    "dns_resolution_failure": "service_env_var_address_mismatch",
    "node_not_ready": "kubelet_unavailable",
    "cpu_throttling": "pod_cpu_overload",
    "storage_class_missing": "pvc_storage_class_mismatch",
}
"""Lantern's causes (skills/kube/catalogue.yaml) → Cloud-OpsBench's labels, where the benchmark
names the same fault differently. A cause the benchmark has no label for is left out of its answers."""


def benchmark_answers(findings: list[Any], cands: dict[str, Any], limit: int = 3) -> list[dict[str, str]]:
    """The checks' ranked findings as the benchmark's answers: causes mapped to its labels, those
    it has no label for left out, each (label, object) once."""
    labels = {c["root_cause"] for c in cands.get("root_causes", [])}
    out: list[dict[str, str]] = []
    for f in findings:
        label = BENCHMARK_LABELS.get(f.cause, f.cause)
        ans = {"root_cause": label, "object": f.object}
        if (labels and label not in labels) or ans in out:
            continue
        out.append(ans)
        if len(out) >= limit:
            break
    return out


def _notices(tools: list[Any]) -> list[str]:
    """What the replay world could not read of the case (its files read as absent)."""
    case = getattr(tools, "case", None)
    return list(getattr(case, "notices", []))


async def _investigate(session: Any, prompt: str, res: CaseResult) -> str:
    """Run the turn, recording calls, tokens and errors on `res`; the final answer text."""
    final = ""
    async for e in session.run_turn(prompt):
        if e.kind == "tool-call-started" and e.tool != "findings":
            res.calls.append(call_step(e.tool, e.arguments))
        elif e.kind == "assistant-message" and e.text and not e.tool_calls:
            final = e.text
        elif e.kind == "turn-finished":
            res.tokens = e.prompt_tokens + e.completion_tokens
        elif e.kind == "error":
            res.error = f"{e.code}: {e.message}"
    return final


def summarise(results: list[CaseResult]) -> dict[str, Any]:
    """A@1, A@3, per category, calls, tokens, time, alignment, and the commonest failure patterns."""
    n = len(results) or 1
    cats: dict[str, list[CaseResult]] = defaultdict(list)
    for r in results:
        cats[r.category].append(r)
    failures: dict[str, int] = defaultdict(int)
    for r in results:
        if r.hit1:
            continue
        if r.error:
            failures["error: " + r.error.split(":")[0]] += 1
        elif not r.answers:
            failures["no parsable final answer"] += 1
        elif not r.calls:
            failures["answered without calling a tool"] += 1
        else:
            failures["wrong root cause or object"] += 1
    return {
        "cases": len(results),
        "A@1": round(sum(r.hit1 for r in results) / n, 3),
        "A@3": round(sum(r.hit3 for r in results) / n, 3),
        "checks_A@1": round(sum(r.checks_hit1 for r in results) / n, 3),
        "checks_A@3": round(sum(r.checks_hit3 for r in results) / n, 3),
        "per_category": {
            c: {
                "cases": len(rs),
                "A@1": round(sum(r.hit1 for r in rs) / len(rs), 3),
                "A@3": round(sum(r.hit3 for r in rs) / len(rs), 3),
                "checks_A@1": round(sum(r.checks_hit1 for r in rs) / len(rs), 3),
                "checks_A@3": round(sum(r.checks_hit3 for r in rs) / len(rs), 3),
            }
            for c, rs in sorted(cats.items())
        },
        "tool_calls_per_case": round(sum(len(r.calls) for r in results) / n, 2),
        "tokens_per_case": round(sum(r.tokens for r in results) / n),
        "seconds_per_case": round(sum(r.seconds for r in results) / n, 2),
        "alignment": round(sum(r.alignment for r in results) / n, 3),
        "failure_patterns": dict(sorted(failures.items(), key=lambda kv: -kv[1])[:3]),
    }


def checks_only_model() -> Any:
    """A scripted model that answers at once with nothing: the case's score is the checks' own
    (the triage reads and the follow-ups the findings ask for still run, as the engine's step 0)."""
    from engine.testing import ScriptedModel

    reply = {"text": json.dumps({"evidence": "", "answers": []})}
    return ScriptedModel(responder=lambda messages, tools: reply, name="checks")


class OracleModel:
    """A scripted model that follows the experts' path and answers with the truth (or a set wrong answer).

    It shows the harness scores a perfect run as perfect and a wrong answer as wrong.
    """

    def __init__(self, case: Case, tool_cache: dict[str, Any], *, wrong: bool = False) -> None:
        from engine.testing import ScriptedModel

        self.case = case
        self.cache_keys = [k for k in tool_cache if ":" in k]
        self.wrong = wrong
        self._steps = 0  # its own steps: the opening triage reads are not the oracle's calls
        self.inner = ScriptedModel(responder=self._respond, name="oracle" + ("-wrong" if wrong else ""))
        self.name = self.inner.name
        self.context_window = 128_000

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> int:
        """Delegates to the scripted estimate."""
        return self.inner.count_tokens(messages, tools)

    def stream(
        self, messages: list[Message], tools: list[ToolSpec], *, answer_schema: dict[str, Any] | None = None
    ) -> Any:
        """One step of the oracle."""
        return self.inner.stream(messages, tools, answer_schema=answer_schema)

    def _respond(self, messages: list[Message], tools: list[ToolSpec]) -> dict[str, Any]:
        done = self._steps
        self._steps += 1
        path = list(dict.fromkeys(self.case.paths[0])) if self.case.paths else []
        offered = {t.name.rsplit(".", 1)[-1]: t.name for t in tools}
        if done < len(path):
            call = self._call_for(path[done], offered)
            if call:
                return {"tool_calls": [call]}
        truth = dict(self.case.truth)
        if self.wrong:
            truth = {
                **truth,
                "root_cause": "namespace_cpu_quota_exceeded"
                if truth["root_cause"] != "namespace_cpu_quota_exceeded"
                else "oom_killed",
            }
        ans = {"taxonomy": truth["fault_taxonomy"], "root_cause": truth["root_cause"], "object": truth["fault_object"]}
        return {"text": json.dumps({"evidence": "the experts' path", "answers": [ans]})}

    def _call_for(self, step: str, offered: dict[str, str]) -> dict[str, Any] | None:
        parts = step.split("::")
        tool = parts[0]
        name = offered.get(tool)
        if name is None:
            return None
        prefix = f"{tool}:"
        best = None
        for k in self.cache_keys:
            if not k.startswith(prefix):
                continue
            try:
                args = json.loads(k[len(prefix) :])
            except json.JSONDecodeError:
                continue
            if not step_matches(call_step(tool, args), step):
                continue
            if best is None or len(json.dumps(args)) < len(json.dumps(best)):
                best = args
        return {"name": name, "arguments": best or {}}
