"""Redis's geohash arithmetic (``geohash.c``, ``geohash_helper.c``): pure functions, no I/O.

A position is stored as the score of a sorted-set member: a 52-bit integer interleaving 26
bits of latitude (even bits) and 26 bits of longitude (odd bits), each the position's offset
in its range (longitude -180..180, latitude -85.05112878..85.05112878, the Web Mercator
limits) scaled to 2**26 and truncated. Decoding gives the centre of that cell, which is why
GEOPOS does not return exactly what GEOADD was given.

A radius or box search covers the shape with the cell containing its centre and that cell's
eight neighbours, at a precision (``step``: bits per coordinate) estimated from the radius,
lowered by one when the shape reaches past a neighbour, and with the neighbours the shape
cannot touch left out; each cell is a score range ``[min, max)`` of the sorted set, and each
member found there is kept when its exact haversine distance (Redis's earth radius
6372797.560856 m) puts it inside the shape. Every floating-point step is Redis's, in the same
order, so distances, cells and the members found are Redis's to the last digit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LONG_MIN, LONG_MAX = -180.0, 180.0
LAT_MIN, LAT_MAX = -85.05112878, 85.05112878
STEP_MAX = 26
EARTH_RADIUS = 6372797.560856
MERCATOR_MAX = 20037726.37
D_R = math.pi / 180.0

_MASK64 = (1 << 64) - 1
_INTERLEAVE = (
    (16, 0x0000FFFF0000FFFF),
    (8, 0x00FF00FF00FF00FF),
    (4, 0x0F0F0F0F0F0F0F0F),
    (2, 0x3333333333333333),
    (1, 0x5555555555555555),
)
_DEINTERLEAVE = (
    (0, 0x5555555555555555),
    (1, 0x3333333333333333),
    (2, 0x0F0F0F0F0F0F0F0F),
    (4, 0x00FF00FF00FF00FF),
    (8, 0x0000FFFF0000FFFF),
    (16, 0x00000000FFFFFFFF),
)


def interleave(lat_bits: int, long_bits: int) -> int:
    """Latitude's 32 bits on the even positions, longitude's on the odd ones."""
    x, y = lat_bits & 0xFFFFFFFF, long_bits & 0xFFFFFFFF
    for shift, mask in _INTERLEAVE:
        x = (x | (x << shift)) & mask
        y = (y | (y << shift)) & mask
    return x | (y << 1)


def deinterleave(bits: int) -> tuple[int, int]:
    """``(latitude bits, longitude bits)`` of an interleaved 64-bit value."""
    x, y = bits, bits >> 1
    for shift, mask in _DEINTERLEAVE:
        x = (x | (x >> shift)) & mask
        y = (y | (y >> shift)) & mask
    return x, y


def encode(
    longitude: float,
    latitude: float,
    step: int = STEP_MAX,
    long_range: tuple[float, float] = (LONG_MIN, LONG_MAX),
    lat_range: tuple[float, float] = (LAT_MIN, LAT_MAX),
) -> int | None:
    """``geohashEncode``: the cell of a position at ``step`` bits per coordinate, or None
    outside the supported limits (or the ranges)."""
    if not (LONG_MIN <= longitude <= LONG_MAX and LAT_MIN <= latitude <= LAT_MAX):
        return None
    if not (lat_range[0] <= latitude <= lat_range[1]):
        return None
    if not (long_range[0] <= longitude <= long_range[1]):
        return None
    lat_offset = (latitude - lat_range[0]) / (lat_range[1] - lat_range[0])
    long_offset = (longitude - long_range[0]) / (long_range[1] - long_range[0])
    scale = float(1 << step)
    return interleave(int(lat_offset * scale), int(long_offset * scale))


@dataclass(frozen=True)
class Area:
    """A cell's bounds."""

    lat_min: float
    lat_max: float
    long_min: float
    long_max: float


def decode(bits: int, step: int) -> Area:
    """``geohashDecode`` over the WGS84 ranges."""
    lat_bits, long_bits = deinterleave(bits)
    lat_bits &= 0xFFFFFFFF
    long_bits &= 0xFFFFFFFF
    lat_scale = LAT_MAX - LAT_MIN
    long_scale = LONG_MAX - LONG_MIN
    cells = float(1 << step)
    return Area(
        LAT_MIN + (lat_bits * 1.0 / cells) * lat_scale,
        LAT_MIN + ((lat_bits + 1) * 1.0 / cells) * lat_scale,
        LONG_MIN + (long_bits * 1.0 / cells) * long_scale,
        LONG_MIN + ((long_bits + 1) * 1.0 / cells) * long_scale,
    )


