"""The compaction bench's own parts: OpenAI-history conversion, expected-string extraction, scoring."""

from __future__ import annotations

import json

from bench import compaction

HISTORY = [
    {"role": "system", "content": "You troubleshoot Kubernetes."},
    {"role": "user", "content": "payments are failing"},
    {
        "role": "assistant",
        "content": "Checking pods.",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "run", "arguments": json.dumps({"command": "kubectl get pods -n prod"})},
            }
        ],
    },
    {
        "role": "tool",
        "tool_call_id": "c1",
        "name": "run",
        "content": "NAME                         READY   STATUS             RESTARTS   AGE\npayment-api-6d8f9b7c5-h9k2m   0/1     CrashLoopBackOff   12         1h\n"
        + "filler line\n" * 400,
    },
    {
        "role": "assistant",
        "content": "Logs.",
        "tool_calls": [
            {
                "id": "c2",
                "type": "function",
                "function": {"name": "run", "arguments": '{"command": "kubectl logs payment-api-6d8f9b7c5-h9k2m"}'},
            }
        ],
    },
    {
        "role": "tool",
        "tool_call_id": "c2",
        "name": "run",
        "content": [
            {
                "type": "text",
                "text": "2025-10-08T14:45:00Z ERROR java.sql.SQLException: Connection pool exhausted\n"
                + "debug noise\n" * 400,
            }
        ],
    },
    {"role": "assistant", "content": "The pool is too small."},
]
EXPECTED = (
    'Pod payment-api-6d8f9b7c5-h9k2m fails with "java.sql.SQLException: Connection pool exhausted" and 12 restarts.'
)


def test_convert_keeps_roles_calls_and_pairing():
    system, events = compaction.convert(HISTORY)
    assert system == "You troubleshoot Kubernetes."
    assert [e.kind for e in events] == [
        "user-message",
        "assistant-message",
        "tool-call-finished",
        "assistant-message",
        "tool-call-finished",
        "assistant-message",
    ]
    assert events[1].tool_calls[0]["arguments"] == {"command": "kubectl get pods -n prod"}
    assert events[4].output.startswith("2025-10-08T14:45:00Z ERROR")


def test_expected_strings_are_derived_not_labelled():
    values = {s["value"] for s in compaction.expected_strings(EXPECTED)}
    assert {"payment-api-6d8f9b7c5-h9k2m", "java.sql.SQLException: Connection pool exhausted", "12"} <= values
    assert compaction.present("12", "restarts 12 (x)") and not compaction.present("12", "restarts 120")


def test_score_case_compacts_and_keeps_the_facts_without_silent_drops():
    row = compaction.score_case("mini", HISTORY, EXPECTED, 0.25)
    ours = row["ours"]
    assert ours["compression"] >= 3.5
    assert ours["ledger_type_kept"] == ours["ledger_type"] > 0
    assert ours["silent_drops"] == 0 and ours["items_not_in_full"] > 0
    # truncation loses the early pod name and says nothing about it
    assert row["truncation"]["silent_drops"] > 0


def test_cli_run_on_a_cases_dir_reports_numbers_and_skips_a_bad_case(tmp_path, capsys):
    import argparse

    good = tmp_path / "cases" / "001_good"
    bad = tmp_path / "cases" / "002_bad"
    good.mkdir(parents=True)
    bad.mkdir()
    (good / "conversation_history.json").write_text(json.dumps(HISTORY))
    (good / "test_case.yaml").write_text("expected_output: |\n  " + EXPECTED + "\n")
    (bad / "conversation_history.json").write_text(json.dumps([{"role": "wizard", "content": "?"}]))
    (bad / "test_case.yaml").write_text("expected_output: x\n")
    p = argparse.ArgumentParser()
    compaction.configure(p)
    args = p.parse_args(
        [
            "--cases",
            str(tmp_path / "cases"),
            "--cloudops",
            str(tmp_path / "none"),
            "--no-timing",
            "--histories",
            "1",
            "--json",
        ]
    )
    assert compaction.run(args) == 0
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert [c["case"] for c in result["cases"]] == ["001_good"]
    assert "002_bad" in out.err and "unknown role" in out.err
    assert result["summary"]["ours"]["silent_drops"] == 0
    assert result["probes"]["histories"][0]["ours"]["recalled"] == 50

    missing = p.parse_args(["--cases", str(tmp_path / "nope")])
    assert compaction.run(missing) == 2
    assert "not found" in capsys.readouterr().err
