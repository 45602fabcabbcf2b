"""Great-circle geometry on the sphere: distances, unit vectors, polygon containment.

Pure functions, no I/O. Distances use the mean Earth radius (IUGG, 6371.0088 km); the error
against the ellipsoid is under 0.5 %, far below what routing to a station needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

EARTH_RADIUS_KM = 6371.0088

Ring = Sequence[tuple[float, float]]  # (lon, lat) pairs, GeoJSON order


def unit_vector(lat: float, lon: float) -> tuple[float, float, float]:
    """The point on the unit sphere; chord length between two is monotonic in distance."""
    phi, lam = math.radians(lat), math.radians(lon)
    cos_phi = math.cos(phi)
    return (cos_phi * math.cos(lam), cos_phi * math.sin(lam), math.sin(phi))


def chord2_to_km(chord2: float) -> float:
    """Great-circle distance for a squared chord length between unit vectors."""
    half = min(1.0, math.sqrt(max(chord2, 0.0)) / 2)
    return 2 * math.asin(half) * EARTH_RADIUS_KM


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def valid_point(lat: float, lon: float) -> bool:
    return -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0 and \
        not (math.isnan(lat) or math.isnan(lon))


def in_ring(lon: float, lat: float, ring: Ring) -> bool:
    """Even-odd ray casting; jurisdictions are small enough to treat lon/lat as planar."""
    inside = False
    n = len(ring)
    j = n - 1
    for i in range(n):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def in_polygon(lon: float, lat: float, rings: Sequence[Ring]) -> bool:
    """Inside the outer ring and outside every hole."""
    if not rings or not in_ring(lon, lat, rings[0]):
        return False
    return not any(in_ring(lon, lat, hole) for hole in rings[1:])


def map_link(lat: float, lon: float) -> str:
    """A link any phone opens in its map app."""
    return f"https://www.google.com/maps/search/?api=1&query={lat:.5f},{lon:.5f}"
