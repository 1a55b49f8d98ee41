"""Executors: the plumbing under skill actions (python, rest, graphql, cli, mcp, replay).

Each has `async def run(action, args, *, credential_resolver, ...) -> ToolOutput`; `run` here picks
the one the action's pack names. Credentials are resolved inside the executor, after the policy
decision, and never appear in what it returns.
"""

from __future__ import annotations

from typing import Any

from engine.tools import ToolOutput
from skills.executors.common import CredentialResolver, error


async def run(
    action: Any, args: dict[str, Any], *, credential_resolver: CredentialResolver | None = None, **options: Any
) -> ToolOutput:
    """Run `action` with validated `args` through its pack's executor."""
    from skills.credentials import CredentialMissing, resolve

    resolver = credential_resolver or resolve
    kind = action.pack.connection.executor
    if kind in ("rest", "graphql"):
        from skills.executors import rest

        fn = rest.run_rest if kind == "rest" else rest.run_graphql
    elif kind == "python":
        from skills.executors.python import run_python as fn
    elif kind == "cli":
        from skills.executors.cli import run_cli as fn
    elif kind == "mcp":
        from skills.executors.mcp import run_mcp as fn
    elif kind == "replay":
        from skills.replay.executor import run_replay as fn
    else:
        return error(f"no executor for kind {kind!r}")
    try:
        return await fn(action, args, credential_resolver=resolver, **options)
    except CredentialMissing as exc:
        return error(str(exc))
