"""A volunteer's whole case intake on LINE, through the stand-in that checks every request
with the SDK's own models: register in the 1:1 chat, answer by taps, get the case number,
then send photos of documents, fetched from the data API and kept sealed with the case."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from bot.app import SERVICES
from bot.types import utcnow
from routing.agencies import VOLUNTEER
from tests import line_events as ev
from tests.helpers import settle_app
from tests.line_standin import LineStandIn
from tests.test_inbox import one_attempt
from tests.test_line import post

VOLUNTEER_ID = "U" + "v" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"house registration page one " * 50
PNG = b"\x89PNG\r\n\x1a\n" + b"ID card back " * 20


async def intake(line_client: TestClient[Any, Any], line_api: LineStandIn,
                 me: dict[str, Any]) -> None:
    """Register and answer every step of a short intake, up to the case number."""
    services = line_client.app[SERVICES]
    line_api.profiles[VOLUNTEER_ID] = {"displayName": "อพม.", "language": "en"}
    code = await services.storage.bindings.create_code("6501", VOLUNTEER, 3600, utcnow())
    for step in [ev.text(me, f"/register {code}"), ev.follow(me), ev.postback(me, "person"),
                 ev.text(me, "2499"), ev.postback(me, "female"),
                 ev.postback(me, "skip:identity"), ev.location(me),
                 ev.postback(me, "old_age"), ev.postback(me, "done"), ev.text(me, "rice"),
                 ev.postback(me, "given"), ev.postback(me, "send")]:
        assert await post(line_client, step) == 200


async def test_a_volunteer_reports_a_household_on_line(
        line_client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    services = line_client.app[SERVICES]
    line_api.profiles[VOLUNTEER_ID] = {"displayName": "อพม.", "language": "en"}
    me = ev.user(VOLUNTEER_ID)
    code = await services.storage.bindings.create_code("6501", VOLUNTEER, 3600, utcnow())
    assert await post(line_client, ev.text(me, f"/register {code}")) == 200
    assert "อพม." in line_api.texts()[-1]
    steps = [ev.follow(me), ev.postback(me, "household"), ev.text(me, "2499"),
             ev.postback(me, "female"), ev.postback(me, "skip:identity"),
             ev.postback(me, "child"), ev.text(me, "12"), ev.postback(me, "male"),
             ev.postback(me, "done"), ev.location(me), ev.postback(me, "dropout_risk"),
             ev.postback(me, "done"), ev.text(me, "school uniform and food"),
             ev.postback(me, "vital_interest"), ev.postback(me, "send")]
    for step in steps[:10]:
        assert await post(line_client, step) == 200
    # A photo of documents at the hardships step: said plainly that photos are taken once
    # the case is open, then the same question again; nothing answered so far is lost.
    assert await post(line_client, ev.image(me)) == 200
    said = line_api.texts()[-2:]
    assert "Photos of documents are taken once the case is open" in said[0]
    assert "Which hardships?" in said[1]
    for step in steps[10:]:
        assert await post(line_client, step) == 200
    assert "Case CASE-" in line_api.texts()[-2]
    assert "Photos of documents help the office" in line_api.texts()[-1]
    assert line_api.invalid == []
    [case] = await services.storage.cases.recent()
    assert case.consent is not None and case.consent.ground == "vital_interest"
    assert case.flags == ["zero_dropout"] and len(case.members) == 1
    assert case.volunteer == f"line:{VOLUNTEER_ID}"


async def test_photos_of_documents_are_fetched_checked_and_kept_sealed(
        line_client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    services = line_client.app[SERVICES]
    me = ev.user(VOLUNTEER_ID)
    await intake(line_client, line_api, me)
    [case] = await services.storage.cases.recent()
    first, second, gone, sticker = ev.image(me), ev.image(me), ev.image(me), ev.sticker(me)
    line_api.contents[first["message"]["id"]] = JPEG
    line_api.contents[second["message"]["id"]] = PNG
    assert await post(line_client, first) == 200
    assert line_api.texts()[-2:] == ["Photo 1 kept, sealed with the case.",
                                     line_api.texts()[-1]]
    assert "Photos of documents help the office" in line_api.texts()[-1]
    assert await post(line_client, first) == 200  # LINE redelivers the same event: once
    assert await post(line_client, second) == 200
    assert line_api.texts()[-2] == "Photo 2 kept, sealed with the case."
    # Content LINE no longer holds (404), and a sticker: told plainly, nothing kept.
    assert await post(line_client, gone) == 200
    assert "could not be received" in line_api.texts()[-2]
    assert await post(line_client, sticker) == 200
    assert "Only photos (JPEG or PNG)" in line_api.texts()[-2]
    kept = await services.storage.case_photos.listed(case.id)
    assert [(p.content_type, p.size) for p in kept] == [("image/jpeg", len(JPEG)),
                                                         ("image/png", len(PNG))]
    got = await services.storage.case_photos.get(case.id, kept[0].id)
    assert got is not None and got.data == JPEG
    assert [status for _, status in line_api.content_calls] == [200, 200, 404]
    assert await post(line_client, ev.postback(me, "done")) == 200
    assert "The office will follow case" in line_api.texts()[-1]
    assert line_api.invalid == []


async def test_a_blip_fetching_a_photo_is_retried_from_the_journal_not_lost(
        line_client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    services = line_client.app[SERVICES]
    me = ev.user(VOLUNTEER_ID)
    await intake(line_client, line_api, me)
    [case] = await services.storage.cases.recent()
    photo = ev.image(me)
    line_api.contents[photo["message"]["id"]] = JPEG
    line_api.content_failures += [503, 500]  # the data API has a bad minute
    later = [utcnow()]
    services.inbox.clock = lambda: later[0]
    said = len(line_api.texts())
    raw = ev.body(photo)
    response = await line_client.post("/webhooks/line", data=raw,
                                      headers={"X-Line-Signature": ev.sign(raw)})
    assert response.status == 200
    for _ in range(2):
        await one_attempt(line_client.app)
        assert await services.storage.journal.pending() == 1  # kept, to be tried again
        assert len(line_api.texts()) == said  # nothing said yet
        later[0] += timedelta(seconds=services.inbox.lease_seconds + 1)
    await settle_app(line_client.app)
    assert await services.storage.journal.pending() == 0
    assert line_api.texts()[said] == "Photo 1 kept, sealed with the case."
    assert len(await services.storage.case_photos.listed(case.id)) == 1
    assert [status for _, status in line_api.content_calls] == [503, 500, 200]


async def test_a_photo_too_large_or_not_an_image_is_refused_clearly(
        line_client: TestClient[Any, Any], line_api: LineStandIn) -> None:
    services = line_client.app[SERVICES]
    me = ev.user(VOLUNTEER_ID)
    await intake(line_client, line_api, me)
    [case] = await services.storage.cases.recent()
    big, fake = ev.image(me), ev.image(me)
    limit = services.settings.case_photo_max_bytes
    line_api.contents[big["message"]["id"]] = JPEG[:4] + b"x" * limit
    line_api.contents[fake["message"]["id"]] = b"<html>not a photo</html>"
    assert await post(line_client, big) == 200
    assert "too large (over 5 MB)" in line_api.texts()[-2]
    assert await post(line_client, fake) == 200
    assert "Only photos (JPEG or PNG)" in line_api.texts()[-2]
    assert await services.storage.case_photos.listed(case.id) == []
