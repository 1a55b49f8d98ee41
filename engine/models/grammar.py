"""The local model's output contract: a JSON schema (→ llama.cpp GBNF grammar) built from the tools.

Every step of the embedded model is constrained to exactly one JSON object:

    {"thought": "...", "tool": "<one offered tool>", "arguments": {...that tool's parameters...}}
    {"answer": "..."}

so a 1.5B model can only name tools that exist, with arguments of the right shape. A step can
also rule out exact calls (`exclude`): a call the dispatcher would refuse as a repeat cannot be
written again; the tool stays offered with another choice of an enum or a flag, or without an
optional argument, when it has one (see `excluding`). The
schema is converted by llama.cpp's own converter (`llama_cpp.llama_grammar`); this module
also normalises tool schemas to the subset that converter handles, renders the compact tool
lines for the system prompt, and parses the generated text incrementally for streaming.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from engine.models.base import ToolSpec

THOUGHT_MAX_CHARS = 160
"""A step's thought is one short sentence; the grammar stops a 1.5B model from rambling."""
ARG_STRING_MAX_CHARS = 200
"""Argument strings are names, selectors and queries: long ones are runaway generation."""

_SCALARS = {"string", "integer", "number", "boolean", "null"}


def clean_schema(schema: Any, *, depth: int = 0) -> dict[str, Any]:
    """Reduce a JSON Schema to what the grammar converter handles (unknown parts become 'any')."""
    if not isinstance(schema, dict) or depth > 6:
        return {}
    out: dict[str, Any] = {}
    if "const" in schema:
        return {"const": schema["const"]}
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return {"enum": list(schema["enum"])}
    for key in ("anyOf", "oneOf"):
        alts = schema.get(key)
        if isinstance(alts, list) and alts:
            cleaned = [clean_schema(a, depth=depth + 1) for a in alts]
            # A nullable optional (anyOf [X, null]) is just X: absent already means null to us.
            non_null = [a for a in cleaned if a.get("type") != "null"]
            if len(non_null) == 1:
                return non_null[0]
            return {"anyOf": non_null or cleaned}
    t = schema.get("type")
    if isinstance(t, list):
        types = [x for x in t if x in _SCALARS | {"object", "array"} and x != "null"]
        if len(types) == 1:
            t = types[0]
        elif types:
            return {"anyOf": [clean_schema({**schema, "type": x}, depth=depth + 1) for x in types]}
        else:
            return {}
    if t == "object" or (t is None and "properties" in schema):
        props = schema.get("properties")
        if not isinstance(props, dict):
            props = {}
        out = {
            "type": "object",
            "properties": {str(k): clean_schema(v, depth=depth + 1) for k, v in props.items()},
            "required": [r for r in schema.get("required", []) if r in props],
        }
        if not props and schema.get("additionalProperties") not in (None, False):
            return {"type": "object"}  # a free-form map
        return out
    if t == "array":
        out = {"type": "array", "items": clean_schema(schema.get("items", {}), depth=depth + 1)}
        for k in ("minItems", "maxItems"):
            if isinstance(schema.get(k), int):
                out[k] = schema[k]
        out.setdefault("maxItems", 20)
        return out
    if t == "string":
        out = {"type": "string", "maxLength": ARG_STRING_MAX_CHARS}
        if isinstance(schema.get("maxLength"), int):
            out["maxLength"] = min(schema["maxLength"], ARG_STRING_MAX_CHARS)
        if isinstance(schema.get("minLength"), int):
            out["minLength"] = min(schema["minLength"], out["maxLength"])
        return out
    if t in _SCALARS:
        return {"type": t}
    return {}


def params_schema(spec: ToolSpec) -> dict[str, Any]:
    """The tool's parameters as an object schema the grammar accepts (no extra keys)."""
    s = clean_schema(spec.parameters or {})
    if s.get("type") != "object" or "properties" not in s:
        s = {"type": "object", "properties": {}, "required": []}
    return s