def score_bits(score: float) -> int:
    """C's ``(uint64_t)score`` as gcc computes it on x86-64: a signed conversion below
    2**63 (negative scores wrap; out of range, NaN included, gives 2**63), else one of
    ``score - 2**63`` with the top bit flipped (so 2**64 and more, infinity too, give 0)."""
    if score >= 2.0**63:
        score -= 2.0**63
        return (int(score) | 1 << 63) if score < 2.0**63 else 0
    if score > -(2.0**63):
        return int(score) & _MASK64
    return 1 << 63


def position(score: float) -> tuple[float, float]:
    """``decodeGeohash``: the centre (longitude, latitude) of a member's cell, clamped."""
    area = decode(score_bits(score), STEP_MAX)
    longitude = (area.long_min + area.long_max) / 2
    longitude = min(max(longitude, LONG_MIN), LONG_MAX)
    latitude = (area.lat_min + area.lat_max) / 2
    latitude = min(max(latitude, LAT_MIN), LAT_MAX)
    return longitude, latitude


def score_of(longitude: float, latitude: float) -> int:
    """The 52-bit score GEOADD stores for a valid position."""
    bits = encode(longitude, latitude)
    return 0 if bits is None else bits


_ALPHABET = b"0123456789bcdefghjkmnpqrstuvwxyz"


def hash_string(score: float) -> bytes:
    """GEOHASH's 11 characters: the cell's centre re-encoded over the standard latitude
    range -90..90 (the 11th character stands for bits Redis does not have: '0')."""
    longitude, latitude = position(score)
    bits = encode(longitude, latitude, STEP_MAX, (-180.0, 180.0), (-90.0, 90.0)) or 0
    chars = [_ALPHABET[(bits >> (52 - (i + 1) * 5)) & 0x1F] for i in range(10)]
    return bytes(chars) + b"0"


# -- distances ----------------------------------------------------------------------------


# C's math answers NaN where Python's raises (an infinite radius, rounding past 1 for
# antipodes): these keep C's answers, which Redis's replies follow.


def _sin(x: float) -> float:
    return math.sin(x) if math.isfinite(x) else math.nan


def _cos(x: float) -> float:
    return math.cos(x) if math.isfinite(x) else math.nan


def _asin(x: float) -> float:
    return math.asin(x) if -1.0 <= x <= 1.0 else math.nan


def _sqrt(x: float) -> float:
    return math.sqrt(x) if x >= 0 or x != x else math.nan


def _rad(degrees: float) -> float:
    return degrees * D_R


def _deg(radians: float) -> float:
    return radians / D_R


def lat_distance(lat1: float, lat2: float) -> float:
    """Distance along a meridian (``geohashGetLatDistance``)."""
    return EARTH_RADIUS * abs(_rad(lat2) - _rad(lat1))


def distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Haversine great-circle distance in meters (``geohashGetDistance``, 7.0: the
    meridian shortcut when the longitudes' sine difference is exactly 0)."""
    lon1r = _rad(lon1)
    lon2r = _rad(lon2)
    v = _sin((lon2r - lon1r) / 2)
    if v == 0.0:
        return lat_distance(lat1, lat2)
    lat1r = _rad(lat1)
    lat2r = _rad(lat2)
    u = _sin((lat2r - lat1r) / 2)
    a = u * u + _cos(lat1r) * _cos(lat2r) * v * v
    return 2.0 * EARTH_RADIUS * _asin(_sqrt(a))


# -- shapes and the cells that cover them -------------------------------------------------


@dataclass
class Shape:
    """A search shape: its centre, and a radius or a box (width, height), all in the unit
    of ``conversion`` (meters per unit), as Redis's ``GeoShape`` keeps them."""

    longitude: float
    latitude: float
    conversion: float
    radius: float = 0.0
    width: float = 0.0
    height: float = 0.0
    box: bool = False

    def bounds(self) -> tuple[float, float, float, float]:
        """``geohashBoundingBox``: (min longitude, min latitude, max longitude, max
        latitude), wider towards the pole on the side nearer to it."""
        if self.box:
            height = self.conversion * self.height / 2
            width = self.conversion * self.width / 2
        else:
            height = width = self.conversion * self.radius
        lat_delta = _deg(height / EARTH_RADIUS)
        long_delta_top = _deg(width / EARTH_RADIUS / _cos(_rad(self.latitude + lat_delta)))
        long_delta_bottom = _deg(width / EARTH_RADIUS / _cos(_rad(self.latitude - lat_delta)))
        delta = long_delta_bottom if self.latitude < 0 else long_delta_top
        return (
            self.longitude - delta,
            self.latitude - lat_delta,
            self.longitude + delta,
            self.latitude + lat_delta,
        )

    def distance_if_within(self, longitude: float, latitude: float) -> float | None:
        """The distance from the centre to a point, in meters, or None when the point is
        outside (``geoWithinShape``)."""
        if not self.box:
            found = distance(self.longitude, self.latitude, longitude, latitude)
            return None if found > self.radius * self.conversion else found
        # the latitude test first: it is the cheaper one (geohashGetDistanceIfInRectangle)
        if lat_distance(latitude, self.latitude) > self.height * self.conversion / 2:
            return None
        if distance(longitude, latitude, self.longitude, latitude) > (
            self.width * self.conversion / 2
        ):
            return None
        return distance(self.longitude, self.latitude, longitude, latitude)


def estimate_steps(range_meters: float, latitude: float) -> int:
    """``geohashEstimateStepsByRadius``: bits per coordinate for cells about the size of
    the range, one or two fewer near the poles."""
    if range_meters == 0:
        return 26
    step = 1
    while range_meters < MERCATOR_MAX:
        range_meters *= 2
        step += 1
    step -= 2
    if latitude > 66 or latitude < -66:
        step -= 1
        if latitude > 80 or latitude < -80:
            step -= 1
    return min(max(step, 1), 26)


def _move(bits: int, step: int, dx: int, dy: int) -> int:
    """``geohash_move_x``/``geohash_move_y``: the neighbouring cell, wrapping around."""
    if dx:
        x = bits & 0xAAAAAAAAAAAAAAAA
        y = bits & 0x5555555555555555
        zz = 0x5555555555555555 >> (64 - step * 2)
        # (Python's & of a negative number is C's unsigned wrap-around)
        x = x + zz + 1 if dx > 0 else (x | zz) - (zz + 1)
        x &= 0xAAAAAAAAAAAAAAAA >> (64 - step * 2)
        bits = x | y
    if dy:
        x = bits & 0xAAAAAAAAAAAAAAAA
        y = bits & 0x5555555555555555
        zz = 0xAAAAAAAAAAAAAAAA >> (64 - step * 2)
        # (Python's & of a negative number is C's unsigned wrap-around)
        y = y + zz + 1 if dy > 0 else (y | zz) - (zz + 1)
        y &= 0x5555555555555555 >> (64 - step * 2)
        bits = x | y
    return bits


#: The cells in the order Redis visits them: the centre, N, S, E, W, NE, NW, SE, SW.
_DIRECTIONS = ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1))


