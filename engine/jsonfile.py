"""Reading a JSON file that may be empty, cut off, binary or of the wrong shape.

A recorded case (or any file a read depends on) is evidence, not code: a file that cannot be read
is absent, with a notice that says which and why, and never the crash of the case or the turn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def load_json(
    path: Path | str, default: T, notices: list[str] | None = None, *, expect: type | tuple[type, ...] | None = None
) -> Any | T:
    """The parsed content of `path`, or `default` when it is missing, empty, not UTF-8, not JSON
    or not of the type `expect`; each of those but a missing file adds a line to `notices`."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return default
    except OSError as exc:
        return _absent(notices, p, f"cannot be read ({type(exc).__name__})", default)
    if not raw.strip():
        return _absent(notices, p, "is empty", default)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return _absent(notices, p, "is not UTF-8 text", default)
    except ValueError as exc:
        return _absent(notices, p, f"is not valid JSON ({str(exc).split(':')[0]})", default)
    if expect is not None and not isinstance(data, expect):
        return _absent(notices, p, f"holds a {type(data).__name__}, not the expected shape", default)
    return data


def _absent(notices: list[str] | None, path: Path, why: str, default: T) -> T:
    if notices is not None:
        notices.append(f"{path.name} {why}: read as absent")
    return default
