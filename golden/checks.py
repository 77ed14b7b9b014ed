"""Argument checks shared by the configuration dataclasses and the command lines, with the
project's messages: ``TypeError`` for a wrong type, ``ValueError`` for a wrong value, worded
"<name> must be <rule>, not <value!r>" (argparse adds the option's name to
``int_at_least``'s)."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "check_choice",
    "check_float",
    "check_int",
    "int_at_least",
    "lookup",
    "plain_ints",
]

T = TypeVar("T")


def check_int(name: str, value: Any, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        rule = f"in {lo}..{hi}" if hi is not None else f"at least {lo}"
        raise ValueError(f"{name} must be {rule}, not {value!r}")


def int_at_least(lo: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer of at least ``lo`` (``argument --chunk: must be at
    least 1, not -5``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, not {value}")
        return value

    return parse


def plain_ints(obj: Any) -> None:
    """Turn the NumPy integers among the fields of the frozen dataclass ``obj`` into Python
    ``int``: a width derived from an ``np.int64`` stays an ``np.int64`` (``1 << x`` then
    wraps at 64 bits) and would leak into Amaranth shapes."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, np.integer):
            object.__setattr__(obj, f.name, int(value))


def check_float(name: str, value: Any, *, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise TypeError(f"{name} must be a number, not {value!r}")
    if not math.isfinite(value) or (value <= 0 if positive else value < 0):
        rule = "a positive number" if positive else "a non-negative number"
        raise ValueError(f"{name} must be {rule}, not {value!r}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    # Only a value of a choice's own type compares: an array (elementwise ``==``) or a list
    # is refused by name here, never by numpy's "truth value is ambiguous" later.
    if not any(isinstance(value, type(c)) and value == c for c in choices):
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")


def lookup(what: str, table: Mapping[str, T], name: str) -> T:
    """``table[name]``, or a ``ValueError`` naming ``what`` and listing the keys."""
    check_choice(what, name, table)
    return table[name]
