"""LOLWUT's computer art, as Redis 7.0 draws it: version 5's Schotter (Georg Nees, 1968) in
Braille dots, version 6's skyline (after Plaguemon) in terminal grays. Both are random, as
Redis's are; the sizes, limits, layout and captions are Redis's (``lolwut5.c``,
``lolwut6.c``).
"""

from __future__ import annotations

import math
import random

from shardserver.errors import error
from shardserver.numbers import parse_int

_NOT_INTEGER = error("ERR value is not an integer or out of range")
_rng = random.Random()


class Canvas:
    """lwCanvas: pixels of a color each; drawing outside it does nothing."""

    def __init__(self, width: int, height: int, color: int) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray([color]) * (width * height)

    def draw(self, x: int, y: int, color: int) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            self.pixels[x + y * self.width] = color

    def get(self, x: int, y: int) -> int:
        if 0 <= x < self.width and 0 <= y < self.height:
            return self.pixels[x + y * self.width]
        return 0

    def line(self, x1: int, y1: int, x2: int, y2: int, color: int) -> None:
        """Bresenham, as lwDrawLine."""
        dx, dy = abs(x2 - x1), abs(y2 - y1)
        sx = 1 if x1 < x2 else -1
        sy = 1 if y1 < y2 else -1
        err = dx - dy
        while True:
            self.draw(x1, y1, color)
            if x1 == x2 and y1 == y2:
                return
            e2 = err * 2
            if e2 > -dy:
                err -= dy
                x1 += sx
            if e2 < dx:
                err += dx
                y1 += sy

    def square(self, x: int, y: int, size: float, angle: float, color: int) -> None:
        """lwDrawSquare: the square inscribed in a circle, rotated by ``angle``."""
        size = _c_round(size / 1.4142135623)
        k = math.pi / 4 + angle
        points = []
        for _ in range(4):
            points.append((_c_round(math.sin(k) * size + x), _c_round(math.cos(k) * size + y)))
            k += math.pi / 2
        for j in range(4):
            self.line(*points[j], *points[(j + 1) % 4], color)


def _c_round(value: float) -> int:
    """C's round(): halves away from zero."""
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


def _longs(args: list[bytes], defaults: list[int]) -> list[int] | bytes:
    """The optional numeric arguments, as getLongFromObjectOrReply reads them."""
    values = list(defaults)
    for position, raw in enumerate(args[: len(defaults)]):
        number = parse_int(raw)
        if number is None:
            return _NOT_INTEGER
        values[position] = number
    return values


def version5(args: list[bytes], version: str) -> str | bytes:
    """LOLWUT VERSION 5 [columns] [squares per row] [squares per column]."""
    values = _longs(args, [66, 8, 12])
    if values.__class__ is bytes:
        return values
    cols, per_row, per_col = (
        min(max(value, 1), limit) for value, limit in zip(values, (1000, 200, 200), strict=True)
    )
    width = cols * 2
    padding = 2 if width > 4 else 0
    side = (width - padding * 2) / per_row
    canvas = Canvas(width, int(side * per_col + padding * 2), 0)
    for y in range(per_col):
        for x in range(per_row):
            sx = int(x * side + side / 2 + padding)
            sy = int(y * side + side / 2 + padding)
            angle = 0.0
            if y > 1:  # more disorder row by row
                r1, r2, r3 = (_rng.random() / per_col * y for _ in range(3))
                r1, r2, r3 = (-r if _rng.getrandbits(1) else r for r in (r1, r2, r3))
                angle = r1
                sx = int(sx + r2 * side / 3)
                sy = int(sy + r3 * side / 3)
            canvas.square(sx, sy, side, angle, 1)
    return (
        _braille(canvas)
        + f"\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. {version}\n"
    )


#: The pixel of each Braille dot bit in a 2x4 block (lwTranslatePixelsGroup's order).
_DOTS = ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (0, 3), (1, 3))


def _braille(canvas: Canvas) -> str:
    """Each 2x4 block of pixels as one Braille character (dots 0-2 and 6 on the left)."""
    lines = []
    for y in range(0, canvas.height, 4):
        row = []
        for x in range(0, canvas.width, 2):
            dots = 0
            for bit, (dx, dy) in enumerate(
                ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (0, 3), (1, 3))
            ):
                if canvas.get(x + dx, y + dy):
                    dots |= 1 << bit
            row.append(chr(0x2800 + dots))
        lines.append("".join(row) + ("\n" if y != canvas.height - 1 else ""))
    return "".join(lines)


_GRAYS = ("0;30;40m", "0;90;100m", "0;37;47m", "0;97;107m")


def version6(args: list[bytes], version: str) -> str | bytes:
    """LOLWUT VERSION 6 [columns] [rows]: a skyline in the terminal's four grays."""
    values = _longs(args, [80, 20])
    if values.__class__ is bytes:
        return values
    cols, rows = (min(max(value, 1), 1000) for value in values)
    canvas = Canvas(cols, rows, 3)
    _skyline(canvas)
    lines = []
    for y in range(canvas.height):
        cells = "".join(f"\033[{_GRAYS[canvas.get(x, y)]} \033[0m" for x in range(canvas.width))
        lines.append(cells + ("\n" if y != canvas.height - 1 else ""))
    return (
        "".join(lines) + "\nDedicated to the 8 bit game developers of past and present.\n"
        f"Original 8 bit image from Plaguemon by hikikomori. Redis ver. {version}\n"
    )


def _skyline(canvas: Canvas) -> None:
    """generateSkyline: two grays of plain towers behind, black towers with windows ahead."""
    rand = _rng.randrange
    height = canvas.height
    for color in (2, 1):
        offset = -10
        while offset < canvas.width:
            offset += rand(8)
            width = 10 + rand(9)
            tall = height // 2 + rand(height) // (2 if color == 2 else 3)
            _tower(canvas, offset, width, tall, False, color)
            offset += width // 2 if color == 2 else width + 1
    offset = -10
    while offset < canvas.width:
        offset += rand(8)
        width = 5 + rand(14)
        if width % 4:
            width += width % 3
        _tower(canvas, offset, width, height // 3 + rand(height) // 2, True, 0)
        offset += width + 5


def _tower(canvas: Canvas, xoff: int, width: int, tall: int, windows: bool, color: int) -> None:
    """generateSkyscraper: a roof two pixels narrower each side, windows two pixels wide."""
    start = canvas.height - 1
    end = start - tall + 1
    for y in range(start, end - 1, -1):
        for x in range(xoff, xoff + width):
            if y == end and (x <= xoff + 1 or x >= xoff + width - 2):
                continue
            pixel = color
            if windows and xoff + 1 < x < xoff + width - 2 and end + 1 < y < start - 1:
                relx, rely = x - (xoff + 1), y - (end + 1)
                if (relx // 2) % 2 and rely % 2:
                    pixel = color
                    while pixel == color:
                        pixel = 1 + _rng.randrange(2)
                    if relx % 2:
                        pixel = canvas.get(x - 1, y)
            canvas.draw(x, y, pixel)
