"""Several `lantern serve` processes on one store, approvals shown only where they can be answered,
and a flood of bad tokens: real servers on loopback, real WebSockets, real PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import httpx
import pytest

from console.cli import main
from console.testing import INCIDENT_SCRIPT
from engine import events as ev
from engine.store import Store
from server.client import Remote, RemoteError
from server.testing import ServerThread, scripted_sessions

from .test_server import QUESTION, Watch, _frame

FOLLOW_UP = [{"text": "The api runs on revision 13 again; nothing else is wrong."}]


def _approvers(rid: str) -> Any:
    return lambda f: isinstance(f, dict) and f.get("frame") == "approvers" and f.get("request_id") == rid


@pytest.fixture
def two_servers(pg_url):
    """Server A and server B on one PostgreSQL database, with the same users and tokens."""
    a = ServerThread(pg_url, scripted_sessions(FOLLOW_UP, [])).start()
    try:
        b = ServerThread(pg_url, scripted_sessions(INCIDENT_SCRIPT, []), tokens=a.tokens).start()
    except BaseException:
        a.stop()
        raise
    yield a, b
    b.stop()
    a.stop()


async def test_a_face_on_one_server_sees_a_turn_that_runs_on_another(two_servers, pg_url):
    a, b = two_servers
    on_a = {n: Remote(a.url, a.tokens[n]) for n in ("alice", "bob")}
    on_b = {n: Remote(b.url, b.tokens[n]) for n in ("alice", "bob")}
    sid = await on_a["alice"].create()
    async with on_a["bob"].attach(sid) as fa, on_b["alice"].attach(sid) as fb, on_b["bob"].attach(sid) as fbob:
        wa, wb, wbob = Watch(fa), Watch(fb), Watch(fbob)
        for w in (wa, wb, wbob):
            await w.live()
        await fb.message(QUESTION)  # the turn runs on B
        request = await wa.until(lambda e: isinstance(e, ev.ApprovalRequested))  # A's face sees it live
        route = await wa.until(_approvers(request.request_id))
        assert route["can_answer"] is False and route["approvers"] == ["bob"] and "another server" in route["why"]

        # the session is busy on A while its turn runs on B, and an answer on A does not reach B's turn
        await fa.message("and the worker?")
        busy = await wa.until(_frame("error"))
        assert busy["code"] == "busy" and "on another server" in busy["message"] and "asked by alice" in busy["message"]
        await fa.answer(request, True)
        elsewhere = await wa.until(_frame("error"))
        assert elsewhere["code"] == "no-request" and "another server" in elsewhere["message"]

        await wbob.until(lambda e: isinstance(e, ev.ApprovalRequested))
        assert (await wbob.until(_approvers(request.request_id)))["can_answer"] is True
        await fbob.answer(request, True, "smallest safe fix")
        for w in (wa, wb, wbob):
            assert (await w.turn_end()).reason == "answered"

        # the other way round: a turn on A, seen on B; the lease B held is gone
        await fa.message("is it healthy now?")
        end = await wb.turn_end()
        assert end.reason == "answered" and end.turn == 2
        await wa.turn_end()
        await wbob.turn_end()

    async with Store(pg_url) as store:
        stored = await store.events(sid)
        assert await store.verify_events() == (True, "1 sessions' events intact")
    n = stored[-1].seq
    assert [e.seq for e in stored] == list(range(1, n + 1))
    # each face on each server: every event once, in seq order, the same events as stored
    for w in (wa, wb, wbob):
        assert w.seqs() == list(range(1, n + 1))
        assert [ev.to_json(e) for e in w.events] == [ev.to_json(e) for e in stored]
    assert [e.turn for e in stored if isinstance(e, ev.UserMessage)] == [1, 2]
    rows = await on_a["alice"].audit(session=sid)
    assert any(r["kind"] == "approval" and "by bob" in r["detail"] for r in rows)
    assert any(r["kind"] == "refusal" and r["rule"] == "server:approval" and r["user"] == "bob" for r in rows)


async def test_only_an_approvers_face_is_offered_the_approval(tmp_path):
    executed: list[dict[str, Any]] = []
    s = ServerThread(tmp_path / "s.db", scripted_sessions(INCIDENT_SCRIPT, executed)).start()
    try:
        alice, bob, carol = (Remote(s.url, s.tokens[n]) for n in ("alice", "bob", "carol"))
        sid = await alice.create()
        async with alice.attach(sid) as fa, carol.attach(sid) as fc:
            a, c = Watch(fa), Watch(fc)
            await a.live()
            await c.live()
            await fa.message(QUESTION)
            request = await c.until(lambda e: isinstance(e, ev.ApprovalRequested))
            for w in (a, c):  # the asker and a viewer: pending, who may approve it, no Approve
                route = await w.until(_approvers(request.request_id))
                assert route == {
                    "frame": "approvers",
                    "request_id": request.request_id,
                    "approvers": ["bob"],
                    "can_answer": False,
                    "why": "only bob may approve this",
                }
            async with bob.attach(sid) as fb:  # attaches late: the open request in the history, then its route
                b = Watch(fb)
                assert (await b.until(_approvers(request.request_id)))["can_answer"] is True
                await b.live()
                await fc.answer(request, True)  # a face that was told it may not: refused, as before
                assert "carol may not approve" in (await c.until(_frame("refused")))["reason"]
                await fb.answer(request, True)
                resolved = [await w.until(lambda e: isinstance(e, ev.ApprovalResolved)) for w in (a, c)]
                assert {(r.approved, r.by) for r in resolved} == {(True, "bob")}  # the others see who answered
                await b.turn_end()
        assert executed and executed[0]["tool"] == "rollback_deployment"
    finally:
        s.stop()


async def test_a_flood_of_bad_tokens_gets_429_and_one_summarising_audit_row(tmp_path):
    limit, window = 5, 2.0
    s = ServerThread(
        tmp_path / "s.db",
        scripted_sessions(INCIDENT_SCRIPT, []),
        options={"auth_limit": limit, "auth_window_s": window},
    ).start()
    try:
        alice = Remote(s.url, s.tokens["alice"])
        sid = await alice.create()
        bad = {"Authorization": "Bearer lt_wrong"}
        async with httpx.AsyncClient(trust_env=False) as http:
            got = await asyncio.gather(*(http.get(s.url + "/v1/sessions", headers=bad) for _ in range(60)))
            statuses = [r.status_code for r in got]  # all at once: the limit holds for requests that race
            assert statuses.count(401) == limit and statuses.count(429) == 60 - limit
            held = [r for r in got if r.status_code == 429][-1]
            assert 1 <= int(held.headers["Retry-After"]) <= window + 1
            assert "too many failed authentications" in held.json()["message"]
            # the address is held off whatever it sends until the window ends: a WebSocket, a good token
            with pytest.raises(RemoteError, match="answered 429"):
                async with Remote(s.url, "lt_wrong").attach(sid):
                    pass
            assert (await http.get(s.url + "/v1/whoami", headers=alice.headers)).status_code == 429
            assert (await http.get(s.url + "/healthz")).status_code == 200  # the probes need no token
            await asyncio.sleep(int(held.headers["Retry-After"]))  # the window ends
            rows: list[dict[str, Any]] = []
            for _ in range(100):  # then its summary is written
                await asyncio.sleep(0.1)
                r = await http.get(s.url + "/v1/audit?limit=500", headers=alice.headers)
                if r.status_code == 200:
                    rows = r.json()["rows"]
                    if any(x["rule"] == "server:auth-rate" for x in rows):
                        break
        each = [r for r in rows if r["rule"] == "server:auth"]
        summary = [r for r in rows if r["rule"] == "server:auth-rate"]
        assert len(each) == limit and {r["detail"] for r in each} == {"request refused: unknown token"}
        assert len(summary) == 1, summary
        assert summary[0]["detail"].startswith(f"{60 - limit + 2} more requests from 127.0.0.1 answered 429")
        assert f"{limit} failed authentications within {window:g} s" in summary[0]["detail"]
    finally:
        s.stop()
    chain = sqlite3.connect(tmp_path / "s.db")
    assert chain.execute("SELECT COUNT(*) FROM audit WHERE rule LIKE 'server:auth%'").fetchone() == (limit + 1,)
    chain.close()


def test_serve_takes_the_global_store_option(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LANTERN_STORE", "")  # main() sets it for the process: restored after the test
    target = tmp_path / "team.db"
    assert main(["--store", str(target), "serve", "users", "add", "dave", "--role", "sre-leads"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("lt_")
    db = sqlite3.connect(target)
    assert db.execute("SELECT name FROM server_users").fetchall() == [("dave",)]
    db.close()
    own = tmp_path / "own.db"
    assert main(["--store", str(target), "serve", "--store", str(own), "users", "add", "erin"]) == 0
    db = sqlite3.connect(own)
    assert db.execute("SELECT name FROM server_users").fetchall() == [("erin",)]
    db.close()
