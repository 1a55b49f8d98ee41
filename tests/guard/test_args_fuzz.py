"""Arguments in: coercion, refusals the model can act on, and Hypothesis fuzzing against many schemas."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.guard.args import ArgumentRefused, check_args
from engine.tools import Tool

from .harness import Recorder, k8s_tools


async def _noop(args: dict[str, Any]) -> Any:
    return args


def tool(schema: dict[str, Any], name: str = "pack.action") -> Tool:
    return Tool(name, "fuzzed", schema, _noop)


SCALE = k8s_tools(Recorder())[1]


def test_harmless_coercions_are_applied_and_reported():
    args, notes = check_args(SCALE, {"name": "web", "replicas": "5", "namespace": None})
    assert args == {"name": "web", "replicas": 5, "namespace": "default"}
    assert 'coerced replicas from "5" to 5' in notes and "dropped null for optional parameter 'namespace'" in notes
    t = tool({"type": "object", "properties": {"force": {"type": "boolean"}, "label": {"type": "string"}}})
    args, notes = check_args(t, {"force": "true", "label": 7})
    assert args == {"force": True, "label": "7"} and len(notes) == 2


def test_refusal_names_the_problem_and_lists_valid_parameters():
    with pytest.raises(ArgumentRefused) as e:
        check_args(SCALE, {"name": "web", "replicas": "many", "confirm": True})
    m = e.value.message
    assert "'confirm' is not a parameter of kubernetes.scale_deployment" in m
    assert "'replicas'" in m and "many" in m
    assert "replicas (integer, required, >= 0, <= 50)" in m and 'namespace (string, default "default"' in m


def test_out_of_range_and_missing():
    with pytest.raises(ArgumentRefused) as e:
        check_args(SCALE, {"replicas": 500})
    assert "'name' is required" in e.value.message and "less than or equal to 50" in e.value.message


def test_non_dict_arguments_are_refused():
    with pytest.raises(ArgumentRefused):
        check_args(SCALE, ["web"])  # type: ignore[arg-type]


# -- fuzzing --------------------------------------------------------------------------------

NAMES = st.sampled_from(
    [
        "name",
        "namespace",
        "replicas",
        "q",
        "limit",
        "schema",
        "json",
        "model_config",
        "x-y",
        "1st",
        "força",
        "items",
        "dict",
    ]
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


@st.composite
def prop_schema(draw: Any, depth: int = 0) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(["string", "integer", "number", "boolean", "array", "object", "enum", "union", "weird"])
    )
    s: dict[str, Any]
    if kind == "enum":
        s = {"type": "string", "enum": draw(st.lists(st.text(max_size=5) | st.integers(), min_size=1, max_size=4))}
    elif kind == "union":
        s = {
            "type": draw(
                st.lists(st.sampled_from(["string", "integer", "null", "boolean", "bogus"]), min_size=1, max_size=3)
            )
        }
    elif kind == "weird":
        s = draw(
            st.sampled_from(
                [
                    {},
                    {"anyOf": [{"type": "string"}]},
                    {"$ref": "#/x"},
                    {"type": 5},
                    {"type": "object", "properties": "nope"},
                ]
            )
        )
    elif kind == "array":
        s = {"type": "array", "items": draw(prop_schema(depth + 1)) if depth < 2 else {"type": "string"}}
        if draw(st.booleans()):
            s["maxItems"] = draw(st.integers(0, 5))
    elif kind == "object":
        s = {"type": "object"}
        if depth < 2 and draw(st.booleans()):
            s["properties"] = {n: draw(prop_schema(depth + 1)) for n in draw(st.lists(NAMES, max_size=3, unique=True))}
    else:
        s = {"type": kind}
        if kind in ("integer", "number") and draw(st.booleans()):
            s["minimum"] = draw(st.integers(-5, 5))
            s["maximum"] = draw(st.integers(5, 100))
        if kind == "string" and draw(st.booleans()):
            s["pattern"] = draw(st.sampled_from(["^[a-z]+$", "^[0-9a-f-]{4,}$", "([", ".*"]))
            s["maxLength"] = draw(st.integers(1, 30))
    if draw(st.booleans()):
        s["default"] = draw(JSON)
    return s


@st.composite
def schemas(draw: Any) -> dict[str, Any]:
    names = draw(st.lists(NAMES, max_size=6, unique=True))
    props = {n: draw(prop_schema()) for n in names}
    return {
        "type": "object",
        "properties": props,
        "required": draw(st.lists(st.sampled_from(names), unique=True)) if names else [],
    }


@st.composite
def schema_and_args(draw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    s = draw(schemas())
    keys = list(s["properties"]) + ["invented", "approved", "__proto__"]
    args = draw(st.dictionaries(st.sampled_from(keys), JSON, max_size=7))
    return s, args


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_and_args())
def test_fuzz_no_unhandled_exception_and_every_refusal_explains_itself(sa):
    schema, args = sa
    t = tool(schema)
    try:
        clean, notes = check_args(t, args)
    except ArgumentRefused as exc:
        m = exc.message
        assert m and "pack.action" in m
        assert "refused" in m or "could not be checked" in m or "cannot check" in m
        invented = [k for k in args if k not in schema["properties"]]
        if "refused" in m:
            assert "Valid parameters" in m
            # at least one concrete problem is named, with the parameter it concerns
            assert "\n- " in m
            for k in invented[:1]:
                if f"{k!r} is not a parameter" not in m:
                    assert "more" in m or any(f"'{p}'" in m for p in schema["properties"])
        return
    assert isinstance(clean, dict) and isinstance(notes, list)
    assert set(clean) <= set(schema["properties"]), "an invented parameter got through"
    for k, v in args.items():
        # a dropped null may be replaced by the schema's default, never passed on as null
        if v is None and k not in schema.get("required", []) and k in clean and clean[k] is None:
            pytest.fail("an explicit null for an optional field was passed on")


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=8), JSON, max_size=6))
def test_fuzz_real_action_schemas(args):
    for t in k8s_tools(Recorder()):
        try:
            clean, _ = check_args(t, args)
        except ArgumentRefused as exc:
            assert "Valid parameters of " + t.name in exc.message
            continue
        assert set(clean) <= set(t.parameters["properties"])
        if "name" in clean:
            assert isinstance(clean["name"], str)


def _pack_tools() -> list[Tool]:
    loader = pytest.importorskip("skills.loader")
    registry = pytest.importorskip("skills.registry")
    if not hasattr(loader, "load_packs") or not hasattr(registry, "pack_tools"):
        pytest.skip("skill packs not in this build")
    result = loader.load_packs(discover_mcp=False)
    tools = registry.pack_tools(result.packs)
    if not tools:
        pytest.skip("no skill packs loaded")
    return tools


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fuzz_every_skill_action_schema(data):
    """Every shipped action's model: random and near-valid arguments never crash, refusals explain themselves."""
    tools = _pack_tools()
    t = data.draw(st.sampled_from(tools))
    props = list((t.parameters or {}).get("properties", {}))
    keys = st.sampled_from(props + ["invented"]) if props else st.just("invented")
    args = data.draw(st.dictionaries(keys, JSON, max_size=6))
    try:
        clean, _ = check_args(t, args)
    except ArgumentRefused as exc:
        assert t.name in exc.message and ("Valid parameters" in exc.message or "could not be checked" in exc.message)
        return
    assert set(clean) <= set(props)
