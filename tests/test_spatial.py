"""The spatial index agrees with a brute-force scan, and distances are right."""

from __future__ import annotations

import random

import pytest

from routing.geo import haversine_km, in_polygon
from routing.spatial import SphereIndex, brute_nearest


def test_haversine_bangkok_to_chiang_mai() -> None:
    # Democracy Monument to Tha Phae Gate: about 583 km on the great circle.
    assert haversine_km(13.7567, 100.5018, 18.7877, 98.9931) == pytest.approx(583, abs=3)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_index_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    points = [(rng.uniform(-80, 80), rng.uniform(-180, 180)) for _ in range(3000)]
    index = SphereIndex(points)
    for _ in range(300):
        lat, lon = rng.uniform(-89, 89), rng.uniform(-180, 180)
        got = index.nearest(lat, lon, 4)
        want = brute_nearest(index.vectors, lat, lon, 4)
        assert [i for i, _ in got] == [i for i, _ in want]
        assert [km for _, km in got] == pytest.approx([km for _, km in want])


def test_index_across_the_antimeridian() -> None:
    index = SphereIndex([(0.0, 179.9), (0.0, 170.0)])
    (nearest, km), = index.nearest(0.0, -179.9, 1)
    assert nearest == 0 and km == pytest.approx(22.2, abs=0.2)


def test_empty_index_and_polygon_hole() -> None:
    assert SphereIndex([]).nearest(0, 0, 3) == []
    outer = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0), (0.0, 0.0)]
    hole = [(4.0, 4.0), (6.0, 4.0), (6.0, 6.0), (4.0, 6.0), (4.0, 4.0)]
    assert in_polygon(2, 2, [outer, hole])
    assert not in_polygon(5, 5, [outer, hole])
    assert not in_polygon(11, 5, [outer])
