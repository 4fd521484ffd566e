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


def load_or_create(instance_path: str) -> dict[str, str]:
    """Return the instance's generated secrets, creating the file on first use."""
    path = Path(instance_path) / "dev-secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATA_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "PII_INDEX_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    # Write aside, then link into place: when two local processes start together,
    # exactly one file wins and both read complete contents.
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    draft.write_text(json.dumps(values))
    draft.chmod(0o600)
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return json.loads(path.read_text())
