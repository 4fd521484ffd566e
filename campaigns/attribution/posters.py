"""Posters of channels: 750×1334 PNGs a branch prints or a manager shows on a phone, with a
campaign's headline, the channel's name and its permanent QR code, cached by content.

A poster is fixed by a ``PosterSpec``: what it says (headline, the channel's label and
name), what its QR code encodes (the url WeChat returned for the channel's permanent code),
the campaign's background (the digest of the uploaded image; None: the designed default),
the font, and ``LAYOUT_VERSION``, which stands for every size and colour below. The spec's
digest names the PNG in the poster store (``POSTER_STORE_PATH``): ``ensure(spec)`` renders
only when that file is missing, so a changed headline makes new posters and an unchanged
one costs a file read. Files are written to a temporary name and renamed, so a reader never
sees half a poster, and two workers rendering the same one write the same bytes.

The QR code is drawn here from its url (segno's matrix, one square of whole pixels per
module, at least ``QUIET_MODULES`` of white around it, black on white) at the largest module
size the poster's QR square holds, rather than pasting a PNG rendered elsewhere: the size of
a module is what makes a code scannable at arm's length, and it depends on the symbol's
version. The finished poster is reduced to a palette (the QR and text stay pure) and kept
under ``MAX_BYTES``; a campaign background too detailed for that is refused at upload.

Fonts are opened once per process and size (``font``); a missing font file is a 503
``poster_font_missing`` naming the Debian package to install.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import segno
from flask import current_app
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from prometheus_client import Counter, Histogram

from core.errors import ApiError
from core.files import write_atomically

LAYOUT_VERSION = 1  # raise with any change below that alters the image: old posters retire
WIDTH, HEIGHT = 750, 1334
MAX_BYTES = 300 * 1024
QUIET_MODULES = 4  # ISO/IEC 18004's quiet zone; the white card around it adds more
MIN_MODULE_PX = 8  # below this a printed code is hard to read from a metre away
FONT_PACKAGE = "fonts-noto-cjk"
PNG_END = b"IEND\xaeB`\x82"  # the last chunk of every PNG, with its CRC

# Layout: the headline on the background, then a white card holding the channel's label and
# name, the QR code and the caption.
MARGIN = 60
HEADLINE_BOX = (MARGIN, 96, WIDTH - MARGIN, 412)  # left, top, right, bottom
HEADLINE_SIZES = (80, 72, 64, 58, 52, 46)
HEADLINE_LINES = 3
CARD = (60, 452, WIDTH - 60, 1252)
CARD_RADIUS = 28
LABEL_Y, LABEL_SIZE = 506, 28
NAME_Y, NAME_SIZES = 566, (50, 46, 42, 38, 34, 30)
TEXT_WIDTH = CARD[2] - CARD[0] - 2 * 40
QR_TOP, QR_SIDE = 618, 480  # the square the code and its quiet zone fit in
CAPTION, CAPTION_Y, CAPTION_SIZE = "微信扫码关注", 1150, 40
HINT, HINT_Y, HINT_SIZE = "打开微信“扫一扫”，或长按识别二维码", 1206, 24
LINE_HEIGHT = 1.28

WHITE = (255, 255, 255)
INK = (31, 35, 41)
GREY = (134, 140, 150)
BRAND = (180, 24, 40)
DEFAULT_TOP, DEFAULT_BOTTOM = (196, 30, 48), (112, 10, 26)

# Palette sizes tried in turn until the PNG fits in MAX_BYTES.
PALETTES = (256, 128, 64, 32)

RENDERS = Counter("poster_renders", "Posters rendered (poster cache misses)")
RENDER_SECONDS = Histogram("poster_render_seconds", "Time to render and encode one poster",
                           buckets=(0.02, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5))

LABELS = {"branch": "网点专属二维码", "manager": "您的专属客户经理", "campaign": "活动专属二维码"}

# Never at the start of a line (closing punctuation), never at its end (opening).
_CLOSING = frozenset("，。、；：？！）》」』】〉”’,.;:?!)%")
_OPENING = frozenset("（《「『【〈“‘(")
_TOKENS = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+\-/&']*|\s+|.", re.S)


class FontMissing(ApiError):
    """The configured font file cannot be opened."""

    def __init__(self, path: str) -> None:
        super().__init__(503, "poster_font_missing",
                         f"the poster font {path} is missing: install Debian's {FONT_PACKAGE} "
                         f"package (apt-get install {FONT_PACKAGE}) or set POSTER_FONT_PATH")


class PosterTooLarge(ValueError):
    """Even the smallest palette leaves the poster over MAX_BYTES."""


@dataclass(frozen=True)
class PosterSpec:
    """Everything that shapes a poster's image."""

    headline: str
    label: str
    name: str
    qr_url: str
    background: str | None  # sha256 of the campaign's background in the store; None: default
    font_path: str
    font_index: int

    def digest(self) -> str:
        shaped = {"layout": LAYOUT_VERSION, **asdict(self)}
        return hashlib.sha256(json.dumps(shaped, sort_keys=True, ensure_ascii=False)
                              .encode()).hexdigest()


