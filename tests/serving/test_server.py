"""`lantern serve` over real WebSockets on loopback: faces attach to one session and see the same
events live; approvals are answered by whoever may approve, as the token says; bad tokens are
refused and audited."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from console.testing import INCIDENT_SCRIPT
from engine import events as ev
from server.client import Remote, RemoteError
from server.testing import ServerThread, scripted_sessions

QUESTION = "why is the payments api crash-looping?"


@pytest.fixture
def executed() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def server(tmp_path, executed):
    s = ServerThread(tmp_path / "server.db", scripted_sessions(INCIDENT_SCRIPT, executed)).start()
    yield s
    s.stop()


class Watch:
    """One face's view: every event and control frame it received, in order."""

    def __init__(self, face: Any) -> None:
        self.face = face
        self.it = face.frames()
        self.events: list[Any] = []
        self.frames: list[dict[str, Any]] = []
        self.live_from = 0
        """Index in `events` of the first live event."""

    async def until(self, pred: Any, timeout: float = 20) -> Any:
        while True:
            item = await asyncio.wait_for(anext(self.it), timeout)
            if isinstance(item, dict):
                self.frames.append(item)
                if item.get("frame") == "live":
                    self.live_from = len(self.events)
            else:
                self.events.append(item)
            if pred(item):
                return item

    async def live(self) -> None:
        await self.until(lambda f: isinstance(f, dict) and f.get("frame") == "live")

    async def turn_end(self) -> ev.TurnFinished:
        return await self.until(lambda e: isinstance(e, ev.TurnFinished))

    def seqs(self) -> list[int]:
        return [e.seq for e in self.events]


def _frame(kind: str) -> Any:
    return lambda f: isinstance(f, dict) and f.get("frame") == kind


async def test_two_faces_see_one_turn_live_and_the_second_approves(server, executed):
    alice, bob, carol = (Remote(server.url, server.tokens[n]) for n in ("alice", "bob", "carol"))
    sid = await alice.create()
    async with alice.attach(sid) as fa, bob.attach(sid) as fb:
        assert fa.hello["user"] == "alice" and fb.hello["user"] == "bob"
        assert fb.hello["protocol"] == ev.PROTOCOL_VERSION and fb.hello["session_id"] == sid
        a, b = Watch(fa), Watch(fb)
        await a.live()
        await b.live()
        await fa.message(QUESTION)
        request = await b.until(lambda e: isinstance(e, ev.ApprovalRequested))
        assert request.tool == "rollback_deployment" and request.rule == "org/rollback"
        assert not executed, "nothing writes before an approval"

        # carol attaches late: the history first (the open request in it), then live; her approval is refused
        async with carol.attach(sid) as fc:
            c = Watch(fc)
            await c.live()
            assert request.seq in c.seqs()
            await fc.send(
                {
                    "frame": "approval",
                    "request_id": request.request_id,
                    "call_hash": request.call_hash,
                    "approved": True,
                    "by": "bob",
                }
            )
            refused = await c.until(_frame("refused"))
            assert "carol may not approve" in refused["reason"]
            assert not executed

            # bob's answer, bound to the request, runs the call on alice's turn
            await fb.answer(request, True, "smallest safe fix")
            ends = [await w.turn_end() for w in (a, b, c)]

    assert [e.reason for e in ends] == ["answered"] * 3
    assert executed == [{"tool": "rollback_deployment", "name": "api", "namespace": "payments", "revision": 13}]
    resolved = [e for e in a.events if isinstance(e, ev.ApprovalResolved)]
    assert [(r.approved, r.by) for r in resolved] == [(True, "bob")]
    # every face has every event once, in order, with no gap: history then live
    n = a.events[-1].seq
    for w in (a, b, c):
        assert w.seqs() == list(range(1, n + 1))
        assert [ev.to_json(e) for e in w.events] == [ev.to_json(e) for e in a.events]
    assert b.live_from < len(b.events) and c.live_from > 0  # b watched the turn live; c caught up from history
    stored = await alice.events(sid)
    assert [e.seq for e in stored] == list(range(1, n + 1))

    rows = await alice.audit(session=sid)
    refusal = [r for r in rows if r["kind"] == "refusal"]
    assert refusal and refusal[0]["user"] == "carol" and "carol may not approve" in refusal[0]["detail"]
    approval = [r for r in rows if r["kind"] == "approval"]
    assert approval and "by bob" in approval[0]["detail"] and approval[0]["user"] == "alice"


async def test_the_asker_is_the_authenticated_user_and_may_not_approve_what_the_role_must(server, executed):
    alice = Remote(server.url, server.tokens["alice"])
    sid = await alice.create()
    async with alice.attach(sid) as fa:
        a = Watch(fa)
        await a.live()
        await fa.message(QUESTION)
        request = await a.until(lambda e: isinstance(e, ev.ApprovalRequested))
        await fa.answer(request, True)
        assert "alice may not approve" in (await a.until(_frame("refused")))["reason"]
        await fa.answer(request, False, "changed my mind")  # a denial from a non-approver does not count either
        await a.until(_frame("refused"))
        await fa.cancel()
        end = await a.turn_end()
    assert end.reason == "cancelled" and not executed
    rows = await alice.audit(session=sid)
    assert {r["user"] for r in rows if r["kind"] == "refusal"} == {"alice"}


