"""The engine's notes to the model, beside the conversation: what this turn already did, and any
request the engine makes of the next step (the answer check's). They ride in one message at the
end of the prompt, marked `Message.note`, so every earlier message (and a model's cached prefix)
stays as it was:

    … history (verbatim, compacted) … │ [context notes] + [done this turn] + [engine request]
                                        └─ one note message, rebuilt every step

A small model asks again for what it already has (the same search, the same listing) when the
results have scrolled up among long outputs; a checklist of its own calls, one line each, is
cheaper than the step it saves.
"""

from __future__ import annotations

import json
from typing import Any

from engine import events as ev
from engine.models.base import Message

DONE_HEAD = "[Lantern, not from the user] Calls already made this turn; their results are above, and asking again returns nothing new:"
RESULT_CHARS = 60
"""Characters of a call's one-line result in the checklist."""
ARGS_CHARS = 80


def call_text(name: str, arguments: dict[str, Any], max_chars: int = ARGS_CHARS) -> str:
    """`name(k=v, …)`, as the model and the faces write a call; long arguments shortened."""
    parts = [
        f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)}"
        for k, v in arguments.items()
    ]
    line = f"{name}({', '.join(parts)})"
    return line if len(line) <= max_chars else line[: max_chars - 2] + "…)"


def done_this_turn(events: list[Any], turn: int, known: set[str]) -> list[str]:
    """One line per finished call of `turn` to a tool the session has: `tool(args) → status: result`.
    The engine's own `findings` summary and calls of tools that do not exist are left out (naming
    an invented tool again would only teach it)."""
    asked: dict[str, dict[str, Any]] = {}
    lines: list[str] = []
    for e in events:
        if getattr(e, "turn", None) != turn:
            continue
        if isinstance(e, ev.AssistantMessage):
            for c in e.tool_calls:
                asked[str(c.get("id"))] = dict(c.get("arguments") or {})
        elif isinstance(e, ev.ToolCallFinished) and e.tool in known:
            result = " ".join((e.summary or e.output or "").split())
            if len(result) > RESULT_CHARS:
                result = result[: RESULT_CHARS - 1] + "…"
            lines.append(
                f"- {call_text(e.tool, asked.get(e.call_id, {}))} → {e.status}" + (f": {result}" if result else "")
            )
    return lines


def with_note(messages: list[Message], text: str) -> list[Message]:
    """`messages` with `text` in the closing note: added to the note already there (the context
    builder's, rebuilt every step), else a note of its own at the end."""
    if not text:
        return messages
    if messages and messages[-1].note:
        last = messages[-1]
        return [*messages[:-1], last.model_copy(update={"content": f"{last.content}\n\n{text}"})]
    return [*messages, Message(role="user", content=text, note=True)]


FIX_TOOLS_SHOWN = 6
"""Write actions named in the answer step's note (the most relevant first, as retrieval ranked them)."""


def fix_tools_note(writes: list[Any], known: dict[str, str] | None = None) -> str:
    """For a step that must answer (no tools offered): the write actions the session can run that
    retrieval ranks for this turn, with their parameters, so the fix can be named as one call
    (`pack.action(arg=value, …)`, which a face offers with one key); '' when there are none."""
    if not writes:
        return ""
    lines = []
    for t in writes:
        props = (t.parameters or {}).get("properties") or {}
        required = set((t.parameters or {}).get("required") or [])
        params = ", ".join(f"{k}=…" if k in required else f"{k}?=…" for k in props)
        lines.append(f"- {t.name}({params}): {' '.join((t.description or '').split())[:100]}")
    first = writes[0]
    needed = [
        k
        for k in ((first.parameters or {}).get("properties") or {})
        if k in set((first.parameters or {}).get("required") or [])
    ]
    # A small model copies the example: the values the findings already give (the object the
    # strongest finding names, the session's namespace) are written in it.
    props = (first.parameters or {}).get("properties") or {}
    shown = needed + [k for k in (known or {}) if k in props and k not in needed]
    example = (
        f"{first.name}({', '.join(f'{k}={(known or {})[k]!r}' if k in (known or {}) else f'{k}=…' for k in shown)})"
    )
    return (
        "\n\n[Lantern, not from the user] Answer now from the evidence above: first the cause in one "
        "sentence with the line that shows it; then, if a change would fix it, name it as one call of "
        f"these actions by its full name with the values from the evidence, like {example} (the "
        "console offers it for approval); if none of them can make it, say so and what a person must "
        "do:\n" + "\n".join(lines)
    )
