"""A subject's export sealed to a one-time password: scrypt, then AES-GCM.

The password is printed once and never stored; the file (0600) is JSON:
`{"format": "ess-export-1", "kdf": "scrypt", "n", "r", "p", "salt", "nonce", "data"}`
(base64 fields), so any tool with scrypt and AES-GCM can open it; `ess subject unseal` does.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

FORMAT = "ess-export-1"
N, R, P = 2**15, 8, 1


class ExportError(ValueError):
    """A file that is not an export, or a wrong password."""


def new_password() -> str:
    """About 120 bits, in groups a person can read aloud."""
    raw = secrets.token_urlsafe(20).replace("-", "x").replace("_", "y")[:24]
    return "-".join(raw[i:i + 6] for i in range(0, 24, 6))


def _key(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password.encode())


def seal_export(data: dict[str, Any], password: str) -> bytes:
    salt, nonce = os.urandom(16), os.urandom(12)
    body = json.dumps(data, ensure_ascii=False, indent=1).encode()
    sealed = AESGCM(_key(password, salt, N, R, P)).encrypt(nonce, body, FORMAT.encode())
    b64 = base64.b64encode
    return json.dumps({"format": FORMAT, "kdf": "scrypt", "n": N, "r": R, "p": P,
                       "salt": b64(salt).decode(), "nonce": b64(nonce).decode(),
                       "data": b64(sealed).decode()}).encode()


def open_export(blob: bytes, password: str) -> dict[str, Any]:
    try:
        head = json.loads(blob)
        if head.get("format") != FORMAT:
            raise ExportError("not an ESS export")
        key = _key(password.strip(), base64.b64decode(head["salt"]), int(head["n"]),
                   int(head["r"]), int(head["p"]))
        body = AESGCM(key).decrypt(base64.b64decode(head["nonce"]),
                                   base64.b64decode(head["data"]), FORMAT.encode())
    except InvalidTag:
        raise ExportError("wrong password, or the file was changed") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"not an ESS export ({type(exc).__name__})") from None
    result: dict[str, Any] = json.loads(body)
    return result


def write_private(path: Path, blob: bytes) -> None:
    """Create `path` readable by its owner only (0600 from the first byte); never replace
    an existing file (an export must not overwrite something by a typo)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(blob)
