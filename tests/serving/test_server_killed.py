"""A server killed mid-turn (SIGKILL, a real process): the face reattaches to another server on the
same store, nothing it was sent is lost, the interrupted turn is closed on the record, the pending
approval can no longer be answered (a stale answer is refused and audited), and the session goes on."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import events as ev
from engine.policy.audit import AuditLog
from engine.store import Store
from server.client import Remote, RemoteError

from .test_server import QUESTION, Watch, _frame

ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 2.0


@pytest.fixture(params=["postgresql", "sqlite"])
def target(request: pytest.FixtureRequest, tmp_path) -> str:
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else str(tmp_path / "team.db")


class Proc:
    """`python -m server.testing` as a process of its own."""

    def __init__(self, target: str, log: Path, *extra: str) -> None:
        self.log = log
        with log.open("w") as err:
            self.p = subprocess.Popen(
                [sys.executable, "-m", "server.testing", "--store", target, "--lease-s", str(LEASE_S), *extra],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        line = self.p.stdout.readline()  # type: ignore[union-attr]
        if not line:
            self.p.kill()
            raise AssertionError(f"the server did not start: {log.read_text()[-3000:]}")
        started = json.loads(line)
        self.url: str = started["url"]
        self.tokens: dict[str, str] = started["tokens"]

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.stdin.close()  # type: ignore[union-attr]
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)


async def _until_closed(w: Watch) -> None:
    try:
        while True:
            await w.until(lambda _: False, timeout=30)
    except (RemoteError, StopAsyncIteration, RuntimeError):  # closed, or the iterator ended
        return


async def test_a_server_killed_mid_turn(target, tmp_path):
    first = Proc(target, tmp_path / "first.log")
    try:
        alice, bob = Remote(first.url, first.tokens["alice"]), Remote(first.url, first.tokens["bob"])
        sid = await alice.create()
        async with alice.attach(sid) as fa:
            seen = Watch(fa)
            await seen.live()
            await fa.message(QUESTION)
            request = await seen.until(lambda e: isinstance(e, ev.ApprovalRequested))
            await seen.until(_frame("approvers"))
            first.p.kill()  # SIGKILL: no shutdown, no TurnFinished, the lease left to expire
            killed_at = time.monotonic()
            first.p.wait(10)
            await _until_closed(seen)
    finally:
        first.p.kill()
        first.p.wait(10)
    assert not any(isinstance(e, ev.TurnFinished) for e in seen.events if e.turn == 1)

    script = tmp_path / "after.json"
    script.write_text(json.dumps([{"text": "The rollback never ran: revision 14 is still live."}]))
    await asyncio.sleep(max(0.0, LEASE_S - (time.monotonic() - killed_at)))
    second = Proc(target, tmp_path / "second.log", "--tokens", json.dumps(first.tokens), "--script", str(script))
    try:
        alice, bob = Remote(second.url, first.tokens["alice"]), Remote(second.url, first.tokens["bob"])
        async with alice.attach(sid) as fa, bob.attach(sid) as fb:
            a, b = Watch(fa), Watch(fb)
            await a.live()
            await b.live()
            # the history: everything the face was sent before, then the reopening closed the turn
            assert [ev.to_json(e) for e in a.events[: len(seen.events)]] == [ev.to_json(e) for e in seen.events]
            after = a.events[len(seen.events) :]
            kinds = [e.kind for e in after]
            assert kinds == [
                "session-started",
                "approval-resolved",
                "tool-call-finished",
                "error",
                "turn-finished",
            ], kinds
            resolved, finished, error, end = after[1:]
            assert (resolved.request_id, resolved.approved, resolved.by) == (request.request_id, False, "server")
            assert "the server stopped mid-turn" in resolved.reason
            assert (finished.call_id, finished.status) == (request.call_id, "cancelled")
            assert error.code == "interrupted" and "turn 1 was interrupted" in error.message
            assert (end.turn, end.reason) == (1, "error")
            assert not [f for f in a.frames if f.get("frame") == "approvers"]  # nothing left to answer

            # the stale answer, bound to the expired request: refused, and audited
            await fb.answer(request, True, "late")
            stale = await b.until(_frame("error"))
            assert stale["code"] == "no-request" and request.request_id in stale["message"]

            await fa.message("is the api healthy now?")
            new_end = await a.turn_end()
            assert (new_end.turn, new_end.reason) == (2, "answered")
            assert any(getattr(e, "text", "").startswith("The rollback never ran") for e in a.events)
        rows = await alice.audit(session=sid, limit=500)
    finally:
        second.stop()

    assert any(
        r["kind"] == "denial" and r["user"] == "(server)" and "the server stopped mid-turn" in r["detail"] for r in rows
    )
    refused = [r for r in rows if r["rule"] == "server:approval"]
    assert len(refused) == 1 and refused[0]["user"] == "bob" and refused[0]["kind"] == "refusal"
    assert "no open approval request" in refused[0]["detail"] and refused[0]["call_hash"] == request.call_hash
    assert not [r for r in rows if r["kind"] == "execution" and r["tool"] == "rollback_deployment"]
    async with Store(target) as store:
        stored = await store.events(sid)
        assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
        assert (await store.verify_events())[0]
        ok, _, why = await (await AuditLog.open(store)).verify()
        assert ok, why
