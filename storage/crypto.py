"""Sealing personal data at rest: AES-GCM with a key id, and a keyed hash for look-ups.

Phone numbers, locations and session answers are sealed before they reach a database
(invariant 4). A blob names its key by an 8-byte id derived from the key itself, so keys can
be rotated: new data is sealed with the first key, old data still opens with the others.
Blobs of the first format (one id byte, which two keys share once in 256) still open.

Look-up digests (session and dedupe keys) use their own key, which does not follow the
sealing keys: rotating a sealing key must not change every digest already stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bot.text import clean_text, dump_json

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID_BYTES = 8
FORMAT = 0xE5  # first byte of a blob in the keyed-id format: FORMAT, key id, nonce, data


class SealError(ValueError):
    """Sealed data that no configured key opens."""


def key_id(key: bytes) -> bytes:
    """A sealing key's id: 64 bits derived from the key (one-way; never the key)."""
    return hashlib.sha256(b"ess-key-id:" + key).digest()[:KEY_ID_BYTES]


def legacy_key_id(key: bytes) -> int:
    """The one-byte id of the first blob format (kept to open old data)."""
    return hashlib.sha256(key).digest()[0]


def legacy_lookup_key(key: bytes) -> bytes:
    """The look-up key that the first format derived from the newest sealing key."""
    return hashlib.sha256(b"ess-lookup" + key).digest()


