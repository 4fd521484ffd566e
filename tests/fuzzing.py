"""Hypothesis settings and strategies shared by the fuzz tests of the callback and the APIs."""

from __future__ import annotations

import os
import time

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from core.db import db

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
# Derandomized and bounded, so CI time stays fixed; FUZZ_EXAMPLES raises the count locally.
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def row_counts(*models: type) -> dict[str, int]:
    """Rows of each model, as committed (the session's snapshot is dropped first)."""
    db.session.rollback()
    return {model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
            for model in models}


# Text that stresses parsers: other scripts' digits, lone surrogates (as JSON escapes),
# controls, markup and SQL characters, and very long runs.
NASTY = st.sampled_from(["", " ", "\x00", "١٢٣", "²", "１２３", "\u202e", "<![CDATA[", "]]>",
                         "&amp;", "<!ENTITY x 'y'>", "'; DROP TABLE x; --", "\ufeff",
                         "9" * 25, "-1", "1e309", "x" * 300, "oUser", "gh_test00000001"])
TEXT = st.one_of(st.text(max_size=40), NASTY)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)

PUSH_FIELDS = ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Event", "EventKey",
               "Content", "MsgId", "MsgID", "Status", "Ticket"]
FIELD_VALUES = st.one_of(TEXT, st.sampled_from([
    "text", "event", "subscribe", "unsubscribe", "SCAN", "CLICK", "TEMPLATESENDJOBFINISH",
    "qrscene_branch_0101", "scanbarcode|EAN|1", "1700000000", str(int(time.time())),
    "oFuzz0000000000000000000001"]))


KINDS = [{"MsgType": "text", "Content": "积分"}, {"MsgType": "event", "Event": "subscribe"},
         {"MsgType": "event", "Event": "subscribe", "EventKey": "qrscene_branch_0101"},
         {"MsgType": "event", "Event": "SCAN", "EventKey": "branch_0101"},
         {"MsgType": "event", "Event": "unsubscribe"},
         {"MsgType": "event", "Event": "CLICK", "EventKey": "MENU_HELP"},
         {"MsgType": "event", "Event": "TEMPLATESENDJOBFINISH", "MsgID": "200163836",
          "Status": "success"}]


def _element(name: str, value: str, cdata: bool, depth: int) -> str:
    text = f"<![CDATA[{value.replace(']]>', '')}]]>" if cdata else \
        value.replace("&", "&amp;").replace("<", "&lt;")
    return f"<{name}>" + "<n>" * depth + text + "</n>" * depth + f"</{name}>"


@st.composite
def push_xml(draw: st.DrawFn) -> bytes:
    """A valid push of some kind with a few of its fields changed, repeated or nested."""
    fields = {"ToUserName": "gh_test00000001", "FromUserName": "oFuzz0000000000000000000001",
              "CreateTime": str(int(time.time())), "MsgId": str(draw(st.integers(1, 10**12))),
              **draw(st.sampled_from(KINDS))}
    elements = [_element(name, value, True, 0) for name, value in fields.items()]
    for _ in range(draw(st.integers(0, 3))):
        element = _element(draw(st.sampled_from([*PUSH_FIELDS, "Extra"])), draw(FIELD_VALUES),
                           draw(st.booleans()), draw(st.sampled_from([0, 0, 0, 1, 8])))
        if draw(st.booleans()):  # replace the field, else add it (a repeat, if it exists)
            elements.pop(draw(st.integers(0, len(elements) - 1)))
        elements.insert(draw(st.integers(0, len(elements))), element)
    return f"<xml>{''.join(elements)}</xml>".encode("utf-8", "surrogatepass")


RAW = st.one_of(st.binary(max_size=300), push_xml())


