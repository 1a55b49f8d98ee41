"""`lantern eval cloudops ...` and `lantern eval export SESSION`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def configure(p: argparse.ArgumentParser) -> None:
    """Sub-commands of `lantern eval`."""
    sub = p.add_subparsers(dest="eval_cmd", metavar="WHAT", required=True)
    c = sub.add_parser("cloudops", help="replay Cloud-OpsBench cases through the real engine")
    c.add_argument("--cases", required=True, help="directory with category/n/ case folders and candidates.json")
    c.add_argument(
        "--model",
        help="model to evaluate (default: the configured one); 'oracle' or 'oracle-wrong' check the harness; 'checks' scores the engine's checks alone (the model answers at once, checks_A@1)",
    )
    c.add_argument("--limit", type=int, help="at most N cases (sampled across categories)")
    c.add_argument("--max-steps", type=int, default=10)
    c.add_argument(
        "--no-triage",
        action="store_true",
        help="leave out the opening triage reads (pods, events, nodes, alerts): the model starts from the alert alone",
    )
    c.add_argument(
        "--no-checks",
        action="store_true",
        help="leave out the engine's checks (findings and the reads they ask for): the model reads raw outputs only",
    )
    c.add_argument("--json", action="store_true")
    c.add_argument(
        "--out",
        help="append each case's result to this JSON-lines file as it finishes; cases already in it are not run again (resume)",
    )
    e = sub.add_parser("export", help="write a finished session as a replay case")
    e.add_argument("session", help="session id or unique prefix")
    e.add_argument("--out", default=".", help="directory to write the case folder into")


async def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen evaluation."""
    if args.eval_cmd == "cloudops":
        return await _cloudops(args)
    return await _export(args)


async def _cloudops(args: argparse.Namespace) -> int:
    from engine.jsonfile import load_json
    from evals import cloudops as co

    root = Path(args.cases)
    if not (root / "candidates.json").exists():
        print(
            f"lantern eval: {root} has no candidates.json (expected a Cloud-OpsBench case directory)", file=sys.stderr
        )
        return 2
    cands = co.load_candidates(root)
    notices: list[str] = []
    cases = co.load_cases(root, args.limit, notices)
    for n in notices:
        print(f"lantern eval: {n}", file=sys.stderr)
    make_tools = replay_tools_factory()
    results = []
    model_name = args.model or ""
    shared_model = None
    if model_name not in ("oracle", "oracle-wrong", "checks"):
        from engine.config import load, resolve_model
        from engine.models import make_model

        cfg = load(model=args.model)
        shared_model = make_model(resolve_model(cfg), cfg)
    done: dict[str, co.CaseResult] = {}
    out = Path(args.out) if args.out else None
    if out is not None and out.exists():
        for line in out.read_text().splitlines():
            try:
                r = co.CaseResult(**json.loads(line))
            except (ValueError, TypeError):
                continue  # a line cut off by an interrupted run: that case runs again
            done[r.case] = r
        # Keep only whole results, so the lines appended from here on start on a line of their own.
        out.write_text("".join(json.dumps(r.__dict__, default=str) + "\n" for r in done.values()))
    for i, case in enumerate(cases, 1):
        if case.id in done:
            results.append(done[case.id])
            continue
        if model_name == "checks":
            model = co.checks_only_model()
        elif shared_model is None:
            cache = load_json(case.dir / "tool_cache.json", {}, expect=dict)
            model = co.OracleModel(case, cache, wrong=model_name == "oracle-wrong")
        else:
            model = shared_model
        r = await co.run_case(
            case,
            cands,
            model,
            make_tools,
            max_steps=1 if model_name == "checks" else args.max_steps,
            opening=not args.no_triage,
            diagnose=not args.no_checks,
        )
        results.append(r)
        if out is not None:
            with out.open("a") as f:
                f.write(json.dumps(r.__dict__, default=str) + "\n")
        if not args.json:
            mark = "✓" if r.hit1 else ("~" if r.hit3 else "✗")
            got = r.answers[0]["root_cause"] + " " + r.answers[0]["object"] if r.answers else (r.error or "no answer")
            checks = f"  checks={r.checks[0]['root_cause']} {r.checks[0]['object']}" if r.checks else ""
            print(
                f"[{i}/{len(cases)}] {mark} {case.id:18s} truth={case.truth['root_cause']} {case.truth['fault_object']}  got={got}{checks}  calls={len(r.calls)} align={r.alignment} {r.seconds}s",
                flush=True,
            )
            if r.evidence:
                print(f"      evidence: {r.evidence}", flush=True)
    summary = co.summarise(results)
    summary["model"] = model_name or getattr(shared_model, "name", "")
    if args.json:
        print(json.dumps({"summary": summary, "cases": [r.__dict__ for r in results]}, indent=1, default=str))
    else:
        print(json.dumps(summary, indent=1))
    return 0


def replay_tools_factory() -> Any:
    """The replay world's tools for a case directory (the skills replay executor)."""
    from skills.replay import replay_tools

    return replay_tools


async def _export(args: argparse.Namespace) -> int:
    from engine.store import Store
    from evals.export import export_session

    async with Store() as store:
        sid = await store.find(args.session)
        if sid is None:
            print(f"lantern eval export: no session matches {args.session!r}", file=sys.stderr)
            return 2
        path = export_session(await store.events(sid), Path(args.out))
    print(f"wrote {path}")
    return 0
