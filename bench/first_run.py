"""The first five minutes: `lantern` on a fresh data directory, the sandbox alert, the embedded model.

Runs the real console in a pseudo-terminal (120x40), lets it start the sandbox cluster with a
scenario and investigate the opening alert on its own, and reads the session's record from the
store as it is written. Prints, per run and as the median of the runs:
  first_frame_s  process start → the header is drawn
  first_tool_s   process start → the first tool call starts
  answer_s       process start → the first turn ends (and from the first frame)
  steps, refused_steps, tokens of that turn
  cause_right    the answer names the scenario's cause
  fix_executable the answer's fix is a call the console offers with one key (FixOffered), or
                 the turn asked approval for a write action a pack has (fix_named: the write
                 actions the answer names at all)
An approval the turn asks for is denied at once (the bench measures the agent, not a person);
when it was asked is `approval_asked_s`.

Run it alone on the machine (llama.cpp slows 10-20x when anything else holds a core):

    .venv/bin/python bench/first_run.py [--runs 3] [--scenario bad-deploy] [--model local] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from console_start import HEADER_MARK, PY, ROOT, Term

EXPECT: dict[str, list[str]] = {
    "bad-deploy": ["payments_timeout_ms", "payments_", "config key", "renamed", "2.5.0"],
    "oom": ["oomkilled", "out of memory", "memory limit"],
    "expired-cert": ["expired", "certificate"],
    "dns": ["dns", "resolve", "nxdomain"],
    "queue-backlog": ["backlog", "consumer", "queue"],
    "image-pull": ["imagepullbackoff", "image", "tag", "3.10"],
}
"""Words any of which, in the answer, name the scenario's cause (written from its YAML's own story)."""


def _events(db: Path) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        rows = con.execute(
            "SELECT body FROM events WHERE session_id=(SELECT id FROM sessions ORDER BY created_at DESC LIMIT 1) ORDER BY seq"
        ).fetchall()
        con.close()
    except sqlite3.Error:
        return []
    return [json.loads(r[0]) for r in rows]


def _at(e: dict[str, Any]) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(str(e["at"]).replace("Z", "+00:00")).timestamp()


def _write_actions() -> set[str]:
    from skills.loader import load_packs

    return {f"{p.name}.{a.name}" for p in load_packs().packs for a in p.actions if a.risk != "read"}


def one_run(args: argparse.Namespace, writes: set[str]) -> dict[str, Any]:
    """One fresh console on a fresh data directory; the numbers of its first turn."""
    home = Path(tempfile.mkdtemp(prefix="lantern-first-run-"))
    env = {**os.environ, "LANTERN_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("KUBECONFIG", None)
    if args.scenario != "bad-deploy":
        import subprocess

        subprocess.run(
            [PY, "-m", "console.cli", "sandbox", "up", "--scenario", args.scenario],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    wall0 = time.time()
    term = Term([PY, "-m", "console.cli", "--model", args.model], env)
    try:
        t_frame = term.read_until(HEADER_MARK, 30)
        first_frame = (t_frame - term.t0) if t_frame else None
        db = home / "lantern.db"
        end = time.monotonic() + args.timeout
        events: list[dict[str, Any]] = []
        answered: set[str] = set()
        while time.monotonic() < end:
            term.drain(1.0)
            events = _events(db)
            if any(e["kind"] == "turn-finished" for e in events):
                break
            for e in events:
                # The bench measures the agent, not a person: a request is denied at once ('d'),
                # and counts as the fix the turn proposed (fix_executable, approval_asked_s).
                if e["kind"] == "approval-requested" and e["request_id"] not in answered:
                    answered.add(e["request_id"])
                    term.drain(0.5)
                    term.write(b"d")
    finally:
        os.killpg(term.proc.pid, signal.SIGTERM)
        term.proc.wait(timeout=30)
        from sandbox.cluster import down

        down(home / "sandbox")  # this run's sandbox only, never another of this user's
    return _score(events, wall0, first_frame, args.scenario, writes)


def _score(
    events: list[dict[str, Any]], wall0: float, first_frame: float | None, scenario: str, writes: set[str]
) -> dict[str, Any]:
    turn = [e for e in events if e.get("turn") == 1]
    started = [e for e in turn if e["kind"] == "tool-call-started"]
    done = [e for e in turn if e["kind"] == "turn-finished"]
    answers = [e for e in turn if e["kind"] == "assistant-message" and not e.get("tool_calls")]
    text = (answers[-1]["text"] if answers else "").lower()
    requested = [e for e in turn if e["kind"] == "approval-requested"]
    offered = next((e["written"] for e in turn if e["kind"] == "fix-offered"), None)
    asked = {e["tool"] for e in requested}
    named = {
        w
        for w in writes
        if re.search(re.escape(w.lower()) + r"\b", text)
        or re.search(r"\b" + re.escape(w.split(".", 1)[1].lower()) + r"\b", text)
    }
    return {
        "first_frame_s": round(first_frame, 2) if first_frame else None,
        "first_tool_s": round(_at(started[0]) - wall0, 1) if started else None,
        "answer_s": round(_at(done[0]) - wall0, 1) if done else None,
        "answer_from_frame_s": round(_at(done[0]) - wall0 - (first_frame or 0), 1) if done else None,
        "steps": sum(1 for e in turn if e["kind"] == "step-started"),
        "refused_steps": len(
            {e["step"] for e in turn if e["kind"] == "tool-call-finished" and e["status"] == "refused"}
        ),
        "tokens": (done[0]["prompt_tokens"] + done[0]["completion_tokens"]) if done else None,
        "cause_right": any(w in text for w in EXPECT.get(scenario, [])),
        "fix_executable": bool(asked & writes or offered),
        "fix_named": sorted(named),
        "answered": bool(done and done[0]["reason"] == "answered"),
        "approval_asked_s": round(_at(requested[0]) - wall0, 1) if requested else None,
        "offered": offered,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--scenario", default="bad-deploy", choices=sorted(EXPECT))
    p.add_argument("--model", default="local")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the first answer")
    p.add_argument("--json", action="store_true", help="one JSON object: the median run's numbers and every run")
    a = p.parse_args()
    writes = _write_actions()
    runs = [one_run(a, writes) for _ in range(max(1, a.runs))]
    keys = ("first_frame_s", "first_tool_s", "answer_s", "answer_from_frame_s", "steps", "refused_steps", "tokens")
    median = {
        k: statistics.median([r[k] for r in runs if r[k] is not None]) if any(r[k] is not None for r in runs) else None
        for k in keys
    }
    median |= {k: sum(bool(r[k]) for r in runs) / len(runs) for k in ("cause_right", "fix_executable", "answered")}
    if a.json:
        print(json.dumps({**median, "scenario": a.scenario, "model": a.model, "runs": runs}))
        return 0
    print(f"first run on {a.scenario} with {a.model}, {len(runs)} run(s)")
    for i, r in enumerate(runs, 1):
        print(f"  run {i}: " + "  ".join(f"{k}={v}" for k, v in r.items()))
    print("  median: " + "  ".join(f"{k}={v}" for k, v in median.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
