"""Channels: the rules of one, the CSV import of many (all or nothing), deactivation that
keeps history, listing with filters, and who may read which."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from campaigns.attribution import channels
from campaigns.attribution.models import Channel
from campaigns.console import staff
from campaigns.console.models import StaffAction
from core.db import db
from core.errors import ApiError
from tests.fixtures.channels import make_channel, maker

HEADER = "code,kind,name,branch,staff\n"


def _create(app, **body):
    with app.app_context():
        channel = channels.create_channel(maker(), body)
        db.session.commit()
        return channels.describe(channel)


def _refused(app, **body) -> ApiError:
    with app.app_context(), pytest.raises(ApiError) as refused:
        channels.create_channel(maker(), body)
    return refused.value


def _count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Channel))


def test_a_channel_is_created_audited_and_described(app, make_staff):
    make_staff("manager", username="zhang.san")
    shown = _create(app, code="m_0101_zhang", kind="manager", name="张三", branch="0101",
                    staff="zhang.san")
    assert shown["code"] == "m_0101_zhang" and shown["staff"] == "zhang.san"
    assert (shown["kind"], shown["name"], shown["branch"], shown["active"]) == (
        "manager", "张三", "0101", True)
    assert shown["created_at"].endswith("+08:00") and shown["deactivated_at"] is None
    with app.app_context():
        entry = db.session.scalar(select(StaffAction).where(
            StaffAction.action == "channel.create"))
        assert (entry.username, entry.target) == ("channel.maker", "channel:m_0101_zhang")
        assert entry.after["staff"] == "zhang.san"


def test_a_code_of_33_characters_is_refused_clearly(app):
    refused = _refused(app, code="b" * 33, kind="branch", name="网点", branch="0101")
    assert (refused.status, refused.code) == (400, "invalid_channel")
    assert refused.extra["fields"] == {"code": "is longer than 32 characters"}
    assert _create(app, code="b" * 32, kind="branch", name="网点", branch="0101")["code"]


@pytest.mark.parametrize("code", ["", "a-b", "a b", "码", "ａｂ", "café", "a\n", "a.b", "%41"])
def test_a_code_is_ascii_letters_digits_and_underscores_only(app, code):
    refused = _refused(app, code=code, kind="campaign", name="活动")
    assert refused.status == 400 and "code" in refused.extra["fields"]


def test_every_problem_is_named_at_once(app, make_staff):
    make_staff("marketer", username="li.si")
    refused = _refused(app, code="ok_code", kind="shop", name="=HYPERLINK(1)", branch="01-01",
                       extra=1)
    assert refused.extra["fields"] == {
        "extra": "is not a known field", "kind": "must be branch, manager or campaign",
        "name": "must not start with = + - or @",
        "branch": "must be 1 to 32 of A-Z, a-z, 0-9 and '_'"}
    assert _refused(app, code="c", kind="branch", name="x" * 65).extra["fields"] == {
        "name": "must be 1 to 64 characters",
        "branch": "is required for branches and managers"}
    assert _refused(app, code=7, kind="branch", name="x", branch="1").extra["fields"] == {
        "code": "must be a string"}


def test_a_managers_channel_names_a_manager_of_its_branch(app, make_staff):
    make_staff("manager", username="zhang.san", branch="0101")
    make_staff("marketer", username="li.si")
    manager = {"code": "m1", "kind": "manager", "name": "张三", "branch": "0101"}
    assert _refused(app, **manager).extra["fields"] == {
        "staff": "a manager's channel names its manager's username"}
    assert _refused(app, **manager, staff="nobody").extra["fields"] == {
        "staff": "is no staff account"}
    assert _refused(app, **manager, staff="li.si").extra["fields"] == {
        "staff": "is not a manager's account"}
    assert _refused(app, **{**manager, "branch": "0202"}, staff="zhang.san").extra[
        "fields"] == {"staff": "must equal the manager's branch"}
    assert _refused(app, code="b1", kind="branch", name="网点", branch="0101",
                    staff="zhang.san").extra["fields"] == {
        "staff": "only a manager's channel names a staff account"}
    assert _create(app, **manager, staff="Zhang.San")["staff"] == "zhang.san"
    assert _count(app) == 1


def test_a_duplicate_code_is_409(app):
    make_channel(app, "branch_0101")
    refused = _refused(app, code="branch_0101", kind="branch", name="又一个", branch="0101")
    assert (refused.status, refused.code) == (409, "code_taken")


def test_deactivation_keeps_the_channel_and_its_history(app):
    make_channel(app, "branch_0101")
    with app.app_context():
        channel = channels.deactivate(maker(), "branch_0101")
        db.session.commit()
        assert channel.active is False and channel.deactivated_at is not None
        channels.deactivate(maker(), "branch_0101")  # again: nothing more changes
        db.session.commit()
        entries = db.session.scalars(select(StaffAction.action).where(
            StaffAction.target == "channel:branch_0101")).all()
        assert entries == ["channel.create", "channel.deactivate"]
        assert channels.find("branch_0101").active is False
        with pytest.raises(ApiError) as unknown:
            channels.deactivate(maker(), "no_such")
        assert unknown.value.status == 404
    # the code stays taken: attribution history refers to it
    assert _refused(app, code="branch_0101", kind="branch", name="新", branch="0101").status == 409


def _import(app, text, max_rows=100):
    with app.app_context():
        result = channels.import_csv(maker(), text, max_rows=max_rows)
        db.session.commit()
        return result


def _import_refused(app, text, max_rows=100) -> ApiError:
    with app.app_context(), pytest.raises(ApiError) as refused:
        channels.import_csv(maker(), text, max_rows=max_rows)
    return refused.value


def test_a_branchs_staff_list_is_imported_at_once(app, make_staff):
    for number in range(1, 4):
        make_staff("manager", username=f"mgr{number}", branch="0101")
    rows = "".join(f"m_0101_{n},manager,客户经理{n},0101,mgr{n}\r\n" for n in range(1, 4))
    text = "\ufeff" + HEADER + "branch_0101,branch,杭州西湖支行,0101,\r\n" + rows + "\r\n"
    result = _import(app, text.encode())
    assert (result.created, result.branches) == (4, ["0101"])
    with app.app_context():
        assert channels.find("m_0101_2").staff.username == "mgr2"
        entry = db.session.scalar(select(StaffAction).where(
            StaffAction.action == "channel.import"))
        assert entry.after == {"created": 4, "branches": ["0101"],
                               "kinds": {"branch": 1, "manager": 3, "campaign": 0}}


def test_one_bad_row_refuses_the_whole_file_listing_every_bad_row(app, make_staff):
    make_staff("manager", username="mgr1", branch="0101")
    make_channel(app, "taken_code")
    text = HEADER + "\n".join([
        "ok_1,branch,网点一,0101,",  # line 2: fine
        "x" * 33 + ",branch,网点二,0101,",  # line 3
        "ok_1,branch,重复,0101,",  # line 4: repeats line 2
        "m_1,manager,经理,0202,mgr1",  # line 5: another branch
        "taken_code,campaign,活动,,",  # line 6: in use
        '"=cmd|\' /C calc\'!A0",campaign,@SUM(1),,',  # line 7: both refused, never echoed
        "short,branch",  # line 8
    ]) + "\n"
    refused = _import_refused(app, text)
    assert (refused.status, refused.code) == (400, "invalid_csv")
    assert [(row["row"], row["field"]) for row in refused.extra["rows"]] == [
        (3, "code"), (4, "code"), (5, "staff"), (6, "code"), (7, "code"), (7, "name"),
        (8, "")]
    assert "calc" not in str(refused.extra) and "SUM" not in str(refused.extra)
    assert refused.message.startswith("6 rows have problems")
    assert _count(app) == 1  # nothing of the file


def test_the_file_itself_must_be_a_csv_of_channels(app):
    assert "header" in _import_refused(app, "code,kind,name\nx,branch,y\n").message
    assert "header" in _import_refused(app, "").message
    assert "no rows" in _import_refused(app, HEADER).message
    assert "UTF-8" in _import_refused(app, HEADER.encode() + b"a,branch,\xff,0101,\n").message
    too_many = HEADER + "".join(f"b{n},branch,网点,0101,\n" for n in range(4))
    refused = _import_refused(app, too_many, max_rows=3)
    assert (refused.status, refused.code) == (413, "too_many_rows")
    broken = HEADER + 'a,branch,"unterminated,0101,\n'
    assert _import_refused(app, broken).code == "invalid_csv"
    assert _count(app) == 0


def test_thousands_of_rows_go_in_one_insert(app, make_staff):
    with app.app_context():
        for number in range(3):
            staff.create("cli", f"bulk{number}", "manager", "correct horse battery staple",
                         branch="0909")
        db.session.commit()
    rows = "".join(f"m_0909_{n:05d},manager,经理{n},0909,bulk{n % 3}\n" for n in range(3000))
    assert _import(app, HEADER + rows, max_rows=5000).created == 3000
    assert _count(app) == 3000


def test_lists_filter_and_page_and_a_manager_sees_only_its_own(app, make_staff):
    make_staff("manager", username="mgr1", branch="0101")
    make_staff("manager", username="mgr2", branch="0101")
    make_staff("viewer", username="viewer1")
    make_channel(app, "a_branch")
    make_channel(app, "b_camp", kind="campaign", branch=None)
    make_channel(app, "c_mgr1", kind="manager", staff="mgr1")
    make_channel(app, "d_mgr2", kind="manager", staff="mgr2")
    make_channel(app, "e_mgr1", kind="manager", staff="mgr1")
    with app.app_context():
        channels.deactivate(maker(), "e_mgr1")
        viewer, mgr1 = staff.find("viewer1"), staff.find("mgr1")

        def codes(actor, **filters):
            page = channels.list_channels(actor, **filters)
            return [channel.code for channel in page.channels], page.next

        assert codes(viewer) == (["a_branch", "b_camp", "c_mgr1", "d_mgr2", "e_mgr1"], None)
        assert codes(viewer, kind="manager", active=True) == (["c_mgr1", "d_mgr2"], None)
        assert codes(viewer, branch="0101", limit=2) == (["a_branch", "c_mgr1"], "c_mgr1")
        assert codes(viewer, branch="0101", after="c_mgr1", limit=2) == (
            ["d_mgr2", "e_mgr1"], None)
        assert codes(mgr1) == (["c_mgr1", "e_mgr1"], None)
        assert channels.count_channels(mgr1) == 2


def test_channel_for_refuses_another_managers_channel_and_audits_it(app, make_staff):
    make_staff("manager", username="mgr1")
    make_staff("manager", username="mgr2")
    make_channel(app, "m_mgr2", kind="manager", staff="mgr2")
    make_channel(app, "m_mgr1", kind="manager", staff="mgr1")
    with app.test_request_context("/admin/api/channels/m_mgr2"):
        owner = staff.find("mgr1")
        assert channels.channel_for(owner, "m_mgr1").code == "m_mgr1"
        with pytest.raises(ApiError) as refused:
            channels.channel_for(owner, "m_mgr2")
        assert (refused.value.status, refused.value.code) == (403, "forbidden")
        entry = next(item for item in db.session.new if isinstance(item, StaffAction))
        assert (entry.action, entry.username) == ("forbidden", "mgr1")
        assert entry.target == "path:/admin/api/channels/m_mgr2"
        with pytest.raises(ApiError) as unknown:
            channels.channel_for(owner, "nope")
        assert (unknown.value.status, unknown.value.code) == (404, "unknown_channel")
        db.session.rollback()
