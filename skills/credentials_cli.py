"""`lantern creds set|list|rm`: credentials in the OS keyring, by name; values are never printed."""

from __future__ import annotations

import argparse
import getpass
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of `lantern creds`."""
    sub = parser.add_subparsers(dest="creds_cmd", metavar="ACTION")
    p_set = sub.add_parser("set", help="store a credential (value from a hidden prompt, or stdin when piped)")
    p_set.add_argument("name", help="credential name, as packs name it (e.g. github-token)")
    p_set.add_argument("--stdin", action="store_true", help="read the value from standard input")
    sub.add_parser("list", help="credential names and where each is found (never values)")
    p_rm = sub.add_parser("rm", help="remove a credential from the keyring")
    p_rm.add_argument("name", help="credential name")
    sub.add_parser("backend", help="which keyring backend is in use")


def _pack_refs() -> dict[str, list[str]]:
    from skills.loader import load_packs

    refs: dict[str, list[str]] = {}
    for p in load_packs(discover_mcp=False).packs:
        for n in p.connection.credential_names():
            refs.setdefault(n, []).append(p.name)
    return refs


def cmd_set(args: argparse.Namespace) -> int:
    """Read the value without echo and store it in the keyring (refuses insecure backends)."""
    from skills.credentials import InsecureBackend, backend_is_secure, backend_name, env_var, store

    if not backend_is_secure():
        print(
            f"lantern creds: refusing to store {args.name!r}: no secure keyring backend (keyring uses {backend_name()}).\n"
            f"  Lantern never writes secrets in plaintext. Either run a Secret Service (gnome-keyring, KeePassXC)\n"
            f"  or another keyring backend, or export {env_var(args.name)} in the shell that runs lantern\n"
            f"  (from your secret manager, e.g. `export {env_var(args.name)}=$(pass show ...)`).",
            file=sys.stderr,
        )
        return 3
    if args.stdin or not sys.stdin.isatty():
        value = sys.stdin.readline().rstrip("\r\n")
    else:
        value = getpass.getpass(f"value for {args.name} (hidden): ")
    if not value:
        print("lantern creds: empty value, nothing stored", file=sys.stderr)
        return 2
    try:
        backend = store(args.name, value)
    except InsecureBackend as exc:
        print(f"lantern creds: {exc}", file=sys.stderr)
        return 3
    print(f"stored {args.name} in the keyring ({backend})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Print each known credential: name, where found (keyring/env/missing), packs using it."""
    from skills.credentials import backend_is_secure, backend_name, env_var, inventory

    items = inventory(_pack_refs())
    print(
        f"keyring backend: {backend_name()}{'' if backend_is_secure() else ' (not usable for storing; env vars only)'}"
    )
    if not items:
        print("no credentials known")
        return 0
    w = max(len(i.name) for i in items)
    for i in items:
        found = {"env": f"env ({env_var(i.name)})"}.get(i.found, i.found)
        used = f"  used by: {', '.join(i.packs)}" if i.packs else ""
        print(f"  {i.name:<{w}}  {found}{used}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    """Delete a credential from the keyring; says when an env var still provides it."""
    import os

    from skills.credentials import env_var, remove

    deleted = remove(args.name)
    print(f"removed {args.name} from the keyring" if deleted else f"{args.name} was not in the keyring")
    if os.environ.get(env_var(args.name)):
        print(
            f"note: {env_var(args.name)} is still set in this environment; unset it to remove the credential entirely"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    """Entry point of `lantern creds`."""
    cmd = getattr(args, "creds_cmd", None)
    if cmd == "set":
        return cmd_set(args)
    if cmd == "rm":
        return cmd_rm(args)
    if cmd == "backend":
        from skills.credentials import backend_is_secure, backend_name

        print(
            f"{backend_name()} ({'secure' if backend_is_secure() else 'not secure: storing is refused, use LANTERN_CRED_<NAME> env vars'})"
        )
        return 0
    return cmd_list(args)
