"""Fakes shipped with the console so tests, snapshots, the benchmark and demos drive the real loop.

`scripted_factory(...)` builds a SessionFactory over the real `engine.loop.Session` with the
`ScriptedModel`, python tools behind the real dispatch pipeline (a small test policy: the
approval modal is exercised end to end, bound to the call), a frozen clock and fixed durations
(so snapshots are stable). Run
`python -m console.testing` for a demo console with an incident script.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from engine import events as ev
from engine.dispatch import Dispatcher
from engine.loop import Session, TurnContext, VerbatimContext
from engine.models.base import Message, ToolSpec
from engine.policy.rules import Defaults, Match, Policy, PolicyFile, Rule
from engine.testing import ScriptedModel
from engine.toolbox import Toolbox
from engine.tools import Preview, Tool, ToolMeta, python_tool

FROZEN = dt.datetime(2026, 3, 14, 3, 7, 0, tzinfo=dt.UTC)
"""The frozen time of snapshots (03:07 UTC, the small hours it is built for)."""


def frozen_clock(start: dt.datetime = FROZEN, step_s: float = 1.0) -> Callable[[], dt.datetime]:
    """A clock that starts at `start` and advances `step_s` per reading (deterministic)."""
    n = {"i": 0}

    def clock() -> dt.datetime:
        n["i"] += 1
        return start + dt.timedelta(seconds=step_s * (n["i"] - 1))

    return clock


class FixedTimingSession(Session):
    """A real Session whose measured durations are replaced by fixed ones (stable snapshots)."""

    duration_ms = 42.0
    """What every duration reads."""

    def stamp(self, cls: type[Any], **fields: Any) -> Any:
        for key in ("duration_ms", "engine_ms"):
            if key in fields:
                fields[key] = self.duration_ms
        return super().stamp(cls, **fields)


def incident_policy() -> Policy:
    """The snapshots' policy, through the real dispatcher: reads run, the rollback needs approval
    by a rule of the org, a scale is a confirmed write, anything else that writes is approved."""
    return Policy(
        org=PolicyFile(
            defaults=Defaults(read="allow", write="approve", dangerous="approve", unknown="approve"),
            rules=[
                Rule(
                    id="org/payments",
                    match=Match(action=["rollback_deployment"]),
                    decision="approve",
                    reason="changes a production deployment",
                ),
                Rule(
                    id="default/scale",
                    match=Match(action=["scale_deployment"]),
                    decision="confirm",
                    reason="scaling within 1-10 replicas is a safe write",
                ),
            ],
        ),
        source="console.testing",
    )


def incident_toolbox(tools: list[Tool], user: str, clock: Callable[[], dt.datetime] | None = None) -> Toolbox:
    """`tools` behind the real dispatch pipeline with the snapshots' policy, approved by `user`."""
    return Toolbox(
        tools,
        dispatcher=Dispatcher(
            incident_policy(), None, user=user, kube=lambda: (None, "payments"), clock=clock or ev.utcnow
        ),
    )


class GaugeContext(VerbatimContext):
    """The verbatim context plus a ContextGauge each step and scripted DetailDropped notices."""

    def __init__(
        self,
        *,
        budget: int = 12_000,
        window: int = 32_000,
        drops: list[dict[str, Any]] | None = None,
        tiers: dict[str, int] | None = None,
    ) -> None:
        self.budget = budget
        """Prompt budget shown by the gauge."""
        self.window = window
        """Model window."""
        self.drops = list(drops or [])
        """DetailDropped fields to emit (once each, at the first step)."""
        self.tiers = tiers
        """Fixed tier numbers (None: computed from the messages)."""

    def build(self, ctx: TurnContext, system: str, tools: list[ToolSpec]) -> tuple[list[Message], list[Any]]:
        msgs, _ = super().build(ctx, system, tools)
        extra: list[Any] = []
        for d in self.drops:
            extra.append(ctx.event(ev.DetailDropped, **d))
        self.drops = []
        if self.tiers is not None:
            tiers = dict(self.tiers)
        else:
            sys_t = len(system) // 4
            recent = sum(len(m.content) for m in msgs if m.role in ("user", "assistant")) // 4
            outputs = sum(len(m.content) for m in msgs if m.role == "tool") // 4
            tiers = {"system": sys_t, "recent": recent, "outputs": outputs}
        used = sum(tiers.values())
        dropped = sum(1 for e in ctx.session.events if isinstance(e, ev.DetailDropped)) + sum(
            1 for e in extra if isinstance(e, ev.DetailDropped)
        )
        extra.append(
            ctx.event(ev.ContextGauge, used=used, budget=self.budget, window=self.window, tiers=tiers, dropped=dropped)
        )
        return msgs, extra


