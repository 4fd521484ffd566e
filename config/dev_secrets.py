"""Secrets generated once per development instance and kept under instance/.

They must survive restarts (data encrypted at rest stays readable, sessions stay
valid) and be shared by every local process, so they are written to a file
rather than generated per process. Production never reaches this code.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import tempfile
from pathlib import Path

from filelock import FileLock


def _new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


GENERATORS = {
    "SECRET_KEY": lambda: secrets.token_urlsafe(48),
    "DATA_ENCRYPTION_KEY": _new_key,
    "PII_INDEX_KEY": _new_key,
}


def load_or_create(instance_path: str) -> dict[str, str]:
    """Return the instance's generated secrets, creating the file (or missing keys) once.

    Processes that find keys missing take turns under a file lock and look again once
    they hold it, so local processes starting together (``flask run`` beside ``flask
    wechat-sim``) all use the one set the file keeps: a process whose keys another
    overwrote would encrypt data that no restart could read.
    """
    path = Path(instance_path) / "dev-secrets.json"
    values = _read(path)
    if not _missing(values):
        return values
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(f"{path.name}.lock")):
        values = _read(path)  # another process may have written them meanwhile
        missing = _missing(values)
        if missing:  # no file yet, or an older one without the keys added since
            values.update({key: GENERATORS[key]() for key in missing})
            _replace(path, json.dumps(values))
    return values


def _read(path: Path) -> dict[str, str]:
    return json.loads(path.read_text()) if path.exists() else {}


def _missing(values: dict[str, str]) -> list[str]:
    return [key for key in GENERATORS if not values.get(key)]


def _replace(path: Path, content: str) -> None:
    """Write ``path`` in one step, owner-only from the start: a reader taking no lock sees
    the old file or the new one, never part of one."""
    descriptor, draft = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(content)
        os.replace(draft, path)
    except BaseException:
        Path(draft).unlink(missing_ok=True)
        raise
