"""Welfare cases opened by volunteers (อพม.), their referrals: plain records.

Personal fields (`person`, `members`, `location`, `needs`, `consent`, `thai_id`) are sealed
at rest by the stores; only keyed hashes (`thai_id_key`, `match_key`) are kept in clear, so
duplicates can be found without revealing anyone. The timeline is the incident one
(`bot.incident.TimelineEvent`).
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from bot.incident import REFERENCE_ALPHABET, REFERENCE_LENGTH
from bot.types import Location, utcnow

CASE_PREFIX = "CASE"
ZERO_DROPOUT = "zero_dropout"  # a flag: a child out of school or at risk of dropping out
DUPLICATE = "possible_duplicate"  # a flag, never a merge
SCHOOLING = frozenset({"out_of_school", "dropout_risk"})
# Hardships a list never names (PDPA s.26: health and disability are sensitive data; violence
# at home is a person's safety): the list says "sensitive", the case page (audited) names them.
SENSITIVE_HARDSHIPS = frozenset({"violence", "health", "disability"})
HARDSHIPS = ("income", "disability", "old_age", "child_care", "housing", "health",
             "out_of_school", "dropout_risk", "violence")

_CASE_ALONE = re.compile(
    rf"^\s*{CASE_PREFIX}[\s\-]*[{REFERENCE_ALPHABET}]{{{REFERENCE_LENGTH}}}\s*$", re.I)


def new_case_reference() -> str:
    """`CASE-7K3F9`, from the incident references' unambiguous alphabet."""
    body = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))
    return f"{CASE_PREFIX}-{body}"


def is_case_reference(text: str) -> bool:
    return bool(_CASE_ALONE.match(text))


def normalize_case_reference(text: str) -> str:
    body = "".join(ch for ch in text.upper() if ch.isalnum())
    if body.startswith(CASE_PREFIX):
        body = body[len(CASE_PREFIX):]
    return f"{CASE_PREFIX}-{body}"


@dataclass(frozen=True, slots=True)
class Person:
    """Who needs help (or one household member)."""

    birth_year: int | None = None  # Common Era
    sex: str | None = None  # female | male | other | unknown
    relation: str | None = None  # for household members
    thai_id: str | None = None  # 13 digits, check digit valid; sealed

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Person:
        return cls(**{k: data.get(k) for k in ("birth_year", "sex", "relation", "thai_id")})


@dataclass(frozen=True, slots=True)
class Consent:
    """The person's consent as recorded: who said it, when, the exact text and its version;
    or the ground used instead (`vital_interest`) when they could not consent."""

    ground: str  # consent | vital_interest
    recorded_by: str  # the volunteer's address
    at: datetime
    text_key: str  # catalog key of what was said
    text: str  # the exact words shown, in the language shown
    version: str
    lang: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Consent:
        return cls(**{**data, "at": datetime.fromisoformat(data["at"])})


@dataclass(slots=True)
class Referral:
    """A request to a programme or an agency, with its own state and a due date."""

    to: str  # a programme id or a directory group id
    due_at: datetime
    state: str = "pending"
    reason: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created_at: datetime = field(default_factory=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {"to": self.to, "due_at": self.due_at.isoformat(), "state": self.state,
                "reason": self.reason, "id": self.id, "created_at": self.created_at.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Referral:
        return cls(to=data["to"], due_at=datetime.fromisoformat(data["due_at"]),
                   state=data["state"], reason=data.get("reason", ""), id=data["id"],
                   created_at=datetime.fromisoformat(data["created_at"]))


@dataclass(slots=True)
class Case:
    """A person (or household) in hardship, reported from the field and followed."""

    reference: str
    volunteer: str  # the volunteer's conversation key, for "my cases" and updates
    channel: str
    lang: str
    area: str  # province code
    location: Location
    person: Person
    members: list[Person] = field(default_factory=list)
    hardships: list[str] = field(default_factory=list)
    needs: str = ""
    consent: Consent | None = None
    screening: list[dict[str, Any]] = field(default_factory=list)  # programmes.Finding
    referrals: list[Referral] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    status: str = "new"
    incident_id: str | None = None  # the ESS incident this case came from
    source_event: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    version: int = 1
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def sealed_body(self) -> dict[str, Any]:
        """Everything personal, as one JSON document the stores seal."""
        return {
            "volunteer": self.volunteer, "location": self.location.to_dict(),
            "person": asdict(self.person), "members": [asdict(m) for m in self.members],
            "hardships": self.hardships, "needs": self.needs,
            "consent": self.consent.to_dict() if self.consent else None,
            "screening": self.screening, "referrals": [r.to_dict() for r in self.referrals],
        }

    def open_body(self, body: dict[str, Any]) -> None:
        self.volunteer = body["volunteer"]
        self.location = Location.from_dict(body["location"])
        self.person = Person.from_dict(body["person"])
        self.members = [Person.from_dict(m) for m in body["members"]]
        self.hardships = list(body["hardships"])
        self.needs = body["needs"]
        self.consent = Consent.from_dict(body["consent"]) if body["consent"] else None
        self.screening = list(body["screening"])
        self.referrals = [Referral.from_dict(r) for r in body["referrals"]]

    @property
    def everyone(self) -> list[Person]:
        return [self.person, *self.members]


def duplicate_texts(case: Case) -> list[str]:
    """What two reports of the same person share, before keyed hashing: each Thai ID, and
    the main person's birth year, sex and place (a pin rounded to about 100 m)."""
    texts = [f"thai_id:{p.thai_id}" for p in case.everyone if p.thai_id]
    loc = case.location
    if loc.place_id:
        place = f"place:{loc.place_id}"
    elif loc.lat is not None and loc.lon is not None:
        place = f"pin:{loc.lat:.3f},{loc.lon:.3f}"
    else:
        place = "text:" + " ".join((loc.text or "").casefold().split())
    if case.person.birth_year is not None:
        texts.append(f"match:{case.person.birth_year}|{case.person.sex}|{place}")
    return texts


# Photos of documents: what a photo's first bytes must be (what a channel says the type is
# is not trusted), JPEG or PNG only.
PHOTO_SIGNATURES = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}


def photo_type(data: bytes) -> str | None:
    """`image/jpeg` or `image/png` from the content itself; None for anything else."""
    return next((kind for kind, head in PHOTO_SIGNATURES.items() if data.startswith(head)),
                None)


@dataclass(frozen=True, slots=True)
class CasePhoto:
    """A photo of documents kept with a case; the stores seal `data` with the case's own
    data key, so erasing the case makes every copy unreadable."""

    id: str  # from the event that brought it: the same photo is kept once
    case_id: str
    content_type: str  # from `photo_type`
    size: int
    at: datetime
    data: bytes = b""  # empty in listings
