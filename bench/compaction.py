"""`lantern bench compaction`: do the facts survive compaction, and what does it cost?

Three parts, all judge-free and deterministic:
  cases    each HolmesGPT compaction case (OpenAI-format history) is converted into session
           events and compacted to `--budget` of its own size; the identifying strings of its
           `expected_output` (pod names, exception text, numbers, versions; found by a regular
           extractor, not by hand) count as kept when they appear, whole, in the compacted prompt.
  probes   50 facts (pod names, error codes, metric values, timestamps) are planted early in long
           synthetic histories built from the cases' tool outputs and the cloudops-dev tool
           caches; exact recall after compaction.
  timing   compaction time per step for histories of 50, 200 and 1,000 events.
Each figure is reported for the compacting builder and for two baselines from the same run:
plain truncation (newest messages that fit) and summary-only (same tiers, no ledger, no drop list).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench import shared_data
from engine import events as ev
from engine.context.builder import CompactingContext, Compaction, ContextConfig
from engine.context.ledger import extract_facts
from engine.loop import history_messages
from engine.models.base import Message, parse_arguments
from engine.testing import ScriptedModel

DEFAULT_CASES = shared_data("holmes-compaction")
DEFAULT_CLOUDOPS = shared_data("cloudops-dev")
_T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def configure(p: argparse.ArgumentParser) -> None:
    """Command-line options."""
    p.add_argument("--cases", type=Path, default=DEFAULT_CASES, help="directory of holmes-compaction cases")
    p.add_argument(
        "--cloudops", type=Path, default=DEFAULT_CLOUDOPS, help="cloudops-dev directory (tool caches for probes)"
    )
    p.add_argument(
        "--budget", type=float, default=0.25, help="prompt budget as a share of each history's size (default 0.25)"
    )
    p.add_argument("--probes", type=int, default=50, help="facts planted per synthetic history (default 50)")
    p.add_argument("--histories", type=int, default=3, help="synthetic probe histories (default 3)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-timing", action="store_true", help="skip the 50/200/1,000-event timing")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


# -- conversion ---------------------------------------------------------------------------------
def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def convert(messages: list[dict[str, Any]], session_id: str = "bench") -> tuple[str, list[Any]]:
    """OpenAI chat messages → (system prompt, session events) as the loop would have recorded them."""
    if not isinstance(messages, list):
        raise ValueError("conversation history must be a JSON list of messages")
    out: list[Any] = []
    system, seq, turn, step = "", 0, 0, 0
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise ValueError(f"message {i} has no role")
        role, content = m["role"], _text(m.get("content"))
        at = _T0 + dt.timedelta(seconds=i)
        if role == "system":
            system = (system + "\n\n" + content).strip()
            continue
        seq += 1
        if role == "user":
            turn += 1
            out.append(ev.UserMessage(session_id=session_id, seq=seq, at=at, turn=turn, text=content))
        elif role == "assistant":
            step += 1
            calls = []
            for tc in m.get("tool_calls") or []:
                fn = tc.get("function") or {}
                args, _, _ = parse_arguments(fn.get("arguments"))
                calls.append(
                    {"id": tc.get("id") or f"call_{seq}_{len(calls)}", "name": fn.get("name", "?"), "arguments": args}
                )
            out.append(
                ev.AssistantMessage(
                    session_id=session_id, seq=seq, at=at, turn=turn, text=content, step=step, tool_calls=calls
                )
            )
        elif role == "tool":
            out.append(
                ev.ToolCallFinished(
                    session_id=session_id,
                    seq=seq,
                    at=at,
                    turn=turn,
                    call_id=m.get("tool_call_id") or "",
                    tool=m.get("name") or "tool",
                    status="ok",
                    duration_ms=0.0,
                    output=content,
                    step=step,
                )
            )
        else:
            raise ValueError(f"message {i}: unknown role {role!r}")
    return system, out


# -- expected strings -----------------------------------------------------------------------------
_QUOTED_RE = re.compile(r"\"([^\"\n]{3,200})\"|'([^'\n]{3,200})'|`([^`\n]{2,200})`")
_NUM_RE = re.compile(
    r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:\s?(?:%|ms|s|MB|GB|Mi|Gi|KB|m|req/s|GB/s|MB/s|seconds|minutes|hours))?(?![\w])"
)
_IDENT_RE = re.compile(
    r"(?<![\w.])(?:[a-z][a-z0-9]*(?:-[a-z0-9]+)+|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|v\d+(?:\.\d+)+|[A-Z][a-z]+(?:[A-Z][a-z]+)+|[a-zA-Z_]\w*\(\))(?![\w])"
)
_LEDGER_KINDS = {
    "pod",
    "deployment",
    "node",
    "namespace",
    "image",
    "host",
    "resource",
    "reason",
    "exit_code",
    "http_status",
    "exception",
    "metric",
    "timestamp",
    "version",
    "sha",
    "config",
}


def expected_strings(expected: str) -> list[dict[str, str]]:
    """The identifying strings of an expected_output, each with its type (deterministic, no labels)."""
    found: dict[str, str] = {}
    for kind, value in extract_facts(expected):
        if kind in _LEDGER_KINDS:
            found.setdefault(value, kind)
    for m in _QUOTED_RE.finditer(expected):
        found.setdefault((m.group(1) or m.group(2) or m.group(3)).strip(), "quoted")
    for m in _IDENT_RE.finditer(expected):
        found.setdefault(m.group(0), "identifier")
    # a number inside a longer string already found (a timestamp, a version, a name) is not a fact of its own
    spans = [
        (m.start(), m.end())
        for v, k in list(found.items())
        if k not in ("metric", "number")
        for m in re.finditer(re.escape(v), expected)
    ]
    for m in _NUM_RE.finditer(expected):
        v = m.group(0)
        if any(a <= m.start() and m.end() <= b for a, b in spans):
            continue
        if len(v.rstrip("%")) >= 2 or v.endswith("%") or not v.isdigit():
            found.setdefault(v, "number")
    out = []
    for value, kind in found.items():
        if len(value) < 2:
            continue
        if kind == "metric" and not re.search(r"\d", value):
            continue
        ledger_type = kind in _LEDGER_KINDS or (kind in ("identifier", "number") and bool(re.search(r"\d|_|-", value)))
        out.append({"value": value, "kind": kind, "ledger_type": "yes" if ledger_type else "no"})
    return out


def present(value: str, text: str) -> bool:
    """`value` occurs in `text` as a whole token run (so '30' does not match inside '300')."""
    pat = r"(?<![\w.])" + re.escape(value) + (r"(?![\w])" if value[-1:].isalnum() else "")
    return re.search(pat, text) is not None


# -- the three builders -----------------------------------------------------------------------------
def _model(window: int) -> ScriptedModel:
    return ScriptedModel(context_window=max(1, window), name="bench")


def original_tokens(system: str, events: list[Any]) -> int:
    """Tokens of the uncompacted prompt."""
    return _model(10**9).count_tokens([Message(role="system", content=system), *history_messages(events)])


def run_ours(system: str, events: list[Any], budget: float, **cfg: Any) -> Compaction:
    """The compacting builder, with a window equal to the history so `budget` is its share."""
    window = original_tokens(system, events)
    b = CompactingContext(_model(window), ContextConfig(share=budget, **cfg))
    return b.compact(events, system)


def run_truncation(system: str, events: list[Any], budget: float) -> tuple[list[Message], int, int]:
    """Plain truncation: the newest whole steps that fit, nothing else. → (messages, used, items removed)."""
    model = _model(10**9)
    limit = int(original_tokens(system, events) * budget)
    msgs = history_messages(events)
    # cut only before a user or assistant message, so tool results stay with their call
    cuts = [i for i, m in enumerate(msgs) if m.role in ("user", "assistant")] + [len(msgs)]
    sys_msg = Message(role="system", content=system)
    for c in cuts:
        kept = [sys_msg, *msgs[c:]]
        used = model.count_tokens(kept)
        if used <= limit or c == len(msgs):
            return kept, used, c
    return [sys_msg], model.count_tokens([sys_msg]), len(msgs)


def silent_drops(c_text: str, events: list[Any], listed: set[str]) -> tuple[int, int]:
    """(items not held in full, of which not listed by ref in the prompt)."""
    lost = unlisted = 0
    for e in events:
        kind = getattr(e, "kind", "")
        body = (
            e.text
            if kind in ("user-message", "assistant-message")
            else (e.output if kind == "tool-call-finished" else None)
        )
        if not body or not body.strip():
            continue
        if body in c_text:
            continue
        lost += 1
        ref = f"e{e.seq}"
        if ref not in listed:
            unlisted += 1
    return lost, unlisted


def _listed_refs(c: Compaction) -> set[str]:
    text = next((m.content for m in c.messages if "## No longer held in full" in m.content), "")
    if not text:
        return set()
    block = text.split("## No longer held in full", 1)[1]
    return set(re.findall(r"\be\d+\b", block))


# -- cases ----------------------------------------------------------------------------------------
def load_cases(root: Path) -> list[tuple[str, list[dict[str, Any]], str]]:
    """(name, messages, expected_output) for every case directory under `root`."""
    if not root.is_dir():
        raise SystemExit(f"cases directory not found: {root}")
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        hist, tc = d / "conversation_history.json", d / "test_case.yaml"
        if not hist.exists() or not tc.exists():
            continue
        try:
            messages = json.loads(hist.read_text())
            expected = (yaml.safe_load(tc.read_text()) or {}).get("expected_output", "")
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise SystemExit(f"{d}: unreadable case: {exc}") from None
        out.append((d.name, messages, str(expected or "")))
    if not out:
        raise SystemExit(f"no cases (conversation_history.json + test_case.yaml) under {root}")
    return out


def score_case(name: str, messages: list[dict[str, Any]], expected: str, budget: float) -> dict[str, Any]:
    """Compact one case three ways and score each against its expected strings."""
    system, events = convert(messages)
    source = system + "\n" + Compaction(history_messages(events), 0, 0, 0, {}, [], []).text
    strings = [s for s in expected_strings(expected)]
    in_source = [s for s in strings if present(s["value"], source)]
    orig = original_tokens(system, events)
    ours = run_ours(system, events, budget)
    summ = run_ours(system, events, budget, pin_ledger=False, list_drops=False)
    trunc_msgs, trunc_used, _ = run_truncation(system, events, budget)
    trunc_text = Compaction(trunc_msgs, 0, 0, 0, {}, [], []).text
    res: dict[str, Any] = {
        "case": name,
        "events": len(events),
        "original_tokens": orig,
        "expected_strings": len(strings),
        "in_source": len(in_source),
    }
    for label, text, used, listed in (
        ("ours", ours.text, ours.used, _listed_refs(ours)),
        ("summary_only", summ.text, summ.used, set()),
        ("truncation", trunc_text, trunc_used, set()),
    ):
        kept = [s for s in in_source if present(s["value"], text)]
        ledger_type = [s for s in in_source if s["ledger_type"] == "yes"]
        kept_lt = [s for s in ledger_type if present(s["value"], text)]
        lost, unlisted = silent_drops(text, events, listed)
        res[label] = {
            "used": used,
            "compression": round(orig / max(1, used), 2),
            "kept": len(kept),
            "ledger_type": len(ledger_type),
            "ledger_type_kept": len(kept_lt),
            "missed": [s["value"] for s in ledger_type if s not in kept_lt],
            "items_not_in_full": lost,
            "silent_drops": unlisted,
        }
    res["ours"]["detail_dropped_events"] = len(ours.new_drops)
    res["ours"]["over_budget"] = ours.over_budget
    res["ours"]["ms"] = round(ours.ms, 1)
    return res


# -- probes ---------------------------------------------------------------------------------------
def _pool(
    cases: list[tuple[str, list[dict[str, Any]], str]], cloudops: Path, rng: random.Random
) -> list[tuple[str, dict[str, Any], str]]:
    """(tool name, arguments, output) drawn from the cases' tool messages and cloudops tool caches."""
    pool: list[tuple[str, dict[str, Any], str]] = []
    for _, messages, _ in cases:
        for m in messages:
            if m.get("role") == "tool":
                out = _text(m.get("content"))
                if 40 < len(out) < 12000:
                    pool.append((m.get("name") or "run_bash_command", {"command": "kubectl …"}, out))
    if cloudops.is_dir():
        for cache in sorted(cloudops.glob("*/*/tool_cache.json")):
            try:
                data = json.loads(cache.read_text())
            except json.JSONDecodeError:
                continue
            for key, out in data.items():
                if ":" not in key or not isinstance(out, str) or not 40 < len(out) < 12000:
                    continue
                name, raw = key.split(":", 1)
                try:
                    args = json.loads(raw)
                except json.JSONDecodeError:
                    args = {}
                pool.append((name, args if isinstance(args, dict) else {}, out))
    rng.shuffle(pool)
    return pool


