"""`lantern skills list|show PACK`: the packs, their actions and risk levels, and any load errors."""

from __future__ import annotations

import argparse
import sys
from typing import Any

RISK_MARK = {"read": "read", "write": "WRITE", "dangerous": "DANGEROUS"}
"""How each risk level is printed."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of `lantern skills`."""
    sub = parser.add_subparsers(dest="skills_cmd", metavar="ACTION")
    p_list = sub.add_parser("list", help="list packs with their action counts by risk")
    p_list.add_argument("--dir", action="append", default=[], help="also load packs from this directory (repeatable)")
    p_show = sub.add_parser("show", help="show one pack's connection and actions")
    p_show.add_argument("pack", help="pack name")
    p_show.add_argument("--dir", action="append", default=[], help="also load packs from this directory (repeatable)")
    p_show.add_argument("--params", action="store_true", help="print each action's parameters")


def _load(extra: list[str]) -> Any:
    from engine.config import ConfigError, load
    from skills.loader import default_dirs, load_packs

    try:
        cfg_dirs = list(load().skills_dirs)
    except ConfigError as exc:
        print(f"lantern: config error: {exc}", file=sys.stderr)
        cfg_dirs = []
    dirs = default_dirs(cfg_dirs + list(extra))
    return load_packs(dirs, discover_mcp=True)


def _print_errors(result: Any) -> None:
    if result.errors:
        print(f"\n{len(result.errors)} pack(s) failed to load:", file=sys.stderr)
        for e in result.errors:
            print(f"  {e}", file=sys.stderr)


def cmd_list(args: argparse.Namespace) -> int:
    """Print every pack: name, executor, credential, action counts by risk."""
    from skills.credentials import where

    result = _load(args.dir)
    rows = []
    for p in result.packs:
        counts = {r: sum(1 for a in p.actions if a.risk == r) for r in ("read", "write", "dangerous")}
        cred = p.connection.credential
        cred_txt = f"{cred} ({where(cred)})" if cred else "-"
        rows.append(
            (
                p.name,
                p.connection.executor,
                str(len(p.actions)),
                f"{counts['read']}/{counts['write']}/{counts['dangerous']}",
                cred_txt,
                p.description.split(".")[0].strip()[:60],
            )
        )
    header = ("PACK", "EXECUTOR", "ACTIONS", "R/W/D", "CREDENTIAL", "DESCRIPTION")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    total = sum(len(p.actions) for p in result.packs)
    print(f"\n{len(result.packs)} packs, {total} actions")
    _print_errors(result)
    return 1 if result.errors else 0


def cmd_show(args: argparse.Namespace) -> int:
    """Print one pack's connection and each action with its risk and description."""
    result = _load(args.dir)
    pack = result.pack(args.pack)
    if pack is None:
        names = ", ".join(p.name for p in result.packs)
        print(f"lantern skills: no pack named {args.pack!r} (loaded: {names})", file=sys.stderr)
        _print_errors(result)
        return 2
    c = pack.connection
    print(f"{pack.name} v{pack.version}: {pack.description.strip()}")
    print(f"  source: {pack.source}")
    from skills.spec import redact_url

    where = (
        c.base_url
        or c.binary
        or c.module
        or (c.server.url or " ".join(c.server.command or []) if c.server else "")
        or "-"
    )
    where = redact_url(where)
    print(f"  executor: {c.executor}  target: {where}  credential: {c.credential or '-'}  timeout: {c.timeout:g}s")
    print()
    width = max(len(a.name) for a in pack.actions) if pack.actions else 0
    for a in pack.actions:
        first = " ".join(a.description.split())
        print(f"  {RISK_MARK[a.risk]:<9}  {a.name:<{width}}  {first}")
        if args.params:
            for pname, prm in a.parameters.properties.items():
                req = (
                    "required"
                    if pname in a.parameters.required
                    else f"default {prm.default!r}"
                    if prm.default is not None
                    else "optional"
                )
                print(f"  {'':<9}  {'':<{width}}    {pname}: {prm.type} ({req}) {prm.description}")
        if a.rollback and a.risk != "read":
            print(f"  {'':<9}  {'':<{width}}    undo: {a.rollback}")
    _print_errors(result)
    return 0


def run(args: argparse.Namespace) -> int:
    """Entry point of `lantern skills`."""
    if getattr(args, "skills_cmd", None) == "show":
        return cmd_show(args)
    if getattr(args, "skills_cmd", None) in ("list", None):
        if not hasattr(args, "dir"):
            args.dir = []
        return cmd_list(args)
    return 2
