"""One strict YAML reader for stack and node files.

Stack files are edited by many hands and by pipelines, so a file is refused, with its name and
line, when it holds anything a careful reader could take two ways or that could exhaust the
process: duplicate keys (PyYAML would keep the last one silently), keys that are not strings,
more than one document, nesting deeper than ``MAX_DEPTH``, or aliases that expand to more than
``MAX_VALUES`` values (a "billion laughs" file of a few hundred bytes).

Scalars resolve as in YAML 1.2's core schema, as the Pulumi CLI reads the same files: only
``true``/``false`` are booleans (``yes``, ``on`` stay strings), and no scalar becomes a date.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

MAX_DEPTH = 32
MAX_VALUES = 20_000


class YamlProblem(ValueError):
    """A file glmserve will not read, with the line (1-based) where the problem is."""

    def __init__(self, message: str, line: Optional[int] = None):
        super().__init__(message)
        self.message, self.line = message, line


class Yaml12CoreResolver(BaseResolver):
    """Implicit tags of YAML 1.2's core schema."""


for tag, pattern, first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     "-+0123456789."),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
):
    Yaml12CoreResolver.add_implicit_resolver(tag, re.compile(pattern), list(first))


class StrictConstructor(SafeConstructor):
    def construct_yaml_int(self, node: ScalarNode) -> int:
        text = self.construct_scalar(node)
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text)

    def construct_yaml_bool(self, node: ScalarNode) -> bool:
        return self.construct_scalar(node).lower() == "true"

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict:
        if not isinstance(node, MappingNode):
            raise YamlProblem(f"expected a mapping, found {node.id}", node.start_mark.line + 1)
        out: dict = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise YamlProblem(f"key {key!r} is not a string", key_node.start_mark.line + 1)
            if key in out:
                raise YamlProblem(f"duplicate key {key!r} (a second value would silently win)",
                                  key_node.start_mark.line + 1)
            out[key] = self.construct_object(value_node, deep=deep)
        return out


StrictConstructor.add_constructor("tag:yaml.org,2002:int", StrictConstructor.construct_yaml_int)
StrictConstructor.add_constructor("tag:yaml.org,2002:bool", StrictConstructor.construct_yaml_bool)


class StrictComposer(Composer):
    """Composes nodes while refusing nesting that is too deep (before Python's own recursion
    limit turns it into a traceback)."""

    depth = 0

    def compose_node(self, parent: Optional[Node], index: Any) -> Node:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise YamlProblem(f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class StrictLoader(Reader, Scanner, Parser, StrictComposer, StrictConstructor, Yaml12CoreResolver):
    def __init__(self, stream: str):
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        StrictComposer.__init__(self)
        StrictConstructor.__init__(self)
        Yaml12CoreResolver.__init__(self)


def _expanded_size(node: Node, memo: dict[int, int]) -> int:
    """How many values ``node`` becomes once every alias is expanded (shared nodes counted
    each time they are used), without expanding anything."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1          # a cycle (an alias inside its own anchor) counts once
    if isinstance(node, SequenceNode):
        size = 1 + sum(_expanded_size(n, memo) for n in node.value)
    elif isinstance(node, MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = size
    return size


def loads(text: str) -> Any:
    """Parse one YAML document strictly (YamlProblem on anything refused)."""
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_VALUES:
            raise YamlProblem(f"aliases expand to more than {MAX_VALUES:,} values", node.start_mark.line + 1)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise YamlProblem(f"is not valid YAML: {e.problem or e.context}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as e:
        raise YamlProblem(f"is not valid YAML: {e}") from None
    except RecursionError:
        raise YamlProblem("is nested too deeply to read") from None
    finally:
        loader.dispose()


def load_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise YamlProblem(f"is not UTF-8 text (byte {e.start})") from None
    return loads(text)
