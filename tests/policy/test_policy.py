"""Policy decisions are pure functions of (policy, action, args, user, time); bad files fail loudly and safely."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.policy.rules import Action, Policy, PolicyError, decide, effective_risk, load_policy, load_policy_safe

ROOT = Path(__file__).resolve().parents[2]
ORG = ROOT / "policies" / "example-org.yaml"
BOB = ROOT / "policies" / "example-user-bob.yaml"
WED = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
FRI_EVENING_BERLIN = dt.datetime(2026, 11, 27, 17, 30, tzinfo=dt.UTC)  # 18:30 in Berlin
XMAS = dt.datetime(2026, 12, 24, 9, 0, tzinfo=dt.UTC)


def act(name: str, risk: str, **kw) -> Action:
    return Action(
        name=name,
        pack=name.split(".")[0],
        risk=effective_risk(name, risk, (kw.pop("meta", None) or {}).get("http_method")),
        **kw,
    )


def test_risk_defaults():
    p = Policy()
    p.org.trusted_packs.append("kubernetes")
    assert decide(p, act("kubernetes.get_pod", "read"), {}, "bob", WED).outcome == "allow"
    assert decide(p, act("kubernetes.scale_deployment", "write"), {}, "bob", WED).outcome == "confirm"
    assert decide(p, act("kubernetes.delete_pod", "dangerous"), {}, "bob", WED).outcome == "approve"
    d = decide(p, "mystery.thing", {}, "bob", WED)
    assert d.outcome == "approve" and d.rule_id == "default:unknown"


def test_new_pack_writes_require_approval_until_widened():
    p = Policy()
    d = decide(p, act("github.create_issue", "write"), {}, "bob", WED)
    assert (d.outcome, d.rule_id) == ("approve", "default:new-pack-writes")
    p.org.trusted_packs.append("git*")
    assert decide(p, act("github.create_issue", "write"), {}, "bob", WED).outcome == "confirm"


def test_effective_risk_uses_method_and_verb():
    assert effective_risk("acme.get_user", "read", "DELETE") == "dangerous"
    assert effective_risk("acme.get_user", "read", "POST") == "write"
    assert effective_risk("kubernetes.delete_pod", "read") == "dangerous"
    assert effective_risk("kubernetes.list_pods", "read", "GET") == "read"
    assert effective_risk("x.y", "bogus") == "unknown"


def test_example_org_policy_operator_approves_what_others_may_not():
    p = load_policy(ORG, BOB)
    a = act("kubernetes.delete_pod", "dangerous")
    alice = decide(p, a, {"namespace": "prod-eu"}, "alice", WED)
    bob = decide(p, a, {"namespace": "prod-eu"}, "bob", WED)
    assert (alice.outcome, alice.rule_id, alice.approvers) == ("approve", "prod-deletes", ("alice",))
    assert bob.outcome == "block" and "only role:sre-leads may approve" in bob.reason
    # outside prod the default for dangerous applies
    assert decide(p, a, {"namespace": "staging"}, "bob", WED).rule_id == "default:dangerous"


def test_time_windows_freeze_and_friday_evening():
    p = load_policy(ORG)
    scale = act("kubernetes.scale_deployment", "write", context="prod-eu")
    assert decide(p, scale, {}, "alice", WED).outcome == "confirm"
    fri = decide(p, scale, {}, "alice", FRI_EVENING_BERLIN)
    assert (fri.outcome, fri.rule_id) == ("approve", "friday-evening")
    xmas = decide(p, scale, {}, "alice", XMAS)
    assert (xmas.outcome, xmas.rule_id) == ("block", "holiday-freeze")
    # a staging context is not affected on Friday evening
    assert (
        decide(
            p, act("kubernetes.scale_deployment", "write", context="staging"), {}, "alice", FRI_EVENING_BERLIN
        ).outcome
        == "confirm"
    )


def test_user_override_applies_to_that_user_but_final_org_rules_win(tmp_path):
    user = tmp_path / "bob.yaml"
    user.write_text(
        "version: 1\nrules:\n  - id: bob-scales-freely\n    match: {action: kubernetes.scale_*}\n    decision: allow\n"
    )
    p = load_policy(ORG, user)
    scale = act("kubernetes.scale_deployment", "write")
    assert decide(p, scale, {}, "bob", WED).rule_id == "bob-scales-freely"
    assert decide(p, scale, {}, "bob", XMAS).rule_id == "holiday-freeze"
    user.write_text("version: 1\nrules:\n  - id: sneaky\n    final: true\n    decision: allow\n")
    with pytest.raises(PolicyError, match="only the org policy may mark rules final"):
        load_policy(ORG, user)


@pytest.mark.parametrize(
    "body,line,field,text",
    [
        (
            "version: 1\nrules:\n  - id: a\n    match:\n      acton: x\n    decision: allow\n",
            5,
            "rules[0].match.acton",
            "did you mean 'action'",
        ),
        ("version: 1\nrules:\n  - id: a\n    decision: maybe\n", 4, "rules[0].decision", "bad decision 'maybe'"),
        ("version: 1\ndefaults:\n  write: yolo\n", 3, "defaults.write", "bad decision"),
        (
            "version: 1\nrules:\n  - id: a\n    match: {when: {days: [funday]}}\n    decision: block\n",
            4,
            "rules[0].match.when",
            "unknown day",
        ),
        (
            "version: 1\nrules:\n  - id: a\n    match: {when: {hours: '9-5'}}\n    decision: block\n",
            4,
            "rules[0].match.when",
            "hours must look like",
        ),
        ("version: 1\nrules: [\n", None, "", "not valid YAML"),
        ("version: 1\nrulez: []\n", 2, "rulez", "unknown field"),
    ],
)
def test_policy_typos_fail_with_file_line_field(tmp_path, body, line, field, text):
    f = tmp_path / "org.yaml"
    f.write_text(body)
    with pytest.raises(PolicyError) as e:
        load_policy(f)
    err = e.value
    assert err.path == str(f) and err.field.startswith(field) and text in str(err)
    if line is not None:
        assert err.line == line
    safe = load_policy_safe(f)
    assert safe.errors and str(err) in safe.errors[0]
    # the safest default: reads run, everything that writes needs approval, even a trusted pack's
    safe.org.trusted_packs.append("kubernetes")
    assert decide(safe, act("kubernetes.get_pod", "read"), {}, "bob", WED).outcome == "allow"
    assert decide(safe, act("kubernetes.scale_deployment", "write"), {}, "bob", WED).outcome == "approve"


def test_decisions_are_pure(tmp_path):
    p = load_policy(ORG, BOB)
    args = {"namespace": "prod"}
    a = act("kubernetes.delete_pod", "dangerous")
    first = decide(p, a, args, "alice", WED)
    for _ in range(3):
        assert decide(p, a, dict(args), "alice", WED) == first
    assert args == {"namespace": "prod"}


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    code = f"from console.cli import main; raise SystemExit(main({list(argv)!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_lantern_policy_check_prints_decision_and_rule(tmp_path):
    p = _cli(
        "policy",
        "check",
        "--policy",
        str(ORG),
        "--user",
        "bob",
        "--action",
        "kubernetes.delete_pod",
        "--args",
        '{"namespace": "prod"}',
        "--risk",
        "dangerous",
        "--json",
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["decision"] == "block" and out["rule"] == "prod-deletes"
    p = _cli(
        "policy",
        "check",
        "--policy",
        str(ORG),
        "--user",
        "alice",
        "--action",
        "kubernetes.delete_pod",
        "--args",
        '{"namespace": "prod"}',
        "--risk",
        "dangerous",
    )
    assert "decision: approve" in p.stdout and "rule:     prod-deletes" in p.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - id: a\n    decison: allow\n")
    p = _cli("policy", "check", "--policy", str(bad), "--user", "bob", "--action", "kubernetes.get_pod")
    assert p.returncode == 2 and f"{bad}:4" in p.stdout and "decison" in p.stdout and "safest default" in p.stdout


def test_routed_approvals_reach_the_role_when_the_asker_is_not_in_it():
    """On a server, bob may ask for what only role:sre-leads may approve: the request goes to them."""
    p = load_policy(ORG, BOB)
    a = act("kubernetes.delete_pod", "dangerous")
    bob = decide(p, a, {"namespace": "prod-eu"}, "bob", WED, routed=True)
    assert (bob.outcome, bob.rule_id, bob.approvers) == ("approve", "prod-deletes", ("alice",))
