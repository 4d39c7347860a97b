"""Where audit entries are kept: an append-only JSON Lines file, safe across processes.

Each append (1) takes an exclusive ``fcntl`` lock on the file, so that several processes (the
gunicorn workers of the service, a cron'd gateway publish beside the node's API) never
interleave or fork the chain; (2) reads the last entry, the head the new ones chain to;
(3) writes the new lines, flushes and ``fsync``\\s; (4) releases the lock. A file whose last
line is incomplete (a crash mid-write, a truncation) is refused for appending: nothing is
chained to a head that cannot be read (run ``placelink audit verify``).

:class:`MemoryLog` keeps entries in memory, for tests and for an app built without a log file.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from keys.errors import StorageError
from policies.canonical import canonical_json

Build = Callable[[Mapping[str, Any] | None], list[dict[str, Any]]]
_TAIL_CHUNK = 8192


class LogBackend(Protocol):
    def append(self, build: Build) -> None:
        """Under the lock: call ``build(head)`` and append the entries it returns."""

    def lines(self) -> Iterator[str]:
        """Every line as written (for verification: parsing is the verifier's job)."""

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, parsed."""


def encode_entry(entry: Mapping[str, Any]) -> bytes:
    return canonical_json(dict(entry)) + b"\n"


class FileLog:
    """An append-only JSONL file (mode 0600); see the module docstring for the locking."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, build: Build) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError:
            raise StorageError(
                f"cannot open the audit log {self.path}", fix="check the path and its permissions"
            ) from None
        with os.fdopen(fd, "r+b") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            try:
                new = build(self._head(file))
                if new:
                    file.write(b"".join(encode_entry(e) for e in new))
                    file.flush()
                    os.fsync(file.fileno())
            finally:
                fcntl.flock(file, fcntl.LOCK_UN)

    def _head(self, file: Any) -> dict[str, Any] | None:
        """The last entry of the file (read backwards from its end)."""
        end = file.seek(0, os.SEEK_END)
        if end == 0:
            return None
        data, position = b"", end
        while position > 0 and data[:-1].count(b"\n") == 0:
            step = min(_TAIL_CHUNK, position)
            position -= step
            file.seek(position)
            data = file.read(step) + data
        last = data[:-1].rsplit(b"\n", 1)[-1]
        try:
            head = json.loads(last) if data.endswith(b"\n") else None
        except ValueError:
            head = None
        if not isinstance(head, dict) or "seq" not in head or "entry_hash" not in head:
            raise StorageError(
                f"the audit log {self.path} ends in an incomplete or unreadable entry",
                fix="run `placelink audit verify` on it; keep it as evidence and start a new log",
            )
        return head

    def lines(self) -> Iterator[str]:
        if not self.path.exists():
            return
        with self.path.open("rb") as file:
            for raw in file:
                yield raw.decode("utf-8", errors="replace")

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines() if line.strip()]


class MemoryLog:
    """Entries kept in memory (tests; an app built without a log file)."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def append(self, build: Build) -> None:
        with self._lock:
            head = json.loads(self._lines[-1]) if self._lines else None
            self._lines.extend(encode_entry(e).decode("utf-8") for e in build(head))

    def lines(self) -> Iterator[str]:
        yield from list(self._lines)

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self._lines)]
