"""Unit tests of the geohash arithmetic (:mod:`shardserver.geohash`) and the geo sorting
(:func:`shardserver.commands.geo.partial_sort`), without a server. The golden values (scores,
GEOPOS texts, GEOHASH strings, distances) are redis-server 7.0.15's answers for the same
positions."""

from __future__ import annotations

import random

import pytest

from shardserver import geohash
from shardserver.commands import geo

PALERMO = (13.361389, 38.115556)
CATANIA = (15.087269, 37.502669)


def test_scores_positions_and_hashes_are_redis_s() -> None:
    assert geohash.score_of(*PALERMO) == 3479099956230698
    assert geohash.score_of(*CATANIA) == 3479447370796909
    lon, lat = geohash.position(3479099956230698)
    assert (geohash.human(lon), geohash.human(lat)) == (
        b"13.36138933897018433",
        b"38.11555639549629859",
    )
    assert geohash.hash_string(3479099956230698) == b"sqc8b49rny0"
    assert geohash.hash_string(3479447370796909) == b"sqdtr74hyu0"


@pytest.mark.parametrize(
    ("position", "text", "hashed"),
    [
        ((180.0, 0.0), (b"180", b"0.00000126736058093"), b"80000000000"),
        ((-180.0, 0.0), (b"-179.99999731779098511", b"0.00000126736058093"), b"80000000000"),
        ((0.0, 85.05112878), (b"0.00000268220901489", b"85.0511287799999991"), b"up05b5048p0"),
        ((0.0, -85.05112878), (b"0.00000268220901489", b"-85.05112751263942528"), b"h0bh0hbj200"),
    ],
)
def test_edges_of_the_map(position: tuple, text: tuple, hashed: bytes) -> None:
    score = geohash.score_of(*position)
    lon, lat = geohash.position(score)
    assert (geohash.human(lon), geohash.human(lat)) == text
    assert geohash.hash_string(score) == hashed


def test_distances_are_redis_s() -> None:
    palermo = geohash.position(geohash.score_of(*PALERMO))
    catania = geohash.position(geohash.score_of(*CATANIA))
    assert b"%.4f" % geohash.distance(*palermo, *catania) == b"166274.1516"
    assert b"%.4f" % (geohash.distance(15, 37, *palermo) / 1000) == b"190.4424"
    assert b"%.4f" % (geohash.distance(15, 37, *catania) / 1000) == b"56.4413"
    # same longitude: the meridian shortcut
    assert geohash.distance(10, 1, 10, 2) == geohash.lat_distance(1, 2)


def test_out_of_range_positions_are_refused() -> None:
    assert geohash.encode(180.1, 0) is None
    assert geohash.encode(0, 85.06) is None
    assert geohash.encode(0, 89, 26, (-180, 180), (-90, 90)) is None  # Redis keeps its limits


def test_interleave_round_trip() -> None:
    rng = random.Random(3)
    for _ in range(200):
        lat, lon = rng.getrandbits(32), rng.getrandbits(32)
        bits = geohash.interleave(lat, lon)
        assert geohash.deinterleave(bits) == (lat, lon)
        assert all((bits >> (2 * i)) & 1 == (lat >> i) & 1 for i in range(32))


def test_neighbour_cells_surround_the_centre() -> None:
    shape = geohash.Shape(13.36, 38.11, 1000.0, radius=50)
    cells = geohash.covering_cells(shape)
    assert len(cells) == 9 and cells[0] is not None
    centre = cells[0]
    step = centre[1]
    assert step in (
        geohash.estimate_steps(50_000, 38.11),
        geohash.estimate_steps(50_000, 38.11) - 1,
    )
    low, high = geohash.score_range(centre)
    assert low <= geohash.score_of(13.36, 38.11) < high
    for cell in cells[1:]:
        if cell is not None:
            assert cell[1] == step and cell != centre


def test_estimated_steps() -> None:
    assert geohash.estimate_steps(0, 0) == 26
    assert geohash.estimate_steps(1, 0) == 24
    assert geohash.estimate_steps(10_000_000, 0) == 1
    assert geohash.estimate_steps(1000, 70) == geohash.estimate_steps(1000, 0) - 1
    assert geohash.estimate_steps(1000, 81) == geohash.estimate_steps(1000, 0) - 2


def test_box_and_radius_membership() -> None:
    box = geohash.Shape(0, 0, 1.0, width=2000, height=1000, box=True)
    assert box.distance_if_within(0.008, 0) is not None  # ~890 m east: inside the 1 km half
    assert box.distance_if_within(0, 0.008) is None  # ~890 m north: outside the 500 m half
    circle = geohash.Shape(0, 0, 1000.0, radius=1)
    assert circle.distance_if_within(0.008, 0) is not None
    assert circle.distance_if_within(0.01, 0) is None


def test_partial_sort_orders_the_first_items() -> None:
    rng = random.Random(11)
    for size in (3, 7, 8, 41, 200):
        points = [(b"p%d" % i, rng.random(), 0.0, 0.0, 0.0) for i in range(size)]
        for last in {0, size // 2, size - 1}:
            items = list(points)
            geo.partial_sort(items, last, geo._ascending)
            assert items[: last + 1] == sorted(points, key=lambda p: p[1])[: last + 1]
            assert sorted(items) == sorted(points)
