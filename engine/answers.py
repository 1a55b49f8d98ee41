"""The final answer's fix, checked: a call of a tool the session can run, or a plain statement that
no available action can make it and what a person must do.

Deterministic and cheap (regular expressions over the answer and the tool names): a face can
offer a fix the answer names as `pack.action(arg=value, …)` with one key, straight into the
approval dialog; a fix in words alone, or a call of an action no pack has, can only be read.

    answer ─▶ calls written in it (`name(…)`) ─▶ known? ─── unknown: "names X, no tool of this session"
           └▶ tool names in it ─────────────────▶ any? ──── none, yet it proposes a fix and does not
                                                            say none can: "a fix without a tool"
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

_CALL = re.compile(r"(?<![\w.\-/])([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)+|[a-z][a-z0-9]*(?:_[a-z0-9]+)+)\s*\(")
"""A call written out: `pack.action(` or a snake_case name with an opening parenthesis."""
_PROPOSES = re.compile(
    r"\b(?:(?:the|a|an|smallest|safe|safest|proposed|recommended|suggested|best|quick|simplest)\s+(?:safe\s+)?fix\b"
    r"|fix\s*(?::|is\b|would\s+be\b)|to\s+fix\b|remediation\b|\b(?:i|we)\s+(?:would\s+)?(?:recommend|suggest|propose)\b"
    r"|\brecommended\s+(?:fix|action|change|step)"
    r"|(?:you|we)\s+(?:should|can|could|need\s+to|must)\s+(?:roll|restart|scale|revert|increase|raise|bump|set|patch|update|change|delete|redeploy|rename|fix)"
    r"|should\s+be\s+(?:rolled|restarted|scaled|reverted|increased|raised|set|patched|updated|changed|redeployed|renamed|fixed))",
    re.IGNORECASE,
)
"""Words that propose a change ("the smallest safe fix is…", "fix: …", "you should roll back…")."""
_NONE_CAN = re.compile(
    r"\bno\s+(?:available\s+|loaded\s+)?(?:tool|action)s?\b|\bnone\s+of\s+the\s+(?:available\s+)?(?:tools|actions)\b"
    r"|\bno\s+(?:tool|action)\s+(?:is\s+)?available\b|\b(?:a\s+)?(?:human|person|operator|engineer)\s+(?:must|needs?\s+to|has\s+to|should)\b"
    r"|\bmanually\b|\bby\s+hand\b|\boutside\s+(?:of\s+)?(?:lantern|this\s+session)\b",
    re.IGNORECASE,
)
"""Words that say no available action makes the fix, or that a person must make it."""


@dataclass
class AnswerCheck:
    """What the answer's fix is, as the engine reads it."""

    named: list[str] = field(default_factory=list)
    """Tools of the session the answer names."""
    unknown: list[str] = field(default_factory=list)
    """Calls written in the answer of tools the session does not have."""
    proposes: bool = False
    """The answer proposes a change."""
    none_can: bool = False
    """The answer says no available action makes it, or that a person must."""

    @property
    def problem(self) -> str:
        """What is wrong with the answer's fix, in a phrase ('' when nothing is)."""
        if self.unknown:
            return f"names {', '.join(self.unknown)}, which is no tool of this session"
        if self.proposes and not self.named and not self.none_can:
            return "proposes a fix without naming a tool that can make it"
        return ""


def check_answer(text: str, known: list[str] | set[str]) -> AnswerCheck:
    """Read an answer's fix against the session's tool names."""
    known = set(known)
    by_action = _by_action(known)
    written = [m.group(1) for m in _CALL.finditer(text)]
    unknown = [w for w in dict.fromkeys(written) if w not in known and len(by_action.get(w, [])) != 1]
    named = [n for n in sorted(known) if _mentions(text, n)]
    named += [
        ns[0] for a, ns in by_action.items() if len(ns) == 1 and ns[0] not in named and "_" in a and _mentions(text, a)
    ]
    return AnswerCheck(
        named=named, unknown=unknown, proposes=bool(_PROPOSES.search(text)), none_can=bool(_NONE_CAN.search(text))
    )


def _by_action(known: set[str]) -> dict[str, list[str]]:
    """Tool names by their action name: an action name stands for its tool when one pack alone has it."""
    out: dict[str, list[str]] = {}
    for name in known:
        out.setdefault(name.rsplit(".", 1)[-1], []).append(name)
    return out


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w.\-]){re.escape(name)}(?![\w\-])", text) is not None


def restate_request(check: AnswerCheck) -> str:
    """What the engine asks of the model's next step, once, when the answer's fix is not one it can run."""
    return (
        f"[Lantern check, not from the user] Your answer {check.problem}. Restate the fix as a call of a tool "
        "this session can run, by its full name with named arguments (call find_tools to look for one), "
        "or say plainly that no available action can make it and what a person must do."
    )


@dataclass(frozen=True)
class ProposedCall:
    """The fix an answer writes out as a call of one of the session's tools, ready to be run."""

    tool: str
    """The tool's full name (an action name alone is resolved when one pack has it)."""
    arguments: dict[str, Any]
    written: str
    """The call as the answer wrote it (what the face shows)."""


def proposed_call(text: str, known: list[str] | set[str]) -> ProposedCall | None:
    """The first call in the answer of a tool the session has, with its keyword arguments read as
    values (`name="x"`, `name: x`, numbers, flags, `{memory: 512Mi}`); None when the answer writes
    no such call or its arguments cannot be read (a positional argument, an unbalanced bracket)."""
    known = set(known)
    by_action = _by_action(known)
    for m in _CALL.finditer(text):
        written = m.group(1)
        if written in known:
            tool = written
        elif len(by_action.get(written, [])) == 1:
            tool = by_action[written][0]
        else:
            continue
        inner = _inside(text, m.end())
        if inner is None:
            return None
        arguments = _keyword_arguments(inner)
        if arguments is None:
            return None
        return ProposedCall(tool=tool, arguments=arguments, written=f"{written}({inner})")
    return None


def _inside(text: str, start: int) -> str | None:
    """The text between the call's parentheses (`start` is just after the opening one), quotes and
    nested brackets respected; None when it never closes."""
    depth, quote = 1, ""
    for i in range(start, min(len(text), start + 4000)):
        ch = text[i]
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return text[start:i].strip()
    return None


def _split_top(inner: str) -> list[str]:
    """`inner` split at the commas outside quotes and brackets."""
    parts: list[str] = []
    cur: list[str] = []
    depth, quote = 0, ""
    for ch in inner:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*[=:]\s*(.*)$", re.DOTALL)


def _keyword_arguments(inner: str) -> dict[str, Any] | None:
    """Keyword arguments as values: Python/JSON literals first, else YAML's reading of a flow value
    (an unquoted name is a string); None when any part is not `key=value`."""
    import yaml

    out: dict[str, Any] = {}
    for part in _split_top(inner):
        m = _KEY.match(part)
        if m is None:
            return None
        key, raw = m.group(1), m.group(2).strip()
        try:
            out[key] = ast.literal_eval(raw)
            continue
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
        try:
            out[key] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            out[key] = raw.strip("\"'")
    return out
