"""Typed errors for WeChat's server API, and which errcodes mean what."""

from __future__ import annotations

from wechatpy.exceptions import WeChatClientException

# The token is stale or wrong: refresh once per token generation, then retry once.
TOKEN_ERRCODES = frozenset({40001, 40014, 41001, 42001})
# Transient on WeChat's side: retry with backoff and jitter.
TRANSIENT_ERRCODES = frozenset({-1})


class WeChatAPIError(WeChatClientException):
    """WeChat answered ``errcode`` (or failed at the HTTP level, errcode None)."""

    def __init__(self, errcode: int | None, errmsg: str | None, endpoint: str,
                 http_status: int | None = None) -> None:
        super().__init__(errcode, errmsg)
        self.endpoint = endpoint
        self.http_status = http_status

    def __str__(self) -> str:
        where = f"HTTP {self.http_status}" if self.errcode is None else f"errcode {self.errcode}"
        return f"WeChat {self.endpoint}: {where}: {self.errmsg}"


def outcome_label(error: WeChatAPIError | None) -> str:
    """A metric label for an answer: "0", the errcode, "http_<status>" or "network"."""
    if error is None:
        return "0"
    if error.errcode is not None:
        return str(error.errcode)
    return f"http_{error.http_status}" if error.http_status else "network"


class WeChatUnavailable(WeChatAPIError):
    """Retries exhausted on -1, HTTP 5xx or timeouts; the call may be retried later."""


# -- what an errcode means: one class per meaning, chosen by ``api_error`` -----------------------

class QuotaExhausted(WeChatAPIError):
    """The account's quota of this API is used up (45009 daily; 45028 mass sends this month):
    stop calling it until WeChat resets the quota (``wechat.quota``)."""

    DAILY = 45009
    MONTHLY_MASS = 45028


class MessageRefused(WeChatAPIError):
    """WeChat will not deliver this message to this recipient; sending it again will not help."""


class NotFollowing(MessageRefused):
    """43004: the recipient does not follow the official account (any more)."""


class NoSubscription(MessageRefused):
    """43101: no subscription granted, or the one-time grant is used up."""


class OutsideServiceWindow(MessageRefused):
    """45015: no message from the user within the customer-service window (48 h)."""


class ServiceWindowUsedUp(MessageRefused):
    """45047: the customer-service messages the window allows are used up."""


class MarketingProhibited(MessageRefused):
    """40249: marketing content in a template message (banned since 2023)."""


class TemplateRestricted(MessageRefused):
    """43116: the template is restricted for misuse; repeated misuse bans the interface."""


class DuplicateMassSend(WeChatAPIError):
    """45065: a mass send under this clientmsgid exists: it went out already (msg_id kept)."""


class CodeRejected(WeChatAPIError):
    """A wx.login or phone code WeChat will not exchange: invalid or expired (40029), already
    used (40163) or missing (41008); the client must get a new one."""


class UserRateLimited(WeChatAPIError):
    """45011: WeChat's per-minute limit for this API (and user); retry after a minute."""


class RiskyUser(WeChatAPIError):
    """40226: WeChat blocked this user as high-risk."""


class CodeLimitReached(WeChatAPIError):
    """45029: the account's permanent QR codes (100,000, integer and string scenes together;
    also getwxacode's and createwxaqrcode's shared cap) are used up. Never retried."""

    ERRCODE = 45029


class CodeArgumentsRejected(WeChatAPIError):
    """A QR or mini-program code asked with arguments WeChat refuses: 40052 action_name,
    40053 action_info, 40097 invalid args, 40129 invalid scene, 40169 bad scene length,
    85096 reserved scene key. A bug of ours; asking again will not help."""


class PageRejected(WeChatAPIError):
    """41030: the mini-program page does not exist in the released version (configuration)."""


ERRCODE_ERRORS: dict[int, type[WeChatAPIError]] = {
    QuotaExhausted.DAILY: QuotaExhausted, QuotaExhausted.MONTHLY_MASS: QuotaExhausted,
    43004: NotFollowing, 43101: NoSubscription, 45015: OutsideServiceWindow,
    45047: ServiceWindowUsedUp, 40249: MarketingProhibited, 43116: TemplateRestricted,
    45065: DuplicateMassSend,
    40029: CodeRejected, 40163: CodeRejected, 41008: CodeRejected,
    45011: UserRateLimited, 40226: RiskyUser,
    CodeLimitReached.ERRCODE: CodeLimitReached, 41030: PageRejected,
    **dict.fromkeys((40052, 40053, 40097, 40129, 40169, 85096), CodeArgumentsRejected),
}


def api_error(errcode: int | None, errmsg: str | None, endpoint: str,
              http_status: int | None = None) -> WeChatAPIError:
    """The typed error for WeChat's answer: the class that names what ``errcode`` means."""
    kind = ERRCODE_ERRORS.get(errcode, WeChatAPIError) if errcode is not None else WeChatAPIError
    return kind(errcode, errmsg, endpoint, http_status)