def scripted_factory(
    script: list[dict[str, Any]],
    tools: list[Tool] | None = None,
    *,
    context: Any = None,
    clock: Callable[[], dt.datetime] | None = None,
    session_id: str = "snap0001",
    fixed_timing: bool = True,
    token_chunk: int = 12,
) -> Any:
    """A SessionFactory for LanternApp(session_factory=...) over the real loop and store."""
    from engine.store import Store

    async def factory(
        cfg: Any, *, store: Store, approver: Any, session_id: str | None = None, _default: str = session_id
    ) -> Session:
        past = await store.events(session_id) if session_id else []
        sid = session_id or _default
        if not session_id and await store.find(sid) is not None:
            sid = uuid.uuid4().hex[:12]  # the fixed id is taken in this store: a new session gets a fresh one
        model = ScriptedModel(list(script), name="scripted", chunk=token_chunk)
        cls = FixedTimingSession if fixed_timing else Session
        session = cls(
            model,
            incident_toolbox(list(tools or []), cfg.user),
            session_id=sid,
            sink=store,
            approver=approver,
            context=context,
            events=past,
            clock=clock or frozen_clock(),
        )
        await store.create_session(session.id, model=model.name, context=cfg.context)
        await session.emit(
            ev.SessionStarted, model=model.name, context=cfg.context, namespace=cfg.namespace, resumed=bool(past)
        )
        return session

    return factory


# -- an incident, for demos, snapshots and the benchmark -------------------------------------------

ROLLBACK_DIFF = """\
--- live/Deployment/payments/api
+++ dry-run/Deployment/payments/api
@@ -3,7 +3,7 @@
 metadata:
   annotations:
     deployment.kubernetes.io/revision: '14'
-    kubernetes.io/change-cause: limits.memory 512Mi -> 128Mi (cost cut)
+    kubernetes.io/change-cause: image api:2.4.1
   labels:
     app: api
   name: api
@@ -23,7 +23,7 @@
         name: api
         resources:
           limits:
-            memory: 128Mi
+            memory: 512Mi
           requests:
             cpu: 100m
-            memory: 128Mi
+            memory: 256Mi"""
"""The diff skills.kube.fix.diff_objects makes of the payments api and its dry-run rollback
(tests/skills/test_skills_kube_diff.py checks that it still does)."""


def incident_tools(executed: list[dict[str, Any]] | None = None) -> list[Tool]:
    """Tools of the payments incident; `executed` records every write that actually ran."""
    log = executed if executed is not None else []

    def get_pods(namespace: str) -> dict[str, Any]:
        """List pods in a namespace."""
        return {
            "items": [
                {"name": "api-7d9f8b6c5-x2k4p", "status": "CrashLoopBackOff", "restarts": 37, "reason": "OOMKilled"},
                {"name": "api-7d9f8b6c5-q8w1z", "status": "CrashLoopBackOff", "restarts": 35, "reason": "OOMKilled"},
                {"name": "worker-5c6d7e8f9-abcde", "status": "Running", "restarts": 0},
            ]
        }

    def rollout_history(name: str, namespace: str) -> str:
        """Deployment rollout history."""
        return "REVISION  CHANGE-CAUSE\n13        image api:2.4.1\n14        limits.memory 512Mi -> 128Mi (cost cut)"

    def rollback_deployment(name: str, namespace: str, revision: int) -> str:
        """Roll a deployment back to a revision."""
        log.append({"tool": "rollback_deployment", "name": name, "namespace": namespace, "revision": revision})
        return f"deployment.apps/{name} rolled back to revision {revision}"

    def scale_deployment(name: str, namespace: str, replicas: int) -> str:
        """Scale a deployment."""
        log.append({"tool": "scale_deployment", "name": name, "namespace": namespace, "replicas": replicas})
        return f"deployment.apps/{name} scaled to {replicas}"

    touches = {"kind": "deployment", "name": "{name}", "namespace": "{namespace}"}
    rollback = python_tool(rollback_deployment, risk="write")
    rollback.meta = ToolMeta(
        touches=touches, rollback="kubectl -n payments rollout undo deployment/api --to-revision=14"
    )
    scale = python_tool(scale_deployment, risk="write")
    scale.meta = ToolMeta(touches=touches, rollback="kubectl -n payments scale deployment/api --replicas=2")
    rollback.preview = _fixed_preview(ROLLBACK_DIFF, "Deployment/payments/api")
    scale.preview = _fixed_preview(SCALE_DIFF, "Deployment/payments/api")
    return [python_tool(get_pods), python_tool(rollout_history), rollback, scale]


