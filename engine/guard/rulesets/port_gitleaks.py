"""Port gitleaks' default rules (config/gitleaks.toml, MIT) to the scrubber's YAML rule format.

`python engine/guard/rulesets/port_gitleaks.py GITLEAKS_TOML > engine/guard/rulesets/gitleaks.yaml`

Go's RE2 syntax becomes Python's: a `(?i)` inside a pattern scopes to its enclosing group, POSIX
classes are spelled out, `\\z` is `\\Z`. Each rule keeps its id, keywords, secret group and
entropy floor. Left out: the structures the scrubber's own rules express once (SKIP), rules
that match on file paths only, and patterns Python cannot compile.
"""

from __future__ import annotations

import re
import sys
import tomllib
from typing import Any

import yaml

SKIP = {
    "generic-api-key",
    "kubernetes-secret-yaml",
    "private-key",
    "jwt",
    "jwt-base64",
    "curl-auth-header",
    "curl-auth-user",
}
"""The structures rules.yaml expresses once (key-value assignments, Secret manifests, private keys,
JWTs, auth headers and URL credentials): a second copy would only disagree about the span."""
_POSIX = {
    "[:alnum:]": "a-zA-Z0-9",
    "[:alpha:]": "a-zA-Z",
    "[:digit:]": "0-9",
    "[:upper:]": "A-Z",
    "[:lower:]": "a-z",
    "[:xdigit:]": "0-9a-fA-F",
    "[:space:]": r"\s",
    "[:punct:]": r"!-/:-@\[-`{-~",
}


def _group_end(rx: str, i: int) -> int:
    """Index of the `)` closing the group that contains position i (len(rx) at top level)."""
    depth, j, in_class = 0, i, False
    while j < len(rx):
        c = rx[j]
        if c == "\\":
            j += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if rx[j + 1 : j + 2] == "]":
                j += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                return j
            depth -= 1
        j += 1
    return len(rx)


def python_regex(rx: str) -> str:
    """RE2 → Python re."""
    for k, v in _POSIX.items():
        rx = rx.replace(k, v)
    rx = rx.replace(r"\z", r"\Z")
    while True:
        i = rx.find("(?i)", 1)
        if i == -1:
            break
        end = _group_end(rx, i + 4)
        rx = rx[:i] + "(?i:" + rx[i + 4 : end] + ")" + rx[end:]
    return rx


def port(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The scrubber rules for gitleaks' [[rules]]."""
    out = []
    for r in data.get("rules", []):
        if r["id"] in SKIP or not r.get("regex"):
            continue
        rx = python_regex(r["regex"])
        try:
            compiled = re.compile(rx)
        except re.error:
            continue
        rule: dict[str, Any] = {
            "id": r["id"],
            "regex": rx,
            "group": int(r.get("secretGroup") or (1 if compiled.groups else 0)),
        }
        if r.get("keywords"):
            rule["keywords"] = sorted({k.lower() for k in r["keywords"]})
        if r.get("entropy"):
            rule["min_entropy"] = float(r["entropy"])
        out.append(rule)
    return out


HEADER = """# Ported from gitleaks config/gitleaks.toml (MIT License, Copyright (c) 2019 Zachary Rice),
# https://github.com/gitleaks/gitleaks, by engine/guard/rulesets/port_gitleaks.py; do not edit by
# hand, port again. Vendor token formats: the id names the vendor and the kind of credential.
# Fields as in ../rules.yaml; group is the secret's capturing group (0: the whole match),
# min_entropy gitleaks' entropy floor for the value (bits per character).
"""


def main(argv: list[str]) -> int:
    """Read the TOML named on the command line, print the YAML."""
    with open(argv[1], "rb") as f:
        data = tomllib.load(f)
    sys.stdout.write(HEADER + yaml.safe_dump({"secrets": port(data)}, sort_keys=False, width=400, allow_unicode=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
