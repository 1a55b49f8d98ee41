"""Read-only mode: `--read-only`, the config key and an org policy's `read_only: true` block every
write and dangerous call before the policy decides (audited with rule `read-only`); reads still run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.policy.rules import Defaults, Policy, PolicyFile, parse_policy
from tests.guard.harness import Recorder, ScriptedApprover, k8s_tools, make_session, of, run, step

ROOT = Path(__file__).resolve().parents[2]
CALLS = step(
    ("kubernetes.get_pod", {"name": "web-1"}),
    ("kubernetes.scale_deployment", {"name": "web", "replicas": 3}),
    ("kubernetes.delete_pod", {"name": "web-1"}),
)


async def _blocked_run(store, policy, read_only):
    rec = Recorder()
    approver = ScriptedApprover(True, True)
    session, disp, audit = await make_session(
        store, k8s_tools(rec), [CALLS, {"text": "proposed"}], policy=policy, approver=approver
    )
    disp._read_only = read_only
    events = await run(session)
    return rec, approver, events, await audit.rows()


async def test_the_session_flag_blocks_writes_before_any_rule_allows_them(store):
    allow_all = Policy(
        org=PolicyFile(defaults=Defaults(read="allow", write="allow", dangerous="allow", unknown="allow"))
    )
    rec, approver, events, rows = await _blocked_run(store, allow_all, True)
    assert [n for n, _ in rec.calls] == ["kubernetes.get_pod"] and approver.requests == []
    fins = {e.tool: e for e in of(events, "tool-call-finished")}
    assert (
        fins["kubernetes.scale_deployment"].status == "blocked"
        and "read-only mode" in fins["kubernetes.scale_deployment"].output
    )
    assert fins["kubernetes.delete_pod"].status == "blocked"
    blocks = [r for r in rows if r.kind == "block"]
    assert {r.tool for r in blocks} == {"kubernetes.scale_deployment", "kubernetes.delete_pod"} and {
        r.rule for r in blocks
    } == {"read-only"}


async def test_an_org_policy_forces_read_only(store):
    policy = Policy(
        org=parse_policy("version: 1\nread_only: true\ndefaults: {write: allow, dangerous: allow}\n", "org.yaml")
    )
    rec, _, events, rows = await _blocked_run(store, policy, False)
    assert [n for n, _ in rec.calls] == ["kubernetes.get_pod"]
    assert any(r.rule == "read-only" and "org policy" in r.detail for r in rows)


def _ask(tmp_path: Path, *extra: str, home: Path, **env_extra: str) -> list:
    script = tmp_path / "s.json"
    script.write_text(json.dumps([CALLS_FOR_CLI, {"text": "Proposal: scale web to 3."}]))
    env = {
        **os.environ,
        "LANTERN_HOME": str(home),
        "KUBECONFIG": str(tmp_path / "none"),
        "LANTERN_CONFIG": str(tmp_path / "none.yaml"),
        **env_extra,
    }
    r = subprocess.run(
        [sys.executable, "-m", "console.cli", "ask", "--json", "--model", f"scripted:{script}", *extra, "scale web"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    from engine.events import from_json

    return [from_json(line) for line in r.stdout.splitlines()]


CALLS_FOR_CLI = step(
    ("kubernetes.scale_deployment", {"name": "web", "replicas": 3}), ("kubernetes.rollout_restart", {"name": "web"})
)


def test_lantern_ask_read_only_blocks_every_write_on_the_plain_face(tmp_path):
    events = _ask(tmp_path, "--read-only", home=tmp_path / "home")
    assert events[0].kind == "session-started" and events[0].read_only
    fins = [e for e in events if e.kind == "tool-call-finished"]
    assert len(fins) == 2 and all(e.status == "blocked" and "read-only" in e.output for e in fins)
    assert not [e for e in events if e.kind in ("approval-requested", "tool-call-started")]


def test_the_config_key_and_the_org_policy_switch_it_on_too(tmp_path):
    (tmp_path / "config.yaml").write_text("read_only: true\n")
    events = _ask(tmp_path, home=tmp_path / "h1", LANTERN_CONFIG=str(tmp_path / "config.yaml"))
    assert events[0].read_only and all(e.status == "blocked" for e in events if e.kind == "tool-call-finished")
    home = tmp_path / "h2"
    home.mkdir()
    (home / "policy.yaml").write_text("version: 1\nread_only: true\n")
    events = _ask(tmp_path, home=home)
    assert events[0].read_only and all(e.status == "blocked" for e in events if e.kind == "tool-call-finished")


async def test_the_console_header_says_read_only():
    import datetime as dt

    from console.app import LanternApp
    from console.testing import incident_tools, scripted_factory
    from console.widgets.header.header_bar import HeaderBar
    from engine.config import Config

    app = LanternApp(
        config=Config(model="scripted", namespace="payments", read_only=True),
        session_factory=scripted_factory([{"text": "hi"}], incident_tools()),
        tz=dt.UTC,
        blink=False,
    )
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(100):
            if app.bridge is not None and app.bridge.ready:
                break
            await pilot.pause(0.05)
        header = app.main.query_one(HeaderBar)
        assert header.read_only and "READ-ONLY" in header.render().plain
