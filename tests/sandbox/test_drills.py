"""Every drill heals its scenario with the reference fix, played through the normal policy, dry-run
preview and approval path on the real sandbox (`lantern drill run NAME --model reference --auto-approve --json`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import testing
from sandbox.scenario import list_scenarios

pytestmark = pytest.mark.sandbox
ROOT = Path(__file__).resolve().parents[2]
DRILLS = [sc.name for sc in list_scenarios() if sc.drill is not None]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A LANTERN_HOME whose sandbox runs for the whole module (each drill re-applies its scenario)."""
    lh = tmp_path_factory.mktemp("drill-home")
    with testing.sandbox_for_tests(lh / "sandbox", nodes=2, time_scale=0.3):
        yield lh


def _drill(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LANTERN_HOME": str(home),
        "KUBECONFIG": str(home / "no-kubeconfig"),
        "LANTERN_CONFIG": str(home / "no-config.yaml"),
    }
    return subprocess.run(
        [sys.executable, "-m", "console.cli", "drill", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )


def test_every_scenario_has_a_drill():
    assert {
        "oom",
        "expired-cert",
        "dns",
        "bad-deploy",
        "queue-backlog",
        "missing-config-key",
        "wrong-selector",
        "wrong-port",
        "image-pull",
    } <= set(DRILLS)


@pytest.mark.parametrize("name", DRILLS)
def test_the_reference_fix_heals_with_a_previewed_approval(home, name):
    r = _drill(home, "run", name, "--model", "reference", "--auto-approve", "--json")
    report = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    assert r.returncode == 0 and report.get("healed") is True, f"{name}: {r.stdout[-2000:]} {r.stderr[-2000:]}"
    assert report["scenario"] == name and report["diagnosed_right"] and report["session"] and report["seconds"] > 0
    assert report["fix"] and all(f["status"] == "ok" for f in report["fix"])
    assert report["approvals"] and all(
        a["diff"].startswith("--- live/") and "\n+" in a["diff"] for a in report["approvals"]
    ), report["approvals"]


def test_an_unknown_drill_is_a_one_line_error(home):
    r = _drill(home, "run", "no-such-scenario", "--model", "reference", "--auto-approve")
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_wrong_port_is_unhealthy_by_its_own_condition_until_fixed(home):
    """Endpoints exist while the Service points at a port nothing listens on: the condition must still say unhealthy."""
    from sandbox.drill import unhealthy
    from sandbox.scenario import apply_scenario, load_scenario

    sc = load_scenario("wrong-port")
    apply_scenario("wrong-port", home=home / "sandbox")
    left = testing.wait_for(
        "the ledger pods behind the Service",
        lambda: [x for x in unhealthy(sc, home / "sandbox") if "listens on 8080" in x] or None,
    )
    assert all(x.startswith("service ledger: port http goes to 8081 on pod ledger-") for x in left), left
