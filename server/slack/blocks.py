"""Block Kit: the few blocks the Slack face sends, built to fit, and a validator that checks every
payload against Slack's documented limits before it is sent.

Builders cut what is too long and say so in the text itself ("… cut: N more lines; the full one is
…"), so nothing is dropped silently; `problems(payload)` is the independent check (a builder bug
shows up as a problem, and the face then sends a plain-text fallback that names it instead).

Limits (docs.slack.dev, Block Kit reference): 50 blocks a message; a section's text 3,000
characters, its fields 10 of 2,000; a header's plain text 150; a context's elements 1 to 10; an
actions block's elements 1 to 25; a button's text 75, value 2,000, url 3,000, action_id 255 and
style primary|danger; a confirm dialog's title 100, text 300, buttons 30; block_id 255 and unique in
the message; a message's top-level `text` (the notification fallback) is kept under 4,000.
"""

from __future__ import annotations

from typing import Any

MAX_BLOCKS = 50
SECTION_TEXT = 3000
FIELD_TEXT = 2000
MAX_FIELDS = 10
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
BUTTON_URL = 3000
ACTION_ID = 255
BLOCK_ID = 255
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
CONFIRM_BUTTON = 30
MESSAGE_TEXT = 4000
"""The notification text beside the blocks (Slack truncates at 40,000 and advises under 4,000)."""

TEXT_TYPES = ("plain_text", "mrkdwn")


class BlockKitError(ValueError):
    """A payload that breaks one of Slack's limits; the message lists what, where."""


# -- text -------------------------------------------------------------------------------------------


def esc(text: str) -> str:
    """Text as mrkdwn shows it literally: Slack's three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int, more: str = "") -> str:
    """`text` cut to at most `limit` characters, ending with "…" and `more` (a note) when cut."""
    if len(text) <= limit:
        return text
    tail = "…" + (f" {more}" if more else "")
    return text[: max(0, limit - len(tail))] + tail


def plain(text: str, limit: int = SECTION_TEXT) -> dict[str, Any]:
    """A plain_text object (never empty: Slack refuses an empty text)."""
    return {"type": "plain_text", "text": clip(text or " ", limit), "emoji": True}


def md(text: str, limit: int = SECTION_TEXT) -> dict[str, Any]:
    """A mrkdwn text object."""
    return {"type": "mrkdwn", "text": clip(text or " ", limit)}


def code(text: str, limit: int, where: str) -> str:
    """A fenced block of `text` (escaped) that fits `limit` characters; a cut one ends with a
    note of how many lines were left out and `where` the whole of it is."""
    body = esc(text.rstrip("\n")).replace("```", "`\u200b``")
    whole = f"```{body}```"
    if len(whole) <= limit:
        return whole
    lines = body.splitlines()
    kept: list[str] = []
    size = 0
    for n, line in enumerate(lines):
        note = f"\n_… cut: {len(lines) - n:,} more lines of {len(lines):,}; the full one is {where}_"
        if size + len(line) + 1 + 6 + len(note) > limit:
            return clip(f"```{chr(10).join(kept)}```" + note, limit)
        kept.append(line)
        size += len(line) + 1
    return clip(whole, limit)  # one huge line


# -- blocks -----------------------------------------------------------------------------------------


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": plain(text, HEADER_TEXT)}


def section(text: str, *, fields: list[str] | None = None, block_id: str = "") -> dict[str, Any]:
    """A mrkdwn section (text cut to 3,000; at most 10 fields of 2,000)."""
    b: dict[str, Any] = {"type": "section", "text": md(text)}
    if fields:
        b["fields"] = [md(f, FIELD_TEXT) for f in fields[:MAX_FIELDS]]
    if block_id:
        b["block_id"] = block_id[:BLOCK_ID]
    return b


def context(*texts: str, block_id: str = "") -> dict[str, Any]:
    """A context block of up to 10 mrkdwn elements (the rest joined into the last one)."""
    items = [t for t in texts if t] or [" "]
    if len(items) > CONTEXT_ELEMENTS:
        items = [*items[: CONTEXT_ELEMENTS - 1], " · ".join(items[CONTEXT_ELEMENTS - 1 :])]
    b: dict[str, Any] = {"type": "context", "elements": [md(t) for t in items]}
    if block_id:
        b["block_id"] = block_id[:BLOCK_ID]
    return b


def divider() -> dict[str, Any]:
    return {"type": "divider"}


def button(text: str, action_id: str, value: str, style: str = "", confirm: dict[str, Any] | None = None) -> dict:
    """A button; the value must fit (it carries the binding, so it is never cut: check it)."""
    b: dict[str, Any] = {"type": "button", "text": plain(text, BUTTON_TEXT), "action_id": action_id, "value": value}
    if style:
        b["style"] = style
    if confirm:
        b["confirm"] = confirm
    return b


def confirm_dialog(title: str, text: str, yes: str, no: str = "Cancel") -> dict[str, Any]:
    return {
        "title": plain(title, CONFIRM_TITLE),
        "text": md(text, CONFIRM_TEXT),
        "confirm": plain(yes, CONFIRM_BUTTON),
        "deny": plain(no, CONFIRM_BUTTON),
    }


def actions(*elements: dict[str, Any], block_id: str = "") -> dict[str, Any]:
    b: dict[str, Any] = {"type": "actions", "elements": list(elements)}
    if block_id:
        b["block_id"] = block_id[:BLOCK_ID]
    return b


def fit(blocks: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """At most 50 blocks: the last kept one says how many were left out and where they are."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    left = len(blocks) - (MAX_BLOCKS - 1)
    return [*blocks[: MAX_BLOCKS - 1], context(f"_… {left} more blocks left out; the whole of it is {where}_")]


