"""The cli executor: argv from validated parameters, never a shell string; only the pack's binary."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from typing import Any

from engine.tools import ToolOutput
from skills.executors.common import _WHOLE, CredentialResolver, error, fill, finish


def build_argv(action: Any, args: dict[str, Any]) -> list[str]:
    """The full argv: the pack's binary, then each template filled; optional groups drop out when empty."""
    conn = action.pack.connection
    binary = shutil.which(conn.binary) if not os.path.isabs(conn.binary) else conn.binary
    if not binary or not os.access(binary, os.X_OK):
        raise FileNotFoundError(
            f"the {action.pack.name} pack's binary {conn.binary!r} is not installed or not executable"
        )
    argv = [binary]
    for element in action.cli.argv:
        group = element if isinstance(element, list) else [element]
        filled = []
        for tmpl in group:
            value = fill(tmpl, args)
            if value is None:
                filled = None
                break
            whole = _WHOLE.match(tmpl)
            if whole and isinstance(value, list):
                filled.extend(str(v) for v in value)
                continue
            text = str(value).lower() if isinstance(value, bool) else str(value)
            # a value standing alone must not turn into an option of the binary
            if whole and text.startswith("-"):
                raise ValueError(f"parameter {whole.group(1)!r} may not start with '-' (it would be read as an option)")
            filled.append(text)
        if filled is not None:
            argv.extend(filled)
    return argv


async def run_cli(
    action: Any, args: dict[str, Any], *, credential_resolver: CredentialResolver, **_: Any
) -> ToolOutput:
    """Run the binary with exec (no shell), a timeout, and the exit code as the status."""
    conn = action.pack.connection
    secrets: dict[str, str] = {}
    try:
        argv = build_argv(action, args)
    except (FileNotFoundError, ValueError) as exc:
        return error(str(exc))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANTERN_CRED_")}
    if conn.credential:
        try:
            secrets[conn.credential] = credential_resolver(conn.credential)
        except LookupError as exc:
            if not conn.credential_optional:
                return error(str(exc))
        else:
            env[conn.auth_header if conn.auth == "header" else "LANTERN_CREDENTIAL"] = secrets[conn.credential]
    timeout = action.timeout or conn.timeout
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return error(f"{os.path.basename(argv[0])} did not finish within {timeout:g}s and was stopped", secrets)
    stdout = out.decode("utf-8", "replace")
    stderr = err.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        tail = (stderr or stdout).strip()[-1500:]
        return error(f"{os.path.basename(argv[0])} exited with status {proc.returncode}: {tail}", secrets)
    if action.cli.output == "json":
        try:
            return finish(action, json.loads(stdout), secrets=secrets)
        except ValueError:
            return error(f"{os.path.basename(argv[0])} printed output that is not JSON: {stdout[:300]}", secrets)
    return finish(action, None, text=stdout.rstrip() or "(no output)", secrets=secrets)
