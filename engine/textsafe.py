"""Text that is safe to store, hash and show: no lone surrogates, no terminal control sequences.

Tool output and model text are untrusted. A lone surrogate (`\\ud800`) cannot be encoded as UTF-8,
so it would crash the audit's row hash or the store after a tool already ran; an escape sequence
(`ESC[2J`, an OSC title, a carriage return that rewrites a line) would act on the terminal of
whoever reads it in the plain face or a pipe. `unicode_safe` is for values that are executed
(model-written arguments keep their control characters, only unencodable code points go);
`display_safe` is for everything a person reads: escape sequences are dropped and every other
control character is shown as its visible symbol (`␛`, `␇`).
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATES = re.compile("[\ud800-\udfff]")
# CSI (ESC [ … final), OSC (ESC ] … BEL or ST), DCS/SOS/PM/APC strings, and two-character escapes.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x9d[^\x07\x9c]*[\x07\x9c]?"
    r"|\x1b[ -/]*[0-~]"
)
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _visible(m: re.Match[str]) -> str:
    code = ord(m.group())
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ … ␟
    if code == 0x7F:
        return "\u2421"  # ␡
    return "\ufffd"  # C1 controls have no symbol of their own


def unicode_safe(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD (encodable as UTF-8)."""
    return _SURROGATES.sub("\ufffd", text) if _SURROGATES.search(text) else text


def display_safe(text: str) -> str:
    """`text` as a person may see it: UTF-8 safe, escape sequences removed, CR LF as LF, a lone
    CR as a line break, and every other control character (not tab or newline) made visible."""
    if not _UNSAFE.search(text):
        return text
    text = unicode_safe(text)
    text = _ESCAPES.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROLS.sub(_visible, text)


def safe_tree(value: Any, clean: Any = display_safe) -> Any:
    """Apply `clean` to every string (keys too) in nested dicts, lists and tuples."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {safe_tree(k, clean): safe_tree(v, clean) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(safe_tree(v, clean) for v in value)
    return value