Excluded = Mapping[str, Sequence[dict[str, Any]]]
"""Tool name → argument objects that tool may not be called with at this step."""


def step_schema(
    tools: list[ToolSpec],
    *,
    thought: bool = True,
    answer: bool = True,
    answer_schema: dict[str, Any] | None = None,
    exclude: Excluded | None = None,
) -> dict[str, Any]:
    """The JSON schema of one step: call one of `tools` with its arguments, or (if `answer`) answer.

    The answer is a string, or a value of `answer_schema` when the caller asked for structured
    output (e.g. a choice among fixed labels: the grammar then admits only those labels). A tool
    with `exclude`d argument objects is offered only with arguments that differ from them by a
    choice or a left-out optional (see `excluding`), or not at all at this step.
    """
    alts: list[dict[str, Any]] = []
    for t in sorted(tools, key=lambda t: t.name):
        params = params_schema(t)
        shapes = excluding(params, list((exclude or {}).get(t.name, ())))
        for shape in shapes:
            props: dict[str, Any] = {}
            if thought:
                props["thought"] = {"type": "string", "maxLength": THOUGHT_MAX_CHARS}
            props["tool"] = {"const": t.name}
            props["arguments"] = shape
            alts.append({"type": "object", "properties": props, "required": list(props)})
    if answer or not alts:
        value = clean_schema(answer_schema) if answer_schema is not None else {"type": "string"}
        alts.append({"type": "object", "properties": {"answer": value or {"type": "string"}}, "required": ["answer"]})
    return {"oneOf": alts}


NONE_MAX_CHARS = 200
"""What a person must do, when no offered action can make the fix."""
ANSWER_MAX_CHARS = 700
"""The words before the fix: the cause with the line that shows it. Greedy decoding of a small
model otherwise writes on (848 tokens, two minutes on two cores, in one measured run)."""


def answer_fix_schema(fixes: list[ToolSpec], exclude: Excluded | None = None) -> dict[str, Any]:
    """The JSON schema of an answer step with its fix: the answer in words, then `fix`: one call
    of `fixes` with arguments of the right shape, or `{"none": "<what a person must do>"}`. A call
    in `exclude` (made this turn already: it ran, failed or changed nothing) is not a fix to offer."""
    calls: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"tool": {"const": t.name}, "arguments": shape},
            "required": ["tool", "arguments"],
        }
        for t in sorted(fixes, key=lambda t: t.name)
        for shape in excluding(params_schema(t), list((exclude or {}).get(t.name, ())))
    ]
    calls.append(
        {
            "type": "object",
            "properties": {"none": {"type": "string", "maxLength": NONE_MAX_CHARS}},
            "required": ["none"],
        }
    )
    return {
        "type": "object",
        "properties": {"answer": {"type": "string", "maxLength": ANSWER_MAX_CHARS}, "fix": {"oneOf": calls}},
        "required": ["answer", "fix"],
    }


def answer_fix_gbnf(fixes: list[ToolSpec], exclude: Excluded | None = None) -> str:
    """GBNF grammar text for an answer step with its fix (cached per set of actions)."""
    return _gbnf(json.dumps(answer_fix_schema(fixes, exclude), sort_keys=False))


def fix_text(fix: Any) -> str:
    """The fix of an answer step as the answer says it: a written call `pack.action(arg=value, …)`
    (values as Python literals, which engine.answers reads back), or that none can make it."""
    if not isinstance(fix, dict):
        return ""
    if "tool" in fix:
        given = fix.get("arguments")
        args: dict[str, Any] = given if isinstance(given, dict) else {}
        return f"Fix: {fix['tool']}({', '.join(f'{k}={v!r}' for k, v in args.items())})"
    none = str(fix.get("none") or "").strip()
    return f"No available action can make the fix: {none}" if none else ""


