"""`lantern web --server URL [--session ID]`: a one-time link that opens the console in a browser,
signed in as the token's user (server/web.py). The link works once, for two minutes; the token
itself never appears in it."""

from __future__ import annotations

import argparse
import sys
from urllib.parse import quote


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `lantern web`."""
    p.add_argument(
        "--server",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="the `lantern serve` to open (default $LANTERN_SERVER; token: $LANTERN_TOKEN or the keyring)",
    )
    p.add_argument("--session", help="open this session (id or unique prefix) instead of a new one")
    p.add_argument("--open", action="store_true", help="also open the link in this machine's browser")


async def run(args: argparse.Namespace) -> int:
    """Print (and with --open, open) a one-time link to the browser face."""
    from server.client import Remote, RemoteError

    if not getattr(args, "server", None):
        print("lantern web: give --server URL (or set LANTERN_SERVER)", file=sys.stderr)
        return 2
    try:
        remote = Remote(args.server)
        query = f"?session={quote(args.session)}" if args.session else ""
        got = await remote.json("POST", "/v1/web/links" + query)
    except RemoteError as exc:
        print(f"lantern web: {exc}", file=sys.stderr)
        return 2
    link = remote.url + str(got["path"])
    print(f"open this once, within {int(got.get('expires_in', 120))} s (it signs that browser in as you):")
    print(link)
    if args.open:
        import webbrowser

        webbrowser.open(link)
    return 0
