"""virsh's text output (tables, ``Label:  value`` lines, sizes) and kvmpool's --json."""

from __future__ import annotations

import dataclasses
import enum
import json
import unicodedata
from collections.abc import Sequence
from typing import Any

import click

from kvmpool.units import pretty


def display_width(text: str) -> int:
    """Columns a cell takes; control characters count as the 4-column escape ``\\xNN``."""
    if text.isascii() and text.isprintable():
        return len(text)
    width = 0
    for ch in text:
        if ord(ch) < 32 or ord(ch) == 127:
            width += 4
        elif unicodedata.east_asian_width(ch) in ("W", "F"):
            width += 2
        elif unicodedata.combining(ch):
            continue
        else:
            width += 1
    return width


def _escape(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(f"\\x{ord(c):02x}" if ord(c) < 32 or ord(c) == 127 else c for c in text)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, quiet: bool = False) -> str:
    """virsh's vsh-table: columns padded to the widest cell + 2, a dash line, no trailing blanks."""
    cells = [list(header), *map(list, rows)]
    text = "".join("".join(row) for row in cells)
    if text.isascii() and text.isprintable():  # the usual case: one column per character
        widths = [max(map(len, column)) for column in zip(*cells, strict=True)]
        template = "".join(f" {{:<{w + 2}}}" for w in widths[:-1]) + " {}\n"
        lines = [template.format(*row) for row in cells]
    else:
        cells = [[_escape(c) for c in row] for row in cells]
        widths = [max(map(display_width, column)) for column in zip(*cells, strict=True)]

        def line(row: Sequence[str]) -> str:
            parts = []
            for i, cell in enumerate(row):
                parts.append(" " + cell)
                if i < len(row) - 1:
                    parts.append(" " * (widths[i] - display_width(cell) + 2))
            return "".join(parts) + "\n"

        lines = [line(row) for row in cells]
    if quiet:
        return "".join(lines[1:])
    return "".join([lines[0], "-" * sum(w + 3 for w in widths) + "\n", *lines[1:]])


def info_lines(pairs: Sequence[tuple[str, str]]) -> str:
    return "".join(f"{label + ':':<15} {value}\n" for label, value in pairs)


def size(value: int, as_bytes: bool, suffix: str = "") -> str:
    return f"{value}{suffix}" if as_bytes else pretty(value)


def jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(jsonable(obj), indent=2, sort_keys=False))
