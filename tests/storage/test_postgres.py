"""Several processes on one store stay consistent; the team database's failures are one clear line.

Against a real PostgreSQL (tests.storage.pgserver) and, where cheap, the SQLite file too.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import sys
from pathlib import Path

import pytest

from engine import events as ev
from engine.policy.audit import AuditLog
from engine.storage import StoreError
from engine.store import PageGroup, Store

from .load import drive

ROOT = Path(__file__).resolve().parents[2]

APPENDER = """
import asyncio, sys
from engine import events as ev
from engine.store import Store

async def main(url, tag, n):
    async with Store(url) as s:
        await s.create_session("shared")
        seq = 0
        for i in range(n):
            e = ev.UserMessage(session_id="shared", seq=seq + 1, at=ev.utcnow(), turn=1, text=f"{tag}-{i}")
            seq = (await s.append(e)).seq

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def _python(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def _finish(p: asyncio.subprocess.Process) -> str:
    out, err = await p.communicate()
    assert p.returncode == 0, err.decode()[-3000:]
    return out.decode()


def _cli(*argv: str) -> tuple[int, str, str]:
    import subprocess

    code = f"from console.cli import main; raise SystemExit(main({list(argv)!r}))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    return p.returncode, p.stdout, p.stderr


async def test_two_processes_appending_to_one_session_leave_no_gap(store_target: str):
    n = 150
    procs = [await _python("-c", APPENDER, store_target, tag, str(n)) for tag in ("a", "b")]
    for p in procs:
        await _finish(p)
    async with Store(store_target) as store:
        events = await store.events("shared")
        assert [e.seq for e in events] == list(range(1, 2 * n + 1))
        for tag in ("a", "b"):
            assert [e.text for e in events if e.text.startswith(tag)] == [f"{tag}-{i}" for i in range(n)]
        assert await store.verify_events() == (True, "1 sessions' events intact")


async def test_a_listener_hears_another_connections_events_in_order(pg_url: str):
    async with Store(pg_url) as listener, Store(pg_url) as writer:
        async with listener.subscribe() as feed:
            for i in range(1, 41):
                await writer.append(ev.UserMessage(session_id=f"s{i % 3}", seq=0, at=ev.utcnow(), turn=1, text=str(i)))
            heard = [await asyncio.wait_for(feed.__anext__(), 5) for _ in range(40)]
    for sid in ("s0", "s1", "s2"):
        seqs = [seq for s, seq in heard if s == sid]
        assert seqs == list(range(1, len(seqs) + 1))
    assert len(heard) == 40


async def test_audit_verifies_after_four_concurrent_writers(pg_url: str, capsys: pytest.CaptureFixture[str]):
    """4 processes × 50 audited calls through the real Dispatcher on one database; a listener in
    this process hears every event; nothing lost, no gap, the chains verify."""
    writers, calls = 4, 50
    load = await drive(pg_url, writers, calls)
    assert sum(w["executed"] for w in load.writers) == writers * calls
    async with Store(pg_url) as store:
        rows = await (await AuditLog.open(store)).rows()
        kinds = [r.kind for r in rows]
        assert kinds.count("execution") == writers * calls
        assert kinds.count("approval") == kinds.count("intent") == writers * calls // 2
        assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
        latencies = []
        for w in load.writers:
            events = await store.events(w["session"])
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            mine = [(seq, at) for sid, seq, at in load.heard if sid == w["session"]]
            assert [seq for seq, _ in mine] == [e.seq for e in events]  # every event heard, in order
            latencies += [at - e.at.timestamp() for (_, at), e in zip(mine, events, strict=True)]
    assert len(load.heard) == load.events

    rc, out, err = _cli("audit", "--store", pg_url, "verify")
    assert rc == 0 and out.count("ok: ") == 2, out + err
    assert f"ok: {len(rows)} rows, chain intact" in out
    p95 = statistics.quantiles(latencies, n=20)[-1] * 1000
    with capsys.disabled():
        print(
            f"\n[postgres load] {writers} writers x {calls} calls: {writers * calls / load.span:.1f} calls/s over "
            f"{load.span:.1f} s; {load.events} events, {len(rows)} audit rows; event stamped -> heard by a "
            f"listener: p50 {statistics.median(latencies) * 1000:.1f} ms, p95 {p95:.1f} ms"
        )


# -- one clear line for every failure a user can meet ---------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _error(url: str) -> str:
    with pytest.raises(StoreError) as info:
        await Store(url).open()
    text = str(info.value)
    assert "\n" not in text and "Traceback" not in text
    return text


async def test_unreachable_bad_url_and_unknown_scheme_are_one_line():
    port = _closed_port()
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port}" in await _error(f"postgresql://me@127.0.0.1:{port}/db")
    assert "port" in await _error("postgresql://me@127.0.0.1:notaport/db")
    assert "unknown scheme 'mysql'" in await _error("mysql://me@127.0.0.1/db")


async def test_auth_failure_missing_database_and_missing_privileges_are_one_line(postgres, pg_url: str):
    wrong = postgres.url(pg_url.rsplit("/", 1)[1], password="not-the-password")
    text = await _error(wrong)
    assert "refused user 'lantern': wrong or missing password" in text and "not-the-password" not in text
    assert "has no database 'nowhere'" in await _error(postgres.url("nowhere"))
    db = pg_url.rsplit("/", 1)[1]
    postgres.psql("CREATE ROLE reader LOGIN PASSWORD 'pw'")
    # PostgreSQL 15: only the database owner may create in schema public
    reader = postgres.url(db, user="reader", password="pw")
    text = await _error(reader)
    assert "permission denied for schema public" in text and "the role needs" in text
    async with Store(pg_url):  # the owner creates the tables; the reader may not touch them
        pass
    assert "permission denied for table" in await _error(reader)


