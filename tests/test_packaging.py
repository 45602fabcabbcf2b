"""The install is reproducible: every dependency pinned, the pins inside the declared ranges."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import asyncpg
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def pins() -> dict[str, Version]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            found[canonicalize_name(name)] = Version(version)
    return found


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] +
            project["optional-dependencies"]["test"]]


def test_every_dependency_and_tool_is_pinned_inside_its_range() -> None:
    pinned = pins()
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not in constraints.txt"
        assert requirement.specifier.contains(pinned[name], prereleases=True), \
            f"{name}=={pinned[name]} is outside {requirement.specifier}"
    assert {"ruff", "mypy", "pip"} <= set(pinned)


def test_bootstrap_installs_with_the_constraints() -> None:
    script = (ROOT / "scripts" / "bootstrap").read_text()
    assert script.count("-c constraints.txt") == 2


def test_the_asyncpg_floor_has_the_reset_argument_the_code_uses() -> None:
    [requirement] = [r for r in requirements() if r.name == "asyncpg"]
    assert requirement.specifier.contains("0.30.0") and not requirement.specifier.contains("0.29.0")
    assert "reset" in inspect.signature(asyncpg.create_pool).parameters