class Sealer:
    """Seal and open bytes and JSON values; `digest` for look-ups.

    `lookup_key` is the digest key; without one it is derived the old way from `keys[0]`
    (what a data folder created before the separate key had), so stored digests still match.
    """

    def __init__(self, keys: list[bytes], lookup_key: bytes | None = None):
        if not keys or any(len(k) != KEY_BYTES for k in keys):
            raise ValueError("a sealing key is 32 bytes")
        if lookup_key is not None and len(lookup_key) < 16:
            raise ValueError("the look-up key is at least 16 bytes")
        self._current_id = key_id(keys[0])
        self._current = AESGCM(keys[0])
        self._keys: dict[bytes, AESGCM] = {}
        self._legacy: dict[int, list[AESGCM]] = {}
        for key in keys:
            aead = AESGCM(key)
            self._keys.setdefault(key_id(key), aead)
            self._legacy.setdefault(legacy_key_id(key), []).append(aead)
        self._hash_key = lookup_key if lookup_key is not None else legacy_lookup_key(keys[0])
        self._service_keys = list(keys)

    def derived_key(self, label: str) -> bytes:
        """A key of its own for `label` (the audit chain), derived from the look-up key: it
        survives rotations of the sealing keys, as every stored chain hash must."""
        return hmac.new(self._hash_key, b"ess-derived:" + label.encode(),
                        hashlib.sha256).digest()

    def with_data_key(self, key: bytes) -> Sealer:
        """A sealer that seals with a record's own data key (crypto-shredding) and opens
        with it or with the service keys (rows sealed before records had keys)."""
        return Sealer([key, *self._service_keys], self._hash_key)

    def key_ids(self) -> list[str]:
        """The service keys' ids (hex), newest first, as the vault reports them."""
        return [key_id(k).hex() for k in self._service_keys]

    def is_current(self, blob: bytes) -> bool:
        """Whether `blob` is sealed with the newest service key (key rotation re-wraps the
        others)."""
        return blob[:1] == bytes([FORMAT]) and blob[1:1 + KEY_ID_BYTES] == self._current_id

    def names_key_of(self, blob: bytes) -> bool:
        """Whether `blob` (keyed-id format) names one of this sealer's keys."""
        return blob[:1] == bytes([FORMAT]) and blob[1:1 + KEY_ID_BYTES] in self._keys

    def seal(self, data: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return bytes([FORMAT]) + self._current_id + nonce + self._current.encrypt(
            nonce, data, None)

    def open(self, blob: bytes) -> bytes:
        head = 1 + KEY_ID_BYTES
        if blob[:1] == bytes([FORMAT]):
            aead = self._keys.get(blob[1:head])
            if aead is not None:
                try:
                    return aead.decrypt(blob[head:head + NONCE_BYTES],
                                        blob[head + NONCE_BYTES:], None)
                except InvalidTag:
                    pass  # maybe a first-format blob whose id byte happens to be FORMAT
        candidates = self._legacy.get(blob[0], []) if blob else []
        for aead in candidates:
            try:
                return aead.decrypt(blob[1:1 + NONCE_BYTES], blob[1 + NONCE_BYTES:], None)
            except InvalidTag:
                continue  # two keys may share a one-byte id: try the next
        if (blob[:1] == bytes([FORMAT]) and blob[1:head] in self._keys) or candidates:
            raise SealError("sealed data does not open: wrong key or damaged")
        raise SealError("sealed with a key that is not configured")

    def seal_text(self, text: str) -> bytes:
        """`text` sealed as UTF-8, whatever it holds (see `bot.text.clean_text`)."""
        return self.seal(clean_text(text).encode())

    def seal_json(self, value: Any) -> bytes:
        return self.seal(dump_json(value).encode())

    def open_json(self, blob: bytes) -> Any:
        return json.loads(self.open(blob))

    def digest(self, text: str) -> str:
        """A keyed hash: the same input gives the same value, which reveals nothing.

        `surrogatepass`: a key built from text a person typed must never fail to hash."""
        return hmac.new(self._hash_key, text.encode("utf-8", "surrogatepass"),
                        hashlib.sha256).hexdigest()[:32]


SEALED_FIELD = "_sealed"
# Incident details kept readable in a raw row: the dispatch state names responders only.
CLEAR_DETAILS = frozenset({"dispatch"})


def seal_fields(sealer: Sealer, data: dict[str, Any],
                clear: frozenset[str] = frozenset()) -> str:
    """JSON text for a store column: the `clear` keys as they are, the rest sealed.

    Incident details and timeline data hold answers such as "children involved" or
    "injured" (health data): a raw row must not show them. Rows written before this was
    sealed have no `_sealed` field and read back unchanged.
    """
    kept = {k: v for k, v in data.items() if k in clear}
    hidden = {k: v for k, v in data.items() if k not in clear}
    if hidden:
        kept[SEALED_FIELD] = base64.b64encode(sealer.seal_json(hidden)).decode()
    return dump_json(kept)


def open_fields(sealer: Sealer, text: str) -> dict[str, Any]:
    """The inverse of `seal_fields` (and clear JSON from older rows as it is)."""
    data: dict[str, Any] = json.loads(text)
    sealed = data.pop(SEALED_FIELD, None)
    if isinstance(sealed, str):
        data.update(sealer.open_json(base64.b64decode(sealed)))
    return data


def parse_keys(value: str) -> list[bytes]:
    """Comma-separated base64 keys, newest first."""
    keys = []
    for part in value.split(","):
        raw = base64.urlsafe_b64decode(part.strip() + "=" * (-len(part.strip()) % 4))
        if len(raw) != KEY_BYTES:
            raise ValueError("each key is 32 bytes, base64-encoded")
        keys.append(raw)
    return keys


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def load_or_create_key_file(path: Path) -> list[bytes]:
    """The embedded default: a key file in the data folder, created (0600) on first start."""
    return parse_keys(secret_file(path, lambda: encode_key(secrets.token_bytes(KEY_BYTES))))


def secret_file(path: Path, make: Callable[[], str]) -> str:
    """The text of a key file, created on first use with `make()`: the folder 0700, the file
    0600 (created so, never readable by others even for an instant)."""
    if not path.exists():
        private_folder(path.parent)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: read theirs
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(make() + "\n")
    return path.read_text().strip()


def private_folder(folder: Path) -> None:
    """Create `folder` (and parents) readable by the owner only; tighten one we created."""
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
