"""Sessions become fixtures: a finished session written as a replay case, and tools that replay it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from engine.jsonfile import load_json
from engine.tools import Tool, ToolOutput


def _canon(args: dict[str, Any]) -> str:
    return json.dumps(args, sort_keys=True, separators=(",", ":"), default=str)


def _scrub(text: str) -> str:
    from engine.guard.scrub import default_scrubber

    return default_scrubber().clean(text)[0]


def export_session(events: list[Any], out_dir: Path) -> Path:
    """Write `events` as a case folder (metadata.json + tool_cache.json) and return its path."""
    from evals.cloudops import call_step, parse_answers

    sid = events[0].session_id if events else "empty"
    users = [e.text for e in events if e.kind == "user-message"]
    started = {e.call_id: e for e in events if e.kind == "tool-call-started"}
    cache: dict[str, str] = {}
    path: list[str] = []
    for e in events:
        if e.kind != "tool-call-finished" or e.call_id not in started:
            continue
        args = dict(started[e.call_id].arguments)
        cache[f"{e.tool}:{_canon(args)}"] = _scrub(e.output)
        path.append(call_step(e.tool, args))
    finals = [e.text for e in events if e.kind == "assistant-message" and e.text and not e.tool_calls]
    answers = parse_answers(finals[-1]) if finals else []
    truth = answers[0] if answers else {}
    meta = {
        "namespace": next((e.namespace for e in events if e.kind == "session-started" and e.namespace), "default"),
        "query": _scrub(users[0]) if users else "",
        "result": {
            "fault_taxonomy": truth.get("taxonomy", ""),
            "fault_object": truth.get("object", ""),
            "root_cause": truth.get("root_cause", ""),
        },
        "process": {"path1": path},
        "source": {"session_id": sid, "final_answer": _scrub(finals[-1]) if finals else ""},
    }
    case = out_dir / "sessions" / sid
    case.mkdir(parents=True, exist_ok=True)
    (case / "metadata.json").write_text(json.dumps(meta, indent=1))
    (case / "tool_cache.json").write_text(json.dumps(cache, indent=1))
    return case


def session_replay_tools(case_dir: Path) -> list[Tool]:
    """Tools that answer from a case's tool_cache.json, named and shaped as they were recorded."""
    cache = load_json(Path(case_dir) / "tool_cache.json", {}, expect=dict)
    by_tool: dict[str, dict[str, str]] = {}
    params: dict[str, dict[str, Any]] = {}
    for key, out in cache.items():
        m = re.match(r"^([\w.\-]+):(\{.*\})$", key, re.S)
        if not m:
            continue
        name, raw = m.groups()
        try:
            args = json.loads(raw)
        except json.JSONDecodeError:
            continue
        by_tool.setdefault(name, {})[_canon(args)] = out if isinstance(out, str) else json.dumps(out)
        props = params.setdefault(name, {})
        for k, v in args.items():
            props.setdefault(k, {"type": {bool: "boolean", int: "integer", float: "number"}.get(type(v), "string")})

    def make(name: str) -> Tool:
        answers = by_tool[name]

        async def handler(args: dict[str, Any]) -> ToolOutput:
            hit = answers.get(_canon(args))
            if hit is None:
                return ToolOutput(
                    text=f"Error from server (NotFound): no recorded answer for {name} with {_canon(args)}",
                    status="error",
                )
            return ToolOutput(text=hit)

        return Tool(
            name=name,
            description=f"Replay of {name} as recorded",
            parameters={"type": "object", "properties": params[name]},
            handler=handler,
            pack="replay",
        )

    return [make(n) for n in sorted(by_tool)]
