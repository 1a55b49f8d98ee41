"""Load skill packs from YAML: every error names the file, the line and the field; good packs still load."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from skills.spec import Pack, _ActionError

BUILTIN_DIR = Path(__file__).parent / "packs"
"""The packs shipped with Lantern."""


@dataclass
class PackError:
    """One pack that failed to load: where and why."""

    file: str
    """The YAML file."""
    line: int | None
    """1-based line of the offending node, when known."""
    field: str
    """Dotted path of the field, e.g. actions[2].risk ('' for the whole file)."""
    message: str
    """What is wrong."""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        what = f"field '{self.field}': " if self.field else ""
        return f"{where}: {what}{self.message}"


@dataclass
class LoadResult:
    """Packs that loaded and errors for those that did not."""

    packs: list[Pack] = field(default_factory=list)
    """Valid packs, in load order."""
    errors: list[PackError] = field(default_factory=list)
    """One error per broken pack."""

    def pack(self, name: str) -> Pack | None:
        """The loaded pack called `name`."""
        return next((p for p in self.packs if p.name == name), None)


def _node_at(node: yaml.Node, loc: tuple[Any, ...]) -> yaml.Node:
    """The deepest YAML node along a pydantic error location (for its line number)."""
    cur = node
    for part in loc:
        if isinstance(cur, yaml.MappingNode):
            nxt = None
            for k, v in cur.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    nxt = v
                    break
            if nxt is None:
                return cur
            cur = nxt
        elif isinstance(cur, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(cur.value):
            cur = cur.value[part]
        else:
            return cur
    return cur


def _key_line(node: yaml.Node, loc: tuple[Any, ...]) -> int:
    """Line of the key that names the last part of loc (more useful than the value's line)."""
    if loc:
        parent = _node_at(node, loc[:-1])
        if isinstance(parent, yaml.MappingNode):
            for k, _v in parent.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(loc[-1]):
                    return k.start_mark.line + 1
    return _node_at(node, loc).start_mark.line + 1


def _fmt_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic puts union-branch and validator tags in the location; they are not YAML keys
    return tuple(
        p
        for p in loc
        if not (isinstance(p, str) and (p.startswith("function-") or p in ("str", "list[str]", "literal[...]")))
    )


def _apply_env(pack: Pack) -> None:
    """LANTERN_<PACK>_URL overrides a pack's base URL (e.g. LANTERN_PROMETHEUS_URL)."""
    var = "LANTERN_" + re.sub(r"[^A-Z0-9]", "_", pack.name.upper()) + "_URL"
    if os.environ.get(var) and pack.connection.base_url is not None:
        pack.connection.base_url = os.environ[var]


def load_pack_file(path: Path) -> tuple[Pack | None, PackError | None]:
    """Load one pack file; returns the pack or the first error (with its line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, PackError(str(path), None, "", f"cannot read: {exc}")
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return None, PackError(
            str(path), mark.line + 1 if mark else None, "", f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
        )
    if not isinstance(data, dict) or node is None:
        return None, PackError(
            str(path), 1, "", "a pack must be a mapping with name, description, connection and actions"
        )
    try:
        pack = Pack.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _clean_loc(tuple(err["loc"]))
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, _ActionError):
            loc = loc + ("actions", inner.index, inner.field)
            msg = str(inner)
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown field {loc[-1]!r}" if loc else msg
            elif err["type"] == "missing":
                msg = f"missing required field {loc[-1]!r}" if loc else msg
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        return None, PackError(str(path), _key_line(node, loc), _fmt_loc(loc), msg + more)
    pack._source = str(path)
    _apply_env(pack)
    return pack, None


def pack_files(dirs: list[Path]) -> list[Path]:
    """Every *.yaml / *.yml file in the given directories, sorted, directories in order."""
    files: list[Path] = []
    for d in dirs:
        if d.is_file():
            files.append(d)
        elif d.is_dir():
            files += sorted(p for p in d.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return files


def default_dirs(extra: list[str] | None = None) -> list[Path]:
    """The built-in packs, then the user's extra directories (from config skills_dirs)."""
    dirs = [BUILTIN_DIR]
    for d in extra or []:
        dirs.append(Path(os.path.expanduser(d)))
    return dirs


def load_packs(dirs: list[Path] | None = None, *, discover_mcp: bool = True) -> LoadResult:
    """Load every pack in `dirs` (default: the built-in packs); a broken pack yields one error."""
    result = LoadResult()
    names: dict[str, str] = {}
    for d in dirs if dirs is not None else default_dirs():
        if not d.exists():
            result.errors.append(PackError(str(d), None, "", "skills directory does not exist"))
    for path in pack_files(dirs if dirs is not None else default_dirs()):
        pack, err = load_pack_file(path)
        if err:
            result.errors.append(err)
            continue
        assert pack is not None
        if pack.name in names:
            result.errors.append(
                PackError(str(path), 1, "name", f"pack {pack.name!r} is already loaded from {names[pack.name]}")
            )
            continue
        if (
            pack.connection.executor == "mcp"
            and discover_mcp
            and pack.connection.server
            and pack.connection.server.discover
        ):
            from skills.executors.mcp import discover_sync

            try:
                pack = discover_sync(pack)
            except Exception as exc:  # noqa: BLE001 - an unreachable server is one pack's error, not the loader's
                result.errors.append(
                    PackError(
                        str(path),
                        None,
                        "connection.server",
                        f"MCP server did not list its tools: {type(exc).__name__}: {exc}",
                    )
                )
                continue
        names[pack.name] = str(path)
        result.packs.append(pack)
    return result
