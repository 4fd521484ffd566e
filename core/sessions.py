"""Flask's cookie sessions, opened only for requests that carry the cookie.

The stock interface builds its signing serializer for every request, about
25 µs each; WeChat's callbacks and the JSON APIs never carry the cookie.
"""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface


class LazyCookieSessionInterface(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()  # empty; saved (and signed) only if written to
        return super().open_session(app, request)