# -- validation ---------------------------------------------------------------------------------


def problems(payload: dict[str, Any] | list[dict[str, Any]]) -> list[str]:
    """Every way `payload` (a message: {text, blocks}, or a list of blocks) breaks Slack's limits."""
    out: list[str] = []
    if isinstance(payload, dict):
        text = payload.get("text")
        if text is not None and (not isinstance(text, str) or len(text) > MESSAGE_TEXT):
            out.append(f"text: {_size(text)} (at most {MESSAGE_TEXT:,})")
        blocks = payload.get("blocks") or []
    else:
        blocks = payload
    if not isinstance(blocks, list):
        return [*out, "blocks: not a list"]
    if len(blocks) > MAX_BLOCKS:
        out.append(f"blocks: {len(blocks)} blocks (at most {MAX_BLOCKS})")
    ids: set[str] = set()
    for i, b in enumerate(blocks):
        where = f"blocks[{i}]"
        if not isinstance(b, dict):
            out.append(f"{where}: not an object")
            continue
        bid = b.get("block_id")
        if bid is not None:
            out += _string(f"{where}.block_id", bid, BLOCK_ID)
            if bid in ids:
                out.append(f"{where}.block_id: {bid!r} is used twice in the message")
            ids.add(bid)
        check = _BLOCKS.get(str(b.get("type")))
        out += check(where, b) if check else [f"{where}.type: {b.get('type')!r} is not a block this face sends"]
    return out


def check(payload: dict[str, Any] | list[dict[str, Any]]) -> None:
    """Raise BlockKitError naming every problem of `payload` (nothing when it is fine)."""
    found = problems(payload)
    if found:
        raise BlockKitError("; ".join(found))


def _size(value: Any) -> str:
    return f"{len(value):,} characters" if isinstance(value, str) else f"not a string ({type(value).__name__})"


def _string(where: str, value: Any, limit: int) -> list[str]:
    if not isinstance(value, str) or not value or len(value) > limit:
        return [f"{where}: {_size(value) if value else 'empty'} (1 to {limit:,})"]
    return []