@functools.lru_cache(maxsize=64)
def _gbnf(schema_json: str) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return json_schema_to_gbnf(schema_json, prop_order=["thought", "tool", "arguments", "answer", "fix", "none"])


def step_gbnf(
    tools: list[ToolSpec],
    *,
    thought: bool = True,
    answer: bool = True,
    answer_schema: dict[str, Any] | None = None,
    exclude: Excluded | None = None,
) -> str:
    """GBNF grammar text for one step over `tools` (cached per tool set and exclusions)."""
    schema = step_schema(tools, thought=thought, answer=answer, answer_schema=answer_schema, exclude=exclude)
    return _gbnf(json.dumps(schema, sort_keys=False))


# -- ruling out exact calls -----------------------------------------------------------------
# A shape is a set of constraints on an argument object, by property: absent, present, or
# present with a value outside a set (JSON texts). The object schema of `params` admits every
# object; each excluded object splits the shapes that still admit it into shapes that differ
# from it in one property, in a way worth a step: another choice of an enum, a flag turned on
# (logs with previous=true), an optional filter left out. A free string or a number is never the
# difference: greedy decoding cannot stop where the excluded value ends, so "namespace ≠ shop"
# came out as "shop…" run on to the token limit (107 s on 2 cores) or a made-up name; without a
# difference worth a step, the tool is not offered for the second try and the model picks
# another tool or answers.
_Shape = dict[str, tuple[str, frozenset[str]]]


def excluding(params: dict[str, Any], excluded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Object schemas whose union admits argument objects of `params` that differ from each of
    `excluded` by a choice (enum, boolean) or an optional argument left out: [params] when nothing
    is excluded, [] when no such difference exists (the tool is then not offered). Never admits an
    excluded object."""
    if not excluded:
        return [params]
    props: dict[str, Any] = params.get("properties") or {}
    required = set(params.get("required") or [])
    shapes: list[_Shape] = [{}]
    for x in excluded:
        out: list[_Shape] = []
        for shape in shapes:
            if not _admits(shape, x):
                out.append(shape)
                continue
            for p, ps in props.items():
                for c in _differences(ps, shape.get(p), p in x, _jtext(x.get(p)), p in required):
                    if _stateable(ps, c):
                        out.append({**shape, p: c})
        shapes = [dict(t) for t in dict.fromkeys(tuple(sorted(s.items())) for s in out)]
    return [_shape_schema(params, s) for s in shapes]


def _jtext(v: Any) -> str:
    return json.dumps(v, sort_keys=True, ensure_ascii=False)


def _admits(shape: _Shape, x: dict[str, Any]) -> bool:
    for p, (how, values) in shape.items():
        if (how == "absent") == (p in x) or (how == "not" and _jtext(x[p]) in values):
            return False
    return True


def _differences(
    ps: dict[str, Any], c: tuple[str, frozenset[str]] | None, has: bool, value: str, required: bool
) -> list[tuple[str, frozenset[str]]]:
    """The ways to differ from an object in one property, given the property's constraint so far."""
    if not has:  # the object lacks it: the shape leaves the property free (or wants it absent)
        if c is not None:
            return []
        # a flag left out is off: the difference is turning it on
        return [("not", frozenset({"false"}))] if ps.get("type") == "boolean" else [("present", frozenset())]
    if c is None:
        return [("not", frozenset({value}))] + ([] if required else [("absent", frozenset())])
    if c[0] in ("present", "not"):
        return [("not", c[1] | {value})]
    return []


def _stateable(ps: dict[str, Any], c: tuple[str, frozenset[str]]) -> bool:
    """Whether the difference is one the grammar states well: leaving an optional argument out,
    or another choice of an enum or a boolean."""
    how, values = c
    if how == "absent":
        return True
    if "enum" in ps:
        return any(_jtext(e) not in values for e in ps["enum"])
    return ps.get("type") == "boolean" and how == "not" and len(values) < 2


def _shape_schema(params: dict[str, Any], shape: _Shape) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required = list(params.get("required") or [])
    for p, ps in (params.get("properties") or {}).items():
        how, values = shape.get(p, ("any", frozenset()))
        if how == "absent":
            continue
        props[p] = ps if how in ("any", "present") else _other_value(ps, values)
        if how != "any" and p not in required:
            required.append(p)
    return {"type": "object", "properties": props, "required": [r for r in required if r in props]}


def _other_value(ps: dict[str, Any], values: frozenset[str]) -> dict[str, Any]:
    """The schema of a value of `ps` (an enum or a boolean) that is none of `values` (JSON texts)."""
    if "enum" in ps:
        return {"enum": [e for e in ps["enum"] if _jtext(e) not in values]}
    return {"const": not json.loads(next(iter(values)))}


# -- compact tool lines for the system prompt ----------------------------------------------
def _type_hint(s: dict[str, Any]) -> str:
    if "const" in s:
        return json.dumps(s["const"])
    if "enum" in s:
        return "|".join(json.dumps(v) for v in s["enum"][:8])
    if "anyOf" in s:
        return "|".join(_type_hint(a) for a in s["anyOf"])
    t = s.get("type")
    if t == "array":
        return f"[{_type_hint(s.get('items', {}))}]"
    if t == "integer":
        return "int"
    if t == "string":
        return "str"
    if t == "boolean":
        return "bool"
    if t == "number":
        return "num"
    return t or "any"


_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)\.\s+")
"""A full stop that ends a sentence (not the one in "e.g." or "i.e.")."""


