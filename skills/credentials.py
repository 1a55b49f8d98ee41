"""Credentials by name: the OS keyring first, then LANTERN_CRED_<NAME>; values never leave the executor.

Packs name credentials (`credential: github-token`); executors call `resolve(name)` after the policy
decision. Every value resolved in this process is remembered (`known_values()`) so output scrubbing
can remove it verbatim if a tool echoes it back. Lantern never stores a secret in plaintext: when the
only keyring backend is the fail/plaintext one, `set` refuses and says how to use the env var instead.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

SERVICE = "lantern"
"""Keyring service name under which values are stored."""

_lock = threading.Lock()
_known: dict[str, str] = {}


class CredentialMissing(LookupError):
    """A pack needs a credential that is neither in the keyring nor in the environment."""

    def __init__(self, name: str) -> None:
        super().__init__(f"credential {name!r} is not set: run `lantern creds set {name}` or export {env_var(name)}")
        self.name = name


class InsecureBackend(RuntimeError):
    """The keyring has no secure backend; storing would mean plaintext or nothing."""


def env_var(name: str) -> str:
    """The environment variable that can hold `name`: LANTERN_CRED_<NAME upper, - and . → _>."""
    return "LANTERN_CRED_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


def backend_name() -> str:
    """The keyring backend in use, as keyring names it (e.g. keyring.backends.fail.Keyring)."""
    try:
        import keyring

        kr = keyring.get_keyring()
    except Exception as exc:  # noqa: BLE001 - a broken keyring install is reported, not fatal
        return f"unavailable ({type(exc).__name__})"
    return f"{type(kr).__module__}.{type(kr).__name__}"


def backend_is_secure() -> bool:
    """False for the fail backend, a chainer with nothing behind it, and any plaintext backend."""
    try:
        import keyring
        from keyring.backends import chainer, fail

        kr = keyring.get_keyring()
    except Exception:  # noqa: BLE001
        return False
    if isinstance(kr, fail.Keyring):
        return False
    if isinstance(kr, chainer.ChainerBackend) and not kr.backends:
        return False
    name = backend_name().lower()
    return not ("plaintext" in name or "null" in name)


def _keyring_get(name: str) -> str | None:
    try:
        import keyring

        return keyring.get_password(SERVICE, name)
    except Exception:  # noqa: BLE001 - no backend (headless machine) means "not in the keyring"
        return None


def _remember(name: str, value: str) -> None:
    with _lock:
        _known[name] = value


def where(name: str) -> str:
    """'keyring', 'env' or 'missing' (never the value)."""
    if _keyring_get(name) is not None:
        return "keyring"
    if os.environ.get(env_var(name)):
        return "env"
    return "missing"


def resolve(name: str) -> str:
    """The secret value for `name` (keyring, then env var); only executors call this."""
    value = _keyring_get(name)
    if value is None:
        value = os.environ.get(env_var(name)) or None
    if value is None:
        raise CredentialMissing(name)
    _remember(name, value)
    return value


def known_values() -> dict[str, str]:
    """Values resolved in this process, by name, so the guard can scrub them from any output."""
    with _lock:
        return dict(_known)


KEYRING_TTL_S = 30.0
"""How long the keyring's stored values are reused before the keyring is read again."""
_stored: tuple[float, dict[str, str]] = (-1e9, {})


def note_literal(name: str, value: str) -> None:
    """A secret written into a pack's config (a header value, a URL's password): scrubbed like a credential."""
    if value:
        _remember(name, value)


def configured_values() -> dict[str, str]:
    """Every credential value this user has configured, resolved in this process or not: each
    LANTERN_CRED_* variable, each name stored with `lantern creds set` (the keyring is read at
    most every KEYRING_TTL_S), and the values already resolved or noted."""
    import time

    global _stored
    at, stored = _stored
    if time.monotonic() - at > KEYRING_TTL_S:
        stored = {name: v for name in _read_index() if (v := _keyring_get(name))}
        _stored = (time.monotonic(), stored)
    env = {k: v for k, v in os.environ.items() if k.startswith("LANTERN_CRED_") and v}
    return {**env, **stored, **known_values()}


def _index_path() -> Path:
    from engine.config import lantern_home

    return lantern_home() / "credentials.json"


def _read_index() -> list[str]:
    try:
        names = json.loads(_index_path().read_text())
    except (OSError, ValueError):
        return []
    return [n for n in names if isinstance(n, str)]


def _write_index(names: list[str]) -> None:
    p = _index_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(sorted(set(names))))
    tmp.replace(p)


def store(name: str, value: str) -> str:
    """Save `value` under `name` in the keyring; returns the backend used. Refuses insecure backends."""
    if not value:
        raise ValueError("refusing to store an empty value")
    if not backend_is_secure():
        raise InsecureBackend(
            f"no secure keyring backend is available (keyring uses {backend_name()}), and Lantern does not "
            f"store secrets in plaintext. Either start a Secret Service (gnome-keyring, KeePassXC) or another "
            f"keyring backend, or export {env_var(name)} from your secret manager in the shell that runs lantern."
        )
    import keyring

    keyring.set_password(SERVICE, name, value)
    _write_index(_read_index() + [name])
    return backend_name()


def remove(name: str) -> bool:
    """Delete `name` from the keyring; True when something was deleted."""
    deleted = False
    try:
        import keyring
        from keyring.errors import PasswordDeleteError

        try:
            keyring.delete_password(SERVICE, name)
            deleted = True
        except PasswordDeleteError:
            deleted = False
    except Exception:  # noqa: BLE001 - no backend: nothing to delete
        deleted = False
    names = _read_index()
    if name in names:
        _write_index([n for n in names if n != name])
    return deleted


@dataclass
class CredentialInfo:
    """A credential's name, where it was found, and which packs use it (never the value)."""

    name: str
    """Credential name."""
    found: str
    """keyring | env | missing."""
    packs: list[str]
    """Packs that reference it."""


def inventory(pack_refs: dict[str, list[str]] | None = None) -> list[CredentialInfo]:
    """Every credential Lantern knows of: stored ones, LANTERN_CRED_* variables, and those packs name."""
    refs = pack_refs or {}
    names = set(_read_index()) | set(refs)
    env_names = {k for k in os.environ if k.startswith("LANTERN_CRED_")}
    known_env = {env_var(n) for n in names}
    for var in env_names - known_env:
        names.add(var.removeprefix("LANTERN_CRED_").lower().replace("_", "-"))
    return [CredentialInfo(n, where(n), sorted(refs.get(n, []))) for n in sorted(names)]
