"""Plain values read from YAML or JSON checked against a dataclass field's type: a hand-edited file (a profile, a
saved matcher's matcher.json) then fails on the key it got wrong, saying what was expected, before anything runs."""

from __future__ import annotations

import math
import types
import typing
from pathlib import Path

_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path"}


def type_problem(value, kind) -> str | None:
    """Why ``value`` cannot be a ``kind`` (None: it can). An int stands for a float; a list for a tuple."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType):     # X | None
        if value is None:
            return None
        problem = type_problem(value, next(a for a in args if a is not type(None)))
        return problem and f"{problem} or null"
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, list):
            return f"is {_name(value)}: expected {_describe(kind)}"
        items = typing.get_args(kind)
        item = items[0]
        if items[-1] is not Ellipsis and len(value) != len(items):
            return f"has {len(value)} items: expected {len(items)}"
        wrong = [x for x in value if not _is(x, item)]
        if wrong:
            return f"holds {wrong[0]!r} ({_name(wrong[0])}): expected every item to be {_TYPE_NAMES[item]}"
        return None
    if value is None or not _is(value, kind):
        hint = (" (YAML reads a number like 5e-5 as text: write 5.0e-5)"
                if isinstance(value, str) and kind is float and _is_float_text(value) else "")
        return f"is {_name(value)}{hint}: expected {_describe(kind)}"
    return None


def _describe(kind) -> str:
    return "a list" if typing.get_origin(kind) is tuple else _TYPE_NAMES.get(kind, str(kind))


def _name(value) -> str:
    return "null" if value is None else type(value).__name__


def _is(value, kind: type) -> bool:
    """isinstance, except that a bool is no number, an int is a float and text is a path."""
    if kind in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, {float: (int, float), Path: str}.get(kind, kind))


def _is_float_text(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def field_problem(cls: type, values: dict) -> str | None:
    """The first ``key = value problem`` of a mapping meant to build the dataclass ``cls`` (None: every value has
    its field's type; unknown or missing keys are left to the constructor)."""
    if not isinstance(values, dict):
        raise TypeError(f"expected a mapping of {cls.__name__}'s fields, got {_name(values)}")
    hints = typing.get_type_hints(cls)
    return next((f"{key} = {value!r} {problem}" for key, value in values.items()
                 if key in hints and (problem := type_problem(value, hints[key]))), None)