def test_the_cli_says_what_is_wrong_in_one_line():
    port = _closed_port()
    rc, out, err = _cli("audit", "--store", f"postgresql://me:secret@127.0.0.1:{port}/db", "verify")
    assert rc == 2 and err.strip().count("\n") == 0, err
    assert err.startswith(f"lantern audit: store: cannot reach PostgreSQL at 127.0.0.1:{port}")
    rc, out, err = _cli("--store", "mysql://x/y", "sessions")
    assert rc == 2 and "unknown scheme" in err and err.strip().count("\n") == 0, err


async def test_the_cli_and_env_name_a_postgres_store(pg_url: str, monkeypatch: pytest.MonkeyPatch):
    async with Store(pg_url) as store:
        await store.create_session("cafe01", model="scripted")
        await store.append(ev.UserMessage(session_id="cafe01", seq=1, at=ev.utcnow(), turn=1, text="hello team"))
    rc, out, err = _cli("--store", pg_url, "sessions")
    assert rc == 0 and "cafe01" in out and "hello team" in out, err
    monkeypatch.setenv("LANTERN_STORE", pg_url)
    assert Store().where.endswith(pg_url.rsplit("@", 1)[1]) and "lantern-test-pw" not in Store().where
    rc, out, err = _cli("sessions", "show", "cafe")
    assert rc == 0 and "hello team" in out, err


GRANTS = """
GRANT CONNECT ON DATABASE {db} TO {role};
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT, INSERT, UPDATE ON sessions, blobs, scores, marks, session_status, page_groups TO {role};
GRANT SELECT, INSERT ON events, audit, lantern_meta TO {role};
GRANT USAGE ON SEQUENCE sessions_rowid_seq TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON server_users, server_turns, server_user_links TO {role};
GRANT SELECT, INSERT, UPDATE ON slack_threads TO {role};
"""
"""The README's grants for a role that neither owns nor may change Lantern's tables."""


async def test_a_role_with_the_readmes_grants_works_and_cannot_rewrite_the_audit(postgres, pg_url: str):
    db = pg_url.rsplit("/", 1)[1]
    from server.identity import Users
    from server.slack.threads import Threads
    from server.turns import Busy, Leases

    async with Store(pg_url) as owner:  # the administrator's first run creates the tables
        await AuditLog.open(owner)
        await Users.open(owner)
        await Leases.open(owner, "admin")
        await Threads.open(owner)
    postgres.psql("CREATE ROLE app LOGIN PASSWORD 'pw'")
    postgres.psql(GRANTS.format(db=db, role="app"), database=db)
    async with Store(postgres.url(db, user="app", password="pw")) as store:
        log = await AuditLog.open(store)
        await store.create_session("s1", model="scripted")
        await store.append(ev.UserMessage(session_id="s1", seq=1, at=ev.utcnow(), turn=1, text="hi"))
        await store.put_blob("r", "s1", "out")
        await store.put_blob("r", "s1", "out")
        await store.put_score("s1", {"score": 1.0})
        await store.put_mark("s1", "good")
        await store.set_status("s1", "open")
        await store.set_status("s1", "resolved")
        await store.put_page_group(PageGroup("g", "s1", "generic", "firing", "t", "t", [], 1))
        await store.put_page_group(PageGroup("g", "s1", "generic", "resolved", "t", "t", ["a"], 2))
        assert (await store.page_group("g")).status == "resolved"  # type: ignore[union-attr]
        await log.append(session_id="s1", user="app", kind="execution", tool="t", args_json="{}", call_hash="h")
        assert (await log.verify())[0] and (await store.verify_events())[0]
        users = await Users.open(store)
        await users.add("alice", ["sre"])
        await users.link("alice", "slack", "U0ALICE")
        await users.remove("alice")
        mine, theirs = await Leases.open(store, "server-1"), await Leases.open(store, "server-2")
        await mine.acquire("s1", "alice")
        assert await mine.renew("s1")
        with pytest.raises(Busy):
            await theirs.acquire("s1", "bob")
        await mine.release("s1")
        await theirs.acquire("s1", "bob")
        threads = await Threads.open(store)
        await threads.bind("C0INCIDENT", "1700000001.000002", "s1")
        assert await threads.session("C0INCIDENT", "1700000001.000002") == "s1"
        with pytest.raises(Exception, match="permission denied for table audit"):
            await store.backend.pool.execute("UPDATE audit SET detail='x'")  # type: ignore[attr-defined]


async def test_the_servers_users_live_in_the_team_database(pg_url: str):
    from server.identity import Users

    rc, out, err = _cli("serve", "--store", pg_url, "users", "add", "alice", "--role", "sre-leads")
    assert rc == 0, err
    token = out.strip().splitlines()[-1]
    async with Store(pg_url) as store:
        users = await Users.open(store)
        who = await users.authenticate(token)
        assert who is not None and (who.name, who.roles) == ("alice", ("sre-leads",))
        await users.remove("alice")
        assert await users.authenticate(token) is None


async def test_a_server_with_another_audit_key_refuses_to_start(pg_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch):
    async with Store(pg_url):
        pass
    monkeypatch.setenv("LANTERN_HOME", str(tmp_path / "other-machine"))
    text = await _error(pg_url)
    assert "chained with another audit key" in text and "copy the first server's audit.key" in text
