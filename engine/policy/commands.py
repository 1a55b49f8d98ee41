"""`lantern policy check`: what the policy decides for an action, and the rule that decided it."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path

from engine.policy.rules import Action, PolicyError, decide, effective_risk, load_policy, resolve_targets

SHIPPED = Path(__file__).with_name("defaults") / "org.yaml"
"""The org policy that ships with Lantern."""


def policy_paths(user: str | None = None) -> tuple[Path, Path | None]:
    """The org policy in force ($LANTERN_HOME/policy.yaml, else the shipped one) and a user's override file."""
    from engine.config import lantern_home

    home = Path(lantern_home())
    org = home / "policy.yaml"
    user_file = home / "policy.d" / f"{user}.yaml" if user else None
    return (org if org.exists() else SHIPPED), user_file


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `lantern policy`."""
    sub = p.add_subparsers(dest="policy_cmd", metavar="CMD", required=True)
    c = sub.add_parser("check", help="print the decision and rule for one action")
    c.add_argument("--policy", help="org policy file (default: $LANTERN_HOME/policy.yaml or the shipped one)")
    c.add_argument("--user-policy", help="per-user override file")
    c.add_argument("--user", default=os.environ.get("USER", "user"), help="who is asking")
    c.add_argument("--action", required=True, help="pack.action, e.g. kubernetes.delete_pod")
    c.add_argument("--args", default="{}", help="the call's arguments as JSON")
    c.add_argument(
        "--risk",
        choices=["read", "write", "dangerous", "unknown"],
        default="unknown",
        help="the action's declared risk",
    )
    c.add_argument("--method", help="the HTTP method the action calls (raises the risk for POST/PUT/PATCH/DELETE)")
    c.add_argument("--context", help="kube context")
    c.add_argument("--namespace", help="default namespace when --args has none")
    c.add_argument("--at", help="evaluate at this ISO time instead of now")
    c.add_argument("--json", action="store_true", help="print JSON")
    v = sub.add_parser("validate", help="check a policy file and report the first mistake with its line")
    v.add_argument("file")


def run(args: argparse.Namespace) -> int:
    """Run `lantern policy ...`."""
    if args.policy_cmd == "validate":
        try:
            load_policy(args.file)
        except PolicyError as exc:
            print(f"invalid: {exc}")
            return 2
        print(f"ok: {args.file}")
        return 0
    org, user_file = policy_paths(args.user)
    org_path = Path(args.policy) if args.policy else org
    user_path = Path(args.user_policy) if args.user_policy else user_file
    try:
        policy = load_policy(org_path, user_path)
    except PolicyError as exc:
        print(f"policy error: {exc}")
        print("the engine would run with the safest default: every write needs approval")
        return 2
    try:
        call_args = json.loads(args.args)
        if not isinstance(call_args, dict):
            raise ValueError("must be a JSON object")
    except ValueError as exc:
        print(f"--args is not a JSON object: {exc}")
        return 2
    try:
        now = dt.datetime.fromisoformat(args.at) if args.at else dt.datetime.now(dt.UTC)
    except ValueError:
        print(f"--at is not an ISO time: {args.at!r}")
        return 2
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    name = args.action
    pack = name.split(".", 1)[0] if "." in name else ""
    risk = effective_risk(name, args.risk, args.method)
    targets = resolve_targets(name, call_args, None, args.namespace or "default")
    d = decide(
        policy,
        Action(name=name, pack=pack, risk=risk, namespace=args.namespace, context=args.context, targets=targets),
        call_args,
        args.user,
        now,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "decision": d.outcome,
                    "rule": d.rule_id,
                    "reason": d.reason,
                    "risk": d.risk,
                    "approvers": list(d.approvers),
                    "policy": policy.source,
                }
            )
        )
    else:
        print(f"decision: {d.outcome}")
        print(f"rule:     {d.rule_id}")
        print(f"reason:   {d.reason}")
        print(f"risk:     {d.risk}")
        if d.approvers:
            print(f"approvers: {', '.join(d.approvers)}")
        print(f"policy:   {policy.source}")
    return 0
