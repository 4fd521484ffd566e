"""The WeChat codes of a channel, each asked of WeChat once and kept (``ChannelCode``):

- ``permanent_code(channel)``: the official account's permanent QR code
  (``QR_LIMIT_STR_SCENE``, scene string = the channel's code), its ``ticket`` and ``url``;
- ``temporary_code(channel, days)``: a ``QR_STR_SCENE`` code living up to 30 days, for a
  short campaign; reused while it still lives as long as asked;
- ``miniapp_code(channel)``: the mini-program code (``getwxacodeunlimit``, scene = the
  channel's code, page ``MINIAPP_CHANNEL_PAGE``), WeChat's PNG kept in ``image``;
- ``qr_png(url)``: the image of a QR code rendered here (segno) from the ``url`` WeChat
  returned, at print resolution with a 4-module quiet zone; posters draw the same ``url``.

Asked once, also under concurrency: the first request *claims* the code by inserting its
row (empty) before calling WeChat. The partial unique index ``uq_channel_code_lasting``
(one permanent and one mini-program code per channel) makes a concurrent first request's
insert wait until the claimer's transaction ends: committed, it inserts nothing and reads
the claimer's answer; rolled back (WeChat failed), it claims in turn. WeChat is never asked
twice for one channel's lasting code, and no second row exists. The claim holds only that
channel's index entry while WeChat answers (on SQLite, the single writer is held).
A failed call deletes its claim before raising, so a caller that goes on (a batch job)
cannot commit an empty code.

The budget: every permanent code counts against the account's 100,000
(``WECHAT_PERMANENT_QR_LIMIT``) for ever. ``budget()`` tells the console how many are
used and warns from ``WECHAT_PERMANENT_QR_WARNING`` (80 %); at the limit a new permanent
code is refused (409 ``qr_budget_exhausted``) without asking WeChat, and WeChat's own
45029 is the same refusal (codes made outside this system count there too).
Concurrent first requests of different channels one short of the limit may pass the count
together; WeChat's 45029 then refuses the excess.

A deactivated channel keeps (and serves) the codes it has, and gets no new one (409
``channel_inactive``). Services: the caller commits.
"""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from functools import lru_cache
from typing import Any

import segno
from flask import current_app
from PIL import Image
from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from campaigns.attribution.models import (
    MINIAPP,
    OA_PERMANENT,
    OA_TEMPORARY,
    Channel,
    ChannelCode,
)
from core.db import db, utcnow
from core.errors import ApiError
from wechat import clients, qrcodes
from wechat.errors import CodeLimitReached, PageRejected, WeChatAPIError, WeChatUnavailable

log = logging.getLogger(__name__)

QUIET_ZONE = 4  # modules of white around the code: the standard's minimum
DEFAULT_SCALE = 16  # pixels per module: ~600 px for WeChat's URLs, 5 cm at 300 dpi
PRINT_DPI = 300
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEMPORARY_DAYS_MAX = 30
# A temporary code asked again soon after is the same code, though it lives a little less.
TEMPORARY_REUSE_SLACK = timedelta(hours=1)
# The predicate of uq_channel_code_lasting, which ON CONFLICT must name to infer it.
_LASTING = text("kind <> 'oa_temporary'")


# -- the budget ---------------------------------------------------------------------------------

def budget() -> dict[str, Any]:
    """``{"used", "limit", "warning"}``: permanent codes issued, the account's limit, and
    whether the warning share is reached."""
    used = db.session.scalar(select(func.count()).select_from(ChannelCode)
                             .where(ChannelCode.kind == OA_PERMANENT)) or 0
    limit = current_app.config["WECHAT_PERMANENT_QR_LIMIT"]
    share = current_app.config["WECHAT_PERMANENT_QR_WARNING"]
    return {"used": used, "limit": limit, "warning": used >= limit * share}


def _exhausted(limit: int) -> ApiError:
    return ApiError(409, "qr_budget_exhausted",
                    f"the official account's {limit} permanent QR codes are used up; "
                    "use a temporary or a mini-program code")


# -- asking WeChat once -------------------------------------------------------------------------

def _lasting(channel: Channel, kind: str) -> ChannelCode | None:
    return db.session.scalar(select(ChannelCode).where(ChannelCode.channel_id == channel.id,
                                                       ChannelCode.kind == kind))


def _claim(channel: Channel, kind: str) -> int | None:
    """The id of a new, empty row of ``channel``'s ``kind`` code; None when another request
    has it (having waited for that request to commit)."""
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (dialect.insert(ChannelCode.__table__)
                 .values(channel_id=channel.id, kind=kind, created_at=utcnow())
                 .on_conflict_do_nothing(index_elements=["channel_id", "kind"],
                                         index_where=_LASTING)
                 .returning(ChannelCode.id))
    return db.session.execute(statement).scalar()


def _active(channel: Channel) -> None:
    if not channel.active:
        raise ApiError(409, "channel_inactive",
                       "the channel is deactivated: it keeps its codes but gets no new one")


def _refusal(exc: WeChatAPIError) -> ApiError:
    """What WeChat's refusal means to the staff member who asked."""
    if isinstance(exc, CodeLimitReached):
        log.warning("WeChat refused a permanent QR code: the account's are used up (45029)")
        return _exhausted(current_app.config["WECHAT_PERMANENT_QR_LIMIT"])
    if isinstance(exc, WeChatUnavailable):
        return ApiError(503, "wechat_unavailable", "WeChat did not answer; retry shortly",
                        {"Retry-After": "5"})
    if isinstance(exc, PageRejected):
        return ApiError(502, "wechat_error", "WeChat refused the mini-program page (41030): "
                                             "MINIAPP_CHANNEL_PAGE must be a released page")
    return ApiError(502, "wechat_error", f"WeChat refused the request ({exc.errcode})")


