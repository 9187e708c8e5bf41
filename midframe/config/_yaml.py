"""YAML read with its positions: the data, and for any key path the line and column it came from; a
syntax error told as the line where the mistake is (an unclosed quote's own line, not the line where
the parser gave up). Pure: text in, data and words out."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

# A line of the form `key:` inside a quoted value: text the open quote swallowed.
_SWALLOWED_KEY = re.compile(r"\n[ \t]*[A-Za-z_][\w-]*[ \t]*:")

# What the scanner and parser say, in words a person editing the file acts on.
_PROBLEMS = {
    "mapping values are not allowed here": ("a ':' where no key can start here (check the indentation, or quote "
                                            "a value that holds ': ')"),
    "found character '\\t' that cannot start any token": "a tab: indent with spaces",
    "found undefined alias": "an alias (*name) with no anchor (&name) before it",
}


def read_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """The data of one YAML document and its node tree (for ``position``); ``yaml.YAMLError`` as
    ``yaml.safe_load`` raises it."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, node


def _child(node: yaml.Node, part: Any) -> tuple[yaml.Node, yaml.Node] | None:
    """The (key, value) nodes under ``node`` for ``part``: a mapping's key, a sequence's index."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return key, value
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part], node.value[part]
    return None


def position(root: yaml.Node | None, loc: Sequence[Any], *, at_key: bool = False) -> tuple[int, int] | None:
    """1-based (line, column) of the value at ``loc`` (of its key with ``at_key``), or of the deepest
    part of ``loc`` the file has (a key a profile took from the top level); None without a file."""
    if root is None:
        return None
    node, key_node = root, None
    for part in loc:
        found = _child(node, part)
        if found is None:
            break
        key_node, node = found
    else:
        if at_key and key_node is not None:
            node = key_node
    if node is root:
        return None
    mark = node.start_mark
    return mark.line + 1, mark.column + 1


def _open_quote(text: str) -> yaml.Mark | None:
    """Where a quoted value starts that runs over lines that look like ``key:``, before the first
    error: a quote left open, which swallowed the lines up to the next quote of its kind."""
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if (isinstance(token, yaml.ScalarToken) and token.style in ('"', "'")
                    and _SWALLOWED_KEY.search(text, token.start_mark.index, token.end_mark.index)):
                return token.start_mark
    except yaml.YAMLError:
        pass
    return None


def _at(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def describe_yaml_error(text: str, error: yaml.YAMLError) -> str:
    """One sentence naming the line and column of the mistake in ``text``."""
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        return str(error).replace("\n", " ")
    problem, mark = error.problem or "not valid here", error.problem_mark
    if error.context == "while scanning a quoted scalar" and error.context_mark is not None:
        return f"{_at(error.context_mark)}: this quote is never closed"
    bracket = {"while parsing a flow sequence": "[", "while parsing a flow mapping": "{"}.get(error.context or "")
    if bracket and error.context_mark is not None:
        return (f"{_at(error.context_mark)}: the {bracket} opened here is not closed before {_at(mark)} "
                f"({problem})")
    opened = _open_quote(text)
    if opened is not None and opened.line <= mark.line:
        return (f"{_at(opened)}: this quote is not closed on its line, so the value runs on to the next quote "
                f"and the file breaks at line {mark.line + 1}; close the quote")
    return f"{_at(mark)}: {_PROBLEMS.get(problem, problem)}"
