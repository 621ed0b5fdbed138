"""Request bodies: declared once, checked on every call and described in the OpenAPI document.

A body is a JSON object whose fields are listed as ``Field`` values; anything else (not an
object, an unknown field, a wrong type, a NUL or a lone surrogate in a string) is refused
with a 400 that names the field, before any manager call, so nothing changes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kvmpool.errors import InvalidArgument
from kvmpool.units import parse_size

STRING, INTEGER, BOOLEAN, SIZE, STRINGS = "string", "integer", "boolean", "size", "strings"


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: str = STRING
    required: bool = False
    doc: str = ""
    enum: tuple[str, ...] = ()


Body = Sequence[Field]


def check_text(value: str, what: str) -> str:
    if "\x00" in value:
        raise InvalidArgument(f"{what} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} is not valid UTF-8 text") from None
    return value


def parse_body(raw: bytes, fields: Body) -> dict[str, object]:
    """The checked fields of a JSON object body (absent optional fields are left out)."""
    if not raw.strip():
        data: object = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as err:
            raise InvalidArgument(f"the body is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("the body must be a JSON object")
    known = {f.name: f for f in fields}
    for key in data:
        if key not in known:
            raise InvalidArgument(f"unknown field '{check_text(key, 'a field name')[:60]}'",
                                  hint="fields: " + (", ".join(known) or "none"))
    out: dict[str, object] = {}
    for f in fields:
        if f.name not in data or data[f.name] is None:
            if f.required:
                raise InvalidArgument(f"field '{f.name}' is required")
            continue
        out[f.name] = _check(f, data[f.name])
    return out


def _check(f: Field, value: object) -> object:
    what = f"field '{f.name}'"
    if f.kind == BOOLEAN:
        if not isinstance(value, bool):
            raise InvalidArgument(f"{what} must be true or false")
        return value
    if f.kind == INTEGER:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgument(f"{what} must be a non-negative integer")
        return value
    if f.kind == SIZE:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str):
            return parse_size(check_text(value, what))
        raise InvalidArgument(f"{what} must be a size: bytes, or a string like '10G'")
    if f.kind == STRINGS:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"{what} must be a list of strings")
        return [check_text(v, what) for v in value]
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string")
    check_text(value, what)
    if f.enum and value not in f.enum:
        raise InvalidArgument(f"{what} must be one of: " + ", ".join(f.enum))
    return value


def json_schema(fields: Body) -> dict[str, object]:
    """The OpenAPI (JSON Schema) description of a body."""
    props: dict[str, object] = {}
    for f in fields:
        props[f.name] = _prop(f)
    schema: dict[str, object] = {"type": "object", "properties": props,
                                 "additionalProperties": False}
    required = [f.name for f in fields if f.required]
    if required:
        schema["required"] = required
    return schema


def _prop(f: Field) -> Mapping[str, object]:
    base: dict[str, object]
    if f.kind == SIZE:
        base = {"oneOf": [{"type": "integer", "minimum": 0},
                          {"type": "string", "pattern": "^[0-9]+[A-Za-z]*$"}]}
    elif f.kind == STRINGS:
        base = {"type": "array", "items": {"type": "string"}}
    elif f.kind == INTEGER:
        base = {"type": "integer", "minimum": 0}
    elif f.kind == BOOLEAN:
        base = {"type": "boolean"}
    else:
        base = {"type": "string"}
        if f.enum:
            base["enum"] = list(f.enum)
    if f.doc:
        base["description"] = f.doc
    return base
