"""Routing on known places: nearest station, its groups, escalation levels, bound chats."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.incident import Incident, new_reference
from bot.services import Services
from bot.types import Location, LocationSource
from routing.directory import load_directory
from routing.router import FLAG_NO_POINT, FLAG_OUTSIDE, DirectoryRouter
from tests.dispatch_kit import GULF_OF_THAILAND, PHITSANULOK


def incident_at(lat: float | None, lon: float | None) -> Incident:
    source = LocationSource.REPORTER_PIN if lat is not None else LocationSource.TEXT
    return Incident(new_reference(), "threat", Location(lat, lon, source, text="x"), "test",
                    "test:u", "th")


async def test_central_phitsanulok_reaches_a_phitsanulok_station() -> None:
    route = await DirectoryRouter(load_directory()).route(incident_at(*PHITSANULOK))
    assert route.station is not None and route.station.startswith("st65")
    assert route.area_codes[0] == "65" and route.flags == ()
    assert route.distance_km is not None and route.distance_km < 5
    agencies = {t.agency for t in route.targets}
    assert agencies == {"station", "police", "welfare", "shelter"}
    assert "console:1300" not in route.recipients and "console:p65-191" not in route.recipients


async def test_gulf_of_thailand_reaches_the_national_fallback_flagged() -> None:
    route = await DirectoryRouter(load_directory()).route(incident_at(*GULF_OF_THAILAND))
    assert route.recipients == ("console:1300",)
    assert route.flags == (FLAG_OUTSIDE,)
    assert route.area_codes == ()


async def test_outside_the_country_and_no_point() -> None:
    router = DirectoryRouter(load_directory())
    assert (await router.route(incident_at(35.68, 139.69))).flags == (FLAG_OUTSIDE,)  # Tokyo
    route = await router.route(incident_at(None, None))
    assert route.flags == (FLAG_NO_POINT,) and route.recipients == ("console:1300",)


async def test_escalation_levels_add_next_station_191_then_1300() -> None:
    router = DirectoryRouter(load_directory())
    base = await router.route(incident_at(*PHITSANULOK))
    one = await router.route(incident_at(*PHITSANULOK), 1)
    two = await router.route(incident_at(*PHITSANULOK), 2)
    added = set(one.recipients) - set(base.recipients)
    assert "console:p65-191" in added
    assert any(a.startswith("console:st") for a in added)  # the next nearest station
    assert set(two.recipients) - set(one.recipients) == {"console:1300"}


async def test_bound_chats_are_routed_at_their_agency_level(services: Services) -> None:
    bindings = services.storage.bindings
    now = datetime.now(UTC)
    welfare = await bindings.create_code("65", "welfare", 600, now)
    centre = await bindings.create_code("65", "191", 600, now)
    await bindings.redeem(welfare, "line:Cwelfare", now)
    await bindings.redeem(centre, "line:C191", now)
    router = DirectoryRouter(load_directory(), bindings)
    assert "line:Cwelfare" in (await router.route(incident_at(*PHITSANULOK))).recipients
    assert "line:C191" not in (await router.route(incident_at(*PHITSANULOK))).recipients
    assert "line:C191" in (await router.route(incident_at(*PHITSANULOK), 1)).recipients
