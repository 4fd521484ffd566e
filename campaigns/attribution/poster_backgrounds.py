"""Campaigns' poster backgrounds: an image a marketer uploads (PNG or JPEG), checked,
fitted to the poster and kept in the poster store; campaigns without one get the designed
default (``posters``).

An upload is believed only once Pillow has decoded it whole: the declared type, the bytes
(``POSTER_BACKGROUND_MAX_BYTES``, before reading) and the pixels (``POSTER_BACKGROUND_MAX_PIXELS``,
from the header, before decoding: a decompression bomb is a small file of huge dimensions)
are checked first. The image is cropped to the poster's 9:16 and scaled to 750×1334,
stored as PNG under its digest, and a sample poster on it must fit the poster's size limit
(a photo too detailed for it is refused with words saying so). The campaign's pointer (a
small file naming that digest) is replaced only once the audit entry is committed.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from PIL import Image, ImageOps, UnidentifiedImageError

from campaigns.attribution import posters
from campaigns.benefits import catalogue
from campaigns.console import audit
from campaigns.console.models import Staff
from core.errors import ApiError
from core.files import write_atomically
from core.jobs import call_after_commit

MEDIA_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG"}
SAMPLE_HEADLINE = "联名借记卡专属权益 消费满额即享腾讯视频VIP月卡 12月"
SAMPLE_NAME = "杭州分行西湖支行营业部 客户经理"


@dataclass(frozen=True)
class Background:
    campaign: str
    digest: str
    width: int  # of the upload, before fitting
    height: int


def pointer_path(root: Path, slug: str) -> Path:
    # Slugs are [a-z0-9-] (catalogue.SLUG): safe as file names.
    return root / "backgrounds" / f"{slug}.ref"


def current(root: Path, slug: str) -> str | None:
    """The digest of ``slug``'s background, None for the default."""
    try:
        return pointer_path(root, slug).read_text().strip() or None
    except FileNotFoundError:
        return None


def _decoded(data: bytes, declared: str) -> Image.Image:
    """The upload decoded whole, or a 400/413 saying what is wrong with it."""
    limit = current_app.config["POSTER_BACKGROUND_MAX_PIXELS"]
    with warnings.catch_warnings():
        # Our own pixel limit below is lower than Pillow's bomb warning; a file past Pillow's
        # error limit is refused either way.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=[MEDIA_TYPES[declared]])
        except Image.DecompressionBombError:
            raise _too_many_pixels(limit) from None
        except (UnidentifiedImageError, OSError, ValueError):
            raise ApiError(400, "invalid_image",
                           f"the body is not a {MEDIA_TYPES[declared]} image") from None
        if image.width * image.height > limit:
            raise _too_many_pixels(limit)
        try:
            image.load()  # a truncated or corrupt file fails here, not later in a poster
        except (OSError, ValueError, Image.DecompressionBombError):
            raise ApiError(400, "invalid_image", "the image is damaged or truncated") from None
    return image


def _too_many_pixels(limit: int) -> ApiError:
    return ApiError(413, "image_too_large", f"the image has more than {limit:,} pixels "
                    "(the poster is 750×1334: a photo of a few megapixels is plenty)")


def store_background(actor: Staff, slug: str, data: bytes, declared: str) -> Background:
    """Check, fit and store ``data`` as the background of campaign ``slug`` (404 unknown);
    audited, and in force once the caller commits."""
    campaign = catalogue.find(slug)
    if declared not in MEDIA_TYPES:
        raise ApiError(415, "unsupported_media_type", "send the image as image/png or image/jpeg")
    image = _decoded(data, declared)
    fitted = ImageOps.fit(ImageOps.exif_transpose(image).convert("RGB"),
                          (posters.WIDTH, posters.HEIGHT), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    fitted.save(buffer, "PNG")
    stored = buffer.getvalue()
    digest = hashlib.sha256(stored).hexdigest()
    root = posters.store()
    path = posters.background_path(root, digest)
    if not path.exists():
        write_atomically(path, stored)
    sample = posters.spec_of(SAMPLE_HEADLINE, posters.LABELS["manager"], SAMPLE_NAME,
                             posters.SAMPLE.qr_url, digest)
    try:
        posters.render(sample, root)
    except posters.PosterTooLarge:
        raise ApiError(422, "background_too_detailed",
                       "posters on this image would exceed 300 KB: choose a simpler image "
                       "(fewer fine details, larger areas of one colour)") from None
    before = current(root, slug)
    audit.record(actor, "campaign.poster_background", f"campaign:{campaign.slug}",
                 before={"background": before},
                 after={"background": digest, "bytes": len(data), "width": image.width,
                        "height": image.height, "type": declared})
    call_after_commit(_point, pointer_path(root, slug), digest)
    return Background(campaign.slug, digest, image.width, image.height)


def _point(path: Path, digest: str) -> None:
    write_atomically(path, digest.encode())
