"""pydantic's validation errors as sentences: the key, the value, what is allowed there, and where in
the file it is. A key whose type is a union (``auto`` or a number) gives pydantic one error per
branch; they become one sentence. Pure: errors and positions in, text out."""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

# (line, column) of a key path in the file, at its value or (``at_key``) at its key; None: not known.
Locate = Callable[[Sequence[Any], bool], "tuple[int, int] | None"]

# Errors whose own words already say what is allowed: bounds, and the validators' messages.
_KEEP_MESSAGE = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "value_error",
                 "assertion_error", "too_short", "too_long"}


def _field(model: type[BaseModel], name: str) -> FieldInfo | None:
    return model.model_fields.get(name)


def _walk(root: type[BaseModel], loc: Sequence[Any]) -> tuple[tuple[Any, ...], Any, FieldInfo | None]:
    """The part of ``loc`` that names keys (pydantic appends a union branch's tag, such as
    ``literal['auto']`` or ``int``), the annotation there and its field (bounds live on the field)."""
    model: type[BaseModel] | None = root
    annotation: Any = root
    field: FieldInfo | None = None
    keys: list[Any] = []
    for part in loc:
        if model is not None:
            field = _field(model, str(part))
            if field is None:
                break
            annotation, model = field.annotation, None
        elif get_origin(annotation) is dict:
            annotation, field = get_args(annotation)[1], None
        elif get_origin(annotation) is tuple or get_origin(annotation) is list:
            annotation, field = get_args(annotation)[0], None
        else:
            break
        keys.append(part)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return tuple(keys), annotation, field


def _bounds(field: FieldInfo | None) -> str:
    low = high = None
    for item in field.metadata if field is not None else ():
        if isinstance(item, (annotated_types.Ge, annotated_types.Gt)):
            low = getattr(item, "ge", None) if isinstance(item, annotated_types.Ge) else item.gt
        if isinstance(item, (annotated_types.Le, annotated_types.Lt)):
            high = getattr(item, "le", None) if isinstance(item, annotated_types.Le) else item.lt
    if low is not None and high is not None:
        return f" from {low:g} to {high:g}"
    if low is not None:
        return f" of at least {low:g}"
    return f" up to {high:g}" if high is not None else ""


def _or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _choices(annotation: Any, field: FieldInfo | None) -> list[str]:
    origin = get_origin(annotation)
    if origin is Literal:
        return [str(value) for value in get_args(annotation)]
    if origin is Union or origin is types.UnionType:
        return [word for arg in get_args(annotation) for word in _choices(arg, field)]
    if annotation is type(None):
        return ["null"]
    if annotation is bool:
        return ["true", "false"]
    if annotation is int:
        return ["a whole number" + _bounds(field)]
    if annotation is float:
        return ["a number" + _bounds(field)]
    if annotation is Fraction:
        return ["a frame rate such as 60 or 60000/1001"]
    if annotation is Path:
        return ["a path"]
    if annotation is str:
        return ["text"]
    if origin in (tuple, list):
        return [f"a list of {allowed(get_args(annotation)[0])}".replace("list of text", "list of names")]
    if origin is dict:
        return ["a mapping"]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f"a mapping of its keys ({', '.join(annotation.model_fields)})"]
    return ["another value"]


def allowed(annotation: Any, field: FieldInfo | None = None) -> str:
    """What a key of this type takes, in words: ``auto or a whole number``, ``rife, dis or blend``."""
    return _or(_choices(annotation, field))


def _where(locate: Locate | None, loc: Sequence[Any], *, at_key: bool = False) -> str:
    # After the key and value, so that a line clipped to fit (the tray's menu) still names them.
    found = locate(loc, at_key) if locate is not None else None
    return "" if found is None else f" (line {found[0]}, column {found[1]})"


def _order(locate: Locate | None, loc: Sequence[Any], at_key: bool) -> tuple[float, float]:
    found = locate(loc, at_key) if locate is not None else None
    return (float("inf"), float("inf")) if found is None else found


# Apprise URLs hold their services' tokens: an error about them never repeats the value.
SECRET_KEYS = ("notifications.urls",)


def _dotted(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def describe_errors(errors: Sequence[Mapping[str, Any]], *, root: type[BaseModel], source: str,
                    locate: Locate | None = None) -> list[str]:
    """One line per key in error: ``SOURCE: KEY = VALUE (line L, column C): what to write instead``,
    in the file's order."""
    lines: list[tuple[tuple[float, float], str]] = []
    by_key: dict[tuple[Any, ...], tuple[Any, FieldInfo | None, list[Mapping[str, Any]]]] = {}
    for error in errors:
        if error["type"] == "extra_forbidden":
            loc = error["loc"]
            here = _walk(root, loc[:-1])[1]
            known_keys = list(here.model_fields) if isinstance(here, type) and issubclass(here, BaseModel) else []
            lines.append((_order(locate, loc, True), f"{source}: unknown key {_dotted(loc)!r}"
                                                     f"{_where(locate, loc, at_key=True)}; allowed here: {', '.join(known_keys)}"))
            continue
        keys, annotation, field = _walk(root, error["loc"])
        by_key.setdefault(keys, (annotation, field, []))[2].append(error)
    for keys, (annotation, field, group) in by_key.items():
        kept = [error for error in group if error["type"] in _KEEP_MESSAGE]
        if kept:  # a bound or a validator's own sentence says more than the list of types
            message = kept[0]["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        else:
            message = f"use {allowed(annotation, field)}"
        value = group[0].get("input")
        shown = "(not shown)" if _dotted(keys).startswith(SECRET_KEYS) else repr(value)
        line = f"{source}: {_dotted(keys)} = {shown}{_where(locate, keys)}: {message}"
        lines.append((_order(locate, keys, False), line))
    return [line for _, line in sorted(lines, key=lambda item: item[0])]
