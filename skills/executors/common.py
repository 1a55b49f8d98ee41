"""What every executor shares: templates, output projection, compact text, credential scrubbing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from engine.tools import ToolOutput

CredentialResolver = Callable[[str], str]
"""name → secret value; raises CredentialMissing when it is not set."""

_WHOLE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_ANY = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_TEXT = 12_000
"""Characters of rendered text an executor returns; the guard trims further."""


class ExecutorError(Exception):
    """An executor could not run the action; the message is safe to show (no secret values)."""


def fill(template: Any, args: dict[str, Any]) -> Any:
    """Fill `{param}` placeholders; a whole-string placeholder keeps the value's type; None when missing."""
    if isinstance(template, str):
        m = _WHOLE.match(template)
        if m:
            return args.get(m.group(1))
        missing = [n for n in _ANY.findall(template) if args.get(n) is None]
        if missing:
            return None
        return _ANY.sub(lambda mm: _scalar(args[mm.group(1)]), template)
    if isinstance(template, dict):
        out = {k: fill(v, args) for k, v in template.items()}
        return {k: v for k, v in out.items() if v is not None}
    if isinstance(template, list):
        return [v for v in (fill(x, args) for x in template) if v is not None]
    return template


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(_scalar(x) for x in v)
    return str(v)


def dig(data: Any, path: str | None) -> Any:
    """Value at a dotted path ('a.b.0.c'); None when absent."""
    if not path:
        return data
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


def _tokens(path: str) -> list[str]:
    out: list[str] = []
    for part in path.split("."):
        while part.endswith("[]"):
            base = part[:-2]
            if base:
                out.append(base)
            out.append("[]")
            part = ""
        if part:
            out.append(part)
    return out


def project(data: Any, paths: list[str]) -> Any:
    """Keep only the declared field paths ('items[].metadata.name'); lists are walked implicitly."""
    if not paths or data is None:
        return data
    tree: dict[str, Any] = {}
    for p in paths:
        node = tree
        for t in _tokens(p):
            node = node.setdefault(t, {})
    return _apply(data, tree)


def _apply(value: Any, tree: dict[str, Any]) -> Any:
    if not tree:
        return value
    if isinstance(value, list):
        sub = tree.get("[]", tree)
        return [_apply(v, sub) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, sub in tree.items():
            if k != "[]" and k in value:
                out[k] = _apply(value[k], sub)
        return out
    return value


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                out.update(_flatten(v, key))
            else:
                out[key] = v
    else:
        out[prefix or "value"] = d
    return out


def _cell(v: Any) -> str:
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"), default=str, ensure_ascii=False)
    s = _scalar(v) if v is not None else "-"
    return s if s and " " not in s else json.dumps(s, ensure_ascii=False)


def _row(d: dict[str, Any]) -> str:
    return " ".join(f"{k}={_cell(v)}" for k, v in _flatten(d).items())


def _block(data: Any, indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            if (
                isinstance(v, dict)
                and v
                and all(not isinstance(x, (dict, list)) for x in v.values())
                and len(_row(v)) <= 160
            ):
                lines.append(f"{pad}{k}: {_row(v)}")
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                lines.append(f"{pad}{k} ({len(v)}):")
                lines += [f"{pad}  - {_row(x)}" for x in v]
            elif isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v):
                joined = ", ".join(_scalar(x) for x in v) if v else "[]"
                if len(joined) <= 160:
                    lines.append(f"{pad}{k}: {joined}")
                else:
                    lines.append(f"{pad}{k} ({len(v)}):")
                    lines += [f"{pad}  - {_scalar(x)}" for x in v]
            elif isinstance(v, (dict, list)):
                lines.append(f"{pad}{k}:")
                lines += _block(v, indent + 1)
            else:
                text = "-" if v is None else _scalar(v)
                if "\n" in text:
                    lines.append(f"{pad}{k}: |")
                    lines += [f"{pad}  {ln}" for ln in text.splitlines()]
                else:
                    lines.append(f"{pad}{k}: {text}")
    elif isinstance(data, list):
        for x in data:
            if isinstance(x, dict):
                lines.append(f"{pad}- {_row(x)}")
            elif isinstance(x, list):
                lines.append(f"{pad}-")
                lines += _block(x, indent + 1)
            else:
                lines.append(f"{pad}- {_scalar(x)}")
    else:
        lines.append(f"{pad}{_scalar(data)}")
    return lines


def render(data: Any) -> str:
    """Compact text for the model: list items one per line (key=value), nested lists as rows."""
    if data is None:
        return "(no data)"
    if isinstance(data, str):
        return data
    rows = None
    header = ""
    if isinstance(data, list):
        rows = data
    elif isinstance(data, dict):
        lists = [k for k, v in data.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        if len(lists) == 1 and all(not isinstance(v, (list, dict)) for k, v in data.items() if k != lists[0]):
            rows = data[lists[0]]
            rest = {k: v for k, v in data.items() if k != lists[0]}
            header = " ".join(f"{k}={_cell(v)}" for k, v in rest.items())
    if rows is not None and all(isinstance(r, dict) for r in rows):
        lines = [header] if header else []
        lines.append(f"{len(rows)} item{'s' if len(rows) != 1 else ''}")
        lines += ["- " + _row(r) for r in rows]
        return "\n".join(lines)
    return "\n".join(_block(data, 0))


def scrub(value: Any, secrets: dict[str, str]) -> Any:
    """Replace any secret value (name → value) in strings with `[credential NAME]`."""
    if not secrets:
        return value
    if isinstance(value, str):
        for name, secret in secrets.items():
            if secret and len(secret) >= 4:
                value = value.replace(secret, f"[credential {name}]")
        return value
    if isinstance(value, dict):
        return {scrub(k, secrets): scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    return value


def finish(
    action: Any,
    data: Any,
    *,
    text: str | None = None,
    partial: str | None = None,
    status: str = "ok",
    secrets: dict[str, str] | None = None,
) -> ToolOutput:
    """Project the data, render compact text, mark partial results, scrub secrets."""
    projected = project(data, action.output) if action is not None else data
    body = text if text is not None else render(projected)
    if len(body) > MAX_TEXT:
        body = body[:MAX_TEXT] + f"\n… [{len(body) - MAX_TEXT} more characters cut by the executor]"
    if partial:
        body = f"{partial}\n{body}"
        if status == "ok":
            status = "partial"
    return ToolOutput(
        text=scrub(body, secrets or {}), data=scrub(projected, secrets or {}), partial=partial, status=status
    )


def error(
    message: str, secrets: dict[str, str] | None = None, *, status_code: int | None = None, failure: str | None = None
) -> ToolOutput:
    """An error result whose text is safe to show; `status_code` (an HTTP answer's) or `failure`
    (timeout, unavailable, client) lets the dispatcher classify it (4xx: the arguments, 429: wait,
    5xx, timeouts and refused connections: the backend, counted by its breaker)."""
    data: dict[str, Any] | None = {"status_code": status_code} if status_code is not None else None
    if failure is not None:
        data = {**(data or {}), "failure": failure}
    return ToolOutput(text=scrub(message, secrets or {}), data=data, partial=None, status="error")