def _object_hint(key: str, schema: Any) -> str:
    """' (deployment name)' for a parameter described as "Deployment name": a 1.5B model otherwise
    swaps a generic `name` with `namespace` when the user's words put the namespace first."""
    d = " ".join(str(schema.get("description", "")).split()) if isinstance(schema, dict) else ""
    if key in {"name", "id"} and len(d) <= 24 and d.lower().endswith((" name", " id")) and len(d.split()) <= 3:
        return f" ({d.lower()})"
    return ""


def tool_line(spec: ToolSpec, *, max_desc: int = 110) -> str:
    """One line per tool: `name(a: str, b?: int) - description` (optional args marked '?')."""
    raw = spec.parameters or {}
    props = raw.get("properties") or {}
    required = set(raw.get("required") or [])
    args = []
    for k, v in props.items():
        hint = _type_hint(clean_schema(v))
        args.append(f"{k}{'' if k in required else '?'}: {hint}{_object_hint(k, v)}")
    desc = " ".join((spec.description or "").split())
    first = _SENTENCE_END.split(desc, maxsplit=1)[0].rstrip(".")
    if len(first) > max_desc:
        first = first[: max_desc - 1].rstrip() + "…"
    return f"- {spec.name}({', '.join(args)}) - {first}" if first else f"- {spec.name}({', '.join(args)})"


# -- grounding optional arguments ------------------------------------------------------------
def ground_arguments(
    args: dict[str, Any], spec: ToolSpec | None, conversation: str
) -> tuple[dict[str, Any], list[str]]:
    """(arguments kept, 'name=value' of those left out): an optional string or number argument
    whose value appears nowhere in the conversation (the user's words, earlier calls, tool
    outputs) is left out, so the tool's default applies; so is an optional enum choice that is not
    a word of the conversation ("alert" for "alerting and recording rules"). A 1.5B model fills
    optional slots with plausible inventions (a revision "1" for "the previous revision", a vhost
    "your_vhost_name", a thread id); an invented filter hides what the investigation needs, a
    missing one does not. Required arguments, booleans and nested values are always kept."""
    if spec is None:
        return args, []
    schema = spec.parameters or {}
    props = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    hay = conversation.casefold()
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for k, v in args.items():
        s = clean_schema(props.get(k, {}))
        if k in required or "const" in s or isinstance(v, bool) or not isinstance(v, (str, int, float)):
            kept[k] = v
            continue
        needle = (v if isinstance(v, str) else (str(int(v)) if float(v).is_integer() else str(v))).strip().casefold()
        if not needle or _occurs(needle, hay, word="enum" in s):
            kept[k] = v
        else:
            dropped.append(f"{k}={json.dumps(v, ensure_ascii=False)}")
    return kept, dropped


