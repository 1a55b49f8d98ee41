"""A real MCP server for the executor tests: stdio by default, streamable HTTP with --http PORT."""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

server = MCPServer("lantern-test")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def service_status(service: str, verbose: bool = False) -> str:
    """Report whether a service is healthy."""
    extra = " (3 replicas, p99 120ms)" if verbose else ""
    return f"{service}: healthy{extra}"


@server.tool()
def restart_service(service: str) -> str:
    """Restart a service (no annotations: the client must treat it as a write)."""
    return f"{service} restarted"


@server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
def wipe_cache(region: str) -> str:
    """Delete every cache entry in a region."""
    return f"cache in {region} wiped"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def whoami() -> str:
    """Echo the credential the client passed (careless servers do this)."""
    return f"token={os.environ.get('LANTERN_CREDENTIAL', '<none>')}"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def fail_always(reason: str) -> str:
    """Always fails."""
    raise ToolError(f"failed on purpose: {reason}")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def server_pid() -> str:
    """The server process id (to tell one long-lived server from one per call)."""
    return str(os.getpid())


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
