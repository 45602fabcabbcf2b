"""The board's second factor: time-based one-time codes (RFC 6238, HMAC-SHA1, 6 digits, 30 s).

The standard every authenticator app reads from an `otpauth://` URI. A code is accepted for
its own time step or one either side (a phone's clock drifts), and once only: the store keeps
the last step accepted (`StaffStore.use_totp_step`), so a replayed or an older code fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from datetime import datetime
from urllib.parse import quote, urlencode

STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1
SECRET_BYTES = 20  # 160 bits, the size RFC 4226 recommends for HMAC-SHA1
ISSUER = "ESS Board"


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def step_of(at: datetime) -> int:
    return int(at.timestamp()) // STEP_SECONDS


def code_at(secret: bytes, step: int) -> str:
    """The code of one time step (RFC 4226 dynamic truncation)."""
    mac = hmac.new(secret, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    number = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10 ** DIGITS).zfill(DIGITS)


def matching_step(secret: bytes, code: str, at: datetime) -> int | None:
    """The time step whose code `code` is (within the drift), or None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    now = step_of(at)
    found = None
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        # Every candidate is compared, as bytes, so the time does not say which one matched.
        if hmac.compare_digest(code_at(secret, step).encode(), code.encode()):
            found = step
    return found


def secret_text(secret: bytes) -> str:
    """The secret as authenticator apps take it by hand (base32, no padding)."""
    return base64.b32encode(secret).decode().rstrip("=")


def provisioning_uri(secret: bytes, login: str) -> str:
    label = quote(f"{ISSUER}:{login}", safe="")
    query = urlencode({"secret": secret_text(secret), "issuer": ISSUER, "algorithm": "SHA1",
                       "digits": DIGITS, "period": STEP_SECONDS})
    return f"otpauth://totp/{label}?{query}"
