"""The incident lifecycle machine: what may follow what."""

from __future__ import annotations

import pytest

from routing import lifecycle as lc


def test_the_happy_path() -> None:
    state = lc.NEW
    for trigger in ("dispatch", "acknowledge", "en_route", "en_route", "on_scene", "resolve"):
        state = lc.apply(state, trigger)
    assert state == lc.RESOLVED


def test_escalation_only_while_nobody_has_it() -> None:
    assert lc.apply(lc.DISPATCHED, "escalate") == lc.ESCALATED
    assert lc.apply(lc.ESCALATED, "escalate") == lc.ESCALATED
    assert lc.apply(lc.ESCALATED, "acknowledge") == lc.ACKNOWLEDGED
    with pytest.raises(lc.InvalidTransition):
        lc.apply(lc.ACKNOWLEDGED, "escalate")


@pytest.mark.parametrize("closed", sorted(lc.CLOSED))
def test_closed_is_final(closed: str) -> None:
    assert lc.allowed(closed) == []
    for trigger in lc.TRANSITIONS:
        with pytest.raises(lc.InvalidTransition):
            lc.apply(closed, trigger)


def test_closing_needs_an_acknowledgement_first() -> None:
    for trigger in lc.CLOSING_TRIGGERS:
        with pytest.raises(lc.InvalidTransition):
            lc.apply(lc.DISPATCHED, trigger)
    assert set(lc.allowed(lc.DISPATCHED)) == {"escalate", "acknowledge"}
    with pytest.raises(lc.InvalidTransition):
        lc.apply("nonsense", "dispatch")
