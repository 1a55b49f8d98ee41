"""`lantern skills list/show`: packs, actions and risks, with load errors printed clearly."""

from __future__ import annotations

from conftest import write_pack

from console.cli import main


def test_skills_list_counts_risks_and_prints_load_errors(tmp_path, capsys):
    write_pack(
        tmp_path,
        "broken",
        """
        name: broken
        description: Broken on purpose.
        connection: {executor: rest}
    """,
    )
    rc = main(["skills", "list", "--dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "kubernetes" in out and "15/12/7" in out and "packs," in out
    assert "1 pack(s) failed to load" in err and "broken.yaml" in err and "base_url is required" in err


def test_skills_show_lists_actions_with_risk_and_undo(capsys):
    assert main(["skills", "show", "kubernetes", "--params"]) == 0
    out = capsys.readouterr().out
    assert "DANGEROUS  rollout_undo" in out and "read       get_pod_logs" in out
    assert "previous: boolean" in out and "undo: " in out


def test_skills_show_unknown_pack(capsys):
    assert main(["skills", "show", "nope"]) == 2
    assert "no pack named 'nope'" in capsys.readouterr().err
