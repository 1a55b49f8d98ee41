"""The store and the audit behave the same on SQLite and on a real PostgreSQL: chains, tampering
found, rows refused, sessions and outputs kept, seq allocated by the store, live events in order."""

from __future__ import annotations

import asyncio

import pytest

from engine import events as ev
from engine.policy.audit import GENESIS, AuditLog, call_hash
from engine.store import Store

from .conftest import drop_audit_triggers, raw


async def fill(log: AuditLog, n: int = 4, session_id: str = "s1") -> None:
    kinds = ["approval", "execution", "denial", "block", "refusal", "confirmation"]
    for i in range(n):
        await log.append(
            session_id=session_id,
            user="alice",
            kind=kinds[i % len(kinds)],
            tool="kubernetes.delete_pod",
            args_json=f'{{"name":"web-{i}"}}',
            call_hash=call_hash("kubernetes.delete_pod", {"name": f"web-{i}"}),
            decision="approve",
            rule="r",
            detail=f"row {i}",
        )


def said(session_id: str, seq: int, text: str) -> ev.UserMessage:
    return ev.UserMessage(session_id=session_id, seq=seq, at=ev.utcnow(), turn=1, text=text)


async def test_the_audit_chain_verifies_and_links(any_store: Store):
    log = await AuditLog.open(any_store)
    await fill(log)
    rows = await log.rows()
    assert [r.seq for r in rows] == [1, 2, 3, 4] and rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
    assert await log.verify() == (True, None, "4 rows, chain intact")
    assert [r.seq for r in await log.rows(limit=2, newest=True)] == [3, 4]


async def test_the_audit_refuses_update_and_delete(any_store: Store):
    log = await AuditLog.open(any_store)
    await fill(log, 2)
    for sql in ("UPDATE audit SET decision='allow' WHERE seq=1", "DELETE FROM audit WHERE seq=2"):
        with pytest.raises(Exception, match="append-only"):
            await raw(any_store, sql)
    if any_store.backend.dialect == "postgresql":
        with pytest.raises(Exception, match="append-only"):
            await raw(any_store, "TRUNCATE audit")
    assert await log.verify() == (True, None, "2 rows, chain intact")


async def test_verify_reports_the_first_edited_or_removed_row(any_store: Store):
    log = await AuditLog.open(any_store)
    await fill(log, 5)
    for sql in drop_audit_triggers(any_store):
        await raw(any_store, sql)
    await raw(any_store, "UPDATE audit SET detail='nothing happened' WHERE seq=3")
    ok, seq, why = await log.verify()
    assert not ok and seq == 3 and "edited" in why
    await raw(any_store, "DELETE FROM audit WHERE seq=2")
    ok, seq, why = await log.verify()
    assert not ok and seq == 3 and "removed" in why


async def test_deleting_the_newest_rows_is_caught_by_the_anchor(any_store: Store):
    log = await AuditLog.open(any_store)
    await fill(log, 4)
    for sql in drop_audit_triggers(any_store):
        await raw(any_store, sql)
    await raw(any_store, "DELETE FROM audit WHERE seq >= 3")
    ok, seq, why = await log.verify()
    assert not ok and seq == 3 and "truncated" in why


async def test_a_changed_stored_output_is_found(any_store: Store):
    log = await AuditLog.open(any_store)
    await any_store.put_blob("out-1", "s1", "pod web-1 Running\x00 and more")
    stored = await any_store.get_blob("out-1")
    assert stored is not None and stored.startswith("pod web-1 Running")
    await log.append(
        session_id="s1", user="alice", kind="execution", tool="t", args_json="{}", call_hash="h",
        output_ref="out-1", output="pod web-1 Running\x00 and more",
    )  # fmt: skip
    assert (await log.verify())[0], await log.verify()
    await raw(any_store, "UPDATE blobs SET body='pod web-1 Running' WHERE ref='out-1'")
    ok, seq, why = await log.verify()
    assert not ok and seq == 1 and "was changed" in why


async def test_sessions_outputs_scores_and_marks_round_trip(any_store: Store):
    s = any_store
    await s.create_session("abc123", model="scripted", context="kind-sandbox", meta={"user": "alice"})
    await s.create_session("abc123", model="other")  # idempotent
    await s.create_session("abd999", model="scripted")
    await s.append(said("abc123", 1, "why is checkout slow"))
    assert [r.id for r in await s.sessions()] == ["abc123", "abd999"]
    info = (await s.sessions())[0]
    assert (info.title, info.model, info.events) == ("why is checkout slow", "scripted", 1)
    assert await s.find("abc") == "abc123" and await s.find("ab") is None and await s.latest() == "abc123"
    assert await s.session_meta("abc123") == {"model": "scripted", "context": "kind-sandbox", "user": "alice"}
    await s.put_blob("r1", "abc123", "first")
    await s.put_blob("r1", "abc123", "second")
    assert await s.get_blob("r1") == "second" and await s.get_blob("r1", session_id="abd999") is None
    await s.put_score("abc123", {"score": 0.5})
    await s.put_score("abc123", {"score": 0.9})
    assert await s.get_score("abc123") == {"score": 0.9} and await s.recent_scores() == [{"score": 0.9}]
    await s.put_mark("abc123", "bad")
    await s.put_mark("abc123", "good")
    assert await s.get_mark("abc123") == "good" and await s.get_mark("abd999") is None
    assert await s.count("sessions") == 2 and await s.count("events") == 1


async def test_the_store_allocates_seq_and_the_events_chain_verifies(any_store: Store):
    s = any_store
    await s.create_session("s1")
    first = await s.append(said("s1", 1, "one"))
    # another writer's session object still thinks seq 1 is next: the store re-stamps it
    second = await s.append(said("s1", 1, "two"))
    assert (first.seq, second.seq) == (1, 2)
    assert [(e.seq, e.text) for e in await s.events("s1")] == [(1, "one"), (2, "two")]
    assert [e.seq for e in await s.events("s1", after=1)] == [2]
    assert await s.verify_events() == (True, "1 sessions' events intact")
    await raw(s, "UPDATE events SET body=replace(body, 'two', 'too') WHERE seq=2")
    ok, why = await s.verify_events()
    assert not ok and "event 2 does not match" in why


async def test_a_subscriber_sees_every_event_in_order(any_store: Store):
    s = any_store
    async with s.subscribe() as every, s.subscribe("b") as only_b:
        for i in range(1, 11):
            await s.append(said("a" if i % 2 else "b", i, f"m{i}"))
        heard = [await asyncio.wait_for(every.__anext__(), 5) for _ in range(10)]
        heard_b = [await asyncio.wait_for(only_b.__anext__(), 5) for _ in range(5)]
    assert heard == [("a" if i % 2 else "b", (i + 1) // 2) for i in range(1, 11)]
    assert heard_b == [("b", n) for n in range(1, 6)]
