"""Fixtures for the skills tests: real loopback servers and pack files in temp dirs."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
import skills_http_app as http_app
from keyring.backend import KeyringBackend


@pytest.fixture(scope="session")
def api() -> Iterator[http_app.Served]:
    """The misbehaving HTTP API on 127.0.0.1."""
    with http_app.Served(http_app.make_app()) as served:
        yield served


@pytest.fixture(autouse=True)
def _reset_hits() -> None:
    http_app.hits.clear()
    http_app.seen_headers.clear()


class MemoryKeyring(KeyringBackend):
    """A real keyring backend kept in memory (the test stand-in for Secret Service)."""

    priority = 10  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        if (service, username) not in self.store:
            raise PasswordDeleteError(username)
        del self.store[(service, username)]


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """Install an in-memory keyring backend for one test."""
    before = keyring.get_keyring()
    kr = MemoryKeyring()
    keyring.set_keyring(kr)
    try:
        yield kr
    finally:
        keyring.set_keyring(before)


def write_pack(directory: Path, name: str, text: str) -> Path:
    """Write a pack YAML file (dedented) and return its path."""
    p = directory / f"{name}.yaml"
    p.write_text(textwrap.dedent(text).lstrip())
    return p
