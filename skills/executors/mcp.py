"""The mcp executor: tools of an MCP server (stdio or streamable HTTP) become actions and are called.

A tool's risk comes from its annotations: readOnlyHint → read, destructiveHint → dangerous, anything
else → write (a server that does not say it only reads is assumed to change things).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from engine.tools import ToolOutput
from skills.executors.common import CredentialResolver, error, finish
from skills.spec import Action, Pack, Param, Parameters

DISCOVER_TIMEOUT = 20.0
"""Seconds a server gets to list its tools at load."""
_open: dict[str, tuple[Any, Any, dict[str, str]]] = {}
"""pack name → (event loop, connected client, secrets) while an McpSessions block holds it open."""
_TYPES = {"string", "integer", "number", "boolean", "array", "object"}


def _headers(pack: Pack, resolver: CredentialResolver | None, secrets: dict[str, str]) -> dict[str, str]:
    conn = pack.connection
    headers = dict(conn.headers)
    if conn.credential and conn.auth != "none" and resolver is not None:
        try:
            value = resolver(conn.credential)
        except LookupError:
            if not conn.credential_optional:
                raise
            return headers
        secrets[conn.credential] = value
        if conn.auth == "bearer":
            headers["Authorization"] = f"Bearer {value}"
        elif conn.auth == "token":
            headers["Authorization"] = f"token {value}"
        else:
            headers[conn.auth_header] = value
    return headers


@contextlib.asynccontextmanager
async def connect(
    pack: Pack, resolver: CredentialResolver | None = None, secrets: dict[str, str] | None = None
) -> AsyncIterator[Any]:
    """An open MCP client session to the pack's server."""
    from mcp import Client, StdioServerParameters

    server = pack.connection.server
    assert server is not None
    secrets = secrets if secrets is not None else {}
    if server.command:
        env = dict(server.env)
        if pack.connection.credential and resolver is not None:
            try:
                value = resolver(pack.connection.credential)
                secrets[pack.connection.credential] = value
                env[pack.connection.auth_header if pack.connection.auth == "header" else "LANTERN_CREDENTIAL"] = value
            except LookupError:
                if not pack.connection.credential_optional:
                    raise
        params = StdioServerParameters(command=server.command[0], args=list(server.command[1:]), env=env or None)
        async with Client(params, read_timeout_seconds=pack.connection.timeout) as client:
            yield client
    else:
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        http = create_mcp_http_client(headers=_headers(pack, resolver, secrets))
        async with http:
            async with Client(
                streamable_http_client(server.url, http_client=http), read_timeout_seconds=pack.connection.timeout
            ) as client:
                yield client


def _param(schema: dict[str, Any]) -> Param:
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "string")
    if typ is None:
        for alt in schema.get("anyOf") or schema.get("oneOf") or []:
            if isinstance(alt, dict) and alt.get("type") not in (None, "null"):
                return _param({**alt, "description": schema.get("description", alt.get("description", ""))})
        typ = "string"
    if typ not in _TYPES:
        typ = "string"
    items = _param(schema["items"]) if typ == "array" and isinstance(schema.get("items"), dict) else None
    return Param(
        type=typ,
        description=str(schema.get("description") or schema.get("title") or ""),
        enum=schema.get("enum"),
        default=schema.get("default"),
        minimum=schema.get("minimum"),
        maximum=schema.get("maximum"),
        pattern=schema.get("pattern") if typ == "string" else None,
        items=items,
    )


def risk_of(annotations: Any) -> str:
    """read only with readOnlyHint; dangerous with destructiveHint; otherwise write."""
    if annotations is None:
        return "write"
    if getattr(annotations, "read_only_hint", None) is True:
        return "read"
    if getattr(annotations, "destructive_hint", None) is True:
        return "dangerous"
    return "write"


def tool_to_action(tool: Any) -> Action:
    """An MCP Tool as an Action (name sanitised, risk from annotations)."""
    schema = tool.input_schema or {}
    props = {k: _param(v if isinstance(v, dict) else {}) for k, v in (schema.get("properties") or {}).items()}
    required = [r for r in schema.get("required") or [] if r in props]
    name = re.sub(r"[^A-Za-z0-9_]", "_", tool.name)
    if not re.match(r"^[A-Za-z]", name):
        name = "t_" + name
    desc = (tool.description or tool.title or tool.name).strip()
    if len(desc) < 8:
        desc = f"MCP tool {tool.name}: {desc}"
    return Action(
        name=name,
        description=desc,
        parameters=Parameters(properties=props, required=required),
        risk=risk_of(tool.annotations),
        tool=tool.name,
    )


