"""The python executor: imports a function by dotted path and calls it with an injected client."""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import inspect
import threading
from collections.abc import Callable
from typing import Any

from engine.guard.breakers import status_of, transient_kind
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


SYNC_SLOTS = 8
"""Sync pack functions that may run at once, stuck ones included."""
_slots = threading.BoundedSemaphore(SYNC_SLOTS)


class ToolThreadsBusy(RuntimeError):
    """Every slot for sync pack code is held (by calls still running past their timeout)."""


async def run_sync(timeout: float, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run a sync function in a daemon thread of its own, bounded by SYNC_SLOTS.

    A thread cannot be killed, so one that outlives its timeout is abandoned: as a daemon it never
    holds up the process's exit (asyncio.to_thread's pool is joined at exit, which kept `lantern
    ask` alive 90 s after its turn), and it holds a slot of this pool alone, never one of the
    event loop's default executor that the engine's own work shares."""
    if not _slots.acquire(blocking=False):
        raise ToolThreadsBusy(f"{SYNC_SLOTS} earlier tool calls are still running past their timeout; try again later")
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()
    ctx = contextvars.copy_context()

    def settle(ok: bool, value: Any) -> None:
        if not fut.done():
            (fut.set_result if ok else fut.set_exception)(value)

    def work() -> None:
        try:
            value, ok = ctx.run(fn, *args, **kwargs), True
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting call
            value, ok = exc, False
        finally:
            _slots.release()
        try:
            loop.call_soon_threadsafe(settle, ok, value)
        except RuntimeError:
            pass  # the loop is gone: nobody waits for this answer any more

    threading.Thread(target=work, name=f"lantern-tool-{getattr(fn, '__name__', 'fn')}", daemon=True).start()
    return await asyncio.wait_for(fut, timeout)


async def run_python(
    action: Any, args: dict[str, Any], *, credential_resolver: CredentialResolver, context: str | None = None, **_: Any
) -> ToolOutput:
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
            out = await run_sync(timeout, fn, *pos, **call_args)
    except TimeoutError:
        return error(f"{action.function} did not finish within {timeout:g}s", secrets, failure="timeout")
    except ToolThreadsBusy as exc:
        return error(str(exc), secrets, failure="unavailable")
    except Exception as exc:  # noqa: BLE001 - a failing integration is a result the model can act on
        from skills.kube.client import explain

        return error(explain(exc), secrets, status_code=status_of(exc), failure=transient_kind(exc))
    if isinstance(out, ToolOutput):
        data = project(out.data, action.output) if out.data is not None else None
        status = "partial" if out.partial and out.status == "ok" else out.status
        return ToolOutput(text=scrub(out.text, secrets), data=scrub(data, secrets), partial=out.partial, status=status)
    if isinstance(out, str):
        return finish(action, None, text=out, secrets=secrets)
    return finish(action, out, secrets=secrets)


def has_dry_run(action: Any) -> bool:
    """Whether the action's function takes `dry_run` (then it can preview itself)."""
    try:
        fn = load_function(action.function, action.pack.connection.module)
    except ExecutorError:
        return False
    return "dry_run" in inspect.signature(fn).parameters


async def preview_python(action: Any, args: dict[str, Any], *, context: str | None = None, **_: Any) -> Any:
    """Run the action's function with dry_run=True; its answer (diff, objects, note) as a Preview.

    Raises PreviewFailed with the backend's own error (an API server's rejection, a bad input)."""
    from engine.tools import Preview, PreviewFailed
    from skills.kube.client import LazyKube, explain

    conn = action.pack.connection
    fn = load_function(action.function, conn.module)
    params = list(inspect.signature(fn).parameters)
    pos: list[Any] = (
        [LazyKube(context)] if conn.client == "kubernetes" and params and params[0] in ("kube", "client") else []
    )
    call_args = {k: v for k, v in args.items() if v is not None}
    try:
        out = await run_sync(action.timeout or conn.timeout, fn, *pos, **call_args, dry_run=True)
    except TimeoutError:
        raise PreviewFailed(f"the dry run did not finish within {action.timeout or conn.timeout:g}s") from None
    except Exception as exc:  # noqa: BLE001 - the backend's refusal is the message the approver reads
        raise PreviewFailed(explain(exc)) from None
    out = out if isinstance(out, dict) else {}
    return Preview(
        diff=str(out.get("diff") or ""),
        objects=[str(o) for o in out.get("objects") or []],
        note=str(out.get("note") or ""),
        unchanged=out.get("unchanged") is True,
    )