_ALNUM = "bcdfghjklmnpqrstvwxz2456789"
_SVCS = [
    "checkout",
    "ledger-writer",
    "billing-api",
    "search-indexer",
    "quote-engine",
    "fulfilment",
    "notifier",
    "geo-router",
    "invoice-svc",
    "tax-calc",
]
_METRICS = [
    ("p99 latency", "ms"),
    ("memory usage", "Mi"),
    ("error rate", "%"),
    ("cpu throttling", "%"),
    ("queue depth", " msgs"),
    ("heap used", "MB"),
    ("disk write", "MB/s"),
    ("request rate", " req/s"),
]


def _probe(kind: str, rng: random.Random) -> tuple[str, str]:
    """(line to plant, exact string that must be recalled)."""
    svc = rng.choice(_SVCS)
    if kind == "pod":
        pod = f"{svc}-{''.join(rng.choice(_ALNUM) for _ in range(8))}{rng.choice('2456789')}-{''.join(rng.choice(_ALNUM) for _ in range(5))}"
        return (
            f"  Warning  BackOff  {rng.randint(2, 59)}m  kubelet  Back-off restarting failed container app in pod {pod}",
            pod,
        )
    if kind == "error":
        if rng.random() < 0.5:
            code = rng.choice([3, 6, 9, 11, 17, 23, 42, 64, 70, 78, 126, 127, 130, 134, 139])
            return (
                f"    Last State:  Terminated  Reason: Error  Exit Code: {code}  (container {svc})",
                f"Exit Code: {code}",
            )
        code, phrase = rng.choice(
            [
                (502, "Bad Gateway"),
                (503, "Service Unavailable"),
                (504, "Gateway Timeout"),
                (429, "Too Many Requests"),
                (409, "Conflict"),
            ]
        )
        return f"{svc} upstream returned {code} {phrase} for /v{rng.randint(1, 3)}/orders", f"{code} {phrase}"
    if kind == "metric":
        label, unit = rng.choice(_METRICS)
        value = (
            f"{rng.randint(100, 9999)}.{rng.randint(1, 9)}" if unit in ("%",) and False else str(rng.randint(101, 9899))
        )
        if unit == "%":
            value = f"{rng.randint(11, 99)}.{rng.randint(1, 9)}"
        text = f"{value}{unit}"
        return f"{svc} {label}: {text} (5m avg)", text.strip()
    ts = (
        _T0 + dt.timedelta(days=rng.randint(0, 300), seconds=rng.randint(0, 86400), milliseconds=rng.randint(0, 999))
    ).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return f"{ts} ERROR [{svc}] request failed: upstream connect error or disconnect/reset before headers", ts


