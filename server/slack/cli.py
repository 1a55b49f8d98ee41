"""`lantern serve users link-slack NAME SLACK_USER_ID` and `unlink-slack SLACK_USER_ID`: which Slack
account is which Lantern user (an unlinked Slack user can neither ask nor approve)."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

COMMANDS = ("link-slack", "unlink-slack", "slack")
SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,20}$")
"""A Slack user id (U… or, on Enterprise Grid, W…)."""


def add_parsers(us: Any) -> None:
    """The Slack subcommands of `lantern serve users`."""
    link = us.add_parser("link-slack", help="say which Slack user is this Lantern user (approvals, @lantern)")
    link.add_argument("name", help="the Lantern user (from `lantern serve users add`)")
    link.add_argument("slack_user", metavar="SLACK_USER_ID", help="the Slack member id, e.g. U0123ABCD")
    unlink = us.add_parser("unlink-slack", help="forget a Slack user's link")
    unlink.add_argument("slack_user", metavar="SLACK_USER_ID")
    us.add_parser("slack", help="the Slack links kept in the store")


async def run(users: Any, args: argparse.Namespace) -> int:
    """Run one of COMMANDS against the server's users."""
    from server.identity import UserError

    try:
        if args.users_cmd == "slack":
            links = await users.links("slack")
            if not links:
                print("no Slack links yet: `lantern serve users link-slack NAME SLACK_USER_ID`")
            for sid, name in sorted(links.items()):
                print(f"{sid:14s} {name}")
            return 0
        if not SLACK_USER.match(args.slack_user):
            raise UserError(f"{args.slack_user!r} is not a Slack user id (U… or W…, from the member's profile)")
        if args.users_cmd == "link-slack":
            await users.link(args.name, "slack", args.slack_user)
            print(f"Slack user {args.slack_user} is {args.name}")
        else:
            await users.unlink("slack", args.slack_user)
            print(f"Slack user {args.slack_user} unlinked")
    except UserError as exc:
        print(f"lantern serve users: {exc}", file=sys.stderr)
        return 2
    return 0
