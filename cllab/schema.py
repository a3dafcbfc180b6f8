"""The checks params.yaml's leaves are validated with: each a predicate and the phrase an error message uses."""

from __future__ import annotations

import math
from pathlib import PurePosixPath, PureWindowsPath
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Spec:
    """One leaf of the schema: a check and what it says when the check fails."""

    check: Callable[[Any], bool]
    expect: str
    item: "Spec | None" = None  # for lists: the check of each item, so that an error can name the bad one


def problem(spec: Spec, value: Any) -> str:
    """What is wrong with a value that failed `spec`: the bad item of a list, else the whole value."""
    if spec.item is not None and isinstance(value, list):
        for i, x in enumerate(value):
            if not spec.item.check(x):
                return f"item {i} is {x!r}, expected {spec.item.expect}"
        if len(set(map(str, value))) != len(value):
            repeated = next(x for x in value if list(map(str, value)).count(str(x)) > 1)
            return f"{repeated!r} appears twice, expected {spec.expect}"
    return f"must be {spec.expect}, got {value!r}"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def int_at_least(low: int) -> Spec:
    return Spec(lambda v: _is_int(v) and v >= low, f"an integer >= {low}")


def num_at_least(low: float) -> Spec:
    return Spec(lambda v: _is_num(v) and v >= low, f"a finite number >= {low:g}")


def num_positive() -> Spec:
    return Spec(lambda v: _is_num(v) and v > 0, "a finite number > 0")


def zero(why: str) -> Spec:
    return Spec(lambda v: _is_num(v) and v == 0, f"0 ({why})")


def fraction() -> Spec:
    return Spec(lambda v: _is_num(v) and 0 < v < 1, "a number strictly between 0 and 1")


def half_open_fraction() -> Spec:
    return Spec(lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)")


def one_of(*choices: str) -> Spec:
    return Spec(lambda v: v in choices, "one of " + ", ".join(choices))


def text() -> Spec:
    return Spec(lambda v: isinstance(v, str) and v != "", "a non-empty string")


def project_path() -> Spec:
    """A relative path inside the project (a DVC output must be: DVC refuses one outside the repository)."""
    def check(v: Any) -> bool:
        if not isinstance(v, str) or v.strip() != v or PurePosixPath(v).is_absolute() or PureWindowsPath(v).drive:
            return False
        parts = PurePosixPath(v.replace("\\", "/")).parts
        return bool(parts) and ".." not in parts and "." not in parts

    return Spec(check, "a relative path to a folder inside the project (no leading /, no . or .., no spaces around)")


def unique_list_of(item: Spec, empty: bool = False) -> Spec:
    def check(v: Any) -> bool:
        return (isinstance(v, list) and (empty or len(v) > 0) and len(set(map(str, v))) == len(v)
                and all(item.check(x) for x in v))

    return Spec(check, f"a {'' if empty else 'non-empty '}list without repeats, each {item.expect}", item)


def list_of_mappings(fields: dict[str, Spec], what: str) -> Spec:
    def check(v: Any) -> bool:
        return isinstance(v, list) and len(v) > 0 and all(
            isinstance(x, dict) and set(x) == set(fields) and all(fields[k].check(x[k]) for k in fields) for x in v
        )

    return Spec(check, f"a non-empty list of {what}")


def all_or_int() -> Spec:
    return Spec(lambda v: v == "all" or (_is_int(v) and v >= 1), "'all' or an integer >= 1")