# The sample a campaign's palette is chosen from: white and dark text, the code.
SAMPLE = PosterSpec(headline="扫码关注 尊享权益", label="您的专属客户经理", name="网点客户经理",
                    qr_url="http://weixin.qq.com/q/02sample000000000000000000", background=None,
                    font_path="", font_index=0)


@dataclass(frozen=True)
class Poster:
    """A poster in the store."""

    digest: str
    path: Path

    def read(self) -> bytes:
        return self.path.read_bytes()


# -- the store ----------------------------------------------------------------------------------

def store() -> Path:
    """The poster store's folder: ``POSTER_STORE_PATH``, or posters/ in the instance folder."""
    configured = current_app.config["POSTER_STORE_PATH"]
    return Path(configured) if configured else Path(current_app.instance_path) / "posters"


def poster_path(root: Path, digest: str) -> Path:
    # Two hex digits of fan-out keep folders small for branches of 10,000 posters.
    return root / "posters" / digest[:2] / f"{digest}.png"


def _whole(path: Path) -> bool:
    """``path`` is a PNG written to its end (its last chunk, IEND, is there)."""
    try:
        with path.open("rb") as file:
            file.seek(-len(PNG_END), os.SEEK_END)
            return file.read() == PNG_END
    except OSError:  # missing, or shorter than the chunk
        return False


def ensure(spec: PosterSpec, root: Path | None = None) -> Poster:
    """The poster of ``spec`` in the store, rendered only if it is not there (whole) yet.

    Written without waiting for the disk (an fsync costs more than the rest of a cache
    hit, and a third of a render on a busy disk): a poster cut by a crash fails the check
    and is rendered again."""
    root = root or store()
    digest = spec.digest()
    path = poster_path(root, digest)
    if not _whole(path):
        write_atomically(path, render(spec, root), durable=False)
    return Poster(digest, path)


def spec_of(headline: str, label: str, name: str, qr_url: str,
            background: str | None) -> PosterSpec:
    """A spec with the configured font."""
    config = current_app.config
    return PosterSpec(headline=headline, label=label, name=name, qr_url=qr_url,
                      background=background, font_path=config["POSTER_FONT_PATH"],
                      font_index=config["POSTER_FONT_INDEX"])


# -- fonts and backgrounds, once per process ----------------------------------------------------

@lru_cache(maxsize=64)
def font(path: str, index: int, size: int) -> ImageFont.FreeTypeFont:
    """The font at ``path`` (face ``index`` of a collection) in ``size`` px, opened once."""
    # Checked here: Pillow would otherwise look for a missing file's name in the system's
    # font folders, and set posters in whatever it found.
    if not Path(path).is_file():
        raise FontMissing(path)
    try:
        return ImageFont.truetype(path, size, index=index)
    except OSError:
        raise FontMissing(path) from None


def background_path(root: Path, digest: str) -> Path:
    return root / "backgrounds" / f"{digest}.png"


@lru_cache(maxsize=8)
def _base(root: Path, background: str | None, path: str, index: int) -> Image.Image:
    """The background with the white card and its caption: shared by every poster of a
    campaign (the store's backgrounds are named by their content, so this is never stale)."""
    if background is None:
        image = _default_background()
    else:
        with Image.open(background_path(root, background)) as stored:
            image = _scrim(stored.convert("RGB"))
    shadow = Image.new("L", image.size, 0)
    ImageDraw.Draw(shadow).rounded_rectangle(_offset(CARD, 10), CARD_RADIUS, fill=90)
    image.paste((20, 10, 10), (0, 0), shadow.filter(ImageFilter.GaussianBlur(18)))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle(CARD, CARD_RADIUS, fill=WHITE)
    _draw_lines(draw, [CAPTION], font(path, index, CAPTION_SIZE), CAPTION_Y, BRAND)
    _draw_lines(draw, [HINT], font(path, index, HINT_SIZE), HINT_Y, GREY)
    return image