def _occurs(needle: str, hay: str, *, word: bool = False) -> bool:
    """`needle` in `hay`, as a whole token when it is a number (7 is not in 17) or a `word`."""
    if word:
        return re.search(rf"(?<![\w-]){re.escape(needle)}(?:e?s)?(?![\w-])", hay) is not None  # plurals count
    if needle.replace(".", "", 1).isdigit():
        return re.search(rf"(?<![\w.]){re.escape(needle)}(?![\w]|\.\d)", hay) is not None
    return needle in hay


# -- parsing the generated step --------------------------------------------------------------
_LEAD = re.compile(r'\s*\{\s*"(thought|answer)"\s*:\s*"')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class StepParser:
    """Reads the generated JSON as it grows: streams the leading thought or answer, then parses the step."""

    def __init__(self) -> None:
        self.text = ""
        """Everything generated so far."""
        self.key: str | None = None
        """'thought' or 'answer': the string field being streamed, once known."""
        self._answer_start: int | None = None
        self._pos = 0  # next unread index inside the answer string
        self._answer_done = False
        self._depth = 0
        self._in_str = False
        self._esc = False
        self._scanned = 0
        self.complete = False
        """True once the top-level object has closed."""

    def feed(self, piece: str) -> str:
        """Add generated text; returns newly decoded thought/answer text (empty when none is ready)."""
        self.text += piece
        self._scan()
        if self._answer_start is None:
            m = _LEAD.match(self.text)
            if m is None:
                return ""
            self.key = m.group(1)
            self._answer_start = self._pos = m.end()
        if self._answer_done:
            return ""
        out = []
        s = self.text
        i = self._pos
        while i < len(s):
            c = s[i]
            if c == '"':
                self._answer_done = True
                i += 1
                break
            if c == "\\":
                if i + 1 >= len(s):
                    break
                e = s[i + 1]
                if e == "u":
                    if i + 6 > len(s):
                        break
                    try:
                        code = int(s[i + 2 : i + 6], 16)
                    except ValueError:
                        code = 0xFFFD
                    if 0xD800 <= code < 0xDC00:  # surrogate pair: wait for the low half
                        if i + 12 > len(s):
                            break
                        try:
                            low = int(s[i + 8 : i + 12], 16)
                            out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                        except ValueError:
                            out.append("\ufffd")
                        i += 12
                        continue
                    out.append(chr(code))
                    i += 6
                    continue
                out.append(_ESCAPES.get(e, e))
                i += 2
                continue
            out.append(c)
            i += 1
        self._pos = i
        return "".join(out)

    def _scan(self) -> None:
        """Track nesting outside strings to know when the object is complete."""
        s = self.text
        for i in range(self._scanned, len(s)):
            c = s[i]
            if self._in_str:
                if self._esc:
                    self._esc = False
                elif c == "\\":
                    self._esc = True
                elif c == '"':
                    self._in_str = False
            elif c == '"':
                self._in_str = True
            elif c in "{[":
                self._depth += 1
            elif c in "}]":
                self._depth -= 1
                if self._depth == 0:
                    self.complete = True
        self._scanned = len(s)

    @property
    def answer_closed(self) -> bool:
        """True once the streamed string (thought or answer) has ended."""
        return self._answer_done

    @property
    def is_answer(self) -> bool:
        """True once the step is known to be an answer rather than a tool call."""
        return self.key == "answer"

    def result(self) -> dict[str, Any] | None:
        """The parsed step, or None when the text is not (yet) one complete JSON object."""
        try:
            value = json.loads(self.text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None