async def test_a_second_message_while_a_turn_runs_is_refused(server):
    alice, bob = Remote(server.url, server.tokens["alice"]), Remote(server.url, server.tokens["bob"])
    sid = await alice.create()
    async with alice.attach(sid) as fa, bob.attach(sid) as fb:
        a, b = Watch(fa), Watch(fb)
        await a.live()
        await b.live()
        await fa.message(QUESTION)
        await b.until(lambda e: isinstance(e, ev.ApprovalRequested))
        await fb.message("and what about the worker?")
        err = await b.until(_frame("error"))
        assert err["code"] == "busy" and "asked by alice" in err["message"]
        await fa.cancel()
        await a.turn_end()


async def test_no_token_or_a_wrong_one_is_refused_and_audited(server):
    async with httpx.AsyncClient(trust_env=False) as http:
        assert (await http.get(server.url + "/healthz")).status_code == 200
        assert (await http.get(server.url + "/readyz")).json()["ready"] is True
        assert (await http.get(server.url + "/v1/sessions")).status_code == 401
        r = await http.get(server.url + "/v1/sessions", headers={"Authorization": "Bearer lt_wrong"})
        assert r.status_code == 401
    with pytest.raises(RemoteError, match=r"refused the token \(401\)"):
        await Remote(server.url, "lt_wrong").sessions()
    alice = Remote(server.url, server.tokens["alice"])
    sid = await alice.create()
    with pytest.raises(RemoteError, match=r"refused the token \(401\)"):
        async with Remote(server.url, "lt_wrong").attach(sid):
            pass
    with pytest.raises(RemoteError, match="no session matches 'nope'"):
        async with alice.attach("nope"):
            pass
    refused = [r for r in await alice.audit() if r["rule"] == "server:auth"]
    assert len(refused) == 4
    assert {r["detail"] for r in refused} == {"request refused: no token", "request refused: unknown token"}
    assert {r["user"] for r in refused} == {"(unauthenticated)"}


async def test_the_token_is_stored_only_as_its_hash(server):
    import sqlite3

    db = sqlite3.connect(server.path)
    stored = [r[0] for r in db.execute("SELECT token_hash FROM server_users")]
    db.close()
    assert len(stored) == 3 and all(len(h) == 64 for h in stored)
    assert not set(server.tokens.values()) & set(stored)


async def test_an_approval_nobody_answers_expires_and_the_call_is_denied(tmp_path):
    executed: list[dict[str, Any]] = []
    s = ServerThread(tmp_path / "ttl.db", scripted_sessions(INCIDENT_SCRIPT, executed, ttl_s=0.5)).start()
    try:
        alice = Remote(s.url, s.tokens["alice"])
        sid = await alice.create()
        async with alice.attach(sid) as fa:
            a = Watch(fa)
            await a.live()
            await fa.message(QUESTION)
            resolved = await a.until(lambda e: isinstance(e, ev.ApprovalResolved))
            await a.turn_end()
        assert (resolved.approved, resolved.by, resolved.reason) == (False, "engine", "no answer")
        assert not executed
    finally:
        s.stop()


async def test_the_fix_an_answer_offers_runs_by_its_seq_through_the_approval(tmp_path):
    executed: list[dict[str, Any]] = []
    answer = (
        "api crash-loops since revision 14. The fix: rollback_deployment(name=api, namespace=payments, revision=13)"
    )
    s = ServerThread(tmp_path / "fix.db", scripted_sessions([{"text": answer}], executed)).start()
    try:
        alice, bob = (Remote(s.url, s.tokens[n]) for n in ("alice", "bob"))
        sid = await alice.create()
        async with alice.attach(sid) as fa, bob.attach(sid) as fb:
            a, b = Watch(fa), Watch(fb)
            await a.live()
            await b.live()
            await fa.message(QUESTION)
            offer = await a.until(lambda e: isinstance(e, ev.FixOffered))
            assert offer.arguments == {"name": "api", "namespace": "payments", "revision": 13}
            await a.turn_end()
            await fa.fix(offer.seq + 1)  # not an offer: refused, nothing runs
            assert "not the one the session's last answer offered" in (await a.until(_frame("error")))["message"]
            await fa.fix(offer.seq)
            request = await b.until(lambda e: isinstance(e, ev.ApprovalRequested))
            assert request.tool == "rollback_deployment" and not executed
            await fb.answer(request, True, "the offered fix")
            await a.turn_end()
        assert executed == [{"tool": "rollback_deployment", "name": "api", "namespace": "payments", "revision": 13}]
    finally:
        s.stop()
