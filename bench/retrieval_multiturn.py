"""`lantern bench retrieval-multiturn`: needed-tool recall per turn over labelled on-call conversations.

Reports, for the selector with and without query rewriting, sticky tools and runbook checks
(a symptom report that matches a playbook brings the playbook's first checks): mean needed-tool
recall per turn, the share of turns with every needed tool loaded, tools loaded and schema
tokens per turn; then the trade-off curve (recall against schema tokens) over thresholds and
tool caps for the full configuration. The same table is printed for each held-out set
(data/multiturn-holdout*.jsonl), written by someone who saw only the tool names and descriptions,
not the packs' keywords and examples nor the other sets: the gap says how much of the first set's
recall comes from metadata written with it in view. A held-out set stays clean only until its
misses are studied; holdout2 was added after holdout's misses had been looked at.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of the multi-turn benchmark."""
    from bench.multiturn import DATA

    p.add_argument("--set", type=Path, default=DATA / "multiturn.jsonl", help="labelled conversations (JSONL)")
    p.add_argument(
        "--holdout",
        type=Path,
        action="append",
        default=None,
        help="a held-out labelled set, written apart from the packs' metadata, reported alongside (repeatable; "
        "default: every data/multiturn-holdout*.jsonl; the curve is not run on them)",
    )
    p.add_argument("--catalog", action="store_true", help="use the stand-in catalogue even when packs load")
    p.add_argument("--index", type=Path, default=None, help="index directory (default: cache dir)")
    p.add_argument("--no-curve", action="store_true", help="skip the trade-off curve")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    """Replay the set under each configuration and print the table and the curve."""
    from bench.multiturn import (
        DATA,
        SetError,
        catalog_tools,
        load_conversations,
        pack_tools_or_catalog,
        replay,
        summarize,
    )
    from engine.retrieval.index import HybridIndex
    from engine.retrieval.selector import ToolSelector, find_tools_tool

    holdouts = args.holdout or sorted(DATA.glob("multiturn-holdout*.jsonl"))
    try:
        convs = load_conversations(args.set)
        helds = [(Path(h), load_conversations(h)) for h in holdouts]
    except SetError as exc:
        print(f"lantern bench retrieval-multiturn: {exc}", file=sys.stderr)
        return 2
    tools, source = (catalog_tools(), "catalog.jsonl (stand-in)") if args.catalog else pack_tools_or_catalog()
    names = {t.name for t in tools}
    unknown = sorted(
        {
            n
            for c in [*convs, *(c for _, h in helds for c in h)]
            for t in c["turns"]
            for n in t["needed"]
            if n not in names
        }
    )
    path = args.index
    if path is None:
        from engine.config import cache_dir

        path = cache_dir() / "bench" / "multiturn"
    from skills.playbooks import load_playbooks

    sel = ToolSelector(tools, HybridIndex(path), runbooks=[b.doc() for b in load_playbooks()[0]])
    sel.add_tool(find_tools_tool(sel))
    rows = {}
    checks = sel.runbook_checks
    configs = (
        ("full", True, True, checks),
        ("no runbooks", True, True, 0),
        ("no rewrite", False, True, checks),
        ("no sticky", True, False, checks),
        ("neither", False, False, checks),
    )
    held_rows: list[dict[str, dict[str, float]]] = [{} for _ in helds]
    for label, rewrite, sticky, sel.runbook_checks in configs:
        sel.rewrite_enabled = rewrite
        for rows_of, convs_of in ((rows, convs), *((hr, h) for hr, (_, h) in zip(held_rows, helds))):
            if not convs_of:
                continue
            res = replay(sel, convs_of, sticky=sticky)
            rows_of[label] = summarize(res)
            rows_of[label]["first_turn_recall"] = summarize([r for r in res if r.turn == 1])["recall"]
            rows_of[label]["later_turns_recall"] = summarize([r for r in res if r.turn > 1])["recall"]
    sel.rewrite_enabled, sel.runbook_checks = True, checks
    curve = []
    if not args.no_curve:
        base = (sel.threshold, sel.max_tools, sel.budget_tokens)
        # The curve: needed-tool recall against schema tokens loaded, as the cap and threshold move.
        for max_tools in (3, 5, 7, 9, 11, 14):
            for threshold in (0.8, 0.4, 0.0):
                sel.threshold, sel.max_tools = threshold, max_tools
                r = summarize(replay(sel, convs))
                curve.append({"max_tools": max_tools, "threshold": threshold, **{k: round(v, 3) for k, v in r.items()}})
        sel.threshold, sel.max_tools, sel.budget_tokens = base
    out = {
        "tools": len(tools),
        "source": source,
        "conversations": len(convs),
        "turns": int(rows["full"]["turns"]),
        "unknown_labels": unknown,
        "settings": {
            "threshold": sel.threshold,
            "max_tools": sel.max_tools,
            "cold_extra": sel.cold_extra,
            "budget_tokens": sel.budget_tokens,
            "sticky_turns": sel.sticky_turns,
        },
        "results": {k: {m: round(v, 3) for m, v in r.items()} for k, r in rows.items()},
        "holdouts": [
            {
                "set": hpath.name,
                "conversations": len(held),
                "turns": int(hr["full"]["turns"]) if hr else 0,
                "results": {k: {m: round(v, 3) for m, v in r.items()} for k, r in hr.items()},
            }
            for (hpath, held), hr in zip(helds, held_rows)
        ],
        "curve": curve,
    }
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(
        f"{len(convs)} conversations · {out['turns']} turns · {len(tools)} tools from {source} · settings {out['settings']}"
    )
    if unknown:
        print(f"labels naming tools that do not exist (counted as misses): {', '.join(unknown)}")
    tables = [(args.set.name, rows)]
    for h, hr in zip(out["holdouts"], held_rows):
        if hr:
            tables.append((f"{h['set']}: {h['conversations']} conversations · {h['turns']} turns", hr))
    for title, table in tables:
        print(f"== {title}")
        print(
            f"{'configuration':<14}{'recall':>9}{'all-needed':>12}{'turn 1':>8}{'later':>8}{'tools':>8}{'schema tok':>12}"
        )
        for k, r in table.items():
            print(
                f"{k:<14}{r['recall']:>9.3f}{r['complete']:>12.3f}{r['first_turn_recall']:>8.3f}{r['later_turns_recall']:>8.3f}"
                f"{r['tools']:>8.1f}{r['schema_tokens']:>12.0f}"
            )
    if curve:
        print("trade-off (full configuration): max_tools threshold → recall, tools, schema tokens")
        for c in curve:
            print(
                f"  {c['max_tools']:>3} {c['threshold']:>5} → recall {c['recall']:.3f} · {c['tools']:.1f} tools · {c['schema_tokens']:.0f} tok"
            )
    return 0
