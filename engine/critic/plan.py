"""The plan critic: deterministic checks on remediation plans before any approval is asked.

A plan is the list of write calls the model asked for in one step. The critic looks for steps
that repeat, steps whose target no evidence mentions, plans longer than the fix needs, and
dangerous steps where a safer action of the same pack would do. Its verdict goes back to the
model once ("simplify"/"reject") before anything reaches the user.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

SAFER: list[tuple[str, str, str]] = [
    # (dangerous action suffix, safer action suffix, why)
    ("delete_pod", "rollout_restart", "restart the deployment rather than deleting its pods one by one"),
    ("delete_resource", "scale", "scale to zero before deleting: it is reversible"),
    ("delete_deployment", "scale", "scale to zero before deleting: it is reversible"),
    ("drain", "cordon", "cordon first: it stops new pods without evicting running ones"),
    ("patch", "rollout_undo", "roll back to the last good revision rather than editing by hand"),
    ("set_image", "rollout_undo", "roll back to the last good revision rather than editing by hand"),
    ("edit", "rollout_undo", "roll back to the last good revision rather than editing by hand"),
]
"""Where a gentler action exists for the same effect: (verb in the dangerous action's name, verb
in the safer one's name, why). Names match by word, so `drain_node` and `cordon_node` count."""


def _has(action: str, verb: str) -> bool:
    """True when `verb` (one or more snake_case words) appears as whole words in `action`."""
    return f"_{verb}_" in f"_{action}_"


TARGET_KEYS = ("name", "pod", "deployment", "node", "resource", "service", "secret", "queue", "target")
"""Argument names that name the object a step acts on."""

MAX_STEPS = 3
"""Write steps beyond which a plan is considered over-built unless each target differs in kind."""


@dataclass
class Verdict:
    """The critic's judgement: ok | simplify | reject, with findings and a suggested plan."""

    verdict: str
    findings: list[str] = field(default_factory=list)
    suggested: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Step:
    """One write call of a plan."""

    tool: str
    arguments: dict[str, Any]
    risk: str = "write"

    @property
    def action(self) -> str:
        """The action part of `pack.action`."""
        return self.tool.rsplit(".", 1)[-1]

    @property
    def pack(self) -> str:
        """The pack part of `pack.action`."""
        return self.tool.rsplit(".", 1)[0] if "." in self.tool else ""

    def key(self) -> str:
        """Identity of the step (tool + canonical arguments)."""
        return self.tool + json.dumps(self.arguments, sort_keys=True, default=str)

    def targets(self) -> list[str]:
        """The object names this step acts on."""
        out = []
        for k, v in self.arguments.items():
            if k in TARGET_KEYS and isinstance(v, str) and v:
                out.append(v)
        return out


def _owner(pod: str) -> str:
    """The workload a generated pod name belongs to (checkout-7d9f8-x2k4q → checkout)."""
    parts = pod.split("-")
    while len(parts) > 1 and re.fullmatch(r"[a-z0-9]{4,10}", parts[-1]) and re.search(r"\d", parts[-1]):
        parts.pop()
    return "-".join(parts)


def review_plan(steps: list[Step], evidence: str, available: Iterable[str]) -> Verdict:
    """Judge a plan against the evidence text (tool outputs, user messages) and the tools available."""
    r = _Review(evidence=evidence, available=set(available))
    _drop_repeats(r, steps)
    for check in _CHECKS:
        check(r)
    if r.verdict != "ok" and not r.suggested:
        low = evidence.lower()
        r.suggested = [
            {"tool": s.tool, "arguments": s.arguments}
            for s in r.plan[:MAX_STEPS]
            if not any(t.lower() not in low for t in s.targets())
        ]
    return Verdict(r.verdict, r.findings, r.suggested)


_SEVERITY = {"ok": 0, "simplify": 1, "reject": 2}


@dataclass
class _Review:
    """A review under way: the plan without its repeats, what it is judged against, and what the
    checks found so far."""

    evidence: str
    available: set[str]
    plan: list[Step] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    suggested: list[dict[str, Any]] = field(default_factory=list)
    verdict: str = "ok"

    def flag(self, finding: str, verdict: str = "simplify") -> None:
        """Note a finding; the verdict only ever grows stricter (ok → simplify → reject)."""
        self.findings.append(finding)
        if _SEVERITY[verdict] > _SEVERITY[self.verdict]:
            self.verdict = verdict


def _drop_repeats(r: _Review, steps: list[Step]) -> None:
    """A step that repeats an earlier one is dropped from the plan the other checks judge."""
    seen: set[str] = set()
    for s in steps:
        if s.key() in seen:
            r.flag(f"{s.tool} {s.arguments} repeats an earlier step of the same plan")
            continue
        seen.add(s.key())
        r.plan.append(s)


def _unseen_targets(r: _Review) -> None:
    """Steps whose target no evidence mentions: a dangerous one is rejected outright."""
    low = r.evidence.lower()
    for s in r.plan:
        missing = [t for t in s.targets() if t.lower() not in low]
        if missing:
            finding = f"{s.tool} acts on {', '.join(missing)}, which no tool output or message has shown"
            r.flag(finding, "reject" if s.risk == "dangerous" else "simplify")


def _safer_actions(r: _Review) -> None:
    """A dangerous step where a gentler action of the same pack exists (SAFER) is swapped for it."""
    for s in r.plan:
        if s.risk != "dangerous":
            continue
        for bad, good, why in SAFER:
            if good == "rollout_undo" and str(s.arguments.get("kind") or "deployment").lower() not in _ROLLED_OUT:
                continue  # a Service or a ConfigMap has no revisions to roll back to
            if _has(s.action, bad):
                alt = next(
                    (t for t in sorted(r.available) if t.startswith(s.pack + ".") and _has(t.rsplit(".", 1)[-1], good)),
                    None,
                )
                if alt:
                    r.flag(f"{s.tool} is dangerous and {alt} exists: {why}")
                    r.suggested.append({"tool": alt, "arguments": _safer_args(s, alt)})
                break


def _pod_deletions(r: _Review) -> None:
    """Several pod deletions of one workload are one restart."""
    deletes = [s for s in r.plan if _has(s.action, "delete_pod")]
    owners = {_owner(t) for s in deletes for t in s.targets()}
    if len(deletes) >= 2 and len(owners) == 1:
        restart = next((t for t in sorted(r.available) if _has(t.rsplit(".", 1)[-1], "rollout_restart")), None)
        r.flag(
            f"{len(deletes)} pod deletions of one workload ({owners.pop()})"
            + (f": one {restart} does the same" if restart else ": one restart of the workload does the same")
        )


def _too_long(r: _Review) -> None:
    """More write steps than a fix usually takes."""
    if len(r.plan) > MAX_STEPS:
        r.flag(
            f"{len(r.plan)} write steps: the smallest fix usually takes one or two; drop the steps the evidence does not require"
        )


def _repeated_scaling(r: _Review) -> None:
    """Scaling one workload down then up is a restart."""
    by_target: dict[str, list[Step]] = {}
    for s in r.plan:
        if _has(s.action, "scale"):
            for t in s.targets():
                by_target.setdefault(t, []).append(s)
    for t, ss in by_target.items():
        if len(ss) >= 2:
            r.flag(f"{len(ss)} scale steps on {t}: a single scale (or a rollout restart) does the same")


def _misfit_fixes(r: _Review) -> None:
    """Fixes that do not fit the findings: the gentler or the right action, named (fix_findings)."""
    for finding in fix_findings(r.plan, r.evidence, r.available):
        r.flag(finding)


_CHECKS: tuple[Callable[[_Review], None], ...] = (
    _unseen_targets,
    _safer_actions,
    _pod_deletions,
    _too_long,
    _repeated_scaling,
    _misfit_fixes,
)
"""The checks after the repeats are dropped, in the order their findings are reported."""


_ROLLED_OUT = {"deployment", "deployments", "deploy", "statefulset", "sts", "daemonset", "ds"}
# what a deploy leaves in the evidence: a new revision, a rollout, an image or change-cause
_DEPLOY = re.compile(
    r"revision|rollout|rolled out|new replicaset|change-cause|deploy(ed|ment of| of)|image .*(→|->|changed)|\bimage\b.*:\d",
    re.I,
)
# what a configuration cause looks like in logs and findings
_CONFIG = re.compile(
    r"(missing|not set|required (setting|key)|no such key|configmap|environment variable|env var|config(uration)?:|no such host)",
    re.I,
)
_CRASH = re.compile(r"CrashLoopBackOff|OOMKilled|BackOff|Error|crash", re.I)
_CHANGED = re.compile(r"changed: (ConfigMap|Deployment|StatefulSet|DaemonSet|Secret)/")  # an earlier fix's own output
_CONFIG_FIX = (
    "set_env",
    "edit_configmap_key",
    "set_image",
    "patch_resource",
    "apply_manifest",
    "rollout_undo",
    "set_resources",
)


def _mentions_together(evidence: str, target: str, pattern: re.Pattern[str]) -> bool:
    """Whether one line of the evidence names `target` and matches `pattern`."""
    t = target.lower()
    return any(t in line.lower() and pattern.search(line) for line in evidence.splitlines())


def fix_findings(steps: list[Step], evidence: str, available: Iterable[str]) -> list[str]:
    """Writes that do not fit the findings: an undo with no deploy behind the failure, a restart that
    brings a bad configuration back, more replicas of a workload that crashes."""
    out: list[str] = []
    fixes = {s.action for s in steps}
    for s in steps:
        target = (s.targets() or ["the workload"])[0]
        if _has(s.action, "rollout_undo") and not _DEPLOY.search(evidence):
            out.append(
                f"{s.tool} on {target}: no finding ties the failure to a deploy (no new revision or image change was shown); "
                "read rollout_history first, or fix the cause the findings name"
            )
        elif (
            (_has(s.action, "rollout_restart") or _has(s.action, "delete_pod"))
            and _CONFIG.search(evidence)
            and not fixes & set(_CONFIG_FIX)
            and not _CHANGED.search(evidence)
        ):
            out.append(
                f"{s.tool} on {target}: the cause is configuration, and a restart brings the same configuration back; "
                "change it first (set_env or edit_configmap_key), then restart"
            )
        elif (
            _has(s.action, "scale")
            and int(s.arguments.get("replicas") or 0) > 0
            and _mentions_together(evidence, _owner(target), _CRASH)
        ):
            out.append(
                f"{s.tool} on {target}: it is crash-looping, and more replicas crash too; fix the cause "
                "(set_resources for OOMKilled, set_env or edit_configmap_key for configuration, rollout_undo for a bad deploy)"
            )
    return out


def _safer_args(step: Step, alt: str) -> dict[str, Any]:
    """Arguments for the safer action, carried over from the dangerous one where they make sense."""
    args = {k: v for k, v in step.arguments.items() if k in ("namespace", "context")}
    action = alt.rsplit(".", 1)[-1]
    targets = step.targets()
    if targets:
        name = _owner(targets[0]) if _has(step.action, "delete_pod") else targets[0]
        args["node" if _has(action, "cordon") else "name"] = name
    if _has(action, "scale"):
        args["replicas"] = 0
    return args
