"""`lantern experience import/list/forget` and `lantern sessions mark`: plain errors, no tracebacks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from console.cli import main


def _history(tmp_path: Path) -> tuple[Path, Path]:
    q = tmp_path / "queries.jsonl"
    q.write_text(
        json.dumps({"_id": "1", "text": "show the logs of the crashed payments pod"})
        + "\n"
        + json.dumps({"_id": "2", "text": "roll orders-api back"})
        + "\n"
    )
    r = tmp_path / "qrels.tsv"
    r.write_text(
        "query-id\tcorpus-id\tscore\n1\tkubernetes.get_pod_logs\t1\n1\tkubernetes.describe_pod\t1\n2\tkubernetes.rollout_undo\t1\n3\tdns.resolve\t1\n"
    )
    return q, r


def test_import_list_and_forget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    q, r = _history(tmp_path)
    ix = str(tmp_path / "ix")
    assert main(["experience", "--index", ix, "import", "--queries", str(q), "--qrels", str(r)]) == 0
    out = capsys.readouterr().out
    assert "imported 2 new past requests (0 already held) (1 judged ids had no request text); 2 in the memory" in out
    assert main(["experience", "--index", ix, "import", "--queries", str(q), "--qrels", str(r)]) == 0
    assert "imported 0 new past requests (2 already held)" in capsys.readouterr().out
    assert main(["experience", "--index", ix, "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(x["text"], x["source"]) for x in rows][1] == ("roll orders-api back", "import:queries.jsonl")
    assert main(["experience", "--index", ix, "forget", rows[1]["id"][:8]]) == 0
    assert capsys.readouterr().out.strip() == "forgot 1 past request"
    assert main(["experience", "--index", ix, "forget", "--source", "import:queries.jsonl"]) == 0
    assert main(["experience", "--index", ix, "list"]) == 0
    assert "no experience yet" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("queries", "qrels", "says"),
    [
        (None, "1\tt\t1\n", "no such file"),
        ("", "1\tt\t1\n", "no requests in it"),
        ('{"_id": "1", "text": "x"\n', "1\tt\t1\n", "not JSON"),
        ('{"text": "x"}\n', "1\tt\t1\n", "missing _id"),
        ('{"_id": "1", "text": "x"}\n', "1\tt\n", "expected query-id, corpus-id, score"),
        ('{"_id": "1", "text": "x"}\n', "1\tt\tmany\n", "is not a number"),
        ('{"_id": "1", "text": "x"}\n', "query-id\tcorpus-id\tscore\n", "no query-id/tool rows"),
        ('{"_id": "1", "text": "x"}\n', "9\tt\t1\n", "has a request in"),
        (b"\xff\xfe\x00garbage", "1\tt\t1\n", "not UTF-8"),
    ],
)
def test_a_bad_history_file_is_one_plain_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], queries: str | bytes | None, qrels: str, says: str
) -> None:
    q, r = tmp_path / "q.jsonl", tmp_path / "r.tsv"
    if isinstance(queries, bytes):
        q.write_bytes(queries)
    elif queries is not None:
        q.write_text(queries)
    r.write_text(qrels)
    assert main(["experience", "--index", str(tmp_path / "ix"), "import", "--queries", str(q), "--qrels", str(r)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lantern experience import: ") and says in err and "\n" not in err and "Traceback" not in err


def test_a_directory_is_not_a_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = tmp_path / "r.tsv"
    r.write_text("1\tt\t1\n")
    assert (
        main(["experience", "--index", str(tmp_path / "ix"), "import", "--queries", str(tmp_path), "--qrels", str(r)])
        == 2
    )
    assert "is a directory" in capsys.readouterr().err


def test_marking_a_session_bad_forgets_what_it_taught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.retrieval.experience import Experience, ExperienceMemory
    from engine.store import Store

    monkeypatch.setenv("LANTERN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LANTERN_HOME", str(tmp_path / "home"))
    mem = ExperienceMemory(tmp_path / "cache" / "index" / "experience")
    mem.add(
        [
            Experience("checkout is slow", ("github.list_deployments",), "session:abc123"),
            Experience("dns fails", ("dns.resolve",), "session:zzz"),
        ]
    )

    async def make() -> None:
        async with Store() as store:
            await store.create_session("abc123")

    asyncio.run(make())
    assert main(["sessions", "mark", "abc", "bad"]) == 0
    assert "session abc123 marked bad; forgot the 1 lessons it taught" in capsys.readouterr().out
    assert [r[1] for r in ExperienceMemory(tmp_path / "cache" / "index" / "experience").rows()] == ["dns fails"]
