"""The H5 page of one transaction: the link of its alert, inside WeChat's browser.

It shows one transaction of the caller's own card (``view``) after a WeChat web
OAuth login that comes back to it; for anyone else the transaction does not exist.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, url_for

from members.holders import h5, oa_login
from members.transactions import view

bp = h5.protect(Blueprint("transaction_pages", __name__, url_prefix="/m",
                          template_folder="templates"))


@bp.get("/transactions/<txn_id>")
def transaction_page(txn_id: str) -> Any:
    if not view.well_formed(txn_id):
        return _not_found()
    actor = oa_login.current_actor()
    if actor is None:
        return redirect(oa_login.begin(url_for(".transaction_page", txn_id=txn_id)), 302)
    shown = view.for_actor(actor, txn_id)
    if shown is None:  # unknown, another card's, or no card bound: one and the same answer
        return _not_found()
    return render_template("members/transaction.html", txn=shown)


def _not_found() -> h5.Page:
    return h5.error_page(404, "未找到该交易", "该交易不存在，或不属于您绑定的银行卡。")