async def discover(pack: Pack) -> Pack:
    """The pack with the server's tools added as actions; declared actions keep their text but not a lower risk."""
    from skills.credentials import resolve

    async with connect(pack, resolve) as client:
        listed = []
        cursor = None
        while True:
            res = await client.list_tools(cursor=cursor)
            listed += list(res.tools)
            cursor = getattr(res, "next_cursor", None)
            if not cursor:
                break
    by_tool = {a.tool: a for a in pack.actions}
    actions: list[dict[str, Any]] = []
    order = {"read": 0, "write": 1, "dangerous": 2}
    for tool in listed:
        found = tool_to_action(tool)
        declared = by_tool.pop(tool.name, None)
        if declared is not None:
            if order[declared.risk] < order[found.risk]:
                raise ValueError(
                    f"action {declared.name!r} is declared {declared.risk} but the server annotates tool {tool.name!r} as {found.risk}"
                )
            merged = declared.model_dump(exclude_defaults=True)
            if "parameters" not in merged:
                merged["parameters"] = found.parameters.model_dump()
            actions.append(merged)
        else:
            actions.append(found.model_dump(exclude_defaults=True))
    if by_tool:
        raise ValueError(f"the server has no tool(s) {', '.join(sorted(by_tool))}")
    data = pack.model_dump(exclude_defaults=True)
    data["actions"] = actions
    new = Pack.model_validate(data)
    new._source = pack.source
    return new


def discover_sync(pack: Pack) -> Pack:
    """`discover` from synchronous code (in its own thread and event loop, with a timeout)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(asyncio.run, asyncio.wait_for(discover(pack), DISCOVER_TIMEOUT))
        return fut.result()


def _content_text(result: Any) -> str:
    parts = []
    for c in result.content or []:
        text = getattr(c, "text", None)
        if text is not None:
            parts.append(text)
        else:
            parts.append(f"[{getattr(c, 'type', 'content')}]")
    return "\n".join(parts)


class McpSessions:
    """Keeps one connection per MCP pack open for a block (a console session), so a stdio server is
    started once instead of once per call. Calls outside the block connect per call."""

    def __init__(self, packs: list[Pack], resolver: CredentialResolver | None = None) -> None:
        self.packs = [p for p in packs if p.connection.executor == "mcp"]
        """The MCP packs to hold open."""
        self.errors: dict[str, str] = {}
        """pack name → why it could not be opened (its calls then connect per call)."""
        self._stack = contextlib.AsyncExitStack()
        self._names: list[str] = []

    async def __aenter__(self) -> McpSessions:
        from skills.credentials import resolve

        loop = asyncio.get_running_loop()
        for pack in self.packs:
            secrets: dict[str, str] = {}
            try:
                client = await self._stack.enter_async_context(connect(pack, resolve, secrets))
            except Exception as exc:  # noqa: BLE001 - one unreachable server must not stop the others
                self.errors[pack.name] = f"{type(exc).__name__}: {exc}"
                continue
            _open[pack.name] = (loop, client, secrets)
            self._names.append(pack.name)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for name in self._names:
            _open.pop(name, None)
        await self._stack.aclose()


async def run_mcp(
    action: Action, args: dict[str, Any], *, credential_resolver: CredentialResolver, **_: Any
) -> ToolOutput:
    """Call the action's tool on the pack's server (over the held connection when there is one)."""
    secrets: dict[str, str] = {}
    timeout = action.timeout or action.pack.connection.timeout
    call_args = {k: v for k, v in args.items() if v is not None}
    held = _open.get(action.pack.name)
    if held is not None and held[0] is asyncio.get_running_loop():
        secrets.update(held[2])
        try:
            result = await asyncio.wait_for(held[1].call_tool(action.tool, call_args), timeout)
        except TimeoutError:
            return error(f"MCP tool {action.tool!r} did not answer within {timeout:g}s", secrets)
        except Exception as exc:  # noqa: BLE001 - a broken held connection: say so, the next block reconnects
            return error(f"MCP server for pack {action.pack.name!r} failed: {type(exc).__name__}: {exc}", secrets)
        return _result(action, result, secrets)
    try:
        async with connect(action.pack, credential_resolver, secrets) as client:
            result = await asyncio.wait_for(client.call_tool(action.tool, call_args), timeout)
    except TimeoutError:
        return error(f"MCP tool {action.tool!r} did not answer within {timeout:g}s", secrets)
    except LookupError as exc:
        return error(str(exc), secrets)
    except Exception as exc:  # noqa: BLE001 - transport failures are results the model can act on
        return error(f"MCP server for pack {action.pack.name!r} failed: {type(exc).__name__}: {exc}", secrets)
    return _result(action, result, secrets)


def _result(action: Action, result: Any, secrets: dict[str, str]) -> ToolOutput:
    text = _content_text(result)
    if result.is_error:
        return error(f"MCP tool {action.tool!r} failed: {text}", secrets)
    data = result.structured_content
    if data is None:
        try:
            data = json.loads(text) if text.strip()[:1] in ("{", "[") else None
        except ValueError:
            data = None
    if data is not None and action.output:
        return finish(action, data, secrets=secrets)
    return finish(action, data, text=text or "(no output)", secrets=secrets)
