"""Compile a checked `Flow` into one `transitions` machine, built once per flow.

The machine is model-less and has no auto transitions: each message rehydrates a tiny model
(`state` + `slots`) and fires `advance` on it. One registered model per conversation would
cost memory per model and O(n) removal (pytransitions FAQ, issue #146), so we never call
`add_model`. Branch order is transition order: `transitions` takes the first whose
conditions pass, which is exactly "the first matching branch wins".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transitions import EventData, Machine

from flows.model import Branch, Flow

ADVANCE = "advance"


@dataclass
class FlowModel:
    """The per-message model: nothing but what the machine reads and writes."""

    state: str
    slots: dict[str, Any]


def _condition(branch: Branch) -> Any:
    def check(event: EventData) -> bool:
        model: FlowModel = event.model  # type: ignore[assignment]
        return branch.matches(model.slots)
    return check


@dataclass(frozen=True)
class CompiledFlow:
    flow: Flow
    machine: Machine

    def advance(self, model: FlowModel) -> str:
        """Move the model along the first matching branch; return the new state."""
        self.machine.events[ADVANCE].trigger(model)
        return model.state


def compile_flow(flow: Flow) -> CompiledFlow:
    machine = Machine(
        model=None,
        states=list(flow.steps),
        initial=flow.start,
        auto_transitions=False,
        send_event=True,
        ignore_invalid_triggers=False,
    )
    for step in flow.steps.values():
        for branch in step.next:
            conditions = [_condition(branch)] if branch.when else []
            machine.add_transition(ADVANCE, step.name, branch.goto, conditions=conditions)
    return CompiledFlow(flow, machine)