def probe_history(
    pool: list[tuple[str, dict[str, Any], str]], rng: random.Random, n_steps: int, n_probes: int
) -> tuple[str, list[Any], list[str]]:
    """A long synthetic investigation with `n_probes` facts planted in its first fifth."""
    events: list[Any] = []
    seq = 0
    at = _T0
    base_text = ""
    steps: list[tuple[str, dict[str, Any], str]] = [
        pool[(i * 7 + rng.randint(0, 3)) % len(pool)] for i in range(n_steps)
    ]
    base_text = "\n".join(o for _, _, o in steps)
    kinds = ["pod"] * 15 + ["error"] * 10 + ["metric"] * 15 + ["timestamp"] * 10
    kinds = (kinds * ((n_probes // len(kinds)) + 1))[:n_probes]
    planted: dict[int, list[str]] = {}
    truths: list[str] = []
    early = max(1, n_steps // 5)
    for k in kinds:
        for _ in range(20):
            line, truth = _probe(k, rng)
            if not present(truth, base_text) and truth not in truths:
                break
        truths.append(truth)
        planted.setdefault(rng.randrange(early), []).append(line)
    seq += 1
    events.append(
        ev.UserMessage(
            session_id="probe", seq=seq, at=at, turn=1, text="The shop is failing intermittently; find out why."
        )
    )
    for i, (name, args, out) in enumerate(steps):
        if i in planted:
            lines = out.splitlines()
            for line in planted[i]:
                lines.insert(rng.randint(0, len(lines)), line)
            out = "\n".join(lines)
        seq += 1
        call_id = f"c{i}"
        events.append(
            ev.AssistantMessage(
                session_id="probe",
                seq=seq,
                at=at,
                turn=1,
                step=i + 1,
                text=f"Checking with {name}.",
                tool_calls=[{"id": call_id, "name": name, "arguments": args}],
            )
        )
        seq += 1
        events.append(
            ev.ToolCallFinished(
                session_id="probe",
                seq=seq,
                at=at,
                turn=1,
                call_id=call_id,
                tool=name,
                status="ok",
                duration_ms=1.0,
                output=out,
                step=i + 1,
            )
        )
    return "You are Lantern, an on-call assistant.", events, truths


def run_probes(
    cases: list[Any], cloudops: Path, budget: float, n_probes: int, n_hist: int, seed: int
) -> dict[str, Any]:
    """Exact recall of planted facts after compaction, for the builder and the baselines."""
    rng = random.Random(seed)
    pool = _pool(cases, cloudops, rng)
    if not pool:
        raise SystemExit("no tool outputs to build probe histories from")
    rows = []
    for h in range(n_hist):
        system, events, truths = probe_history(pool, rng, n_steps=120 + 40 * h, n_probes=n_probes)
        orig = original_tokens(system, events)
        ours = run_ours(system, events, budget)
        summ = run_ours(system, events, budget, pin_ledger=False, list_drops=False)
        tm, tu, _ = run_truncation(system, events, budget)
        ttext = Compaction(tm, 0, 0, 0, {}, [], []).text
        row: dict[str, Any] = {"events": len(events), "original_tokens": orig, "planted": len(truths)}
        for label, text, used, listed in (
            ("ours", ours.text, ours.used, _listed_refs(ours)),
            ("summary_only", summ.text, summ.used, set()),
            ("truncation", ttext, tu, set()),
        ):
            lost, unlisted = silent_drops(text, events, listed)
            row[label] = {
                "recalled": sum(present(t, text) for t in truths),
                "compression": round(orig / max(1, used), 2),
                "silent_drops": unlisted,
                "items_not_in_full": lost,
            }
        row["ours"]["missed"] = [t for t in truths if not present(t, ours.text)]
        row["ours"]["ms"] = round(ours.ms, 1)
        rows.append(row)
    return {"histories": rows}


# -- timing -----------------------------------------------------------------------------------------
def run_timing(
    cases: list[Any], cloudops: Path, seed: int, sizes: tuple[int, ...] = (50, 200, 1000)
) -> list[dict[str, Any]]:
    """Per-step compaction time as a live session grows to 50, 200 and 1,000 events (32k window, 60%)."""
    rng = random.Random(seed + 1)
    pool = _pool(cases, cloudops, rng)
    out = []
    for n in sizes:
        system, events, _ = probe_history(pool, rng, n_steps=max(1, n // 2), n_probes=0)
        events = events[:n]
        b = CompactingContext(_model(32_000), ContextConfig(share=0.6))
        step_ms: list[float] = []
        ends = [i + 1 for i, e in enumerate(events) if e.kind == "tool-call-finished"] or [len(events)]
        for end in ends:
            c = b.compact(events[:end], system)
            step_ms.append(c.ms)
        last = step_ms[-10:]
        cold = CompactingContext(_model(32_000), ContextConfig(share=0.6))
        t0 = time.perf_counter()
        cold.compact(events, system)
        cold_ms = (time.perf_counter() - t0) * 1000
        out.append(
            {
                "events": len(events),
                "steps": len(step_ms),
                "per_step_ms_median_last10": round(statistics.median(last), 2),
                "per_step_ms_max": round(max(step_ms), 2),
                "cold_full_build_ms": round(cold_ms, 1),
                "model_count_calls": b.counter.calls,
            }
        )
    return out


# -- entry --------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its numbers."""
    if not 0.01 <= args.budget <= 1.0:
        print(f"--budget must be between 0.01 and 1.0, got {args.budget}")
        return 2
    try:
        cases = load_cases(Path(args.cases))
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    case_rows = []
    errors = []
    for name, msgs, exp in cases:
        try:
            case_rows.append(score_case(name, msgs, exp, args.budget))
        except ValueError as exc:
            # one malformed case is reported and skipped; the others still count
            errors.append(f"{name}: {exc}")
    for e in errors:
        print(f"skipped case {e}", file=sys.stderr)
    if not case_rows:
        print("no case could be scored", file=sys.stderr)
        return 2
    probes = run_probes(cases, Path(args.cloudops), args.budget, args.probes, args.histories, args.seed)
    timing = [] if args.no_timing else run_timing(cases, Path(args.cloudops), args.seed)
    summary = _summary(case_rows, probes)
    result = {
        "budget": args.budget,
        "summary": summary,
        "cases": case_rows,
        "skipped": errors,
        "probes": probes,
        "timing": timing,
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        _print(result)
    return 0


def _summary(rows: list[dict[str, Any]], probes: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for label in ("ours", "summary_only", "truncation"):
        lt = sum(r[label]["ledger_type"] for r in rows)
        ltk = sum(r[label]["ledger_type_kept"] for r in rows)
        allk = sum(r[label]["kept"] for r in rows)
        alls = sum(r["in_source"] for r in rows)
        orig = sum(r["original_tokens"] for r in rows)
        used = sum(r[label]["used"] for r in rows)
        ph = probes["histories"]
        out[label] = {
            "ledger_type_kept_pct": round(100 * ltk / max(1, lt), 1),
            "all_strings_kept_pct": round(100 * allk / max(1, alls), 1),
            "compression_total": round(orig / max(1, used), 2),
            "compression_min": min(r[label]["compression"] for r in rows),
            "silent_drops": sum(r[label]["silent_drops"] for r in rows) + sum(h[label]["silent_drops"] for h in ph),
            "probe_recall_pct": round(
                100 * sum(h[label]["recalled"] for h in ph) / max(1, sum(h["planted"] for h in ph)), 1
            ),
            "probe_compression_min": min(h[label]["compression"] for h in ph),
        }
    return out


def _print(r: dict[str, Any]) -> None:
    print(f"compaction bench, budget {r['budget']:.0%} of each history\n")
    print(
        f"{'case':28} {'events':>6} {'orig tok':>9} | {'ours kept':>9} {'×':>5} {'silent':>6} | {'summary kept':>12} {'×':>5} | {'trunc kept':>10} {'×':>5} {'silent':>6}"
    )
    for c in r["cases"]:
        o, s, t = c["ours"], c["summary_only"], c["truncation"]
        print(
            f"{c['case']:28} {c['events']:>6} {c['original_tokens']:>9} | {o['ledger_type_kept']:>4}/{o['ledger_type']:<4} {o['compression']:>5} {o['silent_drops']:>6} |"
            f" {s['ledger_type_kept']:>7}/{s['ledger_type']:<4} {s['compression']:>5} | {t['ledger_type_kept']:>5}/{t['ledger_type']:<4} {t['compression']:>5} {t['silent_drops']:>6}"
        )
        if o["missed"]:
            print(f"{'':28} ours missed: {o['missed']}")
    print("\nprobes (planted facts, exact recall):")
    for h in r["probes"]["histories"]:
        print(
            f"  {h['events']:>5} events {h['original_tokens']:>7} tok: ours {h['ours']['recalled']}/{h['planted']} ×{h['ours']['compression']} silent {h['ours']['silent_drops']}"
            f" | summary-only {h['summary_only']['recalled']}/{h['planted']} ×{h['summary_only']['compression']} silent {h['summary_only']['silent_drops']}"
            f" | truncation {h['truncation']['recalled']}/{h['planted']} ×{h['truncation']['compression']} silent {h['truncation']['silent_drops']}"
        )
    print("\nsummary:")
    for label, s in r["summary"].items():
        print(
            f"  {label:13} ledger-type kept {s['ledger_type_kept_pct']:>5}%  all strings kept {s['all_strings_kept_pct']:>5}%  compression {s['compression_total']}× (min {s['compression_min']}×)"
            f"  probe recall {s['probe_recall_pct']}% (min × {s['probe_compression_min']})  silent drops {s['silent_drops']}"
        )
    if r["timing"]:
        print("\ncompaction time per step (32k window, 60% share, incremental):")
        for t in r["timing"]:
            print(
                f"  {t['events']:>5} events: median of last 10 steps {t['per_step_ms_median_last10']} ms, worst step {t['per_step_ms_max']} ms,"
                f" cold build of the whole history {t['cold_full_build_ms']} ms"
            )
