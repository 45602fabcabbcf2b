"""Check captured log events for personal data, as they would be written (after scrubbing)."""

from __future__ import annotations

import json
from collections.abc import Iterable, MutableMapping
from typing import Any

from bot.logs import scrub_pii


def assert_no_pii(entries: Iterable[MutableMapping[str, Any]], *secrets: str) -> None:
    """No secret appears in any log line, and none hides under a key the scrubber misses."""
    for entry in entries:
        raw = json.dumps(entry, ensure_ascii=False, default=str)
        written = json.dumps(scrub_pii(None, "info", dict(entry)), ensure_ascii=False,
                             default=str)
        for secret in secrets:
            assert secret not in written, f"{secret!r} logged in {entry['event']}"
            unscrubbed = {k for k, v in entry.items() if secret in str(v)}
            assert unscrubbed <= {"sender", "conversation", "recipient", "reporter",
                                  "user_id"}, f"{secret!r} under {unscrubbed} in {raw}"
