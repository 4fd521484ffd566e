"""The bank's SMS platform: one-time codes and security notices.

Messages go out from a job, so a request never waits on the SMS platform and
answers in the same time whatever it sent. The job's arguments sit in Redis,
so phone and text travel encrypted by the vault, never in plaintext.
"""

from __future__ import annotations

import json
import logging

import requests
from flask import current_app

from core.jobs import enqueue_after_commit
from members.holders import tasks
from members.protection.masking import mask_phone
from members.protection.pii import vault

log = logging.getLogger(__name__)
_CONTEXT = "sms.outbound"


class SmsError(RuntimeError):
    """The SMS platform refused or did not answer; the job is retried."""


def send_after_commit(phone: str, message: str) -> None:
    """Send ``message`` to ``phone`` once the current transaction commits."""
    sealed = vault().encrypt(json.dumps({"phone": phone, "message": message}), _CONTEXT)
    enqueue_after_commit(tasks.deliver_sms, sealed, retries=3)


def deliver(sealed: str) -> None:
    """Post one sealed SMS to the platform (or, in development, to the log)."""
    payload = json.loads(vault().decrypt(sealed, _CONTEXT))
    url = current_app.config["SMS_GATEWAY_URL"]
    if not url:
        # Development only: production refuses to start without SMS_GATEWAY_URL.
        log.warning("SMS (dev, not sent) to %s: %s", mask_phone(payload["phone"]),
                    payload["message"])
        return
    try:
        response = requests.post(url, json=payload, timeout=current_app.config["SMS_TIMEOUT"])
    except requests.RequestException as exc:
        raise SmsError(f"SMS platform unreachable: {type(exc).__name__}") from exc
    if not response.ok:
        raise SmsError(f"SMS platform answered HTTP {response.status_code}")
    log.info("SMS sent to %s", mask_phone(payload["phone"]))
