"""Find, check and compile every flow the service runs: shipped ones, then extra folders."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

from flows.compiler import CompiledFlow, compile_flow
from flows.loader import FlowError, Problem, load_flow

SHIPPED_DIR = Path(__file__).with_name("shipped")


def flow_files(dirs: Iterable[Path] = ()) -> list[Path]:
    files: list[Path] = []
    for directory in (SHIPPED_DIR, *dirs):
        files.extend(sorted(Path(directory).glob("*.yaml")))
    return files


def load_flows(files: Iterable[Path], *, inputs: Collection[str], actions: Collection[str],
               validators: Collection[str],
               catalog_keys: Collection[str] | None) -> dict[str, CompiledFlow]:
    """Compile every file; raise one FlowError with the problems of all of them."""
    compiled: dict[str, CompiledFlow] = {}
    problems: list[Problem] = []
    for path in files:
        try:
            flow = load_flow(path, inputs=inputs, actions=actions, validators=validators,
                             catalog_keys=catalog_keys)
        except FlowError as exc:
            problems.extend(exc.problems)
            continue
        if flow.name in compiled:
            problems.append(Problem(str(path), 1, f"flow {flow.name!r} is defined twice",
                                    f"also in {compiled[flow.name].flow.path}"))
            continue
        compiled[flow.name] = compile_flow(flow)
    if problems:
        raise FlowError(problems)
    return compiled
