"""`lantern serve`: run the server; `lantern serve users add|list|rm`: who may use it."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys

from server.slack import cli as slack_cli

DEFAULT_PORT = 8787


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `lantern serve`."""
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument(
        "--store",
        default=argparse.SUPPRESS,  # absent here, `lantern --store URL serve` counts
        help="the server's store: a SQLite file (default $LANTERN_HOME/lantern.db) or postgresql://USER@HOST:PORT/DB",
    )
    p.add_argument("--model", help="the sessions' model: local | scripted:PATH | provider/model")
    p.add_argument("--context", help="kube context of the sessions")
    p.add_argument("--namespace", "-n", help="default namespace")
    p.add_argument("--read-only", dest="read_only", action="store_true", help="block every write in every session")
    sub = p.add_subparsers(dest="serve_cmd", metavar="CMD")
    users = sub.add_parser("users", help="the server's users and their tokens")
    users.add_argument("--store", dest="users_store", help=argparse.SUPPRESS)
    us = users.add_subparsers(dest="users_cmd", metavar="ACTION", required=True)
    add = us.add_parser("add", help="add a user (or give one a new token); prints the token once, on the last line")
    add.add_argument("name")
    add.add_argument("--role", action="append", default=[], help="a role (policy `role:NAME`); repeat for several")
    us.add_parser("list", help="users and their roles")
    rm = us.add_parser("rm", help="remove a user (their token stops working)")
    rm.add_argument("name")
    slack_cli.add_parsers(us)


async def run(args: argparse.Namespace) -> int:
    """Run the server, or manage its users."""
    from engine.store import Store

    path = getattr(args, "users_store", None) or getattr(args, "store", None)
    try:
        store = await Store(str(path) if path else None).open()
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback
        print(f"lantern serve: cannot open the store: {exc}", file=sys.stderr)
        return 2
    try:
        if args.serve_cmd == "users":
            return await _users(store, args)
        return await _serve(store, args)
    finally:
        await store.close()


async def _users(store: object, args: argparse.Namespace) -> int:
    from server.identity import UserError, Users

    users = await Users.open(store)
    if args.users_cmd in slack_cli.COMMANDS:
        return await slack_cli.run(users, args)
    try:
        if args.users_cmd == "add":
            token = await users.add(args.name, args.role)
            roles = ", ".join(sorted(set(args.role))) or "no roles"
            print(f"user {args.name} ({roles}); the token is shown once, keep it (faces read it from $LANTERN_TOKEN):")
            print(token)
        elif args.users_cmd == "list":
            rows = await users.all()
            if not rows:
                print("no users yet: `lantern serve users add NAME --role ROLE`")
            for u in rows:
                print(f"{u.name:24s} {', '.join(u.roles) or '-'}")
        elif args.users_cmd == "rm":
            await users.remove(args.name)
            print(f"user {args.name} removed")
    except UserError as exc:
        print(f"lantern serve users: {exc}", file=sys.stderr)
        return 2
    return 0


async def _serve(store: object, args: argparse.Namespace) -> int:
    import uvicorn

    from console.cli import session_config
    from server.app import create_app
    from server.hub import Hub
    from server.identity import Users
    from server.slack import SlackSetupError
    from server.slack import install as install_slack

    cfg = session_config(args)
    users = await Users.open(store)
    try:
        sock = listen(args.host, args.port)
    except OSError as exc:
        print(f"lantern serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    hub = Hub(cfg, store, users)  # type: ignore[arg-type]
    try:
        slack_line = await install_slack(hub, cfg)
    except SlackSetupError as exc:
        print(f"lantern serve: {exc}", file=sys.stderr)
        return 2
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    n = len(await users.all())
    print(f"lantern serve: listening on http://{shown}:{port} ({n} users; store {store.where})", flush=True)  # type: ignore[attr-defined]
    print(f"lantern serve: the console in a browser: http://{shown}:{port}/web/ (`lantern web` prints a one-time link)")
    if slack_line:
        print(f"lantern serve: {slack_line}", flush=True)
    if n == 0:
        print(
            "lantern serve: no users yet, so every request is refused: `lantern serve users add NAME --role ROLE`",
            file=sys.stderr,
        )
    server = uvicorn.Server(uvicorn.Config(create_app(hub), log_level="warning", lifespan="on", ws="websockets-sansio"))
    try:
        await server.serve(sockets=[sock])
    except asyncio.CancelledError:
        pass
    return 0


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on exactly `host` (nothing wider than asked), port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
