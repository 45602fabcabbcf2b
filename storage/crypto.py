"""Sealing personal data at rest: AES-GCM with a key id, and a keyed hash for look-ups.

Phone numbers, locations and session answers are sealed before they reach a database
(invariant 4). The first byte names the key, so keys can be rotated: new data is sealed with
the first key, old data still opens with the others.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12


class SealError(ValueError):
    """Sealed data that no configured key opens."""


class Sealer:
    """Seal and open bytes and JSON values."""

    def __init__(self, keys: list[bytes]):
        if not keys or any(len(k) != KEY_BYTES for k in keys):
            raise ValueError("a sealing key is 32 bytes")
        self._keys = {self._key_id(k): AESGCM(k) for k in keys}
        self._current = self._key_id(keys[0])
        self._hash_key = hashlib.sha256(b"ess-lookup" + keys[0]).digest()

    @staticmethod
    def _key_id(key: bytes) -> int:
        return hashlib.sha256(key).digest()[0]

    def seal(self, data: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return bytes([self._current]) + nonce + self._keys[self._current].encrypt(nonce, data, None)

    def open(self, blob: bytes) -> bytes:
        aead = self._keys.get(blob[0]) if blob else None
        if aead is None:
            raise SealError("sealed with a key that is not configured")
        try:
            return aead.decrypt(blob[1:1 + NONCE_BYTES], blob[1 + NONCE_BYTES:], None)
        except InvalidTag:
            raise SealError("sealed data does not open: wrong key or damaged") from None

    def seal_json(self, value: Any) -> bytes:
        return self.seal(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())

    def open_json(self, blob: bytes) -> Any:
        return json.loads(self.open(blob))

    def digest(self, text: str) -> str:
        """A keyed hash: the same input gives the same value, which reveals nothing."""
        return hmac.new(self._hash_key, text.encode(), hashlib.sha256).hexdigest()[:32]


def parse_keys(value: str) -> list[bytes]:
    """Comma-separated base64 keys, newest first."""
    keys = []
    for part in value.split(","):
        raw = base64.urlsafe_b64decode(part.strip() + "=" * (-len(part.strip()) % 4))
        if len(raw) != KEY_BYTES:
            raise ValueError("each key is 32 bytes, base64-encoded")
        keys.append(raw)
    return keys


def load_or_create_key_file(path: Path) -> list[bytes]:
    """The embedded default: a key file in the data folder, created (0600) on first start."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n")
    return parse_keys(path.read_text().strip())
