"""A channel's poster for a campaign, and a branch's posters as one ZIP.

What a campaign puts on its posters (``content_of``): its ``title`` as the headline and its
uploaded background, or, without a campaign, ``POSTER_DEFAULT_HEADLINE`` on the designed
background. What the channel puts: its kind's label, its name, and the url of its
permanent QR code (``codes.permanent_code``: asked of WeChat the first time only, so the
caller commits). The poster itself comes from the store (``posters.ensure``).

A branch's ZIP holds one ``<code>.png`` per active channel of the branch, stored (PNGs do
not compress), written to a file one poster at a time: never all posters in memory.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flask import current_app
from sqlalchemy import select

from campaigns.attribution import codes, poster_backgrounds, posters
from campaigns.attribution.models import OA_PERMANENT, Channel, ChannelCode
from campaigns.benefits import catalogue
from core.db import db

_IN_CHUNK = 1000  # channel ids per IN (...)


@dataclass(frozen=True)
class Content:
    """What a campaign (or the default) puts on its posters."""

    campaign: str | None  # slug; None: the default headline and background
    headline: str
    background: str | None


def content_of(slug: str | None) -> Content:
    """The posters' content for campaign ``slug`` (404 ``unknown_campaign``), or the
    default for None."""
    if slug is None:
        return Content(None, current_app.config["POSTER_DEFAULT_HEADLINE"], None)
    campaign = catalogue.find(slug)
    return Content(campaign.slug, campaign.title,
                   poster_backgrounds.current(posters.store(), campaign.slug))


def spec_for(channel: Channel, qr_url: str, content: Content) -> posters.PosterSpec:
    return posters.spec_of(content.headline, posters.LABELS[channel.kind], channel.name,
                           qr_url, content.background)


def channel_spec(channel: Channel, content: Content) -> posters.PosterSpec:
    """The spec of the channel's poster, its permanent code asked of WeChat if it has none
    yet: the caller commits that before rendering (``posters.ensure``), so that the code's
    row is not held while the poster is drawn."""
    return spec_for(channel, codes.permanent_code(channel).url, content)


def branch_channels(branch: str) -> list[Channel]:
    """The active channels of ``branch``, by code."""
    return list(db.session.scalars(select(Channel).where(Channel.branch == branch,
                                                         Channel.active.is_(True))
                                   .order_by(Channel.code)))


def urls_for(channels: Sequence[Channel], kept: Callable[[], None] | None = None
             ) -> dict[int, str]:
    """The permanent code's url of each channel (by id): the stored ones in one query per
    thousand, the others asked of WeChat (the caller commits; ``kept`` is called after each
    new code: a job commits there, holding no claim while WeChat answers the next). A
    channel deactivated before it got a code gets none, and is left out."""
    urls: dict[int, str] = {}
    ids = [channel.id for channel in channels]
    for start in range(0, len(ids), _IN_CHUNK):
        rows = db.session.execute(
            select(ChannelCode.channel_id, ChannelCode.url)
            .where(ChannelCode.channel_id.in_(ids[start:start + _IN_CHUNK]),
                   ChannelCode.kind == OA_PERMANENT, ChannelCode.url.is_not(None)))
        urls.update((channel_id, url) for channel_id, url in rows)
    for channel in channels:
        if channel.id not in urls and channel.active:
            url = codes.permanent_code(channel).url
            if kept is not None:
                kept()
            if url:
                urls[channel.id] = url
    return urls


def specs_for(channels: Sequence[Channel], content: Content,
              kept: Callable[[], None] | None = None
              ) -> list[tuple[Channel, posters.PosterSpec]]:
    """Each channel with the spec of its poster (codes asked as ``urls_for`` does)."""
    urls = urls_for(channels, kept)
    return [(channel, spec_for(channel, urls[channel.id], content))
            for channel in channels if channel.id in urls]


def write_zip(out: BinaryIO, entries: Iterable[tuple[Channel, posters.PosterSpec]],
              root: Path | None = None) -> int:
    """The posters of ``entries`` as a ZIP into ``out`` (``<code>.png`` each, rendered when
    not in the store yet); how many."""
    root = root or posters.store()
    count = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for channel, spec in entries:
            archive.write(posters.ensure(spec, root).path, f"{channel.code}.png")
            count += 1
    return count
