"""PDPA for welfare cases: the consent receipt of the volunteer flow, the referral gate and
its supervisor override, and a case as a record kind of the subject's rights (find, export,
erase by destroying the case's own key)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from bot.case import CasePhoto
from bot.casework import CONSENT_PURPOSES, NO_CONSENT, PURPOSE_REFERRAL
from bot.privacy.consent import Consents
from bot.privacy.rights import Rights
from bot.privacy.subjects import Selector, case_subject
from bot.services import Services
from config.settings import Settings
from storage.cases import is_erased_case
from storage.factory import make_sealer
from storage.privacy import GIVEN, OVERRIDE
from tests.helpers import choice, pin, start, text
from tests.test_volunteer_case import THAI_ID, VOL, keys, register


async def intake(services: Services, consent: str) -> str:
    """The volunteer flow for one person, with the consent answer `consent`."""
    h = services.inbound.handle
    await h(start(VOL))
    await h(choice(VOL, "person"))
    await h(text(VOL, "2499"))
    await h(choice(VOL, "female"))
    await h(text(VOL, THAI_ID))
    assert keys(await h(pin(VOL))) == ["case.hardships.prompt"]
    await h(choice(VOL, "old_age"))
    await h(choice(VOL, "done"))
    assert keys(await h(text(VOL, "rice"))) == ["case.consent.prompt"]
    assert keys(await h(choice(VOL, consent))) == ["case.confirm.prompt"]
    replies = await h(choice(VOL, "send"))
    assert keys(replies)[-1] == "case.opened", keys(replies)
    return str(replies[-1].text.params["case_reference"])


async def assessed(services: Services, reference: str) -> None:
    for trigger in ("screen", "assess"):
        assert (await services.casework.move(reference, trigger, "officer")).error == ""


async def test_the_flow_records_a_receipt_and_the_referral_passes_the_gate(
        services: Services) -> None:
    await register(services)
    reference = await intake(services, "given")
    case = await services.storage.cases.get(reference)
    assert case is not None and case.consent is not None
    [receipt] = await services.storage.privacy.consents(case_subject(case))
    assert receipt.kind == GIVEN and receipt.purposes == CONSENT_PURPOSES
    assert receipt.reference == reference and receipt.channel == case.channel
    # The exact words shown and their version, as the case keeps them.
    assert receipt.text == case.consent.text and receipt.catalog_version == "2026-12-01"
    assert receipt.catalog_key == "case.consent.prompt"
    await assessed(services, reference)
    changed = await services.casework.refer(reference, "elderly_allowance", "officer")
    assert changed.error == "" and changed.case is not None
    timeline = await services.storage.cases.timeline(case.id)
    assert timeline[-1].data["lawful_basis"] == "consent"
    # Revoked: the next referral is blocked; nothing is edited, the revocation is appended.
    await Consents(services.storage).revoke(case_subject(case), [PURPOSE_REFERRAL], "cli",
                                            "officer", datetime.now(UTC), reference)
    blocked = await services.casework.refer(reference, "p65-welfare", "officer")
    assert blocked.error == NO_CONSENT
    assert len(await services.storage.privacy.consents(case_subject(case))) == 2


async def test_without_consent_a_referral_needs_a_supervisors_written_override(
        services: Services) -> None:
    await register(services)
    reference = await intake(services, "vital_interest")
    case = await services.storage.cases.get(reference)
    assert case is not None
    assert await services.storage.privacy.consents(case_subject(case)) == []
    await assessed(services, reference)
    before = await services.storage.outbox.pending()
    refused = await services.casework.refer(reference, "elderly_allowance", "officer")
    assert refused.error == NO_CONSENT
    assert await services.storage.outbox.pending() == before  # nobody was told anything
    again = await services.storage.cases.get(reference)
    assert again is not None and again.referrals == [] and again.status == "assessed"
    no_reason = await services.casework.override_consent(reference, "head", "  ")
    assert "reason" in no_reason.error
    assert (await services.casework.override_consent(
        reference, "head", "bedridden, cannot speak; neighbour reports no food")).error == ""
    changed = await services.casework.refer(reference, "elderly_allowance", "officer")
    assert changed.error == "" and changed.case is not None
    [override] = await services.storage.privacy.consents(case_subject(case))
    assert override.kind == OVERRIDE and override.actor == "head"
    audit = [r.entry.action for r in await services.storage.audit.find(reference=reference)]
    assert "consent.override" in audit


async def test_a_case_is_found_exported_and_erased_for_its_subject(
        services: Services, settings: Settings) -> None:
    await register(services)
    reference = await intake(services, "given")
    rights = Rights(services.storage, make_sealer(settings).digest, "cli:test")
    selector = Selector.parse(None, None, None, reference.lower())
    found = await rights.find(selector)
    assert [(h.kind, h.reference) for h in found.held] == [("case", reference)]
    _, data = await rights.export(selector, datetime.now(UTC))
    [record] = data["records"]
    assert record["data"]["person"]["thai_id"] == THAI_ID
    assert record["data"]["needs"] == "rice"
    assert record["data"]["consent_receipts"][0]["version"] == "2026-12-01"
    assert [e["kind"] for e in record["data"]["timeline"]] == ["opened"]
    _, erased = await rights.erase(selector, "the person asked", datetime.now(UTC))
    assert erased == 1
    case = await services.storage.cases.get(reference)
    assert case is not None and is_erased_case(case) and case.person.thai_id is None
    assert (await rights.find(selector)).held == []
    # Its duplicate-detection hashes are gone too: a new case of the same ID is not flagged.
    assert await services.storage.cases.possible_duplicates(case, datetime.now(UTC)) == []


async def test_a_cases_photos_are_in_its_export_and_erased_with_it(
        services: Services, settings: Settings) -> None:
    await register(services)
    reference = await intake(services, "given")
    case = await services.storage.cases.get(reference)
    assert case is not None
    jpeg = b"\xff\xd8\xff\xe0" + b"PHOTO-4411" * 30
    assert await services.storage.case_photos.add(
        CasePhoto("p1", case.id, "image/jpeg", len(jpeg), datetime.now(UTC), jpeg))
    rights = Rights(services.storage, make_sealer(settings).digest, "cli:test")
    selector = Selector.parse(None, None, None, reference)
    _, data = await rights.export(selector, datetime.now(UTC))
    [record] = data["records"]
    [photo] = record["data"]["photos"]
    assert (photo["type"], photo["size"]) == ("image/jpeg", len(jpeg))
    assert base64.b64decode(photo["base64"]) == jpeg
    await rights.erase(selector, "the person asked", datetime.now(UTC))
    assert await services.storage.case_photos.get(case.id, "p1") is None
    assert await services.storage.case_photos.listed(case.id) == []
