"""The session's toolbox from the config: the packs' actions, the playbooks' runbooks, the
retrieval index, and (once the store is open) the dispatcher with the policy, the audit log and
every configured credential to scrub."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Any

from engine.config import Config
from engine.context import recall_tool
from engine.dispatch import Dispatcher
from engine.policy.audit import AuditLog
from engine.policy.commands import policy_paths
from engine.policy.rules import load_policy_safe
from engine.store import Store
from engine.toolbox import Toolbox
from engine.tools import Tool, ToolOutput
from skills.credentials import configured_values
from skills.playbooks import Playbook, load_playbooks
from skills.registry import checks_for, pack_tools, packs_for_config

PINNED = ("find_tools", "recall_detail")
"""Meta-tools offered at every step."""


def runbook_tool(books: list[Playbook]) -> Tool:
    """`read_runbook(name)`: the text of a playbook found by find_tools."""
    names = [b.name for b in books]

    async def handler(args: dict[str, Any]) -> ToolOutput:
        for b in books:
            if b.name == args["name"]:
                return ToolOutput(text=f"# {b.title}\n{b.body}")
        return ToolOutput(text=f"no runbook {args['name']!r}; known: {', '.join(names)}", status="error")

    return Tool(
        name="read_runbook",
        description="Read an incident playbook (symptoms, checks in order, usual causes, safe fixes): "
        + ", ".join(names),
        parameters={"type": "object", "properties": {"name": {"type": "string", "enum": names}}, "required": ["name"]},
        handler=handler,
        keywords=["runbook", "playbook", "how to investigate"],
    )


def build_toolbox(cfg: Config, *, extra_tools: list[Tool] | None = None, include_packs: bool = True) -> Toolbox:
    """Packs, playbooks and retrieval for a session (heavy and synchronous: faces run it in a
    thread); `attach` finishes it once the store is open."""
    from engine.retrieval.index import HybridIndex
    from engine.retrieval.selector import ToolSelector, find_tools_tool

    tools: list[Tool] = list(extra_tools or [])
    notices: list[str] = []
    checks = None
    if include_packs:
        loaded = packs_for_config(cfg)
        tools += pack_tools(loaded.packs, context=cfg.context)
        notices += [str(e) for e in loaded.errors]
        checks = checks_for(loaded.packs)
    books, book_errors = load_playbooks()
    notices += [f"playbook: {e}" for e in book_errors]
    tools.append(runbook_tool(books))
    selector = ToolSelector(tools, HybridIndex(), pinned=PINNED, runbooks=[b.doc() for b in books])
    finder = find_tools_tool(selector)
    selector.add_tool(finder)
    return Toolbox([*tools, finder], selector=selector, notices=notices, checks=checks)


def known_credentials() -> list[str]:
    """Every credential value configured for this user (keyring, LANTERN_CRED_*, pack literals) or
    resolved in this process: the dispatcher removes them from outputs in any encoded form."""
    return [v for v in configured_values().values() if v]


async def make_dispatcher(
    store: Store,
    *,
    user: str | None = None,
    kube: Callable[[], tuple[str | None, str | None]] | None = None,
    read_only: bool = False,
    **kwargs: Any,
) -> Dispatcher:
    """The runtime Dispatcher: the org policy in force plus the user's overrides, the store's audit log.

    A broken policy file does not stop the engine: it runs with Policy.safest() and the error is
    on `dispatcher.policy.errors`, for the face to show (a warning Notice).
    """
    who = user or getpass.getuser()
    org, user_file = policy_paths(who)
    policy = load_policy_safe(org, user_file)
    audit = await AuditLog.open(store)
    kwargs.setdefault("known_values", known_credentials)
    return Dispatcher(policy, audit, user=who, kube=kube, read_only=read_only, **kwargs)


async def attach(
    toolbox: Toolbox, store: Store, cfg: Config, kube: Callable[[], tuple[str | None, str | None]] | None = None
) -> None:
    """Finish set-up with the open store: the guarded dispatcher (policy, audit) and recall of dropped details."""
    toolbox.dispatcher = await make_dispatcher(
        store, user=cfg.user, kube=kube or (lambda: (cfg.context, cfg.namespace)), read_only=cfg.read_only
    )
    for err in toolbox.dispatcher.policy.errors:
        toolbox.notices.append(f"policy: {err} (running with the safest policy: every write needs approval)")
    toolbox.add(recall_tool(lambda: store))