def covering_cells(shape: Shape) -> list[tuple[int, int] | None]:
    """``geohashCalculateAreasByShapeWGS84``: the nine ``(bits, step)`` cells to search, in
    Redis's order, None for a neighbour left out."""
    min_lon, min_lat, max_lon, max_lat = shape.bounds()
    if shape.box:
        radius = _sqrt(
            (shape.width / 2) * (shape.width / 2) + (shape.height / 2) * (shape.height / 2)
        )
    else:
        radius = shape.radius
    steps = estimate_steps(radius * shape.conversion, shape.latitude)
    bits = encode(shape.longitude, shape.latitude, steps) or 0
    north = decode(_move(bits, steps, 0, 1), steps)
    south = decode(_move(bits, steps, 0, -1), steps)
    east = decode(_move(bits, steps, 1, 0), steps)
    west = decode(_move(bits, steps, -1, 0), steps)
    # A shape near the edge of the centre cell may reach past a neighbour: one step less.
    if steps > 1 and (
        north.lat_max < max_lat
        or south.lat_min > min_lat
        or east.long_max < max_lon
        or west.long_min > min_lon
    ):
        steps -= 1
        bits = encode(shape.longitude, shape.latitude, steps) or 0
    area = decode(bits, steps)
    cells: list[tuple[int, int] | None] = [
        (_move(bits, steps, dx, dy), steps) for dx, dy in _DIRECTIONS
    ]
    if steps >= 2:
        # leave out the neighbours on a side the shape does not reach
        drop = set()
        if area.lat_min < min_lat:
            drop.update(((0, -1), (-1, -1), (1, -1)))
        if area.lat_max > max_lat:
            drop.update(((0, 1), (1, 1), (-1, 1)))
        if area.long_min < min_lon:
            drop.update(((-1, 0), (-1, -1), (-1, 1)))
        if area.long_max > max_lon:
            drop.update(((1, 0), (1, -1), (1, 1)))
        cells = [None if d in drop else cell for d, cell in zip(_DIRECTIONS, cells, strict=True)]
    return cells


def score_range(cell: tuple[int, int]) -> tuple[int, int]:
    """``scoresOfGeoHashBox``: the scores ``[min, max)`` of the members inside a cell."""
    bits, step = cell
    shift = 52 - step * 2
    return bits << shift, (bits + 1) << shift


def human(value: float) -> bytes:
    """Redis's ``addReplyHumanLongDouble`` text of a coordinate: ``%.17Lf`` without
    trailing zeros (GEOPOS, WITHCOORD)."""
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    text = b"%.17f" % value
    if b"." in text:
        text = text.rstrip(b"0").rstrip(b".")
    return b"0" if text == b"-0" else text