@lru_cache(maxsize=8)
def _palette(root: Path, background: str | None, path: str, index: int) -> Image.Image:
    """The 256 colours of a campaign's posters, chosen once (median cut: smooth gradients,
    ~200 ms) from a sample poster on its base, which has every colour the channel's text and
    QR code add; white and black exact, for the code's contrast. Mapping a poster onto it
    costs a few ms where choosing its own palette would cost tens."""
    sample = _channel_part(_headline(_base(root, background, path, index).copy(),
                                     SAMPLE.headline, path, index), SAMPLE, path, index)
    reduced = sample.quantize(PALETTES[0], method=Image.Quantize.MEDIANCUT,
                              dither=Image.Dither.NONE)
    colours = reduced.getpalette() or []
    triples = [colours[i:i + 3] for i in range(0, len(colours), 3)]
    lightest = max(range(len(triples)), key=lambda i: sum(triples[i]))
    darkest = min(range(len(triples)), key=lambda i: sum(triples[i]))
    triples[lightest], triples[darkest] = [255, 255, 255], [0, 0, 0]
    reduced.putpalette([value for triple in triples for value in triple])
    return reduced


def _offset(box: tuple[int, int, int, int], dy: int) -> tuple[int, int, int, int]:
    return box[0], box[1] + dy, box[2], box[3] + dy


def _default_background() -> Image.Image:
    """The designed default: the brand's red, darker downwards, with two soft rings."""
    ramp = Image.linear_gradient("L").resize((WIDTH, HEIGHT))
    image = Image.composite(Image.new("RGB", (WIDTH, HEIGHT), DEFAULT_BOTTOM),
                            Image.new("RGB", (WIDTH, HEIGHT), DEFAULT_TOP), ramp)
    rings = Image.new("L", (WIDTH, HEIGHT), 0)
    draw = ImageDraw.Draw(rings)
    draw.ellipse((430, -260, 1010, 320), outline=38, width=70)
    draw.ellipse((-300, 1060, 260, 1620), outline=30, width=60)
    image.paste((255, 214, 160), (0, 0), rings)
    return image


