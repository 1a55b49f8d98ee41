"""A real `lantern serve` on loopback for tests and benchmarks: uvicorn in a thread with its own event loop,
sessions on the scripted model and python tools behind the real dispatcher, policy and audit.

`python -m server.testing --store URL` runs one as a process of its own (the test that kills a
server mid-turn): it prints one JSON line, {"url", "tokens"}, then serves until it is stopped."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
from pathlib import Path
from typing import Any

import uvicorn

from console.testing import incident_tools
from engine import events as ev
from engine.config import Config
from engine.dispatch import Dispatcher
from engine.loop import Session
from engine.policy.audit import AuditLog
from engine.policy.rules import Defaults, Match, Policy, PolicyFile, Rule
from engine.store import Store
from engine.testing import ScriptedModel
from engine.toolbox import Toolbox
from server.app import create_app
from server.commands import listen
from server.hub import Hub
from server.identity import Users
from server.turns import LEASE_TTL_S

USERS = {"alice": ["responder"], "bob": ["sre-leads"], "carol": ["viewer"]}
"""alice asks, bob may approve the rollback (role:sre-leads), carol may not."""


def team_policy() -> Policy:
    """Reads run; the rollback is approved by the sre-leads role; other writes by the asker or operators."""
    return Policy(
        org=PolicyFile(
            defaults=Defaults(read="allow", write="approve", dangerous="approve", unknown="approve"),
            rules=[
                Rule(
                    id="org/rollback",
                    match=Match(action=["rollback_deployment"]),
                    decision="approve",
                    approvers=["role:sre-leads"],
                    reason="changes a production deployment",
                )
            ],
        ),
        source="server.testing",
    )


def scripted_sessions(
    script: list[dict[str, Any]], executed: list[dict[str, Any]], chunk: int = 12, ttl_s: float = 300.0
) -> Any:
    """A session factory (as wiring.open_session) over the scripted model and the incident's tools."""

    async def factory(cfg: Config, *, store: Store, approver: Any, session_id: str | None = None) -> Session:
        past = await store.events(session_id) if session_id else []
        dispatcher = Dispatcher(
            team_policy(),
            await AuditLog.open(store),
            user=cfg.user,
            kube=lambda: (None, "payments"),
            approval_ttl_s=ttl_s,
        )
        model = ScriptedModel(list(script), chunk=chunk)
        session = Session(
            model,
            Toolbox(incident_tools(executed), dispatcher=dispatcher),
            session_id=session_id,
            sink=store,
            approver=approver,
            events=past,
        )
        await store.create_session(session.id, model=model.name)
        await session.emit(ev.SessionStarted, model=model.name, resumed=bool(past))
        return session

    return factory


class ServerThread:
    """`lantern serve` in a thread: `url`, `tokens` (name → token), `stop()`.

    `path`: the store (a SQLite file or a postgresql:// URL); `users`: name → roles, each given a
    fresh token at start; `tokens`: the users' tokens of a server already on that store (this one
    then adds no users, so both take the same tokens); `options`: the app's (auth_limit,
    auth_window_s); `lease_s`: the life of a turn's lease."""

    def __init__(
        self,
        path: Path | str,
        factory: Any,
        *,
        users: dict[str, list[str]] | None = None,
        tokens: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
        lease_s: float = LEASE_TTL_S,
    ) -> None:
        self.path = path
        self.factory = factory
        self.users = USERS if users is None else users
        self.tokens: dict[str, str] = dict(tokens or {})
        self._add_users = tokens is None
        self.options = options or {}
        self.lease_s = lease_s
        self.url = ""
        self.hub: Hub | None = None
        self._ready = threading.Event()
        self._server: uvicorn.Server | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="lantern-serve")

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"the test server did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(15)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        async with Store(str(self.path)) as store:
            users = await Users.open(store)
            for name, roles in self.users.items() if self._add_users else ():
                self.tokens[name] = await users.add(name, roles)
            self.hub = Hub(Config(user="server"), store, users, self.factory, learn=False, lease_s=self.lease_s)
            sock = listen("127.0.0.1", 0)
            self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            app = create_app(self.hub, **self.options)
            self._server = uvicorn.Server(
                uvicorn.Config(app, log_level="warning", lifespan="on", ws="websockets-sansio")
            )
            serving = asyncio.create_task(self._server.serve(sockets=[sock]))
            while not self._server.started and not serving.done():
                await asyncio.sleep(0.01)
            self._ready.set()
            await serving


def main(argv: list[str] | None = None) -> None:
    """A test server as a process: `--store URL`, `--script FILE` (default: the incident's),
    `--tokens JSON` (the users of a server already on the store), `--lease-s S`."""
    from console.testing import INCIDENT_SCRIPT

    p = argparse.ArgumentParser(prog="python -m server.testing")
    p.add_argument("--store", required=True)
    p.add_argument("--script", help="the scripted model's steps, a JSON file")
    p.add_argument("--tokens", help="users' tokens (JSON) of a server already on the store")
    p.add_argument("--lease-s", type=float, default=LEASE_TTL_S)
    a = p.parse_args(argv)
    script = json.loads(Path(a.script).read_text()) if a.script else INCIDENT_SCRIPT
    tokens = json.loads(a.tokens) if a.tokens else None
    server = ServerThread(a.store, scripted_sessions(script, []), tokens=tokens, lease_s=a.lease_s).start()
    print(json.dumps({"url": server.url, "tokens": server.tokens}), flush=True)
    try:
        sys.stdin.read()  # until the test closes our stdin (or kills the process)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
