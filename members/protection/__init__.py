"""What keeps personal data safe: identity rules, the PII vault, masking, the audit trail,
rate limits and the region policy."""

from __future__ import annotations

from flask import Flask
from flask.cli import AppGroup

from core import client_ip
from members.protection import audit, limits, pii, regions


def init_app(app: Flask, group: AppGroup) -> None:
    pii.init_app(app)
    client_ip.init_app(app)
    regions.init_app(app)
    limits.init_app(app)
    group.add_command(audit.audit_command)
