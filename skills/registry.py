"""Skill actions as engine Tools: `pack.action`, its schema, risk, retrieval words and a handler."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from engine.diagnose import CheckSet, Route
from engine.tools import Tool, ToolMeta, ToolOutput
from skills.spec import Action, Pack, check_class

if TYPE_CHECKING:
    from skills.loader import LoadResult


def _handler(action: Action, options: dict[str, Any]) -> Any:
    async def handler(args: dict[str, Any]) -> ToolOutput:
        from skills.executors import run

        # the guard validates before calling; this second check only keeps a bad call from reaching
        # an executor when a tool is used without the guard (plain scripts, tests)
        try:
            model = action.args_model().model_validate(args)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "arguments"
            return ToolOutput(
                text=f"invalid arguments for {action.qualified_name}: {where}: {first['msg']}", status="error"
            )
        return await run(action, model.model_dump(), **options)

    return handler


def _previewer(action: Action, options: dict[str, Any]) -> Any:
    """The Tool's preview of a write: a python function's own dry run (when it takes `dry_run`), a REST call's exact request."""
    if action.risk == "read":
        return None
    if action.pack.connection.executor == "rest" and action.http is not None:
        from skills.executors.rest import preview_rest

        async def request(args: dict[str, Any]) -> Any:
            return await preview_rest(action, action.args_model().model_validate(args).model_dump(exclude_none=True))

        return request
    if action.pack.connection.executor != "python" or not action.function:
        return None
    from skills.executors.python import has_dry_run, preview_python

    if not has_dry_run(action):
        return None

    async def preview(args: dict[str, Any]) -> Any:
        model = action.args_model().model_validate(args)
        return await preview_python(action, model.model_dump(), **options)

    return preview


def action_tool(action: Action, **options: Any) -> Tool:
    """One action as a Tool; `options` go to the executor (context=kube context, replay=case)."""
    return Tool(
        preview=_previewer(action, options),
        name=action.qualified_name,
        description=action.description.strip(),
        parameters=action.json_schema(),
        handler=_handler(action, options),
        risk=action.risk,
        pack=action.pack.name,
        keywords=list(dict.fromkeys([*action.keywords, *action.examples])),
        meta=ToolMeta(
            timeout_s=action.timeout or action.pack.connection.timeout,
            method=action.http.method if action.http is not None else None,
            projection=tuple(action.output),
            rollback=action.rollback or "",
            touches=action.touches.model_dump(exclude_none=True) if action.touches else None,
            permissions=tuple(action.permissions),
            executor=action.pack.connection.executor,
        ),
    )


def pack_tools(packs: list[Pack], *, context: str | None = None, **options: Any) -> list[Tool]:
    """Every action of every pack as a Tool named `pack.action` (a pack's literal secrets join the
    values the guard scrubs)."""
    from skills.credentials import note_literal
    from skills.spec import looks_secret

    for p in packs:
        for i, value in enumerate(p.connection.literal_secrets()):
            note_literal(f"{p.name} config #{i + 1}", value)
        for a in p.actions:
            for h, value in a.http.headers.items() if a.http else ():
                if looks_secret(h, value):
                    note_literal(f"{a.qualified_name} header {h}", value)
    opts = dict(options)
    if context is not None:
        opts["context"] = context
    return [action_tool(a, **opts) for p in packs for a in p.actions]


def checks_for(packs: Iterable[Pack]) -> CheckSet:
    """The checks that read these packs' outputs (each pack's `checks`, once each, in pack order) and
    the routes their actions serve, for the session that has the packs' tools: the one call that
    hands a session its checks (`Session(..., checks=checks_for(packs))`)."""
    makers: dict[str, Any] = {}
    routes: list[Route] = []
    for p in packs:
        for ref in p.checks:
            if ref not in makers:
                makers[ref] = check_class(ref)
        for a in p.actions:
            for intent, args in a.serves.items():
                routes.append(Route(intent, a.qualified_name, tuple(args.items())))
    return CheckSet(tuple(makers.values()), tuple(routes))


def packs_for_config(cfg: Any) -> LoadResult:
    """Built-in packs plus the config's skills_dirs, and the load errors (each names file, line and field)."""
    from skills.loader import default_dirs, load_packs

    return load_packs(default_dirs(list(getattr(cfg, "skills_dirs", []) or [])))


def tools_for_config(cfg: Any, *, context: str | None = None) -> tuple[list[Tool], list[Any]]:
    """Built-in packs plus the config's skills_dirs as Tools for the kube `context` (default cfg.context),
    and the load errors (each names file, line and field) for the face to show."""
    result = packs_for_config(cfg)
    ctx = context if context is not None else getattr(cfg, "context", None)
    return pack_tools(result.packs, context=ctx), result.errors
