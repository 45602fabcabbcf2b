"""The layers of docs/architecture.md, enforced: every `import` of our own code (at the top,
inside functions, under TYPE_CHECKING) is parsed with `ast` and checked against them.

A layer may import only the layers below it; the ground floor imports nothing of ours; one
channel never imports another; only the composition root puts concrete parts together, and
even it finds channels through entry points, never by name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "channels", "config", "flows", "routing", "storage")
# Bottom to top. A module belongs to the first layer with a prefix that names it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ground", ("bot.types", "bot.incident", "bot.session", "bot.phone", "bot.durations",
                "bot.outbound", "bot.text", "bot.yamlfiles", "bot.case", "bot.thai_id",
                "bot.staff", "bot.waits")),
    ("config", ("config",)),
    ("support", ("bot.i18n", "bot.logs", "bot.render", "bot.metrics", "bot.lang_pick",
                 "bot.histograms")),
    ("storage", ("storage",)),
    ("routing", ("routing",)),
    ("flows", ("flows",)),
    ("core", ("bot.engine", "bot.reports", "bot.my_reports", "bot.casework", "bot.case_photos",
              "bot.sweeper", "bot.inbound", "bot.inbox", "bot.services", "bot.privacy")),
    ("channels", ("channels", "ess_jsonhook")),
    ("root", ("bot.app", "bot.wiring", "bot.cli", "bot.cases_cli", "bot")),
)
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}
# The channels' shared contract; anything else under channels/ is one concrete channel.
CHANNEL_SHARED = ("channels.base", "channels.registry", "channels.web_pages", "channels.limits",
                  "channels.bodies", "channels")


def layer(module: str) -> str | None:
    best: tuple[int, str] | None = None
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            named = module == prefix or module.startswith(prefix + ".")
            if named and (best is None or len(prefix) > best[0]):
                best = (len(prefix), name)
    return best[1] if best else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "examples":
        parts = parts[2:]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))
    yield from sorted((ROOT / "examples").rglob("*.py"))


def imports(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def channel_of(module: str) -> str | None:
    """The concrete channel a module belongs to (channels.line.render → line), or None."""
    if module.startswith("ess_jsonhook"):
        return "jsonhook"
    if not module.startswith("channels.") or module in CHANNEL_SHARED:
        return None
    return module.split(".")[1]


def edges() -> list[tuple[str, int, str, str]]:
    found = []
    for path in sources():
        source = module_name(path)
        for line, target in imports(path):
            if layer(target) is not None:
                found.append((str(path.relative_to(ROOT)), line, source, target))
    return found


def test_every_module_is_in_a_layer() -> None:
    assert [module_name(p) for p in sources() if layer(module_name(p)) is None] == []


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong = []
    for where, line, source, target in edges():
        a, b = layer(source), layer(target)
        assert a is not None and b is not None
        if a != b and RANK[b] > RANK[a]:
            wrong.append(f"{where}:{line}: {source} ({a}) imports {target} ({b})")
        if a == "ground" and b != "ground":
            wrong.append(f"{where}:{line}: the ground floor imports {target}")
    assert wrong == []


def test_no_channel_imports_another_and_none_is_named_outside_channels() -> None:
    wrong = []
    for where, line, source, target in edges():
        theirs = channel_of(target)
        if theirs is None:
            continue
        mine = channel_of(source)
        if mine != theirs:
            wrong.append(f"{where}:{line}: {source} names the {theirs} channel")
    assert wrong == []


def test_no_import_circle_between_layers() -> None:
    graph: dict[str, set[str]] = {}
    for _, _, source, target in edges():
        a, b = layer(source), layer(target)
        assert a is not None and b is not None
        if a != b:
            graph.setdefault(a, set()).add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    assert [a for a in graph if reaches(a, a, {a})] == []


def test_the_checker_sees_a_forbidden_edge() -> None:
    # The rules above would catch today's defects if they came back.
    assert layer("flows.inputs") == "flows" and layer("routing.messages") == "routing"
    assert RANK["routing"] < RANK["flows"]  # routing importing flows is refused
    assert channel_of("channels.webchat.pages") == "webchat"
    assert channel_of("channels.sms") != channel_of("channels.webchat.pages")
    assert layer("bot.cli") == "root" and layer("bot.types") == "ground"
