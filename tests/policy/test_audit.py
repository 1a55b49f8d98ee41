"""The audit log is append-only, hash-chained, verifiable, and shares the store's file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import aiosqlite
import pytest

from engine.policy.audit import GENESIS, AuditLog, call_hash
from engine.store import Store, default_path

ROOT = Path(__file__).resolve().parents[2]


async def fill(log: AuditLog, n: int = 4) -> None:
    kinds = ["approval", "execution", "denial", "block", "refusal", "confirmation"]
    for i in range(n):
        await log.append(
            session_id="s1",
            user="alice",
            kind=kinds[i % len(kinds)],
            tool="kubernetes.delete_pod",
            args_json=f'{{"name":"web-{i}"}}',
            call_hash=call_hash("kubernetes.delete_pod", {"name": f"web-{i}"}),
            decision="approve",
            rule="r",
            detail=f"row {i}",
        )


async def test_chain_verifies_and_links(store):
    log = await AuditLog.open(store.db)
    await fill(log)
    rows = await log.rows()
    assert [r.seq for r in rows] == [1, 2, 3, 4] and rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:]))
    assert await log.verify() == (True, None, "4 rows, chain intact")


async def test_update_and_delete_are_refused(store):
    log = await AuditLog.open(store.db)
    await fill(log, 2)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await store.db.execute("UPDATE audit SET decision='allow' WHERE seq=1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await store.db.execute("DELETE FROM audit WHERE seq=2")
    with pytest.raises(ValueError):
        await log.append(session_id="s", user="u", kind="whatever", tool="t", args_json="{}", call_hash="x")


async def test_verify_reports_the_first_broken_row(store):
    log = await AuditLog.open(store.db)
    await fill(log, 5)
    # someone with the file drops the triggers and edits history
    await store.db.execute("DROP TRIGGER audit_no_update")
    await store.db.execute("UPDATE audit SET detail='nothing happened' WHERE seq=3")
    await store.db.commit()
    ok, seq, why = await log.verify()
    assert not ok and seq == 3 and "edited" in why
    await store.db.execute("DROP TRIGGER audit_no_delete")
    await store.db.execute("DELETE FROM audit WHERE seq=2")
    await store.db.commit()
    ok, seq, why = await log.verify()
    assert not ok and seq == 3 and "removed" in why


def _cli(*argv: str, env_home: Path) -> subprocess.CompletedProcess[str]:
    import os

    code = f"from console.cli import main; raise SystemExit(main({list(argv)!r}))"
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "LANTERN_HOME": str(env_home)},
    )


async def test_lantern_audit_verify_and_tail(tmp_path, monkeypatch):
    monkeypatch.setenv("LANTERN_HOME", str(tmp_path))
    async with Store(default_path()) as store:
        log = await AuditLog.open(store.db)
        await fill(log, 3)
    p = _cli("audit", "verify", env_home=tmp_path)
    assert p.returncode == 0 and "ok: 3 rows, chain intact" in p.stdout
    p = _cli("audit", "tail", "-n", "2", env_home=tmp_path)
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].split()[0] == "2" and "denial" in lines[1]
    async with aiosqlite.connect(default_path()) as db:
        await db.execute("DROP TRIGGER audit_no_update")
        await db.execute("UPDATE audit SET user='mallory' WHERE seq=2")
        await db.commit()
    p = _cli("audit", "verify", env_home=tmp_path)
    assert p.returncode == 1 and "BROKEN at row 2" in p.stdout
