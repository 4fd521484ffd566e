"""wechat.inbound reads pushes as wechatpy's own parser would, without its cost."""

import pytest
from wechatpy import parse_message

from wechat.inbound import BadMessage, parse

HEAD = ("<ToUserName><![CDATA[gh_123]]></ToUserName><FromUserName><![CDATA[oUser1]]>"
        "</FromUserName><CreateTime>1700000000</CreateTime>")

PUSHES = {
    "text": "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[ 积分 ]]></Content>"
            "<MsgId>1234567890</MsgId>",
    "image": "<MsgType>image</MsgType><PicUrl>http://x/p.jpg</PicUrl><MediaId>m1</MediaId>"
             "<MsgId>42</MsgId>",
    "location": "<MsgType>location</MsgType><Location_X>23.1</Location_X>"
                "<Location_Y>113.3</Location_Y><Scale>20</Scale><Label>here</Label>"
                "<MsgId>43</MsgId>",
    "miniprogrampage": "<MsgType>miniprogrampage</MsgType><Title>t</Title><MsgId>44</MsgId>",
    "event:subscribe": "<MsgType>event</MsgType><Event>subscribe</Event>",
    "event:subscribe_scan": "<MsgType>event</MsgType><Event>subscribe</Event>"
                            "<EventKey>qrscene_branch_0101</EventKey><Ticket>T</Ticket>",
    "event:subscribe_scan_product": "<MsgType>event</MsgType><Event>subscribe</Event>"
                                    "<EventKey>scanbarcode|EAN|1</EventKey>",
    "event:scan": "<MsgType>event</MsgType><Event>SCAN</Event><EventKey>branch_0101</EventKey>"
                  "<Ticket>T</Ticket>",
    "event:click": "<MsgType>event</MsgType><Event>CLICK</Event><EventKey>POINTS</EventKey>",
    "event:scancode_push": "<MsgType>event</MsgType><Event>scancode_push</Event>"
                           "<EventKey>k</EventKey><ScanCodeInfo><ScanType>qrcode</ScanType>"
                           "<ScanResult>1</ScanResult></ScanCodeInfo>",
    "event:pic_sysphoto": "<MsgType>event</MsgType><Event>pic_sysphoto</Event><EventKey>k"
                          "</EventKey><SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum>a"
                          "</PicMd5Sum></item><item><PicMd5Sum>b</PicMd5Sum></item></PicList>"
                          "</SendPicsInfo>",
    "event:templatesendjobfinish": "<MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH"
                                   "</Event><MsgID>200163836</MsgID><Status>success</Status>",
    "event:some_new_event": "<MsgType>event</MsgType><Event>some_new_event</Event>",
    "device_event": "<MsgType>device_event</MsgType><Event>bind</Event>",
}


@pytest.mark.parametrize("kind", sorted(PUSHES))
def test_reads_pushes_as_wechatpy_does(kind):
    xml = f"<xml>{HEAD}{PUSHES[kind]}</xml>"
    expected = parse_message(xml)

    inbound = parse(xml.encode())

    assert inbound.kind == kind
    assert type(inbound.message) is type(expected)
    assert inbound.data == dict(expected._data)


def test_qr_follow_carries_the_scene_without_its_prefix():
    xml = f"<xml>{HEAD}{PUSHES['event:subscribe_scan']}</xml>".encode()
    assert parse(xml).message.scene_id == "branch_0101"


def _push(fields: str) -> bytes:
    return f"<xml>{fields}</xml>".encode()


TEXT = "<MsgType>text</MsgType><Content>hi</Content><MsgId>1</MsgId>"


@pytest.mark.parametrize("body", [
    b"<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime></xml>",  # no MsgType
    _push(f"{HEAD}<MsgType><a>text</a></MsgType>"),  # not text
    _push(f"{HEAD}<MsgType>event</MsgType><Event><b/></Event>"),
    b"<xml><MsgType>text</MsgType><CreateTime>1</CreateTime></xml>",  # no sender
    b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "b">]><xml>&a;</xml>',
    b"<xml><unclosed></xml>",
    "<xml>\u00e9</xml>".encode("latin-1"),
    # a DTD hidden by another encoding is still a DTD
    ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE xml [<!ENTITY a "b">]>'
     f"<xml>{HEAD}<MsgType>text</MsgType><Content>&a;</Content></xml>").encode("utf-16"),
    ('<?xml version="1.0" encoding="ISO-8859-1"?><!DOCTYPE xml [<!ENTITY a "b">]>'
     f"<xml>{HEAD}<MsgType>text</MsgType><Content>&a;</Content></xml>").encode("latin-1"),
    # repeated top-level fields: one reading for the signature, another for a handler
    _push(f"{HEAD}{TEXT}<Content>again</Content>"),
    _push(f"{HEAD}<FromUserName>oOther</FromUserName>{TEXT}"),
    # CreateTime that is not a unix time
    _push(HEAD.replace("1700000000", "soon") + TEXT),
    _push(HEAD.replace("1700000000", "\u0661\u0667\u0660\u0660") + TEXT),
    _push(HEAD.replace("1700000000", "99999999999999999999") + TEXT),
    _push(HEAD.replace("1700000000", "0") + TEXT),
    # identifiers longer than their columns, or not WeChat's
    _push(HEAD.replace("oUser1", "o" * 65) + TEXT),
    _push(HEAD.replace("oUser1", "o user") + TEXT),
    _push(HEAD.replace("gh_123", "") + TEXT),
    _push(f"{HEAD}<MsgType>text</MsgType><MsgId>\u00b2</MsgId>"),
    _push(f"{HEAD}<MsgType>event</MsgType><Event>subscribe</Event>"
          f"<EventKey>qrscene_{'s' * 65}</EventKey>"),
    _push(f"{HEAD}<MsgType>event</MsgType><Event>SCAN</Event><EventKey>{'s' * 65}</EventKey>"),
    _push(f"{HEAD}<MsgType>event</MsgType><Event>VIEW</Event><EventKey>{'u' * 1025}</EventKey>"),
    # nested deeper than any push, and than Python's recursion limit
    _push(f"{HEAD}{TEXT}" + "<a>" * 7 + "</a>" * 7),
    _push(f"{HEAD}{TEXT}" + "<a>" * 5000 + "</a>" * 5000),
])
def test_refuses_what_is_not_a_push(body):
    with pytest.raises(BadMessage):
        parse(body)


def test_takes_the_longest_fields_a_push_has():
    scene = "s" * 64
    inbound = parse(_push(f"{HEAD}<MsgType>event</MsgType><Event>subscribe</Event>"
                          f"<EventKey>qrscene_{scene}</EventKey>"))
    assert inbound.message.scene_id == scene
    assert parse(_push(HEAD.replace("oUser1", "o" * 64) + TEXT)).openid == "o" * 64