def _ask_once(channel: Channel, kind: str, fill: Any) -> ChannelCode:
    """The channel's lasting code of ``kind``: the stored one, or claimed, ``fill(row)``
    from WeChat, and stored."""
    claimed = _claim(channel, kind)
    if claimed is None:
        stored = _lasting(channel, kind)
        if stored is None:  # unreachable: a conflict means a committed row
            raise ApiError(503, "code_busy", "retry shortly")
        return stored
    row = db.session.get(ChannelCode, claimed)
    try:
        fill(row)
    except WeChatAPIError as exc:
        db.session.expunge(row)
        db.session.execute(delete(ChannelCode).where(ChannelCode.id == claimed))
        raise _refusal(exc) from exc
    db.session.flush()
    return row


def permanent_code(channel: Channel) -> ChannelCode:
    """The channel's permanent QR code (``ticket``, ``url``), asked of WeChat the first time
    only; 409 ``qr_budget_exhausted`` at the limit, 409 ``channel_inactive``."""
    stored = _lasting(channel, OA_PERMANENT)
    if stored is not None:
        return stored
    _active(channel)
    figures = budget()
    if figures["used"] >= figures["limit"]:
        raise _exhausted(figures["limit"])

    def fill(row: ChannelCode) -> None:
        answer = qrcodes.permanent_qr(clients.official_account(), channel.code)
        row.ticket, row.url = answer.ticket, answer.url

    return _ask_once(channel, OA_PERMANENT, fill)


def miniapp_code(channel: Channel) -> bytes:
    """The channel's mini-program code (PNG), asked of WeChat the first time only."""
    stored = _lasting(channel, MINIAPP)
    if stored is not None and stored.image is not None:
        return stored.image
    _active(channel)
    config = current_app.config

    def fill(row: ChannelCode) -> None:
        row.image = qrcodes.wxacode_unlimited(
            clients.mini_program(), channel.code, page=config["MINIAPP_CHANNEL_PAGE"] or None,
            width=config["MINIAPP_CODE_WIDTH"], check_path=config["MINIAPP_CODE_CHECK_PATH"],
            env_version=config["MINIAPP_CODE_ENV_VERSION"])

    row = _ask_once(channel, MINIAPP, fill)
    if row.image is not None and not row.image.startswith(PNG_SIGNATURE):
        row.image = _as_png(row.image)  # WeChat may answer a JPEG; staff are promised PNGs
    if row.image is None:  # unreachable: a stored mini-program code always has its image
        raise ApiError(503, "code_busy", "retry shortly")
    return row.image


def temporary_code(channel: Channel, days: int) -> ChannelCode:
    """A temporary QR code of the channel living ``days`` (1 to 30): the newest stored one
    while it lives that long still (give or take ``TEMPORARY_REUSE_SLACK``), else a new one.
    Temporary codes cost no budget; two racing requests may both make one, harmlessly."""
    if isinstance(days, bool) or not isinstance(days, int) \
            or not 0 < days <= TEMPORARY_DAYS_MAX:
        raise ApiError(400, "invalid_days", f"days must be 1 to {TEMPORARY_DAYS_MAX}")
    now = utcnow()
    needed = now + timedelta(days=days) - TEMPORARY_REUSE_SLACK
    stored = db.session.scalar(
        select(ChannelCode).where(ChannelCode.channel_id == channel.id,
                                  ChannelCode.kind == OA_TEMPORARY,
                                  ChannelCode.expires_at >= needed)
        .order_by(ChannelCode.expires_at.desc()).limit(1))
    if stored is not None:
        return stored
    _active(channel)
    try:
        answer = qrcodes.temporary_qr(clients.official_account(), channel.code, days * 86400)
    except WeChatAPIError as exc:
        raise _refusal(exc) from exc
    lives = answer.expire_seconds if answer.expire_seconds is not None else days * 86400
    row = ChannelCode(channel_id=channel.id, kind=OA_TEMPORARY, ticket=answer.ticket,
                      url=answer.url, expires_at=now + timedelta(seconds=lives), created_at=now)
    db.session.add(row)
    db.session.flush()
    return row


# -- the image ----------------------------------------------------------------------------------

def _as_png(image: bytes) -> bytes:
    with Image.open(io.BytesIO(image)) as picture:
        out = io.BytesIO()
        picture.save(out, format="PNG", optimize=True)
    return out.getvalue()


@lru_cache(maxsize=256)
def qr_png(url: str, *, scale: int = DEFAULT_SCALE) -> bytes:
    """The QR code of ``url`` as a black-on-white PNG: ``scale`` pixels a module, a quiet
    zone of ``QUIET_ZONE`` modules, 300 dpi. Error correction M at least (segno raises it
    while the version stays the same), which survives a poster's wear and a phone's
    glare. The same url always gives the same bytes (cached)."""
    code = segno.make_qr(url, error="m", boost_error=True)
    out = io.BytesIO()
    code.save(out, kind="png", scale=scale, border=QUIET_ZONE, dpi=PRINT_DPI)
    return out.getvalue()
