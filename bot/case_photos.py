"""Photos of documents for a welfare case: fetched, checked and kept sealed.

The volunteer flow's `documents` step (after the case is open) runs `keep_case_photo` for
every photo sent there. It runs in the journaled handling path (bot/inbox.py): the channel's
`Media.fetch` gets the content; a blip raises while the journal will try the entry again
(nothing is saved, the event is not marked handled), and only a failure for good — or the
last attempt — tells the volunteer to send it again. The bytes must be a JPEG or PNG (read
from the bytes, not the channel's word) within `case_photo_max_bytes`; they are sealed with
the case's own data key (storage/case_photos.py), so erasing the case shreds them too.
"""

from __future__ import annotations

import uuid

import structlog

from bot.case import CasePhoto, photo_type
from bot.types import PHOTOS_HINT, RETRIED_IF_FAILED, Media, MediaGone, Text, utcnow
from flows.actions import ActionContext, ActionRegistry, ActionResult
from storage.ports import Storage

log = structlog.get_logger(__name__)

KEEP_ACTION = "keep_case_photo"
CAN_ACTION = "photos_possible"
_PHOTO_NS = uuid.UUID("8d3c6f0e-2b7a-4c1e-9f55-6a0d41c2b9e7")
MB = 1024 * 1024


def photo_id(channel: str, event_id: str) -> str:
    """The same event (a redelivery, a retry after a crash) names the same photo."""
    return uuid.uuid5(_PHOTO_NS, f"{channel}:{event_id}").hex


def _refused(key: str, **params: object) -> ActionResult:
    return ActionResult("refused", say=(Text(key, dict(params)),))


async def keep_case_photo(ctx: ActionContext) -> ActionResult:
    media = ctx.inbound.payload
    if not isinstance(media, Media) or media.kind != "image" or media.fetch is None:
        return _refused("case.photos.not_photo")
    storage: Storage = ctx.services.storage
    limit: int = ctx.services.settings.case_photo_max_bytes
    case = await storage.cases.get(str(ctx.slots.get("case_reference") or ""))
    if case is None:
        log.warning("case.photo_without_case")
        return _refused("case.photos.failed")
    try:
        content = await media.fetch()
    except MediaGone as exc:
        log.warning("case.photo_gone", reference=case.reference, why=str(exc)[:80])
        return _refused("case.photos.failed")
    except Exception as exc:
        if RETRIED_IF_FAILED.get():
            raise  # the journal tries the entry again: nothing was kept or said
        log.error("case.photo_fetch_failed", reference=case.reference,
                  error=type(exc).__name__)
        return _refused("case.photos.failed")
    if len(content.data) > limit:
        return _refused("case.photos.too_large", max_mb=max(1, limit // MB))
    kind = photo_type(content.data)
    if kind is None:
        log.info("case.photo_refused", reference=case.reference, said=content.content_type)
        return _refused("case.photos.not_photo")
    photo = CasePhoto(photo_id(ctx.inbound.channel, ctx.inbound.event_id), case.id, kind,
                      len(content.data), utcnow(), content.data)
    if not await storage.case_photos.add(photo):
        return _refused("case.photos.failed")  # erased meanwhile: nothing is kept
    count = len(await storage.case_photos.listed(case.id))
    log.info("case.photo_kept", reference=case.reference, size=photo.size, type=kind)
    return ActionResult("kept", {"photo_count": count},
                        say=(Text("case.photos.kept", {"count": count}),))


async def photos_possible(ctx: ActionContext) -> ActionResult:
    """`photos` where the channel can send photos (its hint), else `bring` (SMS, web chat:
    the documents go to the office)."""
    return ActionResult("photos" if ctx.inbound.hints.get(PHOTOS_HINT) else "bring")


def register_case_photo_actions(actions: ActionRegistry) -> None:
    actions.add(KEEP_ACTION, keep_case_photo)
    actions.add(CAN_ACTION, photos_possible)