def _scrim(image: Image.Image) -> Image.Image:
    """An uploaded background darkened behind the headline, so white text reads on any photo."""
    shade = Image.linear_gradient("L").rotate(180).resize((WIDTH, HEADLINE_BOX[3] + 80))
    mask = Image.new("L", image.size, 0)
    mask.paste(shade.point(lambda v: v * 150 // 255), (0, 0))
    image.paste((0, 0, 0), (0, 0), mask)
    return image


# -- text ---------------------------------------------------------------------------------------

def _tokens(text: str) -> list[str]:
    """Units a line may break between: a CJK character, an ASCII word, a space; punctuation
    stays with its neighbour."""
    tokens: list[str] = []
    carry = ""
    for piece in _TOKENS.findall(" ".join(text.split())):
        if piece in _OPENING:
            carry += piece
        elif piece in _CLOSING and tokens and not carry:
            tokens[-1] += piece
        else:
            tokens.append(carry + piece)
            carry = ""
    if carry:
        tokens.append(carry)
    return tokens


def wrap(text: str, face: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """``text`` in lines no wider than ``width`` where it can be (a single unit wider than
    the line stays whole)."""
    lines: list[str] = []
    line = ""
    for token in _tokens(text):
        candidate = line + token
        if line.strip() and face.getlength(candidate.strip()) > width:
            lines.append(line.strip())
            line = token.lstrip()
        else:
            line = candidate
    if line.strip():
        lines.append(line.strip())
    return lines


def _ellipsized(line: str, face: ImageFont.FreeTypeFont, width: int) -> str:
    while line and face.getlength(line + "…") > width:
        line = line[:-1]
    return line + "…"


def fit(text: str, path: str, index: int, sizes: Iterable[int], width: int,
        max_lines: int) -> tuple[ImageFont.FreeTypeFont, list[str]]:
    """The largest of ``sizes`` at which ``text`` fits in ``max_lines`` lines of ``width``;
    at the smallest, the lines that fit with an ellipsis at the end of the last."""
    for size in sizes:
        face = font(path, index, size)
        lines = wrap(text, face, width)
        if len(lines) <= max_lines and all(face.getlength(line) <= width for line in lines):
            return face, lines
    shown = lines[:max_lines]  # of the smallest size
    if shown and (len(lines) > max_lines or face.getlength(shown[-1]) > width):
        shown[-1] = _ellipsized(shown[-1], face, width)
    return face, shown


def _draw_lines(draw: ImageDraw.ImageDraw, lines: list[str], face: ImageFont.FreeTypeFont,
                centre_y: float, fill: tuple[int, int, int]) -> None:
    step = face.size * LINE_HEIGHT
    first = centre_y - step * (len(lines) - 1) / 2
    for number, line in enumerate(lines):
        draw.text((WIDTH / 2, first + number * step), line, font=face, fill=fill, anchor="mm")


# -- the QR code --------------------------------------------------------------------------------

def qr_image(url: str, side: int = QR_SIDE) -> Image.Image:
    """The QR code of ``url`` with its quiet zone, black on white, in whole pixels per module,
    as large as fits in ``side``; ValueError if the modules would be under MIN_MODULE_PX."""
    symbol = segno.make(url, error="m", boost_error=True, micro=False)
    modules = symbol.symbol_size(border=0)[0]
    module = side // (modules + 2 * QUIET_MODULES)
    if module < MIN_MODULE_PX:
        raise ValueError(f"a url of {len(url)} characters makes modules under {MIN_MODULE_PX} px")
    dark = b"".join(bytes(row) for row in symbol.matrix).translate(_TO_GREY)
    code = Image.frombytes("L", (modules, modules), dark)
    total = (modules + 2 * QUIET_MODULES) * module
    image = Image.new("L", (total, total), 255)
    image.paste(code.resize((modules * module,) * 2, Image.Resampling.NEAREST),
                (QUIET_MODULES * module,) * 2)
    return image


_TO_GREY = bytes([255, 0] + [0] * 254)  # segno's 0 (light) → white, 1 (dark) → black


# -- rendering ----------------------------------------------------------------------------------

def compose(spec: PosterSpec, root: Path | None = None) -> Image.Image:
    """The poster of ``spec`` as an RGB image (not yet reduced or encoded)."""
    headed = _headed(root or store(), spec.background, spec.font_path, spec.font_index,
                     spec.headline)
    return _channel_part(headed.copy(), spec, spec.font_path, spec.font_index)


@lru_cache(maxsize=16)
def _headed(root: Path, background: str | None, path: str, index: int,
            headline: str) -> Image.Image:
    """The base with the campaign's headline: what every poster of a batch shares."""
    return _headline(_base(root, background, path, index).copy(), headline, path, index)


def _headline(image: Image.Image, headline: str, path: str, index: int) -> Image.Image:
    left, top, right, bottom = HEADLINE_BOX
    face, lines = fit(headline, path, index, HEADLINE_SIZES, right - left, HEADLINE_LINES)
    _draw_lines(ImageDraw.Draw(image), lines, face, (top + bottom) / 2, WHITE)
    return image


def _channel_part(image: Image.Image, spec: PosterSpec, path: str, index: int) -> Image.Image:
    """``image`` (a headed base) with the channel's label, name and QR code."""
    draw = ImageDraw.Draw(image)
    _draw_lines(draw, [spec.label], font(path, index, LABEL_SIZE), LABEL_Y, GREY)
    face, lines = fit(spec.name, path, index, NAME_SIZES, TEXT_WIDTH, 1)
    _draw_lines(draw, lines, face, NAME_Y, INK)
    code = qr_image(spec.qr_url)
    image.paste(code, ((WIDTH - code.width) // 2, QR_TOP + (QR_SIDE - code.height) // 2))
    return image


def encode(image: Image.Image, palette: Image.Image | None = None) -> bytes:
    """``image`` as a palette PNG under MAX_BYTES: on ``palette`` if given and small enough,
    else with the fewest colours it needs of PALETTES (each its own, fewer colours compress
    better); PosterTooLarge when even the smallest is over."""
    attempts: list[tuple[Image.Image | None, int]] = [(palette, PALETTES[0])] if palette else []
    attempts += [(None, colours) for colours in PALETTES[1 if palette else 0:]]
    for fixed, colours in attempts:
        if fixed is not None:
            reduced = image.quantize(palette=fixed, dither=Image.Dither.NONE)
        else:
            reduced = image.quantize(colours, method=Image.Quantize.FASTOCTREE,
                                     dither=Image.Dither.NONE)
        buffer = io.BytesIO()
        # zlib's default level first: level 9 and optimize cost ~30 ms for a few per cent,
        # worth it only for a poster over the limit.
        reduced.save(buffer, "PNG", optimize=colours != PALETTES[0])
        if buffer.tell() <= MAX_BYTES:
            return buffer.getvalue()
    raise PosterTooLarge(f"the poster takes {buffer.tell()} bytes with {PALETTES[-1]} colours")


def render(spec: PosterSpec, root: Path | None = None) -> bytes:
    """The PNG of ``spec``, rendered now (``ensure`` renders only on a cache miss)."""
    root = root or store()
    with RENDER_SECONDS.time():
        palette = _palette(root, spec.background, spec.font_path, spec.font_index)
        data = encode(compose(spec, root), palette)
    RENDERS.inc()
    return data
