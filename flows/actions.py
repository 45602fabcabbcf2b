"""Actions a flow runs by name (`run: submit_report`): a registry plugins can extend.

An action gets the conversation's answers and the services the application wired in, and
returns an outcome name (for `next` branches on the slot the step saves it in) plus slots to
merge. Actions may do I/O; they must not raise for expected failures: they return an outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from bot.session import Session
from bot.types import Inbound, Text

ENTRY_POINT_GROUP = "ess.actions"


@dataclass(frozen=True)
class ActionContext:
    """What an action may read. `services` is what the application factory wired in."""

    session: Session
    inbound: Inbound
    services: Any

    @property
    def slots(self) -> Mapping[str, Any]:
        return self.session.slots


@dataclass(frozen=True)
class ActionResult:
    outcome: str = "ok"
    slots: Mapping[str, Any] = field(default_factory=dict)
    say: tuple[Text, ...] = ()  # messages for the person, said before the next prompt


Action = Callable[[ActionContext], Awaitable[ActionResult]]


class ActionRegistry:
    """Actions by name."""

    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}

    def register(self, name: str) -> Callable[[Action], Action]:
        def decorate(fn: Action) -> Action:
            if name in self._actions and self._actions[name] is not fn:
                raise ValueError(f"action {name!r} is registered twice")
            self._actions[name] = fn
            return fn
        return decorate

    def add(self, name: str, fn: Action) -> None:
        self.register(name)(fn)

    def get(self, name: str) -> Action:
        return self._actions[name]

    def names(self) -> set[str]:
        return set(self._actions)

    def load_entry_points(self) -> None:
        """Each entry point names a callable that takes this registry and registers actions."""
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            ep.load()(self)
