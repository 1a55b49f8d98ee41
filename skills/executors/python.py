"""The python executor: imports a function by dotted path and calls it with an injected client."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from typing import Any

from engine.guard.breakers import status_of
from engine.tools import ToolOutput
from skills.executors.common import CredentialResolver, ExecutorError, error, finish, project, scrub


def load_function(spec: str, default_module: str | None = None) -> Any:
    """'pkg.mod:func' (or 'func' with the connection's module) → the callable."""
    mod_name, _, fn_name = spec.rpartition(":")
    if not mod_name:
        mod_name, fn_name = default_module or "", spec
    if not mod_name:
        raise ExecutorError(f"function {spec!r} names no module (use 'package.module:function')")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ExecutorError(f"cannot import {mod_name!r}: {exc}") from None
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise ExecutorError(f"{mod_name!r} has no function {fn_name!r}")
    return fn


async def run_python(action: Any, args: dict[str, Any], *, credential_resolver: CredentialResolver, context: str | None = None, **_: Any) -> ToolOutput:
    """Call the action's function (sync ones in a worker thread); the kubernetes client is injected first."""
    conn = action.pack.connection
    secrets: dict[str, str] = {}
    try:
        fn = load_function(action.function, conn.module)
    except ExecutorError as exc:
        return error(str(exc))
    call_args = {k: v for k, v in args.items() if v is not None}
    pos: list[Any] = []
    params = list(inspect.signature(fn).parameters)
    # the client goes to functions that ask for it by their first parameter's name
    if conn.client == "kubernetes" and params and params[0] in ("kube", "client"):
        from skills.kube.client import LazyKube

        pos.append(LazyKube(context))
    if conn.credential:
        try:
            secrets[conn.credential] = credential_resolver(conn.credential)
        except LookupError as exc:
            if not conn.credential_optional:
                return error(str(exc))
        else:
            if "credential" in inspect.signature(fn).parameters:
                call_args["credential"] = secrets[conn.credential]
    timeout = action.timeout or conn.timeout
    try:
        if inspect.iscoroutinefunction(fn):
            out = await asyncio.wait_for(fn(*pos, **call_args), timeout)
        else:
            out = await asyncio.wait_for(asyncio.to_thread(fn, *pos, **call_args), timeout)
    except asyncio.TimeoutError:
        return error(f"{action.function} did not finish within {timeout:g}s", secrets)
    except Exception as exc:  # noqa: BLE001 - a failing integration is a result the model can act on
        from skills.kube.client import explain

        return error(explain(exc), secrets, status_code=status_of(exc))
    if isinstance(out, ToolOutput):
        data = project(out.data, action.output) if out.data is not None else None
        status = "partial" if out.partial and out.status == "ok" else out.status
        return ToolOutput(text=scrub(out.text, secrets), data=scrub(data, secrets), partial=out.partial, status=status)
    if isinstance(out, str):
        return finish(action, None, text=out, secrets=secrets)
    return finish(action, out, secrets=secrets)

