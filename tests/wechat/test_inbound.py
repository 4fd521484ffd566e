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

    for authenticated in (False, True):
        inbound = parse(xml.encode(), authenticated=authenticated)

        assert inbound.kind == kind
        assert type(inbound.message) is type(expected)
        assert inbound.data == dict(expected._data)


def test_qr_follow_carries_the_scene_without_its_prefix():
    xml = f"<xml>{HEAD}{PUSHES['event:subscribe_scan']}</xml>".encode()
    assert parse(xml).message.scene_id == "branch_0101"


@pytest.mark.parametrize("body", [
    b"<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime></xml>",  # no MsgType
    f"<xml>{HEAD}<MsgType><a>text</a></MsgType></xml>".encode(),  # not text
    f"<xml>{HEAD}<MsgType>event</MsgType><Event><b/></Event></xml>".encode(),
    b"<xml><MsgType>text</MsgType><CreateTime>1</CreateTime></xml>",  # no sender
    b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "b">]><xml>&a;</xml>',
    b"<xml><unclosed></xml>",
    "<xml>\u00e9</xml>".encode("latin-1"),
])
@pytest.mark.parametrize("authenticated", [False, True])
def test_refuses_what_is_not_a_push(body, authenticated):
    with pytest.raises(BadMessage):
        parse(body, authenticated=authenticated)
