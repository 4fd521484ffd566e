"""The audience service: each filter part and their combinations over a small world
(tests/campaigns/pushes/audience_data.py), the filter's validation, the masked sample."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, literal, select

from campaigns.console import audit
from campaigns.console.models import Staff, StaffAction
from campaigns.pushes import audiences
from campaigns.pushes.models import Audience, Push, PushDelivery
from core.db import db
from tests.campaigns.pushes.audience_data import (
    EVERYONE,
    FREE1,
    FREE2,
    GOLD_GZ,
    GONE_GZ,
    PLAT_SZ,
    TWO_BIND,
    build_world,
)

CASES = [
    ({}, EVERYONE),
    ({"subscribed": True}, EVERYONE - {GONE_GZ}),
    ({"subscribed": False}, {GONE_GZ}),
    ({"channels": ["ch_a"]}, {GOLD_GZ, TWO_BIND, GONE_GZ, FREE1}),
    ({"channels": ["ch_b", "nobody_here"]}, {PLAT_SZ}),
    # Bound: own binding, through the unionid (mini-program first), two bindings once.
    ({"bound": True}, {GOLD_GZ, PLAT_SZ, TWO_BIND, GONE_GZ}),
    ({"bound": False}, {FREE1, FREE2}),
    ({"tiers": ["gold"]}, {GOLD_GZ, TWO_BIND}),
    ({"tiers": ["platinum"]}, {PLAT_SZ}),  # holder 5 (platinum) is unbound from FREE1
    ({"cities": ["广州"]}, {GOLD_GZ, TWO_BIND, GONE_GZ}),
    ({"branches": ["GZ1", "SZ1"]}, {GOLD_GZ, PLAT_SZ, GONE_GZ}),
    ({"active_within_hours": 2}, {GOLD_GZ, GONE_GZ, FREE1}),
    ({"active_within_hours": 48}, {GOLD_GZ, PLAT_SZ, GONE_GZ, FREE1}),
    ({"subscribed": True, "cities": ["广州"], "active_within_hours": 2}, {GOLD_GZ}),
    ({"subscribed": True, "bound": True, "channels": ["ch_a"]}, {GOLD_GZ, TWO_BIND}),
    ({"bound": False, "channels": ["ch_a"], "active_within_hours": 2}, {FREE1}),
    ({"bound": True, "tiers": ["gold"], "branches": ["GZ2"]}, {TWO_BIND}),
    ({"bound": False, "tiers": ["gold"]}, set()),
    ({"tiers": ["gold"], "cities": ["深圳"]}, set()),
]


@pytest.fixture
def world(app):
    return build_world(app)


@pytest.mark.parametrize(("spec", "expected"), CASES, ids=[str(case[0]) for case in CASES])
def test_each_part_and_their_combinations(world, app_context, spec, expected):
    spec = audiences.validate_filter(spec)
    chosen = list(db.session.scalars(audiences.recipients(spec)))
    assert sorted(chosen) == sorted(expected)  # each follower once
    assert audiences.count(spec) == len(expected)


def test_recipients_freeze_into_deliveries_in_one_statement(world, app_context):
    """What the approval of a push does with it: INSERT … SELECT."""
    db.session.add(audience := Audience(name="a", filter={}, created_by="t"))
    db.session.flush()
    db.session.add(push := Push(name="p", audience_id=audience.id, channel="mass",
                                message={"text": "x"}, rate_per_s=10, created_by="t"))
    db.session.flush()
    chosen = audiences.recipients({"bound": True}).subquery()
    db.session.execute(insert(PushDelivery).from_select(
        ["push_id", "openid", "state"],
        select(literal(push.id), chosen.c.openid, literal("pending"))))
    frozen = set(db.session.scalars(select(PushDelivery.openid)))
    assert frozen == {GOLD_GZ, PLAT_SZ, TWO_BIND, GONE_GZ}


def test_a_follower_bound_later_through_the_unionid_is_counted(world, app_context):
    from members.holders.models import Binding

    assert audiences.count({"bound": True, "tiers": ["platinum"]}) == 1
    db.session.add(Binding(holder_id=world[PLAT_SZ], app="oa", openid=PLAT_SZ,
                           unionid="uPlatSZ"))
    db.session.flush()
    assert audiences.count({"bound": True, "tiers": ["platinum"]}) == 1  # still once


BAD = [
    ([], "filter"),
    ({"colour": "red"}, "filter.colour"),
    ({"channels": "ch_a"}, "filter.channels"),
    ({"channels": []}, "filter.channels"),
    ({"channels": ["has space"]}, "filter.channels"),
    ({"channels": ["x" * 33]}, "filter.channels"),
    ({"channels": ["ch"] * 201}, "filter.channels"),
    ({"tiers": [1]}, "filter.tiers"),
    ({"tiers": [" gold"]}, "filter.tiers"),
    ({"cities": ["广" * 33]}, "filter.cities"),
    ({"branches": [""]}, "filter.branches"),
    ({"subscribed": "yes"}, "filter.subscribed"),
    ({"bound": 1}, "filter.bound"),
    ({"active_within_hours": 0}, "filter.active_within_hours"),
    ({"active_within_hours": True}, "filter.active_within_hours"),
    ({"active_within_hours": 1.5}, "filter.active_within_hours"),
    ({"active_within_hours": 10**12}, "filter.active_within_hours"),
]


@pytest.mark.parametrize(("raw", "field"), BAD, ids=[str(case[0])[:40] for case in BAD])
def test_bad_filters_are_refused_naming_the_field(raw, field):
    with pytest.raises(audiences.FilterProblems) as refused:
        audiences.validate_filter(raw)
    assert refused.value.status == 400
    assert refused.value.code == "invalid_filter"
    assert list(refused.value.problems) == [field]
    assert field in refused.value.message


def test_every_problem_is_named_at_once_and_lists_lose_their_repeats():
    with pytest.raises(audiences.FilterProblems) as refused:
        audiences.validate_filter({"tiers": [], "bound": "no", "zip": 1})
    assert set(refused.value.problems) == {"filter.tiers", "filter.bound", "filter.zip"}
    assert audiences.validate_filter({"tiers": ["gold", "gold", "classic"]}) == {
        "tiers": ["gold", "classic"]}


def test_the_sample_is_masked(world, app_context):
    rows = {row["openid"]: row["holder"] for row in audiences.sample({"bound": True})}
    assert set(rows) == {"oGol****0001", "oPla****0001", "oTwo****0001", "oGon****0001"}
    assert rows["oGol****0001"] == {"name": "测****", "card": "**** " + _last4(1),
                                    "tier": "gold", "city": "广州"}
    assert rows["oPla****0001"]["tier"] == "platinum"  # through the unionid
    free = audiences.sample({"bound": False}, n=1)
    assert len(free) == 1 and free[0]["holder"] is None
    assert len(audiences.sample({}, n=3)) == 3


def _last4(n: int) -> str:
    from tests.fixtures.factories import holder

    return holder(n).card_no[-4:]


def test_creating_an_audience_is_audited(app_context):
    actor = db.session.scalar(select(Staff)) or _staff()
    audience = audiences.create_audience(actor, " 广州金卡 ", {"tiers": ["gold"]})
    assert (audience.name, audience.filter, audience.created_by) == (
        "广州金卡", {"tiers": ["gold"]}, actor.username)
    entry = db.session.scalar(select(StaffAction).where(StaffAction.action == "audience.create"))
    assert entry.target == f"audience:{audience.id}"
    assert entry.after == {"name": "广州金卡", "filter": {"tiers": ["gold"]}}
    assert audiences.get_audience(audience.id) is audience


def test_a_bad_name_and_filter_are_named_together(app_context):
    with pytest.raises(audiences.FilterProblems) as refused:
        audiences.create_audience(_staff(), "x" * 65, {"tiers": []})
    assert refused.value.code == "invalid_audience"
    assert set(refused.value.problems) == {"name", "filter.tiers"}
    assert db.session.scalar(select(func.count()).select_from(Audience)) == 0


def _staff() -> Staff:
    from campaigns.console import staff

    return staff.create(audit.CLI, "aud.tester", "marketer", "correct horse battery staple")
