"""The XML WeChat pushes to the account's server: user messages and events (§2).

Layout copies Tencent's own pushes (see vector A): `<xml>`, one element per line, strings in
CDATA, numbers bare, `</xml>`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Union

Value = Union[str, int, float, list["Field"]]  # noqa: UP007 (a recursive alias needs Union)
Field = tuple[str, Value]


def cdata(text: str) -> str:
    """CDATA section for ``text``; a literal `]]>` is split across two sections."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _element(name: str, value: Value) -> str:
    if isinstance(value, list):
        return f"<{name}>" + "".join(_element(n, v) for n, v in value) + f"</{name}>"
    if isinstance(value, str):
        return f"<{name}>{cdata(value)}</{name}>"
    return f"<{name}>{value}</{name}>"


def render(fields: Sequence[Field]) -> str:
    return "<xml>" + "".join(_element(name, value) + "\n" for name, value in fields) + "</xml>"


def new_msg_id() -> int:
    """A 64-bit message id like `6054768590064713728`."""
    return secrets.randbits(63)


def new_media_id() -> str:
    return secrets.token_urlsafe(48)


def new_ticket() -> str:
    return "gQ" + secrets.token_urlsafe(60)


class PushFactory:
    """Builds the pushes of one official account (``original_id`` is its gh_ id)."""

    def __init__(self, original_id: str, clock: Callable[[], float] = time.time) -> None:
        self.original_id = original_id
        self._clock = clock

    # user messages -------------------------------------------------------------------------

    def text(self, openid: str, content: str, msg_id: int | None = None) -> str:
        return self._message(openid, "text", [("Content", content)], msg_id)

    def image(
        self,
        openid: str,
        pic_url: str = "http://mmbiz.qpic.cn/sim/0",
        media_id: str | None = None,
        msg_id: int | None = None,
    ) -> str:
        fields: list[Field] = [("PicUrl", pic_url), ("MediaId", media_id or new_media_id())]
        return self._message(openid, "image", fields, msg_id)

    def voice(
        self,
        openid: str,
        media_id: str | None = None,
        audio_format: str = "amr",
        recognition: str | None = None,
        msg_id: int | None = None,
    ) -> str:
        fields: list[Field] = [("MediaId", media_id or new_media_id()), ("Format", audio_format)]
        if recognition is not None:
            fields.append(("Recognition", recognition))
        return self._message(openid, "voice", fields, msg_id)

    def video(
        self,
        openid: str,
        media_id: str | None = None,
        thumb_media_id: str | None = None,
        msg_id: int | None = None,
        short: bool = False,
    ) -> str:
        fields: list[Field] = [
            ("MediaId", media_id or new_media_id()),
            ("ThumbMediaId", thumb_media_id or new_media_id()),
        ]
        return self._message(openid, "shortvideo" if short else "video", fields, msg_id)

    def location(
        self,
        openid: str,
        latitude: float = 23.134521,
        longitude: float = 113.358803,
        scale: int = 20,
        label: str = "",
        msg_id: int | None = None,
    ) -> str:
        fields: list[Field] = [
            ("Location_X", latitude),
            ("Location_Y", longitude),
            ("Scale", scale),
            ("Label", label),
        ]
        return self._message(openid, "location", fields, msg_id)

    def link(
        self, openid: str, title: str, description: str, url: str, msg_id: int | None = None
    ) -> str:
        fields: list[Field] = [("Title", title), ("Description", description), ("Url", url)]
        return self._message(openid, "link", fields, msg_id)

    # events --------------------------------------------------------------------------------

    def subscribe(self, openid: str, scene: str | None = None, ticket: str | None = None) -> str:
        """A follow; with ``scene`` it came from a parametric QR (EventKey `qrscene_…`)."""
        if scene is None:
            return self._event(openid, "subscribe", [("EventKey", "")])
        fields: list[Field] = [("EventKey", f"qrscene_{scene}"), ("Ticket", ticket or new_ticket())]
        return self._event(openid, "subscribe", fields)

    def unsubscribe(self, openid: str) -> str:
        return self._event(openid, "unsubscribe", [("EventKey", "")])

    def scan(self, openid: str, scene: str, ticket: str | None = None) -> str:
        """A follower scanned a parametric QR: EventKey is the bare scene."""
        fields: list[Field] = [("EventKey", scene), ("Ticket", ticket or new_ticket())]
        return self._event(openid, "SCAN", fields)

    def location_event(
        self,
        openid: str,
        latitude: float = 23.137466,
        longitude: float = 113.352425,
        precision: float = 119.385040,
    ) -> str:
        fields: list[Field] = [
            ("Latitude", latitude),
            ("Longitude", longitude),
            ("Precision", precision),
        ]
        return self._event(openid, "LOCATION", fields)

    def click(self, openid: str, key: str) -> str:
        return self._event(openid, "CLICK", [("EventKey", key)])

    def view(self, openid: str, url: str, menu_id: int | None = None) -> str:
        fields: list[Field] = [("EventKey", url)]
        if menu_id is not None:
            fields.append(("MenuId", menu_id))
        return self._event(openid, "VIEW", fields)

    def template_send_job_finish(self, openid: str, msg_id: int, status: str = "success") -> str:
        """Note `MsgID` with a capital D, unlike user messages' `MsgId`."""
        return self._event(openid, "TEMPLATESENDJOBFINISH", [("MsgID", msg_id), ("Status", status)])

    def mass_send_job_finish(
        self,
        openid: str,
        msg_id: int,
        total: int,
        filtered: int,
        sent: int,
        errors: int,
        status: str = "send success",
    ) -> str:
        fields: list[Field] = [
            ("MsgID", msg_id),
            ("Status", status),
            ("TotalCount", total),
            ("FilterCount", filtered),
            ("SentCount", sent),
            ("ErrorCount", errors),
        ]
        return self._event(openid, "MASSSENDJOBFINISH", fields)

    def subscribe_msg_popup(self, openid: str, choices: Mapping[str, str], scene: int = 2) -> str:
        """``choices``: template id → `accept`/`reject`; scene 1 = H5 page, 2 = article."""
        entries = [
            [("TemplateId", tid), ("SubscribeStatusString", status), ("PopupScene", scene)]
            for tid, status in choices.items()
        ]
        return self._list_event(
            openid, "subscribe_msg_popup_event", "SubscribeMsgPopupEvent", entries
        )

    def subscribe_msg_change(self, openid: str, choices: Mapping[str, str]) -> str:
        entries = [
            [("TemplateId", tid), ("SubscribeStatusString", status)]
            for tid, status in choices.items()
        ]
        return self._list_event(
            openid, "subscribe_msg_change_event", "SubscribeMsgChangeEvent", entries
        )

    def subscribe_msg_sent(
        self,
        openid: str,
        template_id: str,
        msg_id: int,
        error_code: int = 0,
        error_status: str = "success",
    ) -> str:
        entry: list[Field] = [
            ("TemplateId", template_id),
            ("MsgID", msg_id),
            ("ErrorCode", error_code),
            ("ErrorStatus", error_status),
        ]
        return self._list_event(
            openid, "subscribe_msg_sent_event", "SubscribeMsgSentEvent", [entry]
        )

    # plumbing ------------------------------------------------------------------------------

    def _push(self, openid: str, msg_type: str, fields: Sequence[Field]) -> str:
        header: list[Field] = [
            ("ToUserName", self.original_id),
            ("FromUserName", openid),
            ("CreateTime", int(self._clock())),
            ("MsgType", msg_type),
        ]
        return render([*header, *fields])

    def _message(
        self, openid: str, msg_type: str, fields: Sequence[Field], msg_id: int | None
    ) -> str:
        return self._push(openid, msg_type, [*fields, ("MsgId", msg_id or new_msg_id())])

    def _event(self, openid: str, event: str, fields: Sequence[Field]) -> str:
        return self._push(openid, "event", [("Event", event), *fields])

    def _list_event(
        self, openid: str, event: str, block: str, entries: Sequence[list[Field]]
    ) -> str:
        lists: list[Field] = [("List", entry) for entry in entries]
        return self._event(openid, event, [(block, lists)])
