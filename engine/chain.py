"""Keys and anchors for the hash chains of the audit log and the event record.

The chains are keyed (HMAC-SHA256) with a key kept outside the database, created on first use
with mode 0600, so whoever can edit the database file cannot re-chain the rows after an edit.
The head of the audit chain (its last seq and hash) is appended to an anchor file beside the
database after every row, so deleting the newest rows is detected too: the anchor names a row
the database no longer has. Each anchor line carries its own MAC, so it cannot be forged either.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

KEY_BYTES = 32
"""Size of a chain key."""


def key_path() -> Path:
    """Where the chain key lives: $LANTERN_HOME/audit.key."""
    from engine.config import lantern_home

    return Path(lantern_home()) / "audit.key"


def load_key(path: Path | None = None) -> bytes:
    """The chain key, created (mode 0600) on first use; two processes creating it at once agree."""
    path = path or key_path()
    for _ in range(50):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        if len(data) >= KEY_BYTES:
            return data[:KEY_BYTES]
        if not path.exists():
            _create(path)
            continue
        time.sleep(0.01)  # another process is between creating and filling it: its link is atomic
    raise OSError(f"{path}: the audit key is shorter than {KEY_BYTES} bytes; restore it from a backup")


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic: exactly one process's key wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def mac(key: bytes, text: str) -> str:
    """HMAC-SHA256 of `text` (UTF-8; unencodable code points kept distinct) as hex."""
    return hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def sha256(text: str) -> str:
    """Plain SHA-256 of `text` as hex (stored outputs)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Anchor:
    """The append-only file that records the audit chain's head after every row."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        """The anchor file (beside the database)."""
        self.key = key

    def append(self, seq: int, row_hash: str) -> None:
        """Record that row `seq` with `row_hash` is in the chain (O_APPEND: concurrent writers interleave whole lines)."""
        line = f"{seq} {row_hash} {mac(self.key, f'anchor:{seq}:{row_hash}')}\n".encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def heads(self) -> tuple[dict[int, str], list[str]]:
        """({seq: hash} of every valid line, problems with lines that are not)."""
        out: dict[int, str] = {}
        problems: list[str] = []
        try:
            raw = self.path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return out, problems
        for n, line in enumerate(raw.splitlines(), 1):
            parts = line.split()
            if len(parts) != 3 or not parts[0].isdigit():
                problems.append(f"{self.path}:{n}: not an anchor line")
                continue
            seq, h, m = int(parts[0]), parts[1], parts[2]
            if not hmac.compare_digest(m, mac(self.key, f"anchor:{seq}:{h}")):
                problems.append(
                    f"{self.path}:{n}: anchor for row {seq} does not carry the key's MAC (forged or edited)"
                )
                continue
            out[seq] = h
        return out, problems
