"""A conversation's state between messages: plain data the stores save and load."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.types import utcnow


@dataclass(slots=True)
class Session:
    """Where one conversation is in its flow, and what it has answered so far.

    `slots` holds the answers (phone numbers and locations among them), so stores must seal it
    at rest. `version` grows by one on every save; stores use it to refuse a stale write.
    """

    conversation: str
    lang: str
    flow: str | None = None
    state: str | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    silent: bool = False
    drill: bool = False
    pending: str | None = None  # "language" while the language picker is open
    expired: bool = False  # the sweep ended it for idleness; the next message says so
    version: int = 0
    updated_at: datetime = field(default_factory=utcnow)
    expires_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.flow is not None

    def end(self) -> None:
        """Leave the flow and forget its answers (the incident, if any, keeps what it needs)."""
        self.flow = None
        self.state = None
        self.slots = {}
        self.history = []
        self.pending = None
        self.silent = False
        self.drill = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "lang": self.lang, "flow": self.flow, "state": self.state, "slots": self.slots,
            "history": self.history, "silent": self.silent, "drill": self.drill,
            "pending": self.pending, "expired": self.expired,
        }

    @classmethod
    def from_dict(cls, conversation: str, data: dict[str, Any], version: int,
                  updated_at: datetime, expires_at: datetime | None) -> Session:
        return cls(
            conversation=conversation, lang=data["lang"], flow=data.get("flow"),
            state=data.get("state"), slots=dict(data.get("slots") or {}),
            history=list(data.get("history") or []), silent=bool(data.get("silent")),
            drill=bool(data.get("drill")), pending=data.get("pending"),
            expired=bool(data.get("expired")), version=version, updated_at=updated_at,
            expires_at=expires_at,
        )
