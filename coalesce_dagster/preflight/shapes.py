"""The shape of a JSON body without any of its values: field names, JSON types, nesting.

A shape report is meant to be attached to a public issue, so it must carry no id, name, SQL,
email or token. Values are replaced by their JSON type. Field names are kept, because they are the
API's vocabulary, except where an object's keys are themselves data (doc §3.1: `currentMappings`
is keyed by storage location, `runTimeParameters` by parameter name; §3.2: `aliases` by alias;
§12.4: `appliedColumnTests` by test name):
such an object is described as a map, its keys dropped and its values' shapes merged. A key is
treated as data when its parent is one of those, when it is not an identifier (`"27"`, `"my key"`),
or when it equals a string value seen anywhere in the bodies the check read (a storage location
named in a node's `locationName`, say).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Set
from typing import Any

# Objects whose keys are names chosen by the account's users, not field names of the API.
DATA_KEYED_FIELDS = frozenset(
    {"currentMappings", "runTimeParameters", "aliases", "parameters", "config", "appliedColumnTests"}
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Shape = Any  # a JSON type name, or a dict describing an object, array, map or union
NOTHING = "nothing"  # the items of an empty list


# Envelope keys whose values echo the request (`orderBy: "id"`), not the account's data.
_ECHOED_FIELDS = frozenset({"orderBy", "orderByDirection", "startingFrom"})


def string_values(bodies: Iterable[Any]) -> set[str]:
    """Every string value (not key) in `bodies`: keys equal to one of these are data."""
    found: set[str] = set()
    stack = list(bodies)
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, dict):
            stack.extend(item for key, item in value.items() if key not in _ECHOED_FIELDS)
        elif isinstance(value, list):
            stack.extend(value)
    return found


def shape_of(value: Any, data_strings: Set[str] = frozenset(), *, keys_are_data: bool = False) -> Shape:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return {"array": merge_shapes(shape_of(item, data_strings) for item in value)}
    if isinstance(value, dict):
        if keys_are_data or any(_is_data_key(key, data_strings) for key in value):
            return {
                "map": merge_shapes(
                    shape_of(item, data_strings, keys_are_data=key in DATA_KEYED_FIELDS)
                    for key, item in value.items()
                )
            }
        return {
            "object": {
                key: shape_of(item, data_strings, keys_are_data=key in DATA_KEYED_FIELDS)
                for key, item in sorted(value.items())
            }
        }
    return type(value).__name__


def merge_shapes(shapes: Iterable[Shape]) -> Shape:
    """One shape for the items of a list: objects merge their fields, other differences a union."""
    merged: Shape = None  # None: no item seen yet
    for shape in shapes:
        merged = shape if merged is None else _merge(merged, shape)
    return NOTHING if merged is None else merged


def field_names(shape: Shape) -> set[str]:
    """The top-level field names of an object shape (or of the objects in an array shape)."""
    if isinstance(shape, dict) and "array" in shape:
        shape = shape["array"]
    if isinstance(shape, dict) and "object" in shape:
        return set(shape["object"])
    if isinstance(shape, dict) and "anyOf" in shape:
        return set().union(*(field_names(option) for option in shape["anyOf"]))
    return set()


def type_names(shape: Shape) -> list[str]:
    """A shape as the JSON type names it may take: `string`, `object`, `array`, ..."""
    if isinstance(shape, dict) and "anyOf" in shape:
        return sorted({name for option in shape["anyOf"] for name in type_names(option)})
    if isinstance(shape, dict):
        return ["object" if "map" in shape else next(iter(shape))]
    return [str(shape)]


def _is_data_key(key: str, data_strings: Set[str]) -> bool:
    return not _IDENTIFIER.fullmatch(key) or key in data_strings


def _merge(a: Shape, b: Shape) -> Shape:
    if a == b or b == NOTHING:
        return a
    if a == NOTHING:  # an empty list says nothing about its items' shape
        return b
    if isinstance(a, dict) and isinstance(b, dict):
        for kind in ("object", "array", "map"):
            if kind in a and kind in b:
                if kind == "object":
                    fields = {**a[kind]}
                    for key, shape in b[kind].items():
                        fields[key] = _merge(fields[key], shape) if key in fields else shape
                    return {kind: dict(sorted(fields.items()))}
                return {kind: _merge(a[kind], b[kind])}
    options = [*_options(a)]
    for option in _options(b):
        for index, existing in enumerate(options):
            merged = _merge_if_same_kind(existing, option)
            if merged is not None:
                options[index] = merged
                break
        else:
            options.append(option)
    if len(options) == 1:
        return options[0]
    return {"anyOf": sorted(options, key=repr)}


def _options(shape: Shape) -> list[Shape]:
    return list(shape["anyOf"]) if isinstance(shape, dict) and "anyOf" in shape else [shape]


def _merge_if_same_kind(a: Shape, b: Shape) -> Shape | None:
    if a == b:
        return a
    if isinstance(a, dict) and isinstance(b, dict) and next(iter(a)) == next(iter(b)) != "anyOf":
        return _merge(a, b)
    return None
