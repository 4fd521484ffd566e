"""Staff's changes to the catalogue, each with its audit entry: the one layer under both the
console's pages (``console_pages``) and its JSON API (``admin_api``).

A change and the entry that describes it go into the caller's unit of work together, so
neither is kept without the other; the caller commits (or rolls back a refusal). Entries
carry the campaign JSON before and after, and for a codes upload only counts: never a code.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from campaigns.benefits import catalogue
from campaigns.benefits.models import PUBLISHED, Campaign
from campaigns.console import audit
from campaigns.console.models import Staff
from core.db import db

SLUG_TAKEN = "another campaign has this slug"


def target(slug: str) -> str:
    return f"campaign:{slug}"


def put(actor: Staff, spec: catalogue.CampaignSpec, *,
        create_only: bool = False) -> catalogue.Saved:
    """Create or rewrite the campaign of ``spec``; an unchanged rewrite is not audited.

    ``create_only`` (the console's "new campaign" form): 409 ``slug_taken`` when the slug
    is another campaign's already, rather than rewriting it: found before writing (so the
    refusal is about the slug, not the other campaign's fields), and decided by the
    catalogue's insert-if-absent when two forms race for one slug.
    """
    taken = catalogue.CampaignProblems({"slug": SLUG_TAKEN}, status=409, code="slug_taken")
    if create_only and db.session.scalar(select(Campaign.id).where(Campaign.slug == spec.slug)):
        raise taken
    saved = catalogue.save(spec, actor=actor.username)
    if create_only and not saved.created:
        raise taken
    after = catalogue.describe(saved.campaign)
    if saved.before != after:
        audit.record(actor, "campaign.create" if saved.created else "campaign.update",
                     target(spec.slug), before=saved.before, after=after)
    return saved


def publish(actor: Staff, slug: str) -> None:
    """Publish the campaign; publishing a published one again changes (and audits) nothing."""
    before = catalogue.publish(slug, actor=actor.username)
    if before != PUBLISHED:
        audit.record(actor, "campaign.publish", target(slug), before={"state": before},
                     after={"state": PUBLISHED})


def add_codes(actor: Staff, slug: str, key: str, raw: bytes) -> catalogue.CodesAdded:
    """Add the codes of a text/plain file (one a line) to the option's stock."""
    option = catalogue.find_option(catalogue.find(slug), key)
    codes = catalogue.parse_codes(raw, max_chars=current_app.config["BENEFIT_CODE_MAX_CHARS"])
    result = catalogue.add_codes(option, codes)
    audit.record(actor, "campaign.codes_add", f"{target(slug)}/option:{key}",
                 before={"stock": result.stock_before},
                 after={"stock": result.stock, "added": result.added,
                        "duplicates": result.duplicates})
    return result
