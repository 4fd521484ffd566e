"""Baseline of bench/redeem.py: the classic voucher redemption, one stock counter row locked
per redemption.

``POST /api/campaigns/<slug>/redeem {"option", "request_id"}`` with ``Authorization:
Bearer <token>``, in one transaction:

1. the caller: the token's SHA-256 looked up in ``naive_session`` (401 when unknown);
2. ``SELECT ... FROM naive_stock ... FOR UPDATE``: the option's one counter row, so every
   redemption of the option waits here until the one before it has committed;
3. none left: 409 ``out_of_stock``; else the counter is decremented;
4. the next code by its position: ``ORDER BY id OFFSET total - remaining LIMIT 1``;
5. the redemption inserted (``UNIQUE (holder_id, request_id)``: a reused request_id is
   refused with 409, not replayed);

then ``200 {"redemption_id", "option", "code"}``. The design gives each code once (the
counter's lock orders the offsets) at the price of running one redemption of an option
at a time, its commit included. Less work per request than the project on purpose: no
eligibility, per-holder limit or points, codes in plain text, no metrics. Nothing stops
a code from being stored in two redemptions but the counter: the bench checks it.

Its own tables (``naive_*``) in the bench database, made and filled by the bench
(:func:`create_schema`, :func:`seed`) before the workers start. Serve with
``gunicorn 'bench.peers.naive_redeem:create()'`` with DATABASE_URL set.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

from flask import Flask, Response, jsonify, request
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import IntegrityError

SCHEMA = (
    """CREATE TABLE naive_session (
        token_hash text PRIMARY KEY,
        holder_id bigint NOT NULL)""",
    """CREATE TABLE naive_stock (
        id serial PRIMARY KEY,
        slug text NOT NULL,
        option text NOT NULL,
        total integer NOT NULL,
        remaining integer NOT NULL,
        UNIQUE (slug, option))""",
    """CREATE TABLE naive_code (
        id bigserial PRIMARY KEY,
        stock_id integer NOT NULL REFERENCES naive_stock (id),
        code text NOT NULL)""",
    "CREATE INDEX naive_code_stock_id_id ON naive_code (stock_id, id)",
    """CREATE TABLE naive_redemption (
        id bigserial PRIMARY KEY,
        holder_id bigint NOT NULL,
        stock_id integer NOT NULL REFERENCES naive_stock (id),
        code_id bigint NOT NULL REFERENCES naive_code (id),
        request_id text NOT NULL,
        redeemed_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (holder_id, request_id))""",
)
TABLES = ("naive_redemption", "naive_code", "naive_stock", "naive_session")

SESSION = text("SELECT holder_id FROM naive_session WHERE token_hash = :hash")
LOCK_STOCK = text("SELECT id, total, remaining FROM naive_stock "
                  "WHERE slug = :slug AND option = :option FOR UPDATE")
DECREMENT = text("UPDATE naive_stock SET remaining = remaining - 1 WHERE id = :id")
NEXT_CODE = text("SELECT id, code FROM naive_code WHERE stock_id = :stock "
                 "ORDER BY id OFFSET :offset LIMIT 1")
INSERT = text("INSERT INTO naive_redemption (holder_id, stock_id, code_id, request_id) "
              "VALUES (:holder, :stock, :code, :request_id) RETURNING id")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_schema(database_url: str) -> None:
    """The peer's tables in the bench database, empty (dropped first if a run left them)."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            for name in TABLES:
                connection.execute(text(f"DROP TABLE IF EXISTS {name}"))
            for statement in SCHEMA:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def seed(database_url: str, stocks: Mapping[tuple[str, str], list[str]],
         sessions: Mapping[str, int]) -> None:
    """Stock rows and their codes per (slug, option), and bearer tokens -> holder ids."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO naive_session (token_hash, holder_id) "
                                    "VALUES (:hash, :holder)"),
                               [{"hash": token_hash(token), "holder": holder}
                                for token, holder in sessions.items()])
            for (slug, option), codes in stocks.items():
                stock = connection.scalar(text(
                    "INSERT INTO naive_stock (slug, option, total, remaining) "
                    "VALUES (:slug, :option, :n, :n) RETURNING id"),
                    {"slug": slug, "option": option, "n": len(codes)})
                connection.execute(text("INSERT INTO naive_code (stock_id, code) "
                                        "VALUES (:stock, :code)"),
                                   [{"stock": stock, "code": code} for code in codes])
    finally:
        engine.dispose()


def create() -> Flask:
    """The peer app, its database from DATABASE_URL."""
    engine = create_engine(os.environ["DATABASE_URL"])
    app = Flask(__name__)
    app.add_url_rule("/api/campaigns/<slug>/redeem", view_func=lambda slug: redeem(engine, slug),
                     methods=["POST"], endpoint="redeem")
    return app


def _error(status: int, code: str) -> tuple[Response, int]:
    return jsonify(error=code, message=code.replace("_", " ")), status


def redeem(engine: Engine, slug: str) -> Response | tuple[Response, int]:
    body = request.get_json(silent=True) or {}
    option, request_id = body.get("option"), body.get("request_id")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if not (isinstance(option, str) and isinstance(request_id, str) and 0 < len(request_id) <= 64):
        return _error(400, "invalid_request")
    if scheme.lower() != "bearer" or not token:
        return _error(401, "missing_token")
    try:
        with engine.begin() as connection:
            holder = connection.scalar(SESSION, {"hash": token_hash(token)})
            if holder is None:
                return _error(401, "invalid_token")
            stock = connection.execute(LOCK_STOCK, {"slug": slug, "option": option}).first()
            if stock is None:
                return _error(404, "unknown_option")
            if stock.remaining <= 0:
                return _error(409, "out_of_stock")
            connection.execute(DECREMENT, {"id": stock.id})
            code = connection.execute(
                NEXT_CODE, {"stock": stock.id, "offset": stock.total - stock.remaining}).one()
            redemption = connection.scalar(INSERT, {"holder": holder, "stock": stock.id,
                                                    "code": code.id, "request_id": request_id})
    except IntegrityError:  # this holder's request_id again
        return _error(409, "request_id_reused")
    return jsonify(redemption_id=str(redemption), option=option, code=code.code)
