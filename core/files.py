"""Files written whole or not at all."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_file(path: Path, *, durable: bool = True) -> Iterator[IO[bytes]]:
    """A file to write ``path``'s new content to: once the block ends, ``path`` holds all of
    it, or (the block raised) what it held before, never a part. A temporary file in the
    same folder, flushed to disk (``durable``), renamed over it. Without the flush a crash of
    the machine may leave the file empty or cut: for caches that check what they read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False) as tmp:
        try:
            yield tmp
            if durable:
                tmp.flush()
                os.fsync(tmp.fileno())
        except BaseException:
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, path)


def write_atomically(path: Path, data: bytes, *, durable: bool = True) -> None:
    """``path`` holds ``data`` or what it held before (``atomic_file``)."""
    with atomic_file(path, durable=durable) as file:
        file.write(data)
