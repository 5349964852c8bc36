"""Attributes v2 of an ontology: their definitions, and the values annotations give them.

A definition is Dataloop's ``{key, title, type, scope, optional, ...}`` with ``type`` one of
``options`` (``values``, ``multi`` for a checkbox list, else one radio choice), ``range``
(``range: {min, max, step}``, a slider), ``boolean`` (yes/no) or ``freeText``. ``scope`` lists
the labels it applies to (a label and its descendants) or ``["*"]`` for every label. An
annotation gives values in ``attributes`` (``{key: value}``; Dataloop's
``metadata.system.attributes``); a value of
``None`` (or an empty list or blank text) is no value, which a required attribute
(``optional: false``) refuses.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from graph.domain.errors import InvalidInput
from graph.domain.labels import within

__all__ = ["TYPES", "applies", "check_definitions", "check_value", "is_empty"]

TYPES = ("options", "range", "boolean", "freeText")
_COMMON = {"key", "title", "type", "scope", "optional"}
_EXTRA = {"options": {"values", "multi"}, "range": {"range"}, "boolean": set(), "freeText": set()}
_STEP_TOLERANCE = 1e-9


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: Any, what: str, field: str, limit: int = 200) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidInput(f"{what} must be text of 1 to {limit} characters", field=field)
    return value.strip()


def _check_range(given: Any, field: str) -> dict[str, float]:
    if not isinstance(given, dict) or not {"min", "max"} <= set(given):
        raise InvalidInput("a range attribute needs range: {min, max, step}", field=field)
    low, high, step = given["min"], given["max"], given.get("step", 1)
    if not all(_number(v) for v in (low, high, step)) or low >= high or step <= 0:
        raise InvalidInput(
            "range needs finite numbers with min < max and step > 0", field=field, range=given
        )
    return {"min": low, "max": high, "step": step}


def _check_one(given: Any, labels: Collection[str], field: str) -> dict[str, Any]:
    if not isinstance(given, dict):
        raise InvalidInput("an attribute is an object {key, title, type, scope, ...}", field=field)
    kind = given.get("type")
    if kind not in TYPES:
        raise InvalidInput(
            f"attribute type must be one of {', '.join(TYPES)}, got {kind!r}", field=f"{field}.type"
        )
    unknown = sorted(set(given) - _COMMON - _EXTRA[kind])
    if unknown:
        raise InvalidInput(
            f"a {kind} attribute has no field {unknown[0]!r}", field=f"{field}.{unknown[0]}"
        )
    key = _text(given.get("key"), "an attribute key", f"{field}.key")
    title = given.get("title")
    scope = given.get("scope", ["*"])
    if not isinstance(scope, list) or not scope or not all(isinstance(s, str) for s in scope):
        raise InvalidInput('scope is a list of labels, or ["*"] for all', field=f"{field}.scope")
    for label in scope:
        if label != "*" and label not in labels:
            raise InvalidInput(
                f"attribute {key!r} is scoped to label {label!r}, which is not in the ontology",
                field=f"{field}.scope",
            )
    optional = given.get("optional", True)
    if not isinstance(optional, bool):
        raise InvalidInput("optional is true or false", field=f"{field}.optional")
    out: dict[str, Any] = {
        "key": key,
        "title": key if title is None else _text(title, "a title", f"{field}.title"),
        "type": kind,
        "scope": ["*"] if "*" in scope else list(dict.fromkeys(scope)),
        "optional": optional,
    }
    if kind == "options":
        values = given.get("values")
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) and v for v in values)
            or len(set(values)) != len(values)
        ):
            raise InvalidInput(
                "an options attribute needs values: a list of distinct non-empty texts",
                field=f"{field}.values",
            )
        multi = given.get("multi", False)
        if not isinstance(multi, bool):
            raise InvalidInput("multi is true or false", field=f"{field}.multi")
        out.update(values=values, multi=multi)
    elif kind == "range":
        out["range"] = _check_range(given.get("range"), f"{field}.range")
    return out


def check_definitions(
    given: Any, labels: Collection[str], field: str = "attributes"
) -> list[dict[str, Any]]:
    """Attribute definitions as stored, once each is valid, keys are unique and every label a
    scope names is in ``labels``."""
    if not isinstance(given, list):
        raise InvalidInput("attributes must be a list of definitions", field=field)
    out = [_check_one(one, labels, f"{field}[{n}]") for n, one in enumerate(given)]
    keys = [d["key"] for d in out]
    for n, key in enumerate(keys):
        if key in keys[:n]:
            raise InvalidInput(f"attribute key {key!r} is defined twice", field=f"{field}[{n}].key")
    return out


def applies(definition: Mapping[str, Any], label: str | None) -> bool:
    """Whether an attribute applies to annotations of ``label``."""
    scope = definition["scope"]
    if "*" in scope:
        return True
    return label is not None and any(within(label, s) for s in scope)


def is_empty(value: Any) -> bool:
    return value is None or value == [] or (isinstance(value, str) and not value.strip())


def _allowed(definition: Mapping[str, Any]) -> str:
    kind = definition["type"]
    if kind == "options":
        values = ", ".join(repr(v) for v in definition["values"])
        return f"a list of {values}" if definition["multi"] else f"one of {values}"
    if kind == "range":
        r = definition["range"]
        return f"a number from {r['min']} to {r['max']} in steps of {r['step']}"
    return "true or false" if kind == "boolean" else "text"


def _valid(definition: Mapping[str, Any], value: Any) -> bool:
    kind = definition["type"]
    if kind == "options":
        values = definition["values"]
        if definition["multi"]:
            return (
                isinstance(value, list)
                and all(isinstance(v, str) and v in values for v in value)
                and len(set(value)) == len(value)
            )
        return isinstance(value, str) and value in values
    if kind == "range":
        r = definition["range"]
        if not _number(value) or not r["min"] <= value <= r["max"]:
            return False
        steps = (value - r["min"]) / r["step"]
        return abs(steps - round(steps)) <= _STEP_TOLERANCE * max(1.0, abs(steps))
    if kind == "boolean":
        return isinstance(value, bool)
    return isinstance(value, str)


def check_value(
    definition: Mapping[str, Any],
    value: Any,
    label: str | None,
    where: str,
    field: str | None = None,
) -> None:
    """Refuse a value ``definition`` does not allow (``None`` and other empty values pass);
    ``where`` names the annotation (``annotations[2]``), ``field`` where its values are (its
    ``attributes`` unless given)."""
    if is_empty(value) or _valid(definition, value):
        return
    key = definition["key"]
    raise InvalidInput(
        f"{where}: attribute {key!r} of label {label!r} must be {_allowed(definition)}; "
        f"got {value!r}",
        field=f"{field or where + '.attributes'}.{key}",
        attribute=key,
        label=label,
    )
