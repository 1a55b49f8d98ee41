"""Credentials: keyring then env var, refusal on insecure backends, and the canary never leaks."""

from __future__ import annotations

import argparse
import logging
import sqlite3

import keyring
import pytest
from conftest import write_pack
from keyring.backends import fail

from engine.loop import Session
from engine.store import Store
from engine.testing import ScriptedModel
from engine.toolbox import Toolbox
from skills import credentials, credentials_cli
from skills.loader import load_packs
from skills.registry import pack_tools

CANARY = "lntn-canary-7f3a9c2e51d04b8a"


def _canary_pack(tmp_path, api, auth="bearer"):
    write_pack(
        tmp_path,
        "canary",
        f"""
        name: canary
        description: An API that echoes credentials back.
        connection:
          executor: rest
          base_url: {api.url}
          credential: canary-token
          auth: {auth}
          auth_header: X-Api-Key
          retries: 0
        actions:
          - name: echo
            description: Echo the request's auth header back.
            http: {{path: /echo-auth}}
          - name: echo_fail
            description: Fail and quote the token in the error.
            http: {{path: /echo-auth-fail}}
    """,
    )
    return load_packs([tmp_path]).pack("canary")


def test_resolve_prefers_keyring_then_env_and_names_the_missing_one(memory_keyring, monkeypatch):
    monkeypatch.setenv("LANTERN_CRED_SOME_TOKEN", "from-env-value")
    assert credentials.resolve("some-token") == "from-env-value"
    assert credentials.where("some-token") == "env"
    credentials.store("some-token", "from-keyring-value")
    assert credentials.resolve("some-token") == "from-keyring-value"
    assert credentials.where("some-token") == "keyring"
    assert credentials.known_values()["some-token"] == "from-keyring-value"
    with pytest.raises(credentials.CredentialMissing) as exc:
        credentials.resolve("absent-token")
    assert "lantern creds set absent-token" in str(exc.value) and "LANTERN_CRED_ABSENT_TOKEN" in str(exc.value)


def test_store_refuses_the_fail_backend_and_says_what_to_do(monkeypatch):
    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        assert not credentials.backend_is_secure()
        with pytest.raises(credentials.InsecureBackend) as exc:
            credentials.store("github-token", "x" * 12)
        assert "keyring.backends.fail.Keyring" in str(exc.value) and "LANTERN_CRED_GITHUB_TOKEN" in str(exc.value)
        # resolving still works from the environment on such a machine
        monkeypatch.setenv("LANTERN_CRED_GITHUB_TOKEN", "env-only-token")
        assert credentials.resolve("github-token") == "env-only-token"
    finally:
        keyring.set_keyring(before)


def test_creds_cli_set_list_rm_never_prints_values(memory_keyring, monkeypatch, capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(CANARY + "\n"))
    assert credentials_cli.run(argparse.Namespace(creds_cmd="set", name="github-token", stdin=True)) == 0
    assert memory_keyring.store[("lantern", "github-token")] == CANARY
    assert credentials_cli.run(argparse.Namespace(creds_cmd="list")) == 0
    out = capsys.readouterr().out
    assert "github-token" in out and "keyring" in out and "used by: github" in out
    assert CANARY not in out
    assert credentials_cli.run(argparse.Namespace(creds_cmd="rm", name="github-token")) == 0
    assert ("lantern", "github-token") not in memory_keyring.store
    assert "removed github-token" in capsys.readouterr().out


def test_creds_cli_set_refuses_plaintext(monkeypatch, capsys):
    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        assert credentials_cli.run(argparse.Namespace(creds_cmd="set", name="github-token", stdin=True)) == 3
        err = capsys.readouterr().err
        assert "refusing" in err and "export LANTERN_CRED_GITHUB_TOKEN" in err
    finally:
        keyring.set_keyring(before)


@pytest.mark.parametrize("auth", ["bearer", "header", "basic"])
async def test_credential_canary_appears_nowhere(tmp_path, api, memory_keyring, caplog, auth):
    """A keyring secret used for a REST call is absent from output, errors, events, SQLite and logs."""
    import skills_http_app as http_app

    caplog.set_level(logging.DEBUG)
    credentials.store("canary-token", ("svc:" if auth == "basic" else "") + CANARY)
    pack = _canary_pack(tmp_path, api, auth)
    tools = {t.name: t for t in pack_tools([pack])}
    model = ScriptedModel(
        [
            {
                "text": "Calling.",
                "tool_calls": [{"name": "canary.echo", "arguments": {}}, {"name": "canary.echo_fail", "arguments": {}}],
            },
            {"text": "Done."},
        ]
    )
    db = tmp_path / "s.db"
    async with Store(db) as store:
        session = Session(model, Toolbox(list(tools.values())), sink=store)
        await store.create_session(session.id)
        events = [e async for e in session.run_turn("check the api")]
    # the secret really went over the wire
    sent = [h.get("authorization", "") + h.get("x-api-key", "") for h in http_app.seen_headers]
    assert any(CANARY in s or "Basic " in s for s in sent)
    finished = [e for e in events if e.kind == "tool-call-finished"]
    assert [e.status for e in finished] == ["ok", "error"]
    assert "[credential canary-token" in finished[0].output or auth == "basic"
    assert "HTTP 401" in finished[1].output
    blob = "\n".join(e.model_dump_json() for e in events)
    assert CANARY not in blob
    raw = db.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("s.db*"))
    assert CANARY.encode() not in raw
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select * from events").fetchall()
    assert rows and CANARY not in repr(rows)
    assert CANARY not in caplog.text
    # the direct executor outputs too
    direct = await tools["canary.echo_fail"].handler({})
    assert CANARY not in direct.text and direct.status == "error"
    if auth == "basic":
        import base64

        encoded = base64.b64encode(f"svc:{CANARY}".encode()).decode()
        assert encoded not in blob and encoded not in direct.text


async def test_missing_credential_is_named_not_guessed(tmp_path, api, memory_keyring):
    pack = _canary_pack(tmp_path, api)
    (tool,) = [t for t in pack_tools([pack]) if t.name == "canary.echo"]
    out = await tool.handler({})
    assert out.status == "error" and "canary-token" in out.text and "lantern creds set" in out.text
    assert http_app_hits() == 0


def http_app_hits() -> int:
    import skills_http_app as http_app

    return sum(http_app.hits.values())
