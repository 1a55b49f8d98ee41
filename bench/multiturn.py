"""Multi-turn tool selection: needed-tool recall per turn over labelled on-call conversations.

Each conversation (data/multiturn.jsonl) is a list of turns: the user's message, the tools
needed to answer it, and a short text of what those tools returned. Replaying turn i, the
selector sees turns < i as history (messages, the calls made, their outputs) and, with sticky
tools on, those calls as recent use. Tools come from the real packs (skills.loader +
skills.registry) when they load, else from data/catalog.jsonl, a stand-in with the same
action names.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import DATA
from engine.retrieval.rewrite import Exchange
from engine.tools import Tool, ToolOutput


class SetError(Exception):
    """The labelled set is malformed (the message names the file, line and field)."""


def load_conversations(path: str | Path = DATA / "multiturn.jsonl") -> list[dict[str, Any]]:
    """The labelled conversations, validated."""
    out = []
    p = Path(path)
    if not p.is_file():
        raise SetError(f"{p}: no such file")
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            conv = json.loads(line)
        except ValueError as exc:
            raise SetError(f"{p}:{n}: not JSON ({exc})") from exc
        turns = conv.get("turns")
        if not isinstance(turns, list) or not 2 <= len(turns) <= 6:
            raise SetError(f"{p}:{n}: 'turns' must be a list of 2 to 6 turns")
        for j, t in enumerate(turns):
            if not t.get("user") or not isinstance(t.get("needed"), list) or not t["needed"]:
                raise SetError(f"{p}:{n}: turn {j + 1} needs 'user' text and a non-empty 'needed' list")
        out.append(conv)
    return out


def catalog_tools(path: str | Path = DATA / "catalog.jsonl") -> list[Tool]:
    """The stand-in catalogue as Tools (their handlers refuse: they describe, they do not act)."""
    tools = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)

        async def handler(args: dict[str, Any], _n: str = row["name"]) -> ToolOutput:
            return ToolOutput(text=f"{_n} is a catalogue entry for evaluation and cannot run", status="error")

        tools.append(
            Tool(
                name=row["name"],
                description=row["description"],
                parameters={"type": "object", "properties": {p: {"type": "string"} for p in row.get("params", [])}},
                handler=handler,
                risk=row.get("risk", "read"),
                pack=row["name"].split(".")[0],
                keywords=list(row.get("keywords", [])),
            )
        )
    return tools


def pack_tools_or_catalog() -> tuple[list[Tool], str]:
    """(tools, source): the real packs' actions when they load, else the stand-in catalogue."""
    try:
        from skills.loader import load_packs
        from skills.registry import pack_tools

        res = load_packs(discover_mcp=False)
        packs = getattr(res, "packs", res)
        tools = pack_tools(list(packs))
        if tools:
            return tools, f"packs ({len(packs)} packs)"
    except Exception:  # noqa: BLE001 - no packs yet, or a loader error: the catalogue stands in
        pass
    return catalog_tools(), "catalog.jsonl (stand-in)"


@dataclass
class TurnResult:
    """One replayed turn."""

    conv: str
    turn: int
    needed: list[str]
    loaded: list[str]
    schema_tokens: int

    @property
    def recall(self) -> float:
        """Share of the needed tools that were offered."""
        return sum(1 for n in self.needed if n in self.loaded) / len(self.needed)


def replay(selector: Any, conversations: list[dict[str, Any]], *, sticky: bool = True) -> list[TurnResult]:
    """Replay every conversation through `selector.plan`, turn by turn."""
    out = []
    for conv in conversations:
        selector.reset()
        history: list[Exchange] = []
        used: dict[str, int] = {}
        for i, t in enumerate(conv["turns"], start=1):
            sel = selector.plan(t["user"], history, turn=i, used=used if sticky else {})
            out.append(TurnResult(conv.get("id", "?"), i, list(t["needed"]), sel.names, sel.schema_tokens))
            history.append(Exchange("user", t["user"], i))
            for name in t["needed"]:
                history.append(Exchange("call", json.dumps({"name": name, "arguments": {}}), i))
                used[name] = i
            if t.get("observed"):
                history.append(Exchange("tool", t["observed"], i))
    return out


def summarize(results: list[TurnResult]) -> dict[str, float]:
    """Mean per-turn recall, share of turns with every needed tool, tools and schema tokens loaded."""
    return {
        "recall": statistics.mean(r.recall for r in results),
        "complete": statistics.mean(1.0 if r.recall == 1.0 else 0.0 for r in results),
        "tools": statistics.mean(len(r.loaded) for r in results),
        "schema_tokens": statistics.mean(r.schema_tokens for r in results),
        "turns": len(results),
    }
