"""`lantern sandbox build|up|down|status|scenario|webhook`: the local Kubernetes sandbox from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox subcommands."""
    parser.add_argument("--home", help="sandbox data directory (default: $LANTERN_HOME/sandbox)")
    sub = parser.add_subparsers(dest="sandbox_cmd", metavar="ACTION", required=True)
    b = sub.add_parser(
        "build", help="install etcd and build kube-apiserver/controller-manager/scheduler (once per machine)"
    )
    b.add_argument("--force", action="store_true", help="rebuild even if the binaries exist")
    b.add_argument("--keep-source", action="store_true", help="keep the 2 GB source tree and Go cache after building")
    u = sub.add_parser("up", help="start the cluster (idempotent) and print how to use it")
    u.add_argument("--nodes", type=int, default=2, help="how many nodes the agent registers (1-3)")
    u.add_argument("--scenario", help="also start this scenario")
    sub.add_parser("down", help="stop every sandbox cluster this user started (data is kept for a warm start)")
    s = sub.add_parser("status", help="pids, ports, readiness and memory")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    sc = sub.add_parser("scenario", help="start a scenario (resets the previous one); `scenario list` lists them")
    sc.add_argument("name", help="scenario name, `list`, or `reset`")
    w = sub.add_parser(
        "webhook",
        help="send the sandbox Alertmanager's alerts to a webhook URL (v4 JSON, with a bearer token)",
        description="The bearer token comes from --token-file (- reads stdin), else $LANTERN_ALERT_WEBHOOK_TOKEN.",
    )
    w.add_argument("url", nargs="?", help="e.g. http://127.0.0.1:8787/hooks/alertmanager")
    w.add_argument("--token-file", help="a file holding the bearer token (- for stdin)")
    w.add_argument("--off", action="store_true", help="send alerts nowhere")


def run(args: argparse.Namespace) -> int:
    """Run one sandbox subcommand."""
    from sandbox import build as b
    from sandbox import cluster as c
    from sandbox.scenario import ScenarioError, apply_scenario, list_scenarios, reset

    cmd = args.sandbox_cmd
    home = args.home
    try:
        if cmd == "build":
            t0 = time.monotonic()
            b.build(force=args.force, keep_source=args.keep_source)
            print(f"build step took {time.monotonic() - t0:.1f}s")
            return 0
        if cmd == "up":
            t0 = time.monotonic()
            si = c.up(home, nodes=args.nodes, progress=lambda m: print(f"  {m}", flush=True))
            print(f"sandbox ready in {time.monotonic() - t0:.1f}s: {si.server}")
            if args.scenario:
                sc = apply_scenario(args.scenario, home=home)
                print(f"scenario {sc.name}: {sc.title}")
            _usage(si)
            return 0
        if cmd == "down":
            stopped = c.down_all(home)
            for h in stopped:
                print(f"sandbox stopped: {h}")
            if not stopped:
                print("no sandbox was running")
            return 0
        if cmd == "status":
            st = c.status(home)
            if args.json:
                print(json.dumps(st, indent=2))
            else:
                _print_status(st)
            return 0 if st["ready"] else 1
        if cmd == "scenario":
            if args.name == "list":
                for sc in list_scenarios():
                    print(f"{sc.name:<14} {sc.title}  (namespace {sc.namespace})")
                return 0
            if not c.is_running(home):
                print("the sandbox is not running; start it with `lantern sandbox up`")
                return 1
            if args.name == "reset":
                gone = reset(home)
                print(f"removed {', '.join(gone) or 'nothing'}")
                return 0
            t0 = time.monotonic()
            sc = apply_scenario(args.name, home=home)
            si = c.info(home)
            print(f"scenario {sc.name} running in namespace {sc.namespace} ({time.monotonic() - t0:.1f}s)")
            print(f"alert: {sc.symptom}")
            if si.endpoints:
                print("endpoints: " + ", ".join(f"{k} {v}" for k, v in si.endpoints.items()))
            _usage(si)
            return 0
        if cmd == "webhook":
            return _webhook(args, home)
    except (c.SandboxError, b.BuildError, ScenarioError, OSError) as exc:
        print(f"lantern sandbox {cmd}: {exc}")
        return 1
    return 2


def _webhook(args: argparse.Namespace, home: str | None) -> int:
    """`lantern sandbox webhook URL|--off`: where the sandbox's Alertmanager sends its notifications."""
    from sandbox import cluster as c

    if args.off == bool(args.url):
        print("lantern sandbox webhook: give a URL, or --off")
        return 2
    token = None
    if args.token_file == "-":
        token = sys.stdin.readline().strip()
    elif args.token_file:
        with open(args.token_file, encoding="utf-8") as fh:
            token = fh.read().strip()
    elif os.environ.get("LANTERN_ALERT_WEBHOOK_TOKEN"):
        token = os.environ["LANTERN_ALERT_WEBHOOK_TOKEN"].strip()
    c.set_alert_webhook(None if args.off else args.url, token, home)
    if args.off:
        print("the sandbox's Alertmanager sends its alerts nowhere now")
    else:
        print(
            f"the sandbox's Alertmanager sends its alerts to {args.url} ({'with' if token else 'without'} a bearer token)"
        )
    return 0


def _usage(si: Any) -> None:
    print(f"kubeconfig: {si.kubeconfig} (context {si.context}; ~/.kube/config is untouched)")
    print(f"  kubectl --kubeconfig {si.kubeconfig} get pods -A")
    print(f"  export KUBECONFIG={si.kubeconfig}   # or: lantern --context {si.context}")


def _print_status(st: dict[str, Any]) -> None:
    state = "ready" if st["ready"] else ("running (not all ready)" if st["running"] else "stopped")
    print(f"sandbox {state}: {st['home']}")
    for p in st["processes"]:
        mark = "ready" if p["ready"] else ("up" if p["alive"] else "down")
        print(f"  {p['name']:<24} {mark:<6} pid {p['pid'] or '-':<8} rss {p['rss_mb']:>7.1f} MB")
    print(f"  total rss {st['rss_mb_total']:.1f} MB")
    ports = st.get("ports") or {}
    if ports:
        print("  ports: " + ", ".join(f"{k} {v}" for k, v in sorted(ports.items())))
    if st.get("scenario"):
        print(f"  scenario: {st['scenario']}")
    for k, v in (st.get("endpoints") or {}).items():
        print(f"  {k}: {v}")
    if st.get("monitoring") == "off":
        from sandbox.monitoring import OFF

        print(f"  {OFF}")
    elif st.get("monitoring") == "on":
        print(f"  alert webhook: {st.get('alert_webhook') or 'none (`lantern sandbox webhook URL`)'}")
    print(f"  kubeconfig: {st['kubeconfig']} (context {st['context']})")
