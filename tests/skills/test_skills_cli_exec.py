"""The cli executor with real binaries: argv from parameters, no shell, exit codes, timeouts."""

from __future__ import annotations

import sys

from conftest import write_pack

from skills.executors import run
from skills.loader import load_packs


def _pack(tmp_path, binary, actions):
    write_pack(
        tmp_path,
        "tool",
        f"""
        name: tool
        description: A command-line tool.
        connection: {{executor: cli, binary: "{binary}", timeout: 2}}
        actions:
{actions}
    """,
    )
    result = load_packs([tmp_path])
    assert result.errors == [], [str(e) for e in result.errors]
    return result.pack("tool")


ECHO = """          - name: say
            description: Echo the words back.
            cli:
              argv: ["hello", "{word}", ["--tail", "{tail}"]]
            parameters:
              properties:
                word: {type: string}
                tail: {type: string}
              required: [word]
"""


async def test_argv_is_built_from_parameters_without_a_shell(tmp_path):
    pack = _pack(tmp_path, "/bin/echo", ECHO)
    out = await run(pack.by_name["say"], {"word": "$(touch pwned); `id` | cat > x"})
    assert out.status == "ok"
    assert out.text == "hello $(touch pwned); `id` | cat > x"
    assert not (tmp_path / "pwned").exists()


async def test_optional_groups_drop_out_and_appear_when_given(tmp_path):
    pack = _pack(tmp_path, "/bin/echo", ECHO)
    assert (await run(pack.by_name["say"], {"word": "a"})).text == "hello a"
    assert (await run(pack.by_name["say"], {"word": "a", "tail": "z"})).text == "hello a --tail z"


async def test_values_cannot_become_options(tmp_path):
    pack = _pack(tmp_path, "/bin/echo", ECHO)
    out = await run(pack.by_name["say"], {"word": "--help"})
    assert out.status == "error" and "may not start with '-'" in out.text


async def test_exit_status_becomes_an_error_with_stderr(tmp_path):
    actions = """          - name: fail
            description: Fail with a message on stderr.
            cli: {argv: ["-c", "import sys; print('disk full', file=sys.stderr); sys.exit(3)"]}
"""
    out = await run(_pack(tmp_path, sys.executable, actions).by_name["fail"], {})
    assert out.status == "error" and "exited with status 3" in out.text and "disk full" in out.text


async def test_json_output_is_parsed_and_projected(tmp_path):
    actions = """          - name: info
            description: Print JSON about things.
            cli: {argv: ["-c", "import json; print(json.dumps({'items': [{'name': 'a', 'junk': 1}, {'name': 'b', 'junk': 2}]}))"], output: json}
            output: ["items[].name"]
"""
    out = await run(_pack(tmp_path, sys.executable, actions).by_name["info"], {})
    assert out.data == {"items": [{"name": "a"}, {"name": "b"}]}
    assert "junk" not in out.text


async def test_timeout_stops_the_process(tmp_path):
    actions = """          - name: hang
            description: Sleep longer than allowed.
            cli: {argv: ["30"]}
"""
    out = await run(_pack(tmp_path, "/bin/sleep", actions).by_name["hang"], {})
    assert out.status == "error" and "did not finish within 2s" in out.text


async def test_missing_binary_is_a_clear_error(tmp_path):
    out = await run(_pack(tmp_path, "definitely-not-installed-xyz", ECHO).by_name["say"], {"word": "a"})
    assert out.status == "error" and "definitely-not-installed-xyz" in out.text and "not installed" in out.text


def test_read_action_of_a_mutating_command_is_rejected(tmp_path):
    write_pack(
        tmp_path,
        "tool",
        """
        name: tool
        description: A command-line tool.
        connection: {executor: cli, binary: /bin/rm}
        actions:
          - name: clean
            description: Remove a file quietly.
            cli: {argv: ["{path}"], mutates: true}
            parameters: {properties: {path: {type: string}}, required: [path]}
    """,
    )
    (err,) = load_packs([tmp_path]).errors
    assert err.field == "actions[0].risk" and "mutates" in err.message
