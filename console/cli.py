"""The `lantern` command: the console by default, the plain face and admin commands as subcommands.

Subcommands are data: each row names a module with `configure(parser)` and `run(args) -> int`,
imported only when that command runs, so `lantern --help` and the console start stay fast.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

SUBCOMMANDS: list[tuple[str, str, str]] = [
    ("ask", "console.commands.ask", "ask one question in the plain terminal face"),
    ("sessions", "console.commands.sessions", "list sessions, or show one (--score)"),
    (
        "handoff",
        "console.commands.handoff",
        "a session as the next shift reads it: asked, findings, changes with diffs, timeline, unknowns",
    ),
    ("model", "engine.models.commands", "the embedded local model: install, status"),
    ("sandbox", "sandbox.commands", "the local Kubernetes sandbox: up, down, status, scenario"),
    ("skills", "skills.commands", "list skill packs and their actions"),
    ("creds", "skills.credentials_cli", "store credentials in the keyring: set, list, rm"),
    ("policy", "engine.policy.commands", "check what the policy decides for an action"),
    ("audit", "engine.policy.audit_cli", "verify or tail the audit log"),
    ("scrub", "engine.guard.commands", "scrub credentials and PII from stdin"),
    ("experience", "console.commands.experience", "past requests that teach retrieval: import, list, forget"),
    ("bench", "bench.commands", "benchmarks: retrieval, retrieval-scale, scrub, compaction"),
    ("eval", "evals.commands", "evaluation: cloudops replay, export a session"),
    ("serve", "server.commands", "the engine as a server faces attach to (--host, --port, --store); users add|list|rm"),
    ("web", "console.commands.web", "a one-time link that opens the console of `lantern serve` in a browser"),
    ("drill", "console.commands.drill", "drills: run a sandbox scenario end to end and check that the fix heals it"),
]
"""(name, module, help) for every subcommand."""

STORE_COMMANDS = {"ask", "sessions", "handoff", "audit", "drill", "eval"}
"""Subcommands that open the store, so take `--store URL` (the console itself takes it too)."""

CHECKOUT_ONLY = {"bench": "the benchmarks", "evals": "the evaluations"}
"""Packages that sit beside the product in a checkout and are left out of the wheel."""


def _add_session_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", help="local | scripted:PATH | provider/model (anthropic/..., openai/..., gemini/..., ollama/...)"
    )
    p.add_argument("--context", help="kube context (default: the sandbox when no kubeconfig exists)")
    p.add_argument("--namespace", "-n", help="default namespace")
    p.add_argument("--continue", dest="cont", action="store_true", help="reopen the latest session")
    p.add_argument("--session", help="open the session with this id (or unique prefix)")
    p.add_argument(
        "--read-only",
        dest="read_only",
        action="store_true",
        help="block every write: the agent can only investigate and propose",
    )
    p.add_argument(
        "--server",
        metavar="URL",
        default=os.environ.get("LANTERN_SERVER"),
        help="attach to `lantern serve` at URL instead of running the engine here (token: $LANTERN_TOKEN)",
    )


def build_parser(configure: set[str] | None = None) -> argparse.ArgumentParser:
    """The command line; only the subcommands in `configure` (default: all) import their modules,
    so starting the console imports none of them."""
    parser = argparse.ArgumentParser(
        prog="lantern", description="Lantern: an operations console with an AI agent inside."
    )
    from engine.storage import add_store_argument

    _add_session_args(parser)
    parser.add_argument("--theme", help="console theme")
    add_store_argument(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in SUBCOMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if name == "ask":
            _add_session_args(p)
        if name in STORE_COMMANDS:
            add_store_argument(p)
        if configure is not None and name not in configure:
            continue
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            p.set_defaults(_missing=str(exc))
            if exc.name in CHECKOUT_ONLY:  # an installed wheel: say so in one line, whatever the arguments
                p.set_defaults(
                    _missing=f"{CHECKOUT_ONLY[exc.name]} live in {exc.name}/ of a Lantern checkout; run them from one"
                )
                p.add_argument("_rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            continue
        mod.configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `lantern` script."""
    argv = sys.argv[1:] if argv is None else argv
    names = {n for n, _, _ in SUBCOMMANDS}
    wanted = next((a for a in argv if a in names), None)
    parser = build_parser({wanted} if wanted else set())
    args = parser.parse_args(argv)
    if getattr(args, "store", None):  # the command line over LANTERN_STORE, for every Store() this run opens
        os.environ["LANTERN_STORE"] = args.store
    if args.command is None and args.server:
        from console.launch import check_server

        if problem := check_server(args.server):
            print(f"lantern: {problem}", file=sys.stderr)
            return 2
    if args.command is None:
        from console.launch import run_console

        return run_console(args)
    if getattr(args, "_missing", None):
        print(f"lantern {args.command}: not available in this build ({args._missing})", file=sys.stderr)
        return 2
    mod = importlib.import_module(args._module)
    try:
        result = mod.run(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for the user, the traceback to a log file
        from engine.storage import StoreError

        if isinstance(exc, StoreError):
            print(f"lantern {args.command}: store: {exc}", file=sys.stderr)
            return 2
        print(f"lantern {args.command}: failed: {type(exc).__name__}: {exc}".splitlines()[0][:400], file=sys.stderr)
        print(f"  the details are in {_crash_log(args.command)}", file=sys.stderr)
        return 1
    return int(result or 0)


def _crash_log(command: str) -> str:
    """Write the current exception's traceback under LANTERN_HOME/logs (never to the terminal); its path."""
    import traceback

    from engine.config import lantern_home

    try:
        logs = lantern_home() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        path = logs / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        path.write_text(traceback.format_exc(), encoding="utf-8")
        return str(path)
    except OSError as exc:
        return f"(no log written: {exc})"


def session_config(args: Any) -> Any:
    """The Config for a session command, with errors printed plainly."""
    from engine.config import ConfigError, load

    try:
        return load(
            model=args.model,
            context=args.context,
            namespace=args.namespace,
            read_only=True if getattr(args, "read_only", False) else None,
        )
    except ConfigError as exc:
        print(f"lantern: config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    sys.exit(main())