SCALE_DIFF = (
    "--- live/Deployment/payments/api\n+++ dry-run/Deployment/payments/api\n@@ -4,7 +4,7 @@\n   name: api\n   namespace: payments\n"
    " spec:\n-  replicas: 2\n+  replicas: 4\n   selector:\n     matchLabels:\n       app: api"
)
"""skills.kube.fix.diff_objects of a scale from 2 to 4 replicas."""


def _fixed_preview(diff: str, obj: str) -> Any:
    async def preview(args: dict[str, Any]) -> Preview:
        return Preview(diff=diff, objects=[obj])

    return preview


INCIDENT_SCRIPT: list[dict[str, Any]] = [
    {
        "text": "Checking the pods in payments first: the api may be crash-looping.",
        "tool_calls": [{"name": "get_pods", "arguments": {"namespace": "payments"}}],
    },
    {
        "text": "Both api pods are OOMKilled. Looking at what changed in the last rollout.",
        "tool_calls": [{"name": "rollout_history", "arguments": {"name": "api", "namespace": "payments"}}],
    },
    {
        "text": "Revision 14 cut the memory limit to 128Mi. Rolling back to revision 13 is the smallest safe fix.",
        "tool_calls": [
            {"name": "rollback_deployment", "arguments": {"name": "api", "namespace": "payments", "revision": 13}}
        ],
    },
    {
        "text": "## Root cause\n\nThe **api** deployment in `payments` crash-loops with `OOMKilled` since revision 14 "
        "cut `limits.memory` from 512Mi to **128Mi**.\n\n- restarts: 37 and 35\n- fix: roll back to revision 13\n",
    },
]
"""A four-step investigation ending in an approved (or denied) rollback."""


def main() -> None:
    """Run a demo console on the incident script (no model, no cluster)."""
    import argparse

    from console.app import LanternApp

    p = argparse.ArgumentParser(description="Lantern console demo on a scripted incident")
    p.add_argument("--theme", default=None)
    p.add_argument("--drops", action="store_true", help="show dropped context details in the gauge")
    a = p.parse_args()
    drops = (
        [
            {
                "ref": "out:get_pods:1",
                "what": "get_pods output (3 pods)",
                "from_step": 1,
                "tokens": 412,
                "action": "summarised",
            },
            {
                "ref": "out:logs:api",
                "what": "api container logs, 2,140 lines",
                "from_step": 1,
                "tokens": 5120,
                "action": "dropped",
            },
        ]
        if a.drops
        else []
    )
    app = LanternApp(
        argparse.Namespace(
            model="scripted", context=None, namespace="payments", cont=False, session=None, theme=a.theme
        ),
        session_factory=scripted_factory(
            INCIDENT_SCRIPT * 3,
            incident_tools(),
            context=GaugeContext(drops=drops),
            fixed_timing=False,
            clock=ev.utcnow,
            session_id=uuid.uuid4().hex[:12],
        ),
    )
    app.run()


if __name__ == "__main__":
    main()
