"""Where followers came from: channels (branches, customer managers, campaigns), their QR
and mini-program codes, posters, and the funnel from scan to redemption."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Blueprints and CLI of attribution (the scan handlers register with the dispatcher in
    ``campaigns.init_app``)."""
