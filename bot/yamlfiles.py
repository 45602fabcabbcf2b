"""Reading our YAML files (flows, catalogs) so that a key written twice is an error.

YAML says mapping keys are unique, but PyYAML keeps the last of two silently: a flow step or
a catalog text pasted twice would replace the first without a word. `UniqueKeyLoader`
refuses it, naming the lines of both.
"""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKey(yaml.MarkedYAMLError):
    """A key that appears twice in one mapping; `line` is the second, `first_line` the first."""

    def __init__(self, key: object, first_line: int, mark: yaml.Mark) -> None:
        super().__init__(problem=f"duplicate key {key!r} (first at line {first_line})",
                         problem_mark=mark)
        self.key = key
        self.first_line = first_line
        self.line = mark.line + 1


def check_unique_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> None:
    """Raise DuplicateKey when `node` holds a key twice (merge keys `<<` excepted)."""
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:
            continue  # an unhashable key is refused by the constructor itself
        if first is not None:
            raise DuplicateKey(key, first, key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1


class UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader`, refusing duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        check_unique_keys(self, node)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """One YAML document with unique keys (DuplicateKey, a yaml.YAMLError, otherwise)."""
    return yaml.load(text, Loader=UniqueKeyLoader)
