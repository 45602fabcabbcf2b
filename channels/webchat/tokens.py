"""Signed, unguessable web-chat conversation tokens.

A token is `<id>.<mac>`: a random 144-bit id and an HMAC-SHA256 over it with the web-chat
key. The id alone is never enough to join a conversation, and a token survives reconnects
and reloads of the tab (the page keeps it in sessionStorage, or only in memory when silent).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from channels.bodies import secret_equal

KEY_FILE = "webchat.key"
KEY_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenSigner:
    """Issues and checks conversation tokens."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the web-chat key must be at least 16 bytes")
        self._key = key

    @classmethod
    def from_file(cls, folder: Path) -> TokenSigner:
        """The key in the data folder, created (readable by the owner only) on first use."""
        path = folder / KEY_FILE
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(KEY_BYTES))
        return cls(path.read_bytes())

    def _mac(self, conversation: str) -> str:
        return _b64(hmac.new(self._key, b"web:" + conversation.encode(), hashlib.sha256)
                    .digest()[:24])

    def issue(self) -> tuple[str, str]:
        """A new conversation id and its token."""
        conversation = _b64(secrets.token_bytes(18))
        return conversation, f"{conversation}.{self._mac(conversation)}"

    def check(self, token: object) -> str | None:
        """The conversation id of a genuine token, else None."""
        if not isinstance(token, str) or len(token) > 100:
            return None
        conversation, sep, mac = token.partition(".")
        if not sep or not conversation:
            return None
        return conversation if secret_equal(mac, self._mac(conversation)) else None
