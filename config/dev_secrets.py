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
from pathlib import Path


def _new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


GENERATORS = {
    "SECRET_KEY": lambda: secrets.token_urlsafe(48),
    "DATA_ENCRYPTION_KEY": _new_key,
    "PII_INDEX_KEY": _new_key,
}


def load_or_create(instance_path: str) -> dict[str, str]:
    """Return the instance's generated secrets, creating the file (or missing keys) once."""
    path = Path(instance_path) / "dev-secrets.json"
    values = json.loads(path.read_text()) if path.exists() else {}
    missing = [key for key in GENERATORS if not values.get(key)]
    if not missing:
        return values
    path.parent.mkdir(parents=True, exist_ok=True)
    values.update({key: GENERATORS[key]() for key in missing})
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    draft.write_text(json.dumps(values))
    draft.chmod(0o600)
    if path.exists():
        os.replace(draft, path)  # an older file gains the keys added since
        return values
    # New file: link into place, so when two local processes start together exactly
    # one file wins and both read the same complete contents.
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return json.loads(path.read_text())
