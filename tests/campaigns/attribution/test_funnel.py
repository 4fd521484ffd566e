"""The funnel's SQL against a data set small enough to count by hand: each step, the period,
the ranking's order and filters."""

from __future__ import annotations

import pytest

from campaigns.attribution import funnel
from campaigns.attribution.funnel import Funnel, Period
from core.db import db
from tests.campaigns.attribution import people as p
from tests.campaigns.attribution.people import day


@pytest.fixture
def data(app):
    """Channel br_a (branch 0101), the hand-counted one:

    - f1 follows day 0, binds (oa) day 1; its only transaction is before binding;
    - f2 (unionid u2) follows day 0, binds in the mini-program day 2 (found by unionid),
      a refund (credit) day 3, a redemption day 4; its mini-program twin arrived through
      br_a too (one person);
    - f3 follows day 5, never binds;
    - f4 follows day 0, binds day 1, unbinds day 2 (still counted), spends day 3, redeems
      twice day 3, once before binding (not counted);
    - m7 arrives in the mini-program day 0, binds there day 1, spends day 2;
    - three scans: two follows day 0, a follower's scan day 5.

    br_b (0202): one follower, bound, spending. br_d (0101): five bound followers who never
    spend (more binds than br_a, fewer transacting). br_c (0101): a channel nobody came
    through. poster_x: a scene scanned once that no channel names.
    """
    with app.app_context():
        for code, branch in (("br_a", "0101"), ("br_b", "0202"), ("br_c", "0101"),
                             ("br_d", "0101")):
            p.channel(code, f"网点 {code}", branch)
        h1, h2, h4, h5, h7 = (p.holder() for _ in range(5))
        p.follower("f1", "br_a", day(0))
        p.binding(h1, "oa", "f1", day(1))
        p.transaction(h1, day(0))
        p.follower("f2", "br_a", day(0), unionid="u2")
        p.arrival("m2", "br_a", day(0), unionid="u2")
        p.binding(h2, "miniapp", "m2", day(2), unionid="u2")
        p.transaction(h2, day(3), direction="credit")
        p.redemption(h2, day(4))
        p.follower("f3", "br_a", day(5))
        p.follower("f4", "br_a", day(0))
        p.binding(h4, "oa", "f4", day(1), unbound_at=day(2))
        p.transaction(h4, day(3))
        p.redemption(h4, day(0))
        p.redemption(h4, day(3))
        p.redemption(h4, day(3, hours=1))
        p.arrival("m7", "br_a", day(0), unionid="u7")
        p.binding(h7, "miniapp", "m7", day(1), unionid="u7")
        p.transaction(h7, day(2))
        p.scan("f1", "br_a", day(0), followed=True)
        p.scan("f2", "br_a", day(0), followed=True)
        p.scan("f1", "br_a", day(5))
        p.follower("f5", "br_b", day(0))
        p.binding(h5, "oa", "f5", day(1))
        p.transaction(h5, day(2))
        for n in range(5):
            p.follower(f"d{n}", "br_d", day(0))
            p.binding(p.holder(), "oa", f"d{n}", day(1))
        p.follower("f6", None)  # a plain follow: no channel's
        p.binding(p.holder(), "oa", "f6", day(1))
        p.scan("f6", "poster_x", day(1))
        db.session.commit()


def test_each_step_of_a_channel_is_counted_as_the_contract_defines_it(app, data):
    with app.app_context():
        assert funnel.funnel("br_a") == Funnel(scans=3, follows=5, binds=4, transacting=3,
                                               redemptions=3)
        assert funnel.funnel("br_b") == Funnel(0, 1, 1, 1, 0)
        assert funnel.funnel("br_c") == Funnel(0, 0, 0, 0, 0)
        # A scene no channel names still has its funnel.
        assert funnel.funnel("poster_x") == Funnel(1, 0, 0, 0, 0)


def test_a_period_counts_who_arrived_in_it_and_what_they_did_by_its_end(app, data):
    with app.app_context():
        early = Period(start=day(0, hours=-1), end=day(4))
        # f3 arrived later; f2's redemption on day 4 and the day-5 scan are after the end.
        assert funnel.funnel("br_a", early) == Funnel(scans=2, follows=4, binds=4,
                                                      transacting=3, redemptions=2)
        late = Period(start=day(4), end=day(6))
        assert funnel.funnel("br_a", late) == Funnel(1, 1, 0, 0, 0)
        # Before the bindings: people came, nobody had bound yet.
        assert funnel.funnel("br_a", Period(end=day(1))) == Funnel(2, 4, 0, 0, 0)


def test_the_ranking_orders_channels_by_binds_or_by_transacting(app, data):
    with app.app_context():
        by_binds = funnel.ranking(by="binds")
        assert [row.code for row in by_binds] == ["br_d", "br_a", "br_b", "br_c", "poster_x"]
        assert (by_binds[1].name, by_binds[1].branch, by_binds[1].kind) == (
            "网点 br_a", "0101", "branch")
        assert by_binds[1].funnel == funnel.funnel("br_a")
        # A code without a channel appears by code alone.
        assert (by_binds[-1].name, by_binds[-1].funnel.scans) == (None, 1)
        by_spend = funnel.ranking(by="transacting")
        assert [row.code for row in by_spend][:3] == ["br_a", "br_b", "br_d"]


def test_the_ranking_of_a_branch_and_of_a_period(app, data):
    with app.app_context():
        branch = funnel.ranking(by="binds", branch="0101")
        assert [row.code for row in branch] == ["br_d", "br_a", "br_c"]
        assert [row.code for row in funnel.ranking(codes=["br_b"])] == ["br_b"]
        late = funnel.ranking(Period(start=day(4), end=day(6)), by="binds", branch="0101")
        assert [(row.code, row.funnel.follows) for row in late] == [
            ("br_a", 1), ("br_c", 0), ("br_d", 0)]
        with pytest.raises(ValueError):
            funnel.ranking(by="scans")


def test_conversion_rates_between_steps(app, data):
    with app.app_context():
        shares = funnel.rates(funnel.funnel("br_a"))
    assert shares[1:] == [("follows", "binds", 4 / 5), ("binds", "transacting", 3 / 4),
                          ("transacting", "redemptions", 1.0)]
    assert funnel.rates(Funnel(0, 0, 0, 0, 0))[0] == ("scans", "follows", None)
