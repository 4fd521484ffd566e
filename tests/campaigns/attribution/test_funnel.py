"""The funnel against a data set small enough to count by hand: each step, the period,
the ranking's order and filters; and its facts, refreshed in steps or built at once,
agree."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import delete, func, insert, select, update

from campaigns.attribution import facts, funnel, tasks
from campaigns.attribution.funnel import Funnel, Period
from campaigns.attribution.models import AttributionMark, ChannelDay
from core.db import db, utcnow
from members.holders.models import Binding, Follower
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


def test_a_period_counts_who_arrived_in_it_and_what_they_have_done_so_far(app, data):
    with app.app_context():
        early = Period(start=date(2026, 11, 1), end=date(2026, 11, 5))  # 1 to 4 November
        # f3 arrived later, and so did the day-5 scan; f2's redemption on day 4 counts (the
        # cohort to date), and so do bindings made after the period: nobody had bound by the
        # end of 1 November, yet its cohort shows what its people have done since.
        assert funnel.funnel("br_a", early) == Funnel(scans=2, follows=4, binds=4,
                                                      transacting=3, redemptions=3)
        assert funnel.funnel("br_a", Period(end=date(2026, 11, 2))) == funnel.funnel(
            "br_a", early)
        late = Period(start=date(2026, 11, 5), end=date(2026, 11, 7))
        assert funnel.funnel("br_a", late) == Funnel(1, 1, 0, 0, 0)


def test_a_long_period_adds_whole_months_to_the_days_at_its_ends(app, data):
    """Whole months are read from their totals, the partial months at either end by day:
    every way of cutting a period around November counts the same people."""
    everything = Funnel(scans=3, follows=5, binds=4, transacting=3, redemptions=3)
    with app.app_context():
        for start, end in ((date(2026, 10, 15), date(2026, 12, 10)),
                           (date(2026, 11, 1), date(2026, 12, 1)), (None, date(2026, 12, 2)),
                           (date(2026, 9, 30), None), (date(2026, 11, 1), None)):
            assert funnel.funnel("br_a", Period(start, end)) == everything, (start, end)
        # From the second day of November: only f3 (day 5) and its day's scan.
        assert funnel.funnel("br_a", Period(date(2026, 11, 2), date(2027, 1, 5))) == Funnel(
            1, 1, 0, 0, 0)
        assert funnel.funnel("br_a", Period(date(2026, 12, 1), None)) == Funnel(0, 0, 0, 0, 0)


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
        late = funnel.ranking(Period(start=date(2026, 11, 5), end=date(2026, 11, 7)), by="binds",
                              branch="0101")
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


def test_facts_refreshed_between_writes_agree_with_a_build_and_a_second_reading(app):
    """Rows come in as the app writes them (a follow with its scan, an arrival with its
    login's session), in awkward orders, with a read (a refresh) after each: the counts
    are those of building everything at once, and of reading every row again."""
    now = utcnow()
    with app.app_context():
        p.channel("br_a", "网点 a")
        p.channel("br_b", "网点 b", "0202")
        h1, h2, h3, h4 = (p.holder() for _ in range(4))
        steps = [
            # Bound in the mini-program before following: found through the unionid.
            lambda: p.binding(h1, "miniapp", "m1", day(0), unionid="u1"),
            lambda: (p.follower("f1", "br_a", day(1), unionid="u1"),
                     p.scan("f1", "br_a", day(1), followed=True)),
            # Its mini-program twin through the same channel: the same person.
            lambda: (p.arrival("m1", "br_a", day(1), unionid="u1"), p.login("m1", day(1))),
            lambda: p.transaction(h1, day(2)),
            lambda: p.redemption(h1, day(3)),
            lambda: (p.follower("f2", "br_b", day(1)),
                     p.scan("f2", "br_b", day(1), followed=True)),
            lambda: p.binding(h2, "oa", "f2", day(2)),
            lambda: p.transaction(h2, day(1)),  # before binding: not counted
            lambda: p.redemption(h2, day(4)),
            lambda: (p.arrival("m3", "br_b", day(2)), p.login("m3", day(2))),
            lambda: p.binding(h3, "miniapp", "m3", day(3)),
            lambda: p.redemption(h3, day(2)),  # before binding: not counted
            lambda: p.transaction(h3, day(4), direction="credit"),
            lambda: p.scan("f1", "br_b", day(5)),
            # A follower whose unionid user/info brings after a binding under it: with it
            # comes the follower's own binding (binding.link_follower), which counts.
            lambda: (p.follower("f4", "br_a", now), p.scan("f4", "br_a", now, followed=True)),
            lambda: p.binding(h4, "miniapp", "m4", now, unionid="u4"),
            lambda: (db.session.execute(update(Follower).where(Follower.openid == "f4")
                                        .values(unionid="u4")),
                     p.binding(h4, "oa", "f4", now, unionid="u4")),
        ]
        for step in steps:
            step()
            db.session.commit()
            funnel.funnel("br_a")  # every read refreshes the facts
        stepwise = {row.code: row.funnel for row in funnel.ranking()}

        db.session.execute(update(AttributionMark).values(final_id=0, candidate_id=None))
        db.session.commit()
        again = {row.code: row.funnel for row in funnel.ranking()}
        db.session.execute(delete(AttributionMark))
        db.session.commit()
        rebuilt = {row.code: row.funnel for row in funnel.ranking()}
    assert stepwise == {"br_a": Funnel(2, 2, 2, 1, 1), "br_b": Funnel(2, 2, 2, 1, 1)}
    assert again == stepwise and rebuilt == stepwise


def test_the_periodic_job_refreshes_the_facts(app, data):
    with app.app_context():
        tasks.refresh_facts()
        assert db.session.scalar(select(func.sum(ChannelDay.follows))) == 11
        assert {row.source for row in db.session.scalars(select(AttributionMark))} == set(
            facts.SOURCES)


def test_a_binding_committed_after_a_later_id_is_still_counted(app):
    """PostgreSQL hands out ids at insert, not at commit: a binding that took its id first
    but committed last is below what a refresh already read, and is counted all the same."""
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("late commits: PostgreSQL only (SQLite runs one writer at a time)")
        p.channel("br_a", "网点 a")
        early, late = p.holder(), p.holder()
        for openid in ("f1", "f2"):
            p.follower(openid, "br_a", day(0))
            p.scan(openid, "br_a", day(0), followed=True)
        db.session.commit()
        funnel.funnel("br_a")  # the facts are built
        funnel.funnel("br_a")  # and read again: nothing new, the marks hold
        slow = db.engine.connect()
        slow.begin()
        waiting = slow.execute(insert(Binding).values(
            holder_id=late, app="oa", openid="f2", created_at=day(1)).returning(Binding.id)
        ).scalar_one()
        p.binding(early, "oa", "f1", day(1))  # a higher id, committed first
        db.session.commit()
        assert funnel.funnel("br_a").binds == 1
        assert funnel.funnel("br_a").binds == 1  # the slow transaction still runs
        # The mark stays below the id of a transaction still running.
        assert db.session.get(AttributionMark, "binding").final_id < waiting
        slow.commit()
        slow.close()
        assert funnel.funnel("br_a").binds == 2


def test_a_mini_program_twin_joins_a_follower_whose_unionid_came_after_the_read(app):
    """The follower was read before user/info brought its unionid; its mini-program twin
    through the same channel is still the same person (one follow), and a twin of another
    unionid is another person."""
    with app.app_context():
        p.channel("br_a", "网点 a")
        p.follower("f1", "br_a", day(0))
        p.scan("f1", "br_a", day(0), followed=True)
        db.session.commit()
        assert funnel.funnel("br_a").follows == 1
        db.session.execute(update(Follower).where(Follower.openid == "f1").values(unionid="u1"))
        p.arrival("m1", "br_a", day(1), unionid="u1")
        p.login("m1", day(1))
        p.arrival("m2", "br_a", day(1), unionid="u2")
        p.login("m2", day(1))
        db.session.commit()
        assert funnel.funnel("br_a").follows == 2
        h1 = p.holder()
        p.binding(h1, "miniapp", "m1", day(2), unionid="u1")  # found through the unionid
        db.session.commit()
        assert funnel.funnel("br_a").binds == 1
