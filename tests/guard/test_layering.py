"""The guard, policy and dispatch modules stay UI-free and light to import."""

from __future__ import annotations

import subprocess
import sys


def test_engine_guard_policy_dispatch_import_no_ui_or_litellm():
    code = (
        "import sys, engine.dispatch, engine.guard, engine.guard.commands, "
        "engine.policy.commands, engine.policy.audit_cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'console', 'litellm'))\n"
        "print(','.join(bad))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ""
