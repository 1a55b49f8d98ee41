"""`lantern experience`: the experience memory (past requests and the tools that answered them)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `lantern experience`."""
    p.add_argument(
        "--index", type=Path, default=None, help="index directory (default: the console's, under the cache dir)"
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="load a history in BEIR form (queries.jsonl + qrels.tsv)")
    imp.add_argument("--queries", type=Path, required=True, help="BEIR queries.jsonl: one past request per line")
    imp.add_argument("--qrels", type=Path, required=True, help="BEIR qrels .tsv: query-id, tool, score")
    ls = sub.add_parser("list", help="past requests held, newest last")
    ls.add_argument("--source", help="only rows from this source (session:ID, import:FILE)")
    ls.add_argument("--limit", type=int, default=30, help="at most this many rows (0: all)")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    fg = sub.add_parser("forget", help="remove rows by id prefix, by source or session, or all")
    fg.add_argument("ids", nargs="*", help="row ids (or unique prefixes) from `lantern experience list`")
    fg.add_argument("--source", help="every row from this source (session:ID, import:FILE)")
    fg.add_argument("--session", help="every row a session taught (same as --source session:ID)")
    fg.add_argument("--all", action="store_true", help="forget everything")


def memory_at(index: Path | None) -> Any:
    """The experience memory beside the tools of this index directory (default: the console's)."""
    from engine.retrieval.experience import ExperienceMemory

    if index is None:
        from engine.config import cache_dir

        index = cache_dir() / "index"
    return ExperienceMemory(Path(index) / "experience")


def history(queries: Path, qrels: Path) -> tuple[list[Any], int]:
    """Experiences from BEIR files and how many judged requests had no text (raises DataError)."""
    from engine.retrieval.beir import DataError, load_qrels, load_queries
    from engine.retrieval.experience import Experience

    try:
        texts = load_queries(queries)
        tools = load_qrels(qrels)
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except IsADirectoryError as exc:
        raise DataError(f"{exc.filename}: is a directory, not a file") from None
    if not texts:
        raise DataError(f"{queries}: no requests in it")
    if not tools:
        raise DataError(f"{qrels}: no query-id/tool rows with a score above 0 in it")
    source = f"import:{Path(queries).name}"
    out = [
        Experience(texts[q].strip(), tuple(sorted(ts)), source) for q, ts in tools.items() if texts.get(q, "").strip()
    ]
    if not out:
        raise DataError(f"no query id of {qrels} has a request in {queries}")
    return out, len(tools) - len(out)


def _import(args: argparse.Namespace) -> int:
    from engine.retrieval.beir import DataError

    try:
        rows, missing = history(args.queries, args.qrels)
    except DataError as exc:
        print(f"lantern experience import: {exc}", file=sys.stderr)
        return 2
    mem = memory_at(args.index)

    def progress(done: int, total: int) -> None:
        print(
            f"\rembedding past requests: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True
        )

    added = mem.add(rows, progress=progress)
    skipped = f" ({missing} judged ids had no request text)" if missing else ""
    print(f"imported {added} new past requests ({len(rows) - added} already held){skipped}; {len(mem)} in the memory")
    return 0


def _list(args: argparse.Namespace) -> int:
    rows = [r for r in memory_at(args.index).rows() if args.source is None or r[3] == args.source]
    if args.limit:
        rows = rows[-args.limit :]
    if args.json:
        print(json.dumps([{"id": i, "text": t, "tools": list(ts), "source": s} for i, t, ts, s in rows], indent=1))
        return 0
    if not rows:
        print("no experience yet: a session that ends well teaches, or `lantern experience import`")
        return 0
    for i, text, tools, source in rows:
        print(f"{i[:10]}  {source[:24]:<24}  {text[:60]:<60}  → {', '.join(tools)}")
    return 0


def _forget(args: argparse.Namespace) -> int:
    source = f"session:{args.session}" if args.session else args.source
    if not (args.ids or source or args.all):
        print("lantern experience forget: give row ids, --source, --session or --all", file=sys.stderr)
        return 2
    n = memory_at(args.index).forget(ids=args.ids, source=source, everything=args.all)
    print(f"forgot {n} past request" + ("" if n == 1 else "s"))
    return 0


def run(args: argparse.Namespace) -> int:
    """Import, list or forget experience."""
    from engine.retrieval.experience import ExperienceError

    try:
        return {"import": _import, "list": _list, "forget": _forget}[args.action](args)
    except ExperienceError as exc:
        print(f"lantern experience: {exc}", file=sys.stderr)
        return 2