def _text(where: str, t: Any, limit: int, kinds: tuple[str, ...] = TEXT_TYPES) -> list[str]:
    if not isinstance(t, dict):
        return [f"{where}: not a text object"]
    if t.get("type") not in kinds:
        return [f"{where}.type: {t.get('type')!r} (one of {', '.join(kinds)})"]
    return _string(f"{where}.text", t.get("text"), limit)


def _section(where: str, b: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if "text" not in b and "fields" not in b:
        out.append(f"{where}: a section needs text or fields")
    if "text" in b:
        out += _text(f"{where}.text", b["text"], SECTION_TEXT)
    fields = b.get("fields")
    if fields is not None:
        if not isinstance(fields, list) or not 1 <= len(fields) <= MAX_FIELDS:
            out.append(f"{where}.fields: 1 to {MAX_FIELDS} fields")
        else:
            for j, f in enumerate(fields):
                out += _text(f"{where}.fields[{j}]", f, FIELD_TEXT)
    if "accessory" in b:
        out += _element(f"{where}.accessory", b["accessory"])
    return out


def _header(where: str, b: dict[str, Any]) -> list[str]:
    return _text(f"{where}.text", b.get("text"), HEADER_TEXT, ("plain_text",))


def _context(where: str, b: dict[str, Any]) -> list[str]:
    els = b.get("elements")
    if not isinstance(els, list) or not 1 <= len(els) <= CONTEXT_ELEMENTS:
        return [f"{where}.elements: {len(els) if isinstance(els, list) else 'no'} elements (1 to {CONTEXT_ELEMENTS})"]
    out: list[str] = []
    for j, e in enumerate(els):
        if isinstance(e, dict) and e.get("type") == "image":
            out += _string(f"{where}.elements[{j}].image_url", e.get("image_url"), BUTTON_URL)
        else:
            out += _text(f"{where}.elements[{j}]", e, SECTION_TEXT)
    return out


def _actions(where: str, b: dict[str, Any]) -> list[str]:
    els = b.get("elements")
    if not isinstance(els, list) or not 1 <= len(els) <= ACTIONS_ELEMENTS:
        return [f"{where}.elements: {len(els) if isinstance(els, list) else 'no'} elements (1 to {ACTIONS_ELEMENTS})"]
    out: list[str] = []
    seen: set[str] = set()
    for j, e in enumerate(els):
        out += _element(f"{where}.elements[{j}]", e)
        aid = e.get("action_id") if isinstance(e, dict) else None
        if aid in seen:
            out.append(f"{where}.elements[{j}].action_id: {aid!r} is used twice in the block")
        seen.add(aid)
    return out


def _element(where: str, e: Any) -> list[str]:
    if not isinstance(e, dict) or e.get("type") != "button":
        return [f"{where}: only buttons are sent by this face"]
    out = _text(f"{where}.text", e.get("text"), BUTTON_TEXT, ("plain_text",))
    out += _string(f"{where}.action_id", e.get("action_id"), ACTION_ID)
    if "value" in e:
        out += _string(f"{where}.value", e["value"], BUTTON_VALUE)
    if "url" in e:
        out += _string(f"{where}.url", e["url"], BUTTON_URL)
    if "style" in e and e["style"] not in ("primary", "danger"):
        out.append(f"{where}.style: {e['style']!r} (primary or danger)")
    c = e.get("confirm")
    if c is not None:
        out += _text(f"{where}.confirm.title", c.get("title"), CONFIRM_TITLE, ("plain_text",))
        out += _text(f"{where}.confirm.text", c.get("text"), CONFIRM_TEXT)
        out += _text(f"{where}.confirm.confirm", c.get("confirm"), CONFIRM_BUTTON, ("plain_text",))
        out += _text(f"{where}.confirm.deny", c.get("deny"), CONFIRM_BUTTON, ("plain_text",))
    return out


_BLOCKS = {
    "section": _section,
    "header": _header,
    "context": _context,
    "actions": _actions,
    "divider": lambda where, b: [],
}
