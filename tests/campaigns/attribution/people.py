"""Hand-built rows for funnel tests: followers, mini-program arrivals, holders, bindings,
transactions and redemptions, exactly as given (each test knows every row it counts).

The callback and the APIs make these rows in the attribution tests; here the funnel's SQL
is checked against a data set small enough to count by hand. Call inside an app context;
the caller commits.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from campaigns.attribution.models import Channel, QrScan
from campaigns.benefits.models import Campaign, CampaignOption, Redemption, VoucherCode
from core.db import db
from members.holders.models import (
    Binding,
    CardHolder,
    Follower,
    MemberSession,
    MiniappArrival,
)
from members.transactions.models import Transaction

T0 = datetime(2026, 11, 1, 4, tzinfo=UTC)  # 12:00 in Shanghai, 1 November 2026
_numbers = itertools.count(1)


def day(n: int, hours: int = 0) -> datetime:
    """``n`` days and ``hours`` hours after T0."""
    return T0 + timedelta(days=n, hours=hours)


def follower(openid: str, scene: str | None, at: datetime = T0,
             unionid: str | None = None) -> None:
    db.session.add(Follower(openid=openid, unionid=unionid, subscribed=True, first_scene=scene,
                            first_scene_at=at if scene else None, subscribed_at=at))


def arrival(openid: str, channel: str, at: datetime = T0, unionid: str | None = None) -> None:
    db.session.add(MiniappArrival(openid=openid, unionid=unionid, channel=channel,
                                  arrived_at=at))


def scan(openid: str, scene: str, at: datetime = T0, followed: bool = False) -> None:
    db.session.add(QrScan(openid=openid, scene=scene, followed=followed, scanned_at=at))


def channel(code: str, name: str, branch: str = "0101", kind: str = "branch") -> None:
    db.session.add(Channel(code=code, kind=kind, name=name, branch=branch,
                           created_by="fixture"))


def holder() -> int:
    n = next(_numbers)
    row = CardHolder(card_index=f"card-{n}", card_no="x", card_last4=f"{n:04d}"[-4:],
                     name="x", phone="x", phone_index=f"phone-{n}", id_no="x",
                     id_no_index=f"id-{n}", tier="gold", city="上海", branch="0101",
                     source_digest="x")
    db.session.add(row)
    db.session.flush()
    return row.id


def binding(holder_id: int, app: str, openid: str, at: datetime, unionid: str | None = None,
            unbound_at: datetime | None = None) -> None:
    db.session.add(Binding(holder_id=holder_id, app=app, openid=openid, unionid=unionid,
                           created_at=at, unbound_at=unbound_at))


def transaction(holder_id: int, at: datetime, direction: str = "debit") -> None:
    n = next(_numbers)
    db.session.add(Transaction(txn_id=f"T{n}", card_index=f"card-{holder_id}",
                               card_last4="0000", holder_id=holder_id, amount_fen=100,
                               currency="CNY", direction=direction, merchant="m",
                               channel="POS", occurred_at=at))


def redemption(holder_id: int, at: datetime) -> None:
    """A redemption of a code of the one test campaign (made on first use)."""
    campaign = db.session.scalar(select(Campaign).where(Campaign.slug == "funnel-test"))
    if campaign is None:
        campaign = Campaign(slug="funnel-test", title="t", starts_at=T0 - timedelta(days=30),
                            ends_at=T0 + timedelta(days=300), eligibility={}, state="published",
                            created_by="fixture", updated_by="fixture")
        db.session.add(campaign)
        db.session.flush()
        db.session.add(CampaignOption(campaign_id=campaign.id, key="o", title="o", points=0,
                                      position=0))
        db.session.flush()
    option = db.session.scalar(select(CampaignOption).where(
        CampaignOption.campaign_id == campaign.id))
    n = next(_numbers)
    code = VoucherCode(option_id=option.id, code=f"c{n}", code_index=f"c{n}", claimed_at=at)
    db.session.add(code)
    db.session.flush()
    db.session.add(Redemption(holder_id=holder_id, campaign_id=campaign.id, option_id=option.id,
                              code_id=code.id, points_spent=0, points_balance=0,
                              request_id=f"r{n}", redeemed_at=at))


def login(openid: str, at: datetime = T0) -> None:
    """The mini-program session a login writes (with the arrival of a first-time user)."""
    db.session.add(MemberSession(token_hash=f"t-{next(_numbers)}", openid=openid,
                                 session_key="x", created_at=at,
                                 expires_at=at + timedelta(days=1)))
