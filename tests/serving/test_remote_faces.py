"""`lantern ask --server` and `lantern sessions --server`: the plain face against a real server,
rendering the remote events as it renders local ones; every failure one line, no traceback."""

from __future__ import annotations

import pytest

from console.cli import main
from console.testing import INCIDENT_SCRIPT
from server.testing import ServerThread, scripted_sessions

READS = [
    INCIDENT_SCRIPT[0],
    INCIDENT_SCRIPT[1],
    {"text": "The api is OOMKilled since revision 14 cut its memory limit."},
]


@pytest.fixture
def server(tmp_path):
    s = ServerThread(tmp_path / "server.db", scripted_sessions(READS, [])).start()
    yield s
    s.stop()


def test_ask_on_the_server_renders_the_turn_and_sessions_lists_it(server, monkeypatch, capsys):
    monkeypatch.setenv("LANTERN_TOKEN", server.tokens["alice"])
    assert main(["ask", "--server", server.url, "why is the api crash-looping?"]) == 0
    out = capsys.readouterr().out
    assert "▶ get_pods" in out and "◀ ok get_pods" in out and "rollout_history" in out
    assert "OOMKilled since revision 14" in out and "— answered" in out
    assert main(["sessions", "--server", server.url]) == 0
    listed = capsys.readouterr().out
    assert "why is the api crash-looping?" in listed and "scripted" in listed
    sid = listed.split()[0]
    assert main(["sessions", "--server", server.url, "show", sid[:6]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert '"kind":"session-started"' in lines[0] and '"kind":"turn-finished"' in lines[-1]


def test_ask_json_prints_the_event_lines(server, monkeypatch, capsys):
    monkeypatch.setenv("LANTERN_TOKEN", server.tokens["bob"])
    assert main(["ask", "--server", server.url, "--json", "pods?"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        '"kind":"session-started"' in lines[0]
        and '"kind":"user-message"' in lines[1]
        and '"reason":"answered"' in lines[-1]
    )


@pytest.mark.parametrize(
    ("argv", "token", "said"),
    [
        (
            ["sessions", "--server", "http://127.0.0.1:9"],
            "x",
            "cannot reach the server at http://127.0.0.1:9: connection refused",
        ),
        (["sessions", "--server", "ftp://host"], "x", "not a server URL: 'ftp://host'"),
        (["sessions", "--server", "{url}"], "lt_wrong", "refused the token (401)"),
        (["ask", "--server", "{url}", "--session", "nope", "hi"], "{alice}", "no session matches 'nope'"),
        (["sessions", "--server", "{url}"], "", "no token for the server: set LANTERN_TOKEN"),
    ],
)
def test_failures_are_one_line(server, monkeypatch, capsys, argv, token, said):
    monkeypatch.delenv("LANTERN_TOKEN", raising=False)
    if token:
        monkeypatch.setenv("LANTERN_TOKEN", token.format(alice=server.tokens["alice"]))
    monkeypatch.setattr("keyring.get_password", lambda *a: None)
    assert main([a.format(url=server.url) for a in argv]) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1, err


def test_lantern_serve_as_a_process(tmp_path, monkeypatch):
    """The real command: a user and its token (last line), a server on loopback only, one remote turn."""
    import json
    import os
    import re
    import subprocess
    import sys
    import time

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root}
    cli = [sys.executable, "-m", "console.cli"]
    added = subprocess.run(
        [*cli, "serve", "users", "add", "alice", "--role", "sre-leads"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=root,
    )
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    assert token.startswith("lt_")
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"text": "Nothing is wrong."}]))
    proc = subprocess.Popen(
        [*cli, "serve", "--port", "0", "--model", f"scripted:{script}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        m = re.search(r"listening on (http://127\.0\.0\.1:(\d+))", line)
        assert m, line
        url, port = m.group(1), m.group(2)
        busy = subprocess.run(
            [*cli, "serve", "--port", port], capture_output=True, text=True, env=env, timeout=60, cwd=root
        )
        assert (
            busy.returncode == 2
            and busy.stderr.count("\n") == 1
            and f"cannot listen on 127.0.0.1:{port}" in busy.stderr
        )
        t0 = time.monotonic()
        asked = subprocess.run(
            [*cli, "ask", "--server", url, "anything wrong?"],
            capture_output=True,
            text=True,
            env={**env, "LANTERN_TOKEN": token},
            timeout=120,
            cwd=root,
        )
        assert asked.returncode == 0, asked.stderr
        assert "Nothing is wrong." in asked.stdout and "— answered" in asked.stdout
        assert time.monotonic() - t0 < 120
    finally:
        proc.terminate()
        proc.wait(20)
