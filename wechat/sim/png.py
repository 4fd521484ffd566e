"""Small valid PNG images standing in for WeChat's QR and mini-program codes.

The picture is a QR-like grid derived from the code's content (three finder squares plus
hash bits). It is a real PNG any decoder opens, but not a scannable code: the simulator only
has to prove the backend passes image bytes through untouched.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from functools import lru_cache

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODULES = 29  # a version-3 QR code's grid
QUIET = 2  # white modules around the grid
BLACK, WHITE = 0x00, 0xFF


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_grayscale(rows: list[bytes]) -> bytes:
    """A PNG of 8-bit grayscale scanlines, all of one width."""
    header = struct.pack(">IIBBBBB", len(rows[0]), len(rows), 8, 0, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 on every line
    idat = zlib.compress(raw, 6)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _finder(row: int, col: int) -> bool | None:
    """Colour of a module inside one of the three 7×7 finder squares, else None."""
    for top, left in ((0, 0), (0, MODULES - 7), (MODULES - 7, 0)):
        r, c = row - top, col - left
        if 0 <= r < 7 and 0 <= c < 7:
            ring = min(r, c, 6 - r, 6 - c)
            return ring != 1
    return None


def _grid(content: str) -> list[list[bool]]:
    bits = hashlib.shake_256(content.encode()).digest(MODULES * MODULES // 8 + 1)
    grid = []
    for row in range(MODULES):
        line = []
        for col in range(MODULES):
            index = row * MODULES + col
            finder = _finder(row, col)
            dark = finder if finder is not None else bool(bits[index // 8] >> (index % 8) & 1)
            line.append(dark)
        grid.append(line)
    return grid


@lru_cache(maxsize=256)
def code_image(content: str, size: int) -> bytes:
    """A ``size``×``size`` PNG for ``content`` (cached: benchmarks ask for the same codes)."""
    scale = max(1, size // (MODULES + 2 * QUIET))
    margin = (size - scale * MODULES) // 2
    blank = bytes([WHITE]) * size
    rows = [blank] * margin
    for line in _grid(content):
        pixels = bytearray([WHITE]) * size
        for col, dark in enumerate(line):
            if dark:
                start = margin + col * scale
                pixels[start : start + scale] = bytes([BLACK]) * scale
        rows.extend([bytes(pixels)] * scale)
    rows.extend([blank] * (size - len(rows)))
    return encode_grayscale(rows)
