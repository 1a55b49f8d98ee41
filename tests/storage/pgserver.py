"""A real PostgreSQL server for the tests: `initdb` in a temporary folder, on a free loopback port.

The server runs as an unprivileged user (PostgreSQL refuses root): the current user, or, when
the tests run as root (CI on a fresh Debian machine), `nobody`, who is given the folder. Its unix
socket lives in the folder too. Tests skip when the binaries are absent, unless
LANTERN_REQUIRE_POSTGRES=1 (`make test` sets it, after installing Debian's `postgresql`), where
they fail instead. Logins over TCP need a password (scram-sha-256), so a wrong one is refused.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REQUIRE_ENV = "LANTERN_REQUIRE_POSTGRES"
SUPERUSER = "lantern"
PASSWORD = "lantern-test-pw"
RUN_AS = "nobody"
"""Who runs the server when the tests run as root."""


def bin_dir() -> Path | None:
    """The directory of initdb/pg_ctl: PATH first, then Debian's /usr/lib/postgresql/N/bin (newest)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    versions = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if Path(d).parent.name.isdigit()]
    dirs = sorted(versions, key=lambda d: int(Path(d).parent.name))
    for d in reversed(dirs):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


def require_binaries() -> Path:
    """The binaries' directory; skips the test (fails under LANTERN_REQUIRE_POSTGRES=1) without them."""
    import pytest

    found = bin_dir()
    if found is not None:
        return found
    msg = "PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin; install Debian's postgresql package"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {msg}", pytrace=False)
    pytest.skip(msg)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """One running server; `database()` makes a fresh database and returns its URL."""

    bin: Path
    folder: Path
    port: int = field(default_factory=_free_port)
    durable: bool = False
    """fsync as a production server does (benchmarks); tests run without it."""
    _as: dict[str, Any] = field(default_factory=dict)

    @property
    def socket_dir(self) -> Path:
        return self.folder / "sock"

    def _run(self, *argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PGPASSWORD": PASSWORD, "LC_ALL": "C.UTF-8"}
        env.pop("PGDATA", None)
        return subprocess.run(
            [str(self.bin / argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.folder,
            check=check,
            timeout=timeout,
            **self._as,
        )

    def start(self) -> PostgresServer:
        """initdb and start; the folder is handed to an unprivileged user first when running as root."""
        self.socket_dir.mkdir()
        (self.folder / "pw").write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            who = pwd.getpwnam(RUN_AS)
            for p in (self.folder, self.socket_dir, self.folder / "pw"):
                os.chown(p, who.pw_uid, who.pw_gid)
            self._as = {"user": who.pw_uid, "group": who.pw_gid, "extra_groups": []}
        self._run(
            "initdb",
            "-D",
            str(self.folder / "data"),
            "-U",
            SUPERUSER,
            f"--pwfile={self.folder / 'pw'}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir} -c max_connections=200 -c shared_buffers=32MB"
        if not self.durable:  # tests: a crash of the test server loses nothing anyone needs
            opts += " -c fsync=off -c full_page_writes=off"
        p = self._run(
            "pg_ctl",
            "-D",
            str(self.folder / "data"),
            "-l",
            str(self.folder / "log"),
            "-w",
            "-o",
            opts,
            "start",
            check=False,
        )
        if p.returncode != 0:
            log = (self.folder / "log").read_text(errors="replace") if (self.folder / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {p.stderr.strip()} {log[-2000:]}")
        return self

    def stop(self) -> None:
        """Stop the server (fast) and remove its folder."""
        try:
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop", check=False, timeout=60)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the unix socket; its output."""
        p = self._run(
            "psql", "-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER, "-d", database,
            "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql,
        )  # fmt: skip
        return p.stdout

    def url(self, database: str, user: str = SUPERUSER, password: str | None = PASSWORD) -> str:
        """A URL for `database` over TCP on loopback."""
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A fresh, empty database; its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)


def start_server(*, durable: bool = False) -> PostgresServer:
    """A started server in a new temporary folder (the caller stops it)."""
    found = require_binaries()
    # as root the server runs as `nobody`, who must be able to reach the folder: /tmp, not a TMPDIR under /root
    folder = Path(tempfile.mkdtemp(prefix="lantern-pg-", dir="/tmp" if os.geteuid() == 0 else None))
    server = PostgresServer(found, folder, durable=durable)
    try:
        return server.start()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
