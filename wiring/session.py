"""From a Config to a ready Session (model, toolbox, store, approver, sandbox world).

Faces call `open_session`; nothing here imports a UI. Heavy imports (litellm, llama.cpp,
kubernetes, lancedb) happen inside the functions that need them, never at import time.
"""

from __future__ import annotations

from typing import Any

from engine import events as ev
from engine.config import Config, resolve_model
from engine.loop import Approver, LoopConfig, Session
from engine.models import make_model
from engine.models.base import Model
from engine.store import Store
from engine.toolbox import Toolbox
from wiring.toolbox import attach, build_toolbox


def make_toolbox(cfg: Config) -> Toolbox:
    """The runtime toolbox: skills, retrieval, guard, policy."""
    return build_toolbox(cfg)


def embedded_world(cfg: Config) -> str | None:
    """With no kube context chosen and no kubeconfig on the machine, the sandbox cluster with its live
    incident: sets `cfg.context`, points the metrics and queue packs at the sandbox, and returns the
    incident's alert text (None when the user's own kubeconfig is in play)."""
    import os

    if cfg.context:
        return None
    from sandbox.cluster import default_world, info

    world = default_world(rearm=True)  # the opening alert must be true now, not when it last fired
    if world is None:
        return None
    _, context, symptom = world
    cfg.context = context
    scenario = info().scenario
    if scenario and not cfg.namespace:
        from sandbox.scenario import load_scenario

        cfg.namespace = load_scenario(scenario).namespace
    pack_of = {"prometheus": "PROMETHEUS", "rabbitmq": "QUEUE"}
    for name, url in info().endpoints.items():
        if name in pack_of:
            os.environ.setdefault(f"LANTERN_{pack_of[name]}_URL", url)
    return symptom or "The sandbox cluster has a live incident."


def metrics_note() -> str:
    """The one line that says the sandbox runs without Prometheus and Alertmanager ('' when they run)."""
    from sandbox.cluster import Layout
    from sandbox.monitoring import OFF

    return OFF if Layout().read_state().get("monitoring") is False else ""


def firing_alerts(cfg: Config, limit: int = 3) -> list[str]:
    """What the sandbox's Prometheus has firing now in the session's namespace, one line per alert
    (name, severity, description, runbook); [] when nothing fires yet or metrics are off."""
    from sandbox.cluster import info
    from sandbox.monitoring import alerts

    url = info().endpoints.get("prometheus")
    if not url:
        return []
    out = []
    for a in alerts(url, cfg.namespace)[:limit]:
        lab, ann = a.get("labels") or {}, a.get("annotations") or {}
        line = f"{lab.get('alertname', '?')} ({lab.get('severity', 'none')}): {ann.get('description') or ann.get('summary', '')}"
        if ann.get("runbook_url"):
            line += f" runbook {ann['runbook_url']}"
        out.append(line.strip())
    return out


def leave_world(cfg: Config) -> str:
    """What quitting a face does to a sandbox cluster it started: stop it (`sandbox_on_exit: stop`)
    or leave it running; returns the line to tell the user ('' when this process started none)."""
    from sandbox.cluster import down, footprint, started_here

    if not started_here():
        return ""
    if cfg.sandbox_on_exit == "stop":
        down()
        return "Stopped the sandbox cluster this console started."
    n, mb = footprint()
    return (
        f"The sandbox cluster this console started is still running ({n} processes, {mb} MB): "
        "`lantern sandbox down` stops it (or set `sandbox_on_exit: stop` in the config to stop it on exit)."
    )


READ_ONLY_PROMPT = (
    "READ-ONLY MODE: you can investigate with read tools but cannot change anything; every write or "
    "dangerous tool is blocked. When you find the fix, propose it in your answer: the exact action and "
    "arguments, why, and how to undo it, so a person can make the change."
)
"""Added to the system prompt of a read-only session."""


def build_context_for(model: Model, cfg: Config) -> Any:
    """The context builder for this model (compaction, ledger, gauge)."""
    from engine.context import build_context

    return build_context(model, cfg)


def make_reviewer(model: Model, cfg: Config, store: Store | None, hints: list[str] | None = None) -> Any:
    """The plan critic, with the hints learned from earlier sessions."""
    from engine.critic import PlanCritic

    return PlanCritic(hints)


def score_in_background(store: Store, session_id: str, toolbox: Any = None) -> Any:
    """Score the session's trajectory off the critical path (a task; the face need not wait); a
    session that went well teaches the toolbox's experience memory what it used."""
    import asyncio

    return asyncio.ensure_future(score_and_learn(store, session_id, toolbox))


async def score_and_learn(store: Store, session_id: str, toolbox: Any = None) -> dict[str, Any]:
    """Score a session, store the score, and add its lessons to the experience memory (when the
    toolbox retrieves from an index, the score is good and the user has not marked it bad)."""
    import asyncio

    from engine.critic.trajectory import score_and_store
    from engine.retrieval.lessons import lessons_from_session

    score = await score_and_store(store, session_id)
    selector = getattr(toolbox, "selector", None)
    index = getattr(selector, "index", None)
    if index is None:
        return score
    lessons = lessons_from_session(
        await store.events(session_id),
        score,
        session_id=session_id,
        marked_bad=await store.get_mark(session_id) == "bad",
        exclude=getattr(selector, "pinned", ()),
    )
    if lessons:
        score["taught"] = await asyncio.to_thread(index.experience.add, lessons)
    return score


async def open_session(
    cfg: Config,
    *,
    store: Store,
    approver: Approver | None = None,
    session_id: str | None = None,
    model: Model | None = None,
    toolbox: Toolbox | None = None,
) -> Session:
    """Create a new session, or reopen `session_id` with its events (for --continue)."""
    model = model or make_model(resolve_model(cfg), cfg)
    toolbox = toolbox if toolbox is not None else make_toolbox(cfg)
    past: list[Any] = []
    if session_id:
        past = await store.events(session_id)
    context_builder = build_context_for(model, cfg)
    from engine.critic.trajectory import recent_hints

    hints = await recent_hints(store)
    reviewer = make_reviewer(model, cfg, store, hints)
    loop_cfg = LoopConfig(max_steps=cfg.max_steps)
    if hints:
        loop_cfg.system_prompt += "\nLessons from earlier sessions: " + " ".join(hints)
    session = Session(
        model,
        toolbox,
        session_id=session_id,
        sink=store,
        approver=approver,
        context=context_builder,
        reviewer=reviewer,
        config=loop_cfg,
        events=past,
        checks=toolbox.checks,
    )
    await attach(toolbox, store, cfg)
    session.redact = toolbox.dispatcher.redact
    read_only = cfg.read_only or toolbox.dispatcher.read_only
    if read_only:
        loop_cfg.system_prompt += "\n" + READ_ONLY_PROMPT
    await store.create_session(session.id, model=model.name, context=cfg.context)
    await session.emit(
        ev.SessionStarted,
        model=model.name,
        context=cfg.context,
        namespace=cfg.namespace,
        resumed=bool(past),
        read_only=read_only,
    )
    for text in getattr(toolbox, "notices", []):
        await session.emit(ev.Notice, text=text, level="warning", topic="load")
    return session
