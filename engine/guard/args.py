"""Arguments in: validate a model's tool arguments against the tool's JSON Schema, as untrusted input.

The schema subset every skill action uses (types, enum, required, default, minimum/maximum,
minLength/maxLength, pattern, arrays with items, nested objects) becomes a pydantic model with
extra='forbid', built once per schema. Harmless coercions ("5" → 5, "true" → True, 5 → "5") are
applied and reported; invented parameters and wrong types are refused with a message the model
can act on: what was wrong and the valid parameters with their types.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

_MAX_ERRORS = 6


class ArgumentRefused(Exception):
    """The arguments cannot be used; `message` tells the model what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        """What was wrong and the valid parameters (shown to the model as the tool result)."""


_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "null": type(None)}


def _schema_key(schema: dict[str, Any]) -> str:
    try:
        return json.dumps(schema, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(schema)


_cache: dict[str, type[BaseModel]] = {}


def _field_type(prop: Any, name: str, depth: int = 0) -> Any:
    """The Python type for one property schema (unknown constructs accept anything)."""
    if not isinstance(prop, dict) or depth > 8:
        return Any
    if "enum" in prop and isinstance(prop["enum"], list) and prop["enum"]:
        values = tuple(v for v in prop["enum"] if isinstance(v, (str, int, float, bool)) or v is None)
        if values:
            return Literal[values]
    t = prop.get("type")
    if isinstance(t, list):
        kinds = [k for k in t if isinstance(k, str)]
        nullable = "null" in kinds
        kinds = [k for k in kinds if k != "null"]
        if len(kinds) == 1:
            inner = _field_type({**prop, "type": kinds[0]}, name, depth)
            return Optional[inner] if nullable else inner  # noqa: UP045 - built at run time: inner may be a typing form
        return Any
    if t == "array":
        item = _field_type(prop.get("items"), name, depth + 1) if isinstance(prop.get("items"), dict) else Any
        return list[item]  # type: ignore[valid-type]
    if t == "object":
        props = prop.get("properties")
        if isinstance(props, dict) and props:
            return _model_for(prop, f"{name}_obj", depth + 1)
        return dict[str, Any]
    return _TYPES.get(t, Any) if isinstance(t, str) else Any


def _constraints(prop: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    t = prop.get("type")
    num = t in ("integer", "number")
    string = t == "string"
    arr = t == "array"
    for key, arg, ok in (
        ("minimum", "ge", num),
        ("maximum", "le", num),
        ("exclusiveMinimum", "gt", num),
        ("exclusiveMaximum", "lt", num),
        ("minLength", "min_length", string),
        ("maxLength", "max_length", string),
        ("minItems", "min_length", arr),
        ("maxItems", "max_length", arr),
    ):
        v = prop.get(key)
        if ok and isinstance(v, (int, float)) and not isinstance(v, bool):
            out[arg] = v
    pat = prop.get("pattern")
    if string and isinstance(pat, str):
        try:
            re.compile(pat)
            out["pattern"] = pat
        except re.error:
            pass  # a broken pattern in a pack is the loader's problem; don't refuse every call
    return out


def _valid_default(typ: Any, cons: dict[str, Any], value: Any) -> bool:
    """A pack's default that does not fit its own type is ignored rather than passed on."""
    if value is None:
        return False
    try:
        from typing import Annotated

        TypeAdapter(Annotated[typ, Field(**cons)]).validate_python(value, strict=True)
        return True
    except Exception:  # noqa: BLE001 - any failure means the default is unusable
        return False


def _model_for(schema: dict[str, Any], name: str = "Arguments", depth: int = 0) -> type[BaseModel]:
    key = _schema_key(schema) + f"#{depth}"
    if key in _cache:
        return _cache[key]
    props: dict[str, Any] = _as_dict(schema.get("properties"))
    required = set(schema.get("required") or []) if isinstance(schema.get("required"), list) else set()
    fields: dict[str, Any] = {}
    for i, (pname, prop) in enumerate(props.items()):
        if not isinstance(pname, str):
            continue
        typ = _field_type(prop, pname, depth)
        cons = _constraints(prop) if isinstance(prop, dict) else {}
        if pname in required:
            default: Any = ...
        elif isinstance(prop, dict) and "default" in prop and _valid_default(typ, cons, prop["default"]):
            default = prop["default"]
        else:
            default = None
            typ = Optional[typ]  # noqa: UP045 - built at run time: typ may be a typing form
        # Generated field names with the property name as alias: properties like "schema",
        # "json" or "model_config" would otherwise clash with BaseModel attributes.
        fields[f"p{i}"] = (typ, Field(default, alias=pname, validate_default=False, **cons))
    extra: Literal["forbid", "allow"] = "forbid" if schema.get("additionalProperties") is not True else "allow"
    model = create_model(
        re.sub(r"\W", "_", name)[:60] or "Arguments",
        __config__=ConfigDict(
            extra=extra, coerce_numbers_to_str=True, populate_by_name=False, regex_engine="python-re"
        ),
        **fields,
    )
    _cache[key] = model
    return model


def describe_parameters(schema: dict[str, Any]) -> str:
    """The valid parameters, one per line: `name (type, required|default X): description`."""
    props = schema.get("properties") if isinstance(schema, dict) and isinstance(schema.get("properties"), dict) else {}
    if not props:
        return "  (this tool takes no parameters)"
    required = set(schema.get("required") or []) if isinstance(schema.get("required"), list) else set()
    lines = []
    for pname, prop in props.items():
        prop = prop if isinstance(prop, dict) else {}
        t = prop.get("type", "any")
        if isinstance(t, list):
            t = "|".join(map(str, t))
        if t == "array" and isinstance(prop.get("items"), dict):
            t = f"array of {prop['items'].get('type', 'any')}"
        bits = [str(t)]
        if "enum" in prop:
            bits.append("one of " + ", ".join(json.dumps(v) for v in prop["enum"][:12]))
        if pname in required:
            bits.append("required")
        elif "default" in prop:
            bits.append(f"default {json.dumps(prop['default'], default=str)}")
        else:
            bits.append("optional")
        for k, label in (("minimum", ">="), ("maximum", "<=")):
            if k in prop:
                bits.append(f"{label} {prop[k]}")
        if "pattern" in prop:
            bits.append(f"pattern {prop['pattern']}")
        desc = str(prop.get("description", ""))[:100]
        lines.append(f"  {pname} ({', '.join(bits)})" + (f": {desc}" if desc else ""))
    return "\n".join(lines)


def _describe_value(v: Any) -> str:
    s = json.dumps(v, default=str) if not isinstance(v, str) else json.dumps(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(arguments)"


def check_args(tool: Any, args: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Validate `args` for `tool`; returns (clean arguments, notes) or raises ArgumentRefused."""
    schema = tool.parameters if isinstance(getattr(tool, "parameters", None), dict) else {}
    name = getattr(tool, "name", "tool")
    if not isinstance(args, dict):
        raise ArgumentRefused(
            f"Arguments for {name} must be a JSON object, got {type(args).__name__}.\nValid parameters:\n{describe_parameters(schema)}"
        )
    notes: list[str] = []
    props: dict[str, Any] = _as_dict(schema.get("properties"))
    required = set(schema.get("required") or []) if isinstance(schema.get("required"), list) else set()
    given: dict[str, Any] = {}
    for k, v in args.items():
        if v is None and k in props and k not in required:
            notes.append(f"dropped null for optional parameter {k!r}")
            continue
        given[k] = v
    try:
        model = _model_for(schema, f"{name}_args")
    except Exception as exc:  # noqa: BLE001 - a schema we cannot model must not crash the turn
        raise ArgumentRefused(
            f"{name} has a parameter schema the engine cannot check ({type(exc).__name__}); the call was not run."
        ) from None
    try:
        obj = model.model_validate(given)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:_MAX_ERRORS]:
            loc = tuple(err.get("loc", ()))
            where = _loc(loc)
            typ = err.get("type", "")
            if typ == "extra_forbidden":
                problems.append(f"{where!r} is not a parameter of {name}")
            elif typ == "missing":
                problems.append(f"{where!r} is required")
            else:
                problems.append(f"{where!r}: {err.get('msg', 'invalid')} (got {_describe_value(err.get('input'))})")
        more = len(exc.errors()) - _MAX_ERRORS
        if more > 0:
            problems.append(f"... and {more} more")
        raise ArgumentRefused(
            f"Arguments for {name} were refused and the call was not run:\n- "
            + "\n- ".join(problems)
            + f"\nValid parameters of {name}:\n{describe_parameters(schema)}\nCall {name} again with corrected arguments."
        ) from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise ArgumentRefused(
            f"Arguments for {name} could not be checked ({type(exc).__name__}: {str(exc)[:200]}); the call was not run."
        ) from None
    clean = obj.model_dump(by_alias=True, exclude_unset=False, mode="python", warnings=False)
    # Optional parameters the model did not give stay absent (None is not a value the executor asked for).
    clean = {
        k: v
        for k, v in clean.items()
        if k in given or (v is not None and isinstance(props.get(k), dict) and "default" in props[k])
    }
    clean.update(obj.model_extra or {})
    for k, v in given.items():
        if k in clean and _coerced(v, clean[k]):
            notes.append(f"coerced {k} from {_describe_value(v)} to {_describe_value(clean[k])}")
    return _plain(clean), notes


def _coerced(before: Any, after: Any) -> bool:
    if isinstance(before, bool) != isinstance(after, bool):
        return True
    if isinstance(before, (int, float)) and isinstance(after, (int, float)) and not isinstance(before, bool):
        return (
            type(before) is not type(after)
            and before != after
            or (isinstance(before, float) and isinstance(after, int))
        )
    if isinstance(before, str) != isinstance(after, str):
        return True
    return False


def _plain(v: Any) -> Any:
    """Nested models back to plain JSON-able values."""
    if isinstance(v, BaseModel):
        return _plain(v.model_dump(by_alias=True, exclude_none=True, warnings=False))
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _as_dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}
