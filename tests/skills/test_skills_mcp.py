"""The mcp executor against a real MCP server (the SDK's MCPServer) over stdio and streamable HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_pack

from skills.executors import run
from skills.loader import load_packs

SERVER = Path(__file__).parent / "skills_mcp_server.py"


def _check(pack):
    acts = pack.by_name
    assert acts["service_status"].risk == "read"
    assert acts["restart_service"].risk == "write"  # no annotation: treated as a write
    assert acts["wipe_cache"].risk == "dangerous"
    assert acts["service_status"].parameters.required == ["service"]
    assert acts["service_status"].parameters.properties["verbose"].type == "boolean"


def test_stdio_server_tools_become_actions_with_risk_from_annotations(tmp_path):
    write_pack(
        tmp_path,
        "mcpstdio",
        f"""
        name: mcpstdio
        description: Test MCP server over stdio.
        connection:
          executor: mcp
          server: {{command: ["{sys.executable}", "{SERVER}"]}}
    """,
    )
    result = load_packs([tmp_path])
    assert result.errors == [], [str(e) for e in result.errors]
    _check(result.pack("mcpstdio"))


async def test_stdio_call_tool_and_errors(tmp_path, memory_keyring, monkeypatch):
    from skills import credentials

    credentials.store("mcp-token", "mcp-canary-5b1e77")
    write_pack(
        tmp_path,
        "mcpstdio",
        f"""
        name: mcpstdio
        description: Test MCP server over stdio.
        connection:
          executor: mcp
          credential: mcp-token
          server: {{command: ["{sys.executable}", "{SERVER}"]}}
    """,
    )
    pack = load_packs([tmp_path]).pack("mcpstdio")
    out = await run(pack.by_name["service_status"], {"service": "checkout", "verbose": True})
    assert out.status == "ok" and out.text == "checkout: healthy (3 replicas, p99 120ms)"
    bad = await run(pack.by_name["fail_always"], {"reason": "testing"})
    assert bad.status == "error" and "failed on purpose: testing" in bad.text
    echoed = await run(pack.by_name["whoami"], {})
    assert "mcp-canary-5b1e77" not in echoed.text and "[credential mcp-token]" in echoed.text


def test_declared_read_action_for_an_unannotated_tool_is_rejected(tmp_path):
    write_pack(
        tmp_path,
        "mcpstdio",
        f"""
        name: mcpstdio
        description: Test MCP server over stdio.
        connection:
          executor: mcp
          server: {{command: ["{sys.executable}", "{SERVER}"]}}
        actions:
          - name: restart
            tool: restart_service
            description: Restart, claimed to be read-only.
            risk: read
    """,
    )
    (err,) = load_packs([tmp_path]).errors
    assert "declared read" in err.message and "write" in err.message


@pytest.fixture(scope="module")
def http_server():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()) from None
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    proc.wait(10)


async def test_streamable_http_server_discover_and_call(tmp_path, http_server):
    write_pack(
        tmp_path,
        "mcphttp",
        f"""
        name: mcphttp
        description: Test MCP server over streamable HTTP.
        connection:
          executor: mcp
          server: {{url: "{http_server}"}}
    """,
    )
    result = load_packs([tmp_path])
    assert result.errors == [], [str(e) for e in result.errors]
    pack = result.pack("mcphttp")
    _check(pack)
    out = await run(pack.by_name["restart_service"], {"service": "cart"})
    assert out.status == "ok" and out.text == "cart restarted"


def test_unreachable_server_is_one_pack_error(tmp_path):
    write_pack(
        tmp_path,
        "gone",
        """
        name: gone
        description: Nobody listens here.
        connection:
          executor: mcp
          timeout: 3
          server: {url: "http://127.0.0.1:9/mcp"}
    """,
    )
    write_pack(
        tmp_path,
        "ok",
        """
        name: ok
        description: A fine pack.
        connection: {executor: rest, base_url: "http://127.0.0.1:1"}
        actions:
          - name: list_things
            description: List the things there are.
            http: {path: /things}
    """,
    )
    result = load_packs([tmp_path])
    assert [p.name for p in result.packs] == ["ok"]
    (err,) = result.errors
    assert err.field == "connection.server" and "did not list its tools" in err.message


async def test_sessions_block_keeps_one_stdio_server_for_many_calls(tmp_path):
    from skills.executors.mcp import McpSessions

    write_pack(
        tmp_path,
        "mcpstdio",
        f"""
        name: mcpstdio
        description: Test MCP server over stdio.
        connection:
          executor: mcp
          server: {{command: ["{sys.executable}", "{SERVER}"]}}
    """,
    )
    pack = load_packs([tmp_path]).pack("mcpstdio")
    async with McpSessions([pack]) as sessions:
        assert sessions.errors == {}
        pids = {(await run(pack.by_name["server_pid"], {})).text for _ in range(3)}
        status = await run(pack.by_name["service_status"], {"service": "cart"})
    assert len(pids) == 1 and status.text == "cart: healthy"
    outside = {(await run(pack.by_name["server_pid"], {})).text for _ in range(2)}
    assert len(outside) == 2 and not outside & pids  # per-call servers again after the block
